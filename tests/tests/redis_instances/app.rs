//! The test application: annotated handlers with run counters, served as named instances that
//! can share one Redis key space.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use idempotent_runtime::{IdempotencyLayer, IdempotencyStore, idempotent};
use tokio::sync::Notify;

use crate::support::TestServer;

/// The `lock_timeout` of `/gated` and `/gated-wait`.
pub const LONG_LOCK: Duration = Duration::from_secs(10);

/// The `lock_timeout` of `/gated-short-lock`.
pub const SHORT_LOCK: Duration = Duration::from_secs(1);

/// The maximum time a test waits for a handler to arrive at its gate.
const GATE_TIMEOUT: Duration = Duration::from_secs(10);

/// The non-UTF-8 value of the `x-binary` header of `/binary`.
pub const BINARY_HEADER_VALUE: &[u8] = &[b'v', 0xff, 0x80, b'\t', 0xfe, b'z'];

/// The values of the repeated `x-repeated` header of `/binary`, in the order sent.
pub const REPEATED_HEADER_VALUES: [&str; 3] = ["first", "second", "third"];

/// Returns the 16 KiB value of the `x-large` header of `/binary`.
pub fn large_header_value() -> Vec<u8> {
    b"0123456789abcdef".repeat(1024)
}

/// A point where a gated handler stops until the test opens it. Once open, it lets every later
/// run through, so that a second run shows up in the run counts instead of hanging the test.
#[derive(Debug, Default)]
pub struct Gate {
    entered: Notify,
    released: Notify,
    is_open: AtomicBool,
}

impl Gate {
    /// Signals that a handler arrived and waits until the gate is open.
    async fn pass(&self) {
        self.entered.notify_one();
        loop {
            // A `Notified` receives `notify_waiters` from the moment it is created, so opening
            // the gate between the check and the `await` is not missed.
            let released = self.released.notified();
            if self.is_open.load(Ordering::SeqCst) {
                return;
            }
            released.await;
        }
    }

    /// Waits until a handler arrives at the gate.
    ///
    /// # Panics
    ///
    /// Panics when no handler arrives within [`GATE_TIMEOUT`].
    pub async fn entered(&self) {
        tokio::time::timeout(GATE_TIMEOUT, self.entered.notified())
            .await
            .unwrap_or_else(|_| panic!("no handler arrived at the gate within {GATE_TIMEOUT:?}"));
    }

    /// Returns the future that completes when a handler arrives at the gate, without a timeout.
    pub fn arrival(&self) -> tokio::sync::futures::Notified<'_> {
        self.entered.notified()
    }

    /// Lets the waiting handler, and every later one, through.
    pub fn open(&self) {
        self.is_open.store(true, Ordering::SeqCst);
        self.released.notify_waiters();
    }
}

/// The gate and the arrival count that every instance of one test shares.
#[derive(Debug, Default)]
pub struct Shared {
    /// The gate of `/gated`, `/gated-wait` and `/gated-short-lock`.
    pub gate: Gate,
    /// The number of requests that reached a router, counted before any handler runs.
    pub arrivals: AtomicUsize,
}

/// The state of one server instance: the name that its responses carry, and its run count.
#[derive(Debug)]
pub struct Instance {
    /// The name in the body of every response that a handler of this instance produced.
    pub name: &'static str,
    /// The number of runs of the handlers on this instance, counted when a handler starts.
    pub runs: AtomicUsize,
    /// The state shared with the other instances.
    pub shared: Arc<Shared>,
}

impl Instance {
    /// Counts one run and returns the body that identifies it.
    fn run(&self) -> String {
        let run = self.runs.fetch_add(1, Ordering::SeqCst) + 1;
        order_body(self.name, run)
    }
}

/// Returns the body of a handler response from instance `name`, whose run count on that
/// instance was `run`.
pub fn order_body(name: &str, run: usize) -> String {
    format!(r#"{{"instance":"{name}","run":{run}}}"#)
}

type InstanceState = State<Arc<Instance>>;

fn order_response(body: String) -> Response {
    (
        StatusCode::CREATED,
        [(header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response()
}

#[idempotent(lock_timeout = "10s", ttl = "2m")]
async fn gated(State(instance): InstanceState) -> Response {
    let body = instance.run();
    instance.shared.gate.pass().await;
    order_response(body)
}

#[idempotent(lock_timeout = "10s", ttl = "2m", on_conflict = "wait")]
async fn gated_wait(State(instance): InstanceState) -> Response {
    let body = instance.run();
    instance.shared.gate.pass().await;
    order_response(body)
}

#[idempotent(lock_timeout = "1s", ttl = "2m")]
async fn gated_short_lock(State(instance): InstanceState) -> Response {
    let body = instance.run();
    instance.shared.gate.pass().await;
    order_response(body)
}

#[idempotent(ttl = "2m")]
async fn plain(State(instance): InstanceState) -> Response {
    order_response(instance.run())
}

/// Echoes the request body as `application/octet-stream`, with a repeated header, a header
/// that is not UTF-8 and a 16 KiB header.
#[idempotent(ttl = "2m")]
async fn binary(State(instance): InstanceState, body: Bytes) -> Response {
    instance.run();
    let mut headers = HeaderMap::new();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    let repeated = HeaderName::from_static("x-repeated");
    for value in REPEATED_HEADER_VALUES {
        headers.append(&repeated, HeaderValue::from_static(value));
    }
    headers.insert(
        "x-binary",
        HeaderValue::from_bytes(BINARY_HEADER_VALUE).expect("a valid header value"),
    );
    headers.insert(
        "x-large",
        HeaderValue::from_bytes(&large_header_value()).expect("a valid header value"),
    );
    (StatusCode::OK, headers, body).into_response()
}

async fn count_arrival(
    State(shared): State<Arc<Shared>>,
    request: Request,
    next: Next,
) -> Response {
    shared.arrivals.fetch_add(1, Ordering::SeqCst);
    next.run(request).await
}

/// Builds the router of one instance on `store`.
fn router(instance: Arc<Instance>, store: impl IdempotencyStore) -> Router {
    let shared = Arc::clone(&instance.shared);
    Router::new()
        .route("/gated", post(gated))
        .route("/gated-wait", post(gated_wait))
        .route("/gated-short-lock", post(gated_short_lock))
        .route("/plain", post(plain))
        .route("/binary", post(binary))
        .with_state(instance)
        .layer(IdempotencyLayer::new(store))
        .layer(middleware::from_fn_with_state(shared, count_arrival))
}

/// A running instance of the test application.
pub struct App {
    /// The HTTP server.
    pub server: TestServer,
    /// The instance state that the handlers update.
    pub instance: Arc<Instance>,
}

impl App {
    /// Starts instance `name` on `store`, sharing `shared` with the other instances.
    pub async fn start(
        name: &'static str,
        store: impl IdempotencyStore,
        shared: Arc<Shared>,
    ) -> Self {
        let instance = Arc::new(Instance {
            name,
            runs: AtomicUsize::new(0),
            shared,
        });
        let server = TestServer::start(router(Arc::clone(&instance), store)).await;
        Self { server, instance }
    }

    /// Returns the number of handler runs on this instance.
    pub fn runs(&self) -> usize {
        self.instance.runs.load(Ordering::SeqCst)
    }

    /// Returns the absolute URL of `path` on this instance.
    pub fn url(&self, path: &str) -> String {
        self.server.url(path)
    }
}
