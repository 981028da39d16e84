//! The request flow of an annotated handler: check the store, run once, store, replay.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use futures_util::FutureExt;
use http::{HeaderValue, StatusCode};
use http_body::Body as _;
use http_body_util::BodyExt;
use tracing::Instrument;

use crate::config::{Config, OnConflict};
use axum::extract::Request;

use crate::extract::{Extract, IdempotentRequest, buffer, is_safe_method};
use crate::fingerprint::{fingerprint, store_key};
use crate::key::IdempotencyKey;
use crate::layer::StoreHandle;
use crate::problem::Problem;
use crate::rate_limit::EverySecond;
use crate::response::StoredResponse;
use crate::store::{Begin, Lease, StoreError, StoreErrorKind, StoreKey};

/// The header sent with a response that was not stored, so a retry with its key would run the
/// handler again: a streaming body, or one larger than `max_body`.
pub const REPLAYABLE_HEADER: http::HeaderName =
    http::HeaderName::from_static("idempotent-replayable");

/// The shortest interval between two renewals of a running handler's lease.
const MIN_RENEWAL_PERIOD: Duration = Duration::from_millis(100);

/// The longest a lease is renewed while its handler runs; past it the lease may expire.
pub const MAX_LEASE_RENEWAL: Duration = Duration::from_secs(60 * 60);

const TARGET: &str = "idempotent";

/// Runs `handler` under the idempotency rules of `config`.
///
/// The handler's last extractor, inside `request`, runs only when the handler runs: a replay,
/// a conflict or a reused key skips it. Safe methods and requests without a key pass through
/// unbuffered. `scope` separates the key spaces of different callers.
pub async fn run<T, F, Fut>(
    config: &'static Config,
    request: IdempotentRequest<T>,
    scope: Option<Vec<u8>>,
    handler: F,
) -> Response
where
    T: Send + 'static,
    F: FnOnce(T, Option<IdempotencyKey>) -> Fut + Send + 'static,
    Fut: Future<Output = Response> + Send + 'static,
{
    let IdempotentRequest { request, extract } = request;
    if is_safe_method(request.method()) {
        return pass_through(request, extract, None, handler).await;
    }
    let key = match IdempotencyKey::from_headers(request.headers(), config.header) {
        Ok(Some(key)) => key,
        Ok(None) if config.required => {
            tracing::debug!(target: TARGET, endpoint = config.endpoint, "request without a required key");
            return Problem::missing_key(config.header).into_response();
        }
        Ok(None) => return pass_through(request, extract, None, handler).await,
        Err(error) => {
            tracing::debug!(target: TARGET, endpoint = config.endpoint, %error, "invalid key");
            return Problem::invalid_key(config.header, &error).into_response();
        }
    };

    let store = match request.extensions().get::<StoreHandle>() {
        Some(store) => store.clone(),
        None => default_store(config),
    };
    let (request, uri, body) = match buffer(request).await {
        Ok(buffered) => buffered,
        Err(rejection) => return rejection,
    };
    let store_key = store_key(scope.as_deref(), key.as_str());
    let fingerprint = fingerprint(
        &config.fingerprint,
        config.endpoint,
        request.method(),
        &uri,
        request.headers(),
        &body,
    );
    drop(body);
    let wait_until = Instant::now() + config.lock_timeout;
    let mut backoff = Duration::from_millis(5);

    loop {
        let begin = store
            .store()
            .begin(&store_key, &fingerprint, config.lock_timeout)
            .await;
        match begin {
            Ok(Begin::Acquired(lease)) => {
                tracing::debug!(target: TARGET, endpoint = config.endpoint, key = %store_key.short(), "new key, running handler");
                let held_key = HeldKey {
                    config,
                    store,
                    store_key,
                    lease,
                };
                return execute(held_key, request, extract, key, handler).await;
            }
            Ok(Begin::Completed(stored)) => {
                tracing::debug!(target: TARGET, endpoint = config.endpoint, key = %store_key.short(), status = stored.status().as_u16(), "replaying stored response");
                return stored.to_response();
            }
            Ok(Begin::Mismatch) => {
                tracing::info!(target: TARGET, endpoint = config.endpoint, key = %store_key.short(), "key reused with a different request");
                return Problem::key_reused(&config.fingerprint).into_response();
            }
            Ok(Begin::InFlight { retry_after }) => {
                let now = Instant::now();
                if config.on_conflict == OnConflict::Reject || now >= wait_until {
                    tracing::info!(target: TARGET, endpoint = config.endpoint, key = %store_key.short(), "key in flight, rejecting retry");
                    return Problem::in_flight(retry_after).into_response();
                }
                tracing::trace!(target: TARGET, endpoint = config.endpoint, key = %store_key.short(), "key in flight, waiting");
                tokio::time::sleep(backoff.min(wait_until - now)).await;
                backoff = (backoff * 2).min(Duration::from_millis(100));
            }
            Err(error) => {
                return store_failed(config, &store, &error, request, extract, key, handler).await;
            }
        }
    }
}

/// Runs the handler's last extractor and then the handler, without idempotency.
async fn pass_through<T, F, Fut>(
    request: Request,
    extract: Extract<T>,
    key: Option<IdempotencyKey>,
    handler: F,
) -> Response
where
    F: FnOnce(T, Option<IdempotencyKey>) -> Fut,
    Fut: Future<Output = Response>,
{
    match extract(request).await {
        Ok(inner) => handler(inner, key).await,
        Err(rejection) => rejection,
    }
}

/// A key that this request holds, with everything needed to store or release it.
struct HeldKey {
    config: &'static Config,
    store: StoreHandle,
    store_key: StoreKey,
    lease: Lease,
}

/// Returns the process-wide store, and logs once per process that a handler uses it, because a
/// route added after `.layer(IdempotencyLayer::new(..))` silently falls back to it.
fn default_store(config: &Config) -> StoreHandle {
    static ANNOUNCED: std::sync::Once = std::sync::Once::new();
    ANNOUNCED.call_once(|| {
        tracing::info!(target: TARGET, endpoint = config.endpoint, "using the process-wide in-memory store, because no IdempotencyLayer wraps this route");
    });
    StoreHandle::process_default()
}

async fn store_failed<T, F, Fut>(
    config: &'static Config,
    store: &StoreHandle,
    error: &StoreError,
    request: Request,
    extract: Extract<T>,
    key: IdempotencyKey,
    handler: F,
) -> Response
where
    F: FnOnce(T, Option<IdempotencyKey>) -> Fut,
    Fut: Future<Output = Response>,
{
    if store.store().fail_open() {
        warn_fail_open(config, error);
        return pass_through(request, extract, Some(key), handler).await;
    }
    tracing::warn!(target: TARGET, endpoint = config.endpoint, %error, "idempotency store failed, rejecting request with 503");
    Problem::store_unavailable().into_response()
}

/// Logs a fail-open request at most once a second, with the number of requests since the last
/// event.
fn warn_fail_open(config: &Config, error: &StoreError) {
    static LIMIT: EverySecond = EverySecond::new();
    if let Some(suppressed) = LIMIT.allow() {
        tracing::warn!(target: TARGET, endpoint = config.endpoint, %error, suppressed, "idempotency store failed, running handler without idempotency (fail-open)");
    }
}

/// Runs the handler's last extractor and the handler in their own task, so that a client
/// hanging up does not cancel them halfway, and stores or releases the response.
async fn execute<T, F, Fut>(
    held_key: HeldKey,
    request: Request,
    extract: Extract<T>,
    key: IdempotencyKey,
    handler: F,
) -> Response
where
    T: Send + 'static,
    F: FnOnce(T, Option<IdempotencyKey>) -> Fut + Send + 'static,
    Fut: Future<Output = Response> + Send + 'static,
{
    // The task carries the request's span, so the handler's events stay inside it.
    let task = tokio::spawn(
        async move {
            let HeldKey { config, store, store_key, lease } = &held_key;
            let inner = match extract(request).await {
                Ok(inner) => inner,
                Err(rejection) => {
                    tracing::debug!(target: TARGET, endpoint = config.endpoint, key = %store_key.short(), "extractor rejected the request, releasing key");
                    release(config, store, store_key, lease).await;
                    return rejection;
                }
            };
            let outcome =
                run_with_renewal(config, store, store_key, lease, handler(inner, Some(key))).await;
            match outcome {
                Ok(response) => settle(config, store, store_key, lease, response).await,
                Err(panic) => {
                    tracing::warn!(target: TARGET, endpoint = config.endpoint, key = %store_key.short(), "handler panicked, releasing key");
                    release(config, store, store_key, lease).await;
                    std::panic::resume_unwind(panic)
                }
            }
        }
        .in_current_span(),
    );
    match task.await {
        Ok(response) => response,
        Err(error) if error.is_panic() => std::panic::resume_unwind(error.into_panic()),
        Err(_) => StatusCode::SERVICE_UNAVAILABLE.into_response(),
    }
}

/// Polls the handler and renews its lease every third of `lock_timeout` (at least every
/// [`MIN_RENEWAL_PERIOD`]), for at most [`MAX_LEASE_RENEWAL`]. Renewal stops once the store
/// reports the lease lost, because another request holds the key then.
async fn run_with_renewal(
    config: &'static Config,
    store: &StoreHandle,
    store_key: &StoreKey,
    lease: &Lease,
    handler: impl Future<Output = Response>,
) -> std::thread::Result<Response> {
    let handler = AssertUnwindSafe(handler).catch_unwind();
    tokio::pin!(handler);
    let period = (config.lock_timeout / 3).max(MIN_RENEWAL_PERIOD);
    let renew_until = tokio::time::Instant::now() + MAX_LEASE_RENEWAL.max(config.lock_timeout);
    let mut next_renewal = tokio::time::Instant::now() + period;
    loop {
        tokio::select! {
            biased;
            outcome = &mut handler => return outcome,
            () = tokio::time::sleep_until(next_renewal), if next_renewal < renew_until => {
                next_renewal += period;
                let Err(error) = store.store().renew(store_key, lease, config.lock_timeout).await else {
                    continue;
                };
                tracing::warn!(target: TARGET, endpoint = config.endpoint, key = %store_key.short(), %error, "could not renew the lease of a running handler");
                if error.kind() == StoreErrorKind::LeaseLost {
                    next_renewal = renew_until;
                }
            }
        }
    }
}

/// Stores a response that can be replayed, or releases the key.
async fn settle(
    config: &'static Config,
    store: &StoreHandle,
    store_key: &StoreKey,
    lease: &Lease,
    response: Response,
) -> Response {
    let status = response.status();
    if !config.store_status.contains(status.as_u16()) {
        tracing::debug!(target: TARGET, endpoint = config.endpoint, key = %store_key.short(), status = status.as_u16(), "status not stored, releasing key");
        release(config, store, store_key, lease).await;
        return response;
    }
    let storable = response
        .body()
        .size_hint()
        .exact()
        .is_some_and(|len| len <= config.max_body as u64);
    if !storable {
        tracing::debug!(target: TARGET, endpoint = config.endpoint, key = %store_key.short(), "body streaming or over max_body, releasing key");
        release(config, store, store_key, lease).await;
        let mut response = response;
        response
            .headers_mut()
            .insert(REPLAYABLE_HEADER, HeaderValue::from_static("false"));
        return response;
    }

    let (parts, body) = response.into_parts();
    let body = match body.collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(error) => {
            tracing::warn!(target: TARGET, endpoint = config.endpoint, key = %store_key.short(), %error, "response body failed, releasing key");
            release(config, store, store_key, lease).await;
            return StatusCode::INTERNAL_SERVER_ERROR.into_response();
        }
    };
    let stored = StoredResponse::encode(parts.status, &parts.headers, &body);
    let mut parts = parts;
    match store
        .store()
        .complete(store_key, lease, &stored, config.ttl)
        .await
    {
        Err(error) if error.kind() == StoreErrorKind::TooLarge => {
            tracing::warn!(target: TARGET, endpoint = config.endpoint, key = %store_key.short(), len = body.len(), "response larger than the store can keep, releasing key; raise the store's bound or lower max_body");
            release(config, store, store_key, lease).await;
            parts
                .headers
                .insert(REPLAYABLE_HEADER, HeaderValue::from_static("false"));
        }
        Ok(()) => {
            tracing::debug!(target: TARGET, endpoint = config.endpoint, key = %store_key.short(), status = status.as_u16(), "response stored");
        }
        Err(error) => {
            tracing::warn!(target: TARGET, endpoint = config.endpoint, key = %store_key.short(), %error, "response not stored; a retry after the lock timeout will run the handler again");
        }
    }
    Response::from_parts(parts, Body::from(body))
}

async fn release(
    config: &'static Config,
    store: &StoreHandle,
    store_key: &StoreKey,
    lease: &Lease,
) {
    if let Err(error) = store.store().release(store_key, lease).await {
        tracing::warn!(target: TARGET, endpoint = config.endpoint, key = %store_key.short(), %error, "could not release key; it unlocks after the lock timeout");
    }
}
