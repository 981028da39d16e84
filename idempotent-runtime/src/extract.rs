//! The extractor that the attribute puts in place of a handler's last argument.

use std::marker::PhantomData;

use axum::RequestExt;
use axum::body::Body;
use axum::extract::{FromRequest, OriginalUri, Request};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::{HeaderMap, Method, Uri};
use http_body_util::BodyExt;

use crate::layer::StoreHandle;
use crate::problem::{Problem, ProblemKind};

/// The parts of a request that the runtime keeps after the handler's own extractor took the
/// body.
pub struct RequestHead {
    pub(crate) method: Method,
    pub(crate) uri: Uri,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Bytes,
    pub(crate) store: Option<StoreHandle>,
}

/// Shows the method and path only: headers carry the idempotency key and credentials, and the
/// body may carry personal data.
impl std::fmt::Debug for RequestHead {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequestHead")
            .field("method", &self.method)
            .field("path", &self.uri.path())
            .finish_non_exhaustive()
    }
}

impl RequestHead {
    pub(crate) fn is_safe_method(method: &Method) -> bool {
        method == Method::GET
            || method == Method::HEAD
            || method == Method::OPTIONS
            || method == Method::TRACE
    }
}

/// The handler's last extractor `T`, run on a buffered copy of the body, plus the request head.
///
/// Safe methods (GET, HEAD, OPTIONS, TRACE) are not buffered: `T` gets the request untouched.
pub struct IdempotentRequest<T> {
    inner: T,
    head: Option<RequestHead>,
}

impl<T> std::fmt::Debug for IdempotentRequest<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdempotentRequest").finish_non_exhaustive()
    }
}

impl<T> IdempotentRequest<T> {
    /// Splits into the handler's extractor and the head; the head is `None` for safe methods.
    pub fn into_parts(self) -> (T, Option<RequestHead>) {
        (self.inner, self.head)
    }
}

/// The marker that keeps this extractor's `FromRequest` impl apart from axum's own.
#[doc(hidden)]
#[derive(Debug)]
pub struct ViaIdempotent<M>(PhantomData<M>);

impl<S, M, T> FromRequest<S, ViaIdempotent<M>> for IdempotentRequest<T>
where
    S: Send + Sync,
    T: FromRequest<S, M>,
{
    type Rejection = Response;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        if RequestHead::is_safe_method(request.method()) {
            let inner = T::from_request(request, state)
                .await
                .map_err(IntoResponse::into_response)?;
            return Ok(Self { inner, head: None });
        }

        let (parts, body) = request.with_limited_body().into_parts();
        let body = read_body(body).await?;
        let head = RequestHead {
            method: parts.method.clone(),
            // Inside a nested router, `parts.uri` lacks the prefix, which can hold an id.
            uri: parts
                .extensions
                .get::<OriginalUri>()
                .map_or_else(|| parts.uri.clone(), |original| original.0.clone()),
            headers: parts.headers.clone(),
            body: body.clone(),
            store: parts.extensions.get::<StoreHandle>().cloned(),
        };

        let request = Request::from_parts(parts, Body::from(body));
        let inner = T::from_request(request, state)
            .await
            .map_err(IntoResponse::into_response)?;
        Ok(Self {
            inner,
            head: Some(head),
        })
    }
}

async fn read_body(body: Body) -> Result<Bytes, Response> {
    match body.collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(error) => {
            let too_large = std::error::Error::source(&error)
                .is_some_and(|source| source.is::<http_body_util::LengthLimitError>());
            let problem = if too_large {
                Problem::new(
                    ProblemKind::BodyTooLarge,
                    "The request body is larger than this server's body limit (axum's \
                     DefaultBodyLimit, 2 MB unless the server sets another). Send a smaller body.",
                )
            } else {
                Problem::new(
                    ProblemKind::BodyUnreadable,
                    format!(
                        "The request body could not be read ({error}). Send the request again."
                    ),
                )
            };
            Err(problem.into_response())
        }
    }
}
