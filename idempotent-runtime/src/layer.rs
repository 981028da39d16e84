//! The layer that gives every annotated handler below it one store.

use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};

use tower_layer::Layer;
use tower_service::Service;

use crate::store::{IdempotencyStore, MokaStore};

/// A shared handle to a store, kept in request extensions by [`IdempotencyLayer`].
#[derive(Clone)]
pub struct StoreHandle(pub(crate) Arc<dyn IdempotencyStore>);

impl std::fmt::Debug for StoreHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StoreHandle(..)")
    }
}

impl StoreHandle {
    /// Returns the process-wide default store: a [`MokaStore`] with its default bounds, made on
    /// first use.
    pub fn process_default() -> Self {
        static DEFAULT: OnceLock<StoreHandle> = OnceLock::new();
        DEFAULT
            .get_or_init(|| StoreHandle(Arc::new(MokaStore::new())))
            .clone()
    }

    /// Returns the store.
    pub fn store(&self) -> &dyn IdempotencyStore {
        &*self.0
    }
}

/// A layer that makes every `#[idempotent]` handler inside it use `store`.
///
/// Without this layer, handlers share one process-wide [`MokaStore`] with default bounds.
///
/// ```
/// use axum::{routing::post, Router};
/// use idempotent_runtime::{IdempotencyLayer, MokaStore};
///
/// # async fn create_payment() {}
/// let store = MokaStore::builder().max_capacity_bytes(256 * 1024 * 1024).build();
/// let app: Router = Router::new()
///     .route("/payments", post(create_payment))
///     .layer(IdempotencyLayer::new(store));
/// ```
#[derive(Clone)]
pub struct IdempotencyLayer {
    store: StoreHandle,
}

impl std::fmt::Debug for IdempotencyLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdempotencyLayer").finish_non_exhaustive()
    }
}

impl IdempotencyLayer {
    /// Creates a layer that hands `store` to the handlers it wraps.
    pub fn new(store: impl IdempotencyStore) -> Self {
        Self {
            store: StoreHandle(Arc::new(store)),
        }
    }

    /// Creates a layer from a store that is already shared, for example with a second router.
    pub fn from_shared(store: Arc<dyn IdempotencyStore>) -> Self {
        Self {
            store: StoreHandle(store),
        }
    }
}

impl<S> Layer<S> for IdempotencyLayer {
    type Service = IdempotencyService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        IdempotencyService {
            inner,
            store: self.store.clone(),
        }
    }
}

/// The service that [`IdempotencyLayer`] makes: it adds the store to each request's extensions.
#[derive(Clone)]
pub struct IdempotencyService<S> {
    inner: S,
    store: StoreHandle,
}

impl<S> std::fmt::Debug for IdempotencyService<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdempotencyService").finish_non_exhaustive()
    }
}

impl<S, B> Service<http::Request<B>> for IdempotencyService<S>
where
    S: Service<http::Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        request.extensions_mut().insert(self.store.clone());
        self.inner.call(request)
    }
}
