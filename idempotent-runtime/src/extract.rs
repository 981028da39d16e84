//! The extractor that the attribute puts in place of a handler's last argument.

use std::marker::PhantomData;

use axum::RequestExt;
use axum::body::Body;
use axum::extract::{FromRequest, OriginalUri, Request};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::{Method, Uri};
use http_body_util::BodyExt;

use crate::problem::{Problem, ProblemKind};
use crate::store::BoxFuture;

/// Returns whether `method` is safe (RFC 9110): GET, HEAD, OPTIONS and TRACE pass through.
pub(crate) fn is_safe_method(method: &Method) -> bool {
    method == Method::GET
        || method == Method::HEAD
        || method == Method::OPTIONS
        || method == Method::TRACE
}

/// Runs the handler's own last extractor on a request, with the router's state captured.
pub(crate) type Extract<T> =
    Box<dyn FnOnce(Request) -> BoxFuture<'static, Result<T, Response>> + Send>;

/// The request, with the handler's last extractor `T` not yet run.
///
/// The runtime decides first: a replay, a conflict or a reused key never runs `T`, so the body
/// is not parsed for them, and a request without a key is passed to `T` without buffering.
pub struct IdempotentRequest<T> {
    pub(crate) request: Request,
    pub(crate) extract: Extract<T>,
}

impl<T> std::fmt::Debug for IdempotentRequest<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdempotentRequest")
            .field("method", self.request.method())
            .field("path", &self.request.uri().path())
            .finish_non_exhaustive()
    }
}

/// The marker that keeps this extractor's `FromRequest` impl apart from axum's own.
#[doc(hidden)]
#[derive(Debug)]
pub struct ViaIdempotent<M>(PhantomData<M>);

impl<S, M, T> FromRequest<S, ViaIdempotent<M>> for IdempotentRequest<T>
where
    S: Clone + Send + Sync + 'static,
    T: FromRequest<S, M> + Send + 'static,
{
    type Rejection = Response;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let state = state.clone();
        let extract: Extract<T> = Box::new(move |request| {
            Box::pin(async move {
                T::from_request(request, &state)
                    .await
                    .map_err(IntoResponse::into_response)
            })
        });
        Ok(Self { request, extract })
    }
}

/// Buffers the body of `request` within axum's body limit, and returns the request rebuilt on
/// the buffered body, its original URI (inside a nested router, `uri()` lacks the prefix, which
/// can hold an id) and the body.
pub(crate) async fn buffer(request: Request) -> Result<(Request, Uri, Bytes), Response> {
    let (parts, body) = request.with_limited_body().into_parts();
    let body = read_body(body).await?;
    let uri = parts
        .extensions
        .get::<OriginalUri>()
        .map_or_else(|| parts.uri.clone(), |original| original.0.clone());
    let request = Request::from_parts(parts, Body::from(body.clone()));
    Ok((request, uri, body))
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
