//! Tests of `#[idempotent]` and its runtime, kept out of the published crates.
//!
//! `tests/ui.rs` checks what the attribute accepts and the compile errors it reports. The
//! `tests/http_*.rs` files drive annotated handlers over HTTP: this library contains the test
//! application ([`app`]), the stores ([`store`]), the clients ([`client`]), the checks shared
//! by the tests ([`check`]) and the test bodies ([`suite`]). [`store_suite!`] runs every body
//! against one store.

pub use crate::app::TestApp;
pub use crate::store::StoreKind;

/// Generates one `#[tokio::test]` per test body in [`suite`], each against a fresh
/// [`TestApp`] on the given [`StoreKind`].
///
/// ```ignore
/// idempotent_tests::store_suite!(idempotent_tests::StoreKind::Moka);
/// ```
#[macro_export]
macro_rules! store_suite {
    ($kind:expr) => {
        $crate::store_suite!(
            $kind;
            safe_methods_pass_through,
            first_response_matches_unannotated_handler,
            replays_stored_response,
            replay_keeps_header_order_and_bytes,
            replay_drops_hop_by_hop_headers,
            replay_content_length_matches_body,
            replay_is_compressed_for_gzip_client,
            replay_is_identity_for_plain_client,
            reused_key_with_different_request_is_rejected,
            different_request_during_run_is_rejected,
            missing_key_passes_through,
            missing_required_key_is_rejected,
            invalid_keys_are_rejected,
            longest_key_is_accepted,
            quoted_and_bare_key_are_one_key,
            handler_receives_unquoted_key,
            custom_header_names_the_key,
            retry_during_run_gets_conflict,
            retry_during_run_waits_for_replay,
            wait_ends_at_lock_timeout,
            long_run_keeps_its_lock,
            retryable_statuses_are_not_stored,
            default_store_status_keeps_4xx,
            no_content_replay_has_no_length,
            store_status_selects_statuses,
            panic_releases_key,
            extractor_rejection_runs_nothing,
            hang_up_does_not_cancel_handler,
            body_at_max_body_is_stored,
            oversized_body_is_not_stored,
            streaming_body_is_not_stored,
            expired_key_runs_again,
            one_key_runs_once_when_rejecting,
            one_key_runs_once_when_waiting,
            scoped_keys_are_separate,
            missing_scope_is_rejected,
            set_cookie_is_not_replayed,
            fingerprint_without_body_ignores_body,
            json_fingerprint_ignores_key_order,
            nested_router_prefix_is_fingerprinted,
            same_key_on_two_endpoints_is_rejected,
        );
    };
    ($kind:expr; $($test:ident),+ $(,)?) => {
        $(
            #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $test() {
                let app = $crate::TestApp::start($kind).await;
                let body = $crate::suite::$test(&app);
                ::tokio::time::timeout($crate::suite::TEST_TIMEOUT, body)
                    .await
                    .expect("the test did not finish within its timeout");
            }
        )+
    };
}

/// Serves `router` on `127.0.0.1` at a free port, and returns the address and the server task.
///
/// # Panics
///
/// Panics when no listener can be bound; the task panics when the server fails.
pub async fn serve(router: axum::Router) -> (std::net::SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("could not bind a listener on 127.0.0.1");
    let address = listener
        .local_addr()
        .expect("a bound listener has an address");
    let server = tokio::spawn(async move {
        axum::serve(listener, router)
            .await
            .expect("the test server failed");
    });
    (address, server)
}

pub mod store {
    //! The stores a suite runs against.

    use std::sync::Arc;
    use std::time::Duration;

    use idempotent_runtime::IdempotencyStore;
    use idempotent_runtime::MokaStore;
    use idempotent_runtime::store::RedisStore;

    /// The Redis server the Redis suite uses.
    pub const REDIS_URL: &str = "redis://127.0.0.1:6379";

    /// The store behind a test application.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum StoreKind {
        /// A fresh in-process [`MokaStore`].
        Moka,
        /// A [`RedisStore`] on [`REDIS_URL`] with a random key prefix of its own.
        Redis,
    }

    /// A store and what to clean up once the test is done.
    pub struct TestStore {
        /// The store, shared with the application's `IdempotencyLayer`.
        pub store: Arc<dyn IdempotencyStore>,
        /// The Redis key prefix, `None` for moka.
        pub redis_prefix: Option<String>,
    }

    /// Creates a store of `kind`, empty for this test.
    ///
    /// # Panics
    ///
    /// Panics when `kind` is [`StoreKind::Redis`] and no Redis server accepts connections at
    /// [`REDIS_URL`]: the Redis suite fails rather than skips.
    pub async fn make_store(kind: StoreKind) -> TestStore {
        match kind {
            StoreKind::Moka => TestStore {
                store: Arc::new(MokaStore::new()),
                redis_prefix: None,
            },
            StoreKind::Redis => {
                let prefix = format!("idempotent-test:{:032x}:", rand::random::<u128>());
                let store = RedisStore::builder(REDIS_URL)
                    .prefix(prefix.as_str())
                    .build()
                    .await
                    .unwrap_or_else(|error| {
                        panic!(
                            "the Redis store for the tests failed to start: {error}. These \
                             tests need a Redis server at {REDIS_URL}: start one with \
                             `redis-server --port 6379`."
                        )
                    });
                TestStore {
                    store: Arc::new(store),
                    redis_prefix: Some(prefix),
                }
            }
        }
    }

    /// Deletes every Redis key that starts with `prefix`.
    ///
    /// Runs from `Drop`, so it blocks and ignores errors: a key left behind expires with its
    /// ttl.
    pub fn delete_redis_keys(prefix: &str) {
        let Ok(client) = redis::Client::open(REDIS_URL) else {
            return;
        };
        let Ok(mut connection) = client.get_connection_with_timeout(Duration::from_secs(2)) else {
            return;
        };
        let pattern = format!("{prefix}*");
        let keys: Vec<String> = match redis::Commands::scan_match(&mut connection, &pattern) {
            Ok(keys) => keys.filter_map(Result::ok).collect(),
            Err(_) => return,
        };
        if !keys.is_empty() {
            let _: redis::RedisResult<usize> = redis::Commands::del(&mut connection, keys);
        }
    }
}

pub mod app {
    //! The test application: annotated handlers, each with a run counter, on a real server.

    use std::convert::Infallible;
    use std::net::SocketAddr;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use axum::Json;
    use axum::Router;
    use axum::body::{Body, Bytes};
    use axum::extract::{FromRequestParts, Path, State};
    use axum::http::request::Parts;
    use axum::http::{HeaderValue, StatusCode, header};
    use axum::response::{IntoResponse, Response};
    use axum::routing::{get, post};
    use idempotent_runtime::{IdempotencyKey, IdempotencyLayer, IdempotencyScope, idempotent};
    use tokio::sync::{Notify, Semaphore};
    use tokio::task::JoinHandle;
    use tower_http::compression::CompressionLayer;

    use crate::client::{RawRequest, TestResponse, exchange};
    use crate::store::{StoreKind, delete_redis_keys, make_store};

    /// The non-UTF-8 value of the `x-raw` header of `/rich`.
    pub const RAW_HEADER_VALUE: &[u8] = &[b'v', 0xff, 0x80, b'\t', 0xfe, b'z'];

    /// The body of `/sized/{length}`, which sends its first `length` bytes. Its `max_body` is 16
    /// bytes.
    pub const SIZED_BODY: &[u8] = b"0123456789abcdef0123456789ABCDEF";

    /// The chunks that `/stream` sends.
    pub const STREAM_CHUNKS: [&str; 3] = ["first chunk, ", "second chunk, ", "third chunk"];

    /// The status and body with which [`Tenant`] rejects a request without `X-Tenant`.
    pub const MISSING_TENANT: (StatusCode, &str) =
        (StatusCode::UNAUTHORIZED, "missing X-Tenant header");

    /// Returns the binary body of `/rich` and `/compressed`: `0x00` and `0xFF` at both ends and
    /// all 256 byte values in between, long enough for `CompressionLayer` to compress it.
    pub fn binary_body() -> Vec<u8> {
        let mut body = vec![0x00, 0xff, 0x00, 0xff];
        body.extend((0..=u8::MAX).rev());
        body.extend([0xff, 0x00]);
        body
    }

    /// The number of times one handler's body ran.
    #[derive(Debug, Default)]
    pub struct Counter(AtomicUsize);

    impl Counter {
        /// Adds one run and returns the new count.
        fn increment(&self) -> usize {
            self.0.fetch_add(1, Ordering::SeqCst) + 1
        }

        /// Returns the number of runs so far.
        pub fn get(&self) -> usize {
            self.0.load(Ordering::SeqCst)
        }
    }

    /// The run counter of each route.
    #[derive(Debug, Default)]
    pub struct Runs {
        /// `GET`, `HEAD` and `OPTIONS /safe`.
        pub safe: Counter,
        /// `POST /rich`.
        pub rich: Counter,
        /// `POST /plain/rich`, the same handler as `/rich` without the attribute.
        pub plain_rich: Counter,
        /// `POST /compressed`.
        pub compressed: Counter,
        /// `POST` and `PUT /items/{id}`.
        pub item: Counter,
        /// `POST /optional-key`.
        pub optional_key: Counter,
        /// `POST /required-key`.
        pub required_key: Counter,
        /// `POST /custom-header`.
        pub custom_header: Counter,
        /// `POST /gated`.
        pub gated: Counter,
        /// `POST /gated-wait`.
        pub gated_wait: Counter,
        /// `POST /gated-wait-bounded`.
        pub gated_wait_bounded: Counter,
        /// `POST /gated-short-lock`.
        pub gated_short_lock: Counter,
        /// `POST /status/{code}`.
        pub status: Counter,
        /// `POST /status-5xx/{code}`.
        pub status_5xx: Counter,
        /// `POST /no-content`.
        pub no_content: Counter,
        /// `POST /panics`.
        pub panics: Counter,
        /// `POST /json`.
        pub json: Counter,
        /// `POST /sized/{length}`.
        pub sized: Counter,
        /// `POST /stream`.
        pub stream: Counter,
        /// `POST /short-ttl`.
        pub short_ttl: Counter,
        /// `POST /scoped`.
        pub scoped: Counter,
        /// `POST /cookie`.
        pub cookie: Counter,
        /// `POST /method-path`.
        pub method_path: Counter,
        /// `POST /canonical-json`.
        pub canonical_json: Counter,
        /// `POST /accounts/{account}/charge`, in a nested router.
        pub account_charge: Counter,
        /// `POST /pay-any`.
        pub pay_any: Counter,
        /// `POST /refund-any`.
        pub refund_any: Counter,
    }

    /// A point where a handler stops until the test opens it, so that the test can send
    /// retries while the handler runs.
    #[derive(Debug)]
    pub struct Gate {
        entered: Notify,
        open: Semaphore,
        finished: Notify,
    }

    impl Default for Gate {
        fn default() -> Self {
            Self {
                entered: Notify::new(),
                open: Semaphore::new(0),
                finished: Notify::new(),
            }
        }
    }

    impl Gate {
        /// Signals that the handler arrived and waits until the test opens the gate.
        async fn pass(&self) {
            self.entered.notify_one();
            // The permit goes back when dropped, so one `open` lets every later run through.
            let _permit = self
                .open
                .acquire()
                .await
                .expect("the gate's semaphore is never closed");
        }

        /// Waits until a handler arrives at the gate.
        pub async fn entered(&self) {
            tokio::time::timeout(crate::suite::GATE_TIMEOUT, self.entered.notified())
                .await
                .expect("no handler arrived at the gate within GATE_TIMEOUT");
        }

        /// Signals that the handler passed the gate and is about to return its response.
        fn leave(&self) {
            self.finished.notify_one();
        }

        /// Lets the waiting handler, and every later one, through.
        pub fn open(&self) {
            self.open.add_permits(1);
        }

        /// Waits until a handler that passed the gate returns its response.
        pub async fn finished(&self) {
            tokio::time::timeout(crate::suite::GATE_TIMEOUT, self.finished.notified())
                .await
                .expect("the handler did not return within GATE_TIMEOUT of passing the gate");
        }
    }

    /// The gate of each gated route.
    #[derive(Debug, Default)]
    pub struct Gates {
        /// `POST /gated` (`on_conflict = "reject"`).
        pub gated: Gate,
        /// `POST /gated-wait` (`on_conflict = "wait"`).
        pub gated_wait: Gate,
        /// `POST /gated-wait-bounded` (`on_conflict = "wait"`, `lock_timeout = "2s"`).
        pub gated_wait_bounded: Gate,
        /// `POST /gated-short-lock` (`on_conflict = "reject"`, `lock_timeout = "1s"`).
        pub gated_short_lock: Gate,
    }

    /// The state every handler receives.
    #[derive(Debug, Default)]
    pub struct AppState {
        /// The run counters.
        pub runs: Runs,
        /// The gates of the gated routes.
        pub gates: Gates,
    }

    /// The extractor of the state every handler receives.
    type SharedState = State<Arc<AppState>>;

    /// Builds the headers and body that `/rich` and `/plain/rich` send.
    fn rich_response() -> Response {
        let mut response = Response::new(Body::from(binary_body()));
        *response.status_mut() = StatusCode::CREATED;
        let headers = response.headers_mut();
        headers.append(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/octet-stream"),
        );
        headers.append("x-order", HeaderValue::from_static("1"));
        headers.append("x-trace", HeaderValue::from_static("a"));
        headers.append("x-order", HeaderValue::from_static("2"));
        headers.append("x-order", HeaderValue::from_static("3"));
        headers.append(
            "x-raw",
            HeaderValue::from_bytes(RAW_HEADER_VALUE).expect("obs-text is a valid header value"),
        );
        headers.append(header::CONNECTION, HeaderValue::from_static("x-hop"));
        headers.append(
            "x-hop",
            HeaderValue::from_static("for this connection only"),
        );
        headers.append("keep-alive", HeaderValue::from_static("timeout=5"));
        headers.append("proxy-connection", HeaderValue::from_static("keep-alive"));
        headers.append(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        response
    }

    #[idempotent]
    async fn safe(State(state): SharedState) -> String {
        let run = state.runs.safe.increment();
        format!("safe run {run}")
    }

    #[idempotent]
    async fn rich(State(state): SharedState) -> Response {
        state.runs.rich.increment();
        rich_response()
    }

    async fn plain_rich(State(state): SharedState) -> Response {
        state.runs.plain_rich.increment();
        rich_response()
    }

    #[idempotent]
    async fn compressed(State(state): SharedState) -> impl IntoResponse {
        state.runs.compressed.increment();
        (
            [(header::CONTENT_TYPE, "application/octet-stream")],
            binary_body(),
        )
    }

    #[idempotent]
    async fn item(State(state): SharedState, Path(id): Path<String>) -> String {
        let run = state.runs.item.increment();
        format!("item {id} run {run}")
    }

    #[idempotent]
    async fn optional_key(State(state): SharedState, key: Option<IdempotencyKey>) -> String {
        let run = state.runs.optional_key.increment();
        match key {
            Some(key) => format!("key {} run {run}", key.as_str()),
            None => format!("no key run {run}"),
        }
    }

    #[idempotent(required = true)]
    async fn required_key(State(state): SharedState, key: IdempotencyKey) -> String {
        let run = state.runs.required_key.increment();
        format!("key {} run {run}", key.as_str())
    }

    #[idempotent(header = "X-Idempotency-Key")]
    async fn custom_header(State(state): SharedState, key: Option<IdempotencyKey>) -> String {
        let run = state.runs.custom_header.increment();
        match key {
            Some(key) => format!("key {} run {run}", key.as_str()),
            None => format!("no key run {run}"),
        }
    }

    #[idempotent]
    async fn gated(State(state): SharedState) -> String {
        let run = state.runs.gated.increment();
        state.gates.gated.pass().await;
        state.gates.gated.leave();
        format!("gated run {run}")
    }

    #[idempotent(on_conflict = "wait")]
    async fn gated_wait(State(state): SharedState) -> String {
        let run = state.runs.gated_wait.increment();
        state.gates.gated_wait.pass().await;
        state.gates.gated_wait.leave();
        format!("gated wait run {run}")
    }

    #[idempotent(on_conflict = "wait", lock_timeout = "2s")]
    async fn gated_wait_bounded(State(state): SharedState) -> String {
        let run = state.runs.gated_wait_bounded.increment();
        state.gates.gated_wait_bounded.pass().await;
        state.gates.gated_wait_bounded.leave();
        format!("gated wait bounded run {run}")
    }

    #[idempotent(lock_timeout = "1s")]
    async fn gated_short_lock(State(state): SharedState) -> String {
        let run = state.runs.gated_short_lock.increment();
        state.gates.gated_short_lock.pass().await;
        state.gates.gated_short_lock.leave();
        format!("gated short lock run {run}")
    }

    fn status_response(code: u16, run: usize) -> (StatusCode, String) {
        let status = StatusCode::from_u16(code).expect("the test sends a valid status code");
        (status, format!("status {code} run {run}"))
    }

    #[idempotent]
    async fn status(State(state): SharedState, Path(code): Path<u16>) -> (StatusCode, String) {
        let run = state.runs.status.increment();
        status_response(code, run)
    }

    #[idempotent(store_status = "2xx,5xx")]
    async fn status_5xx(State(state): SharedState, Path(code): Path<u16>) -> (StatusCode, String) {
        let run = state.runs.status_5xx.increment();
        status_response(code, run)
    }

    #[idempotent]
    async fn no_content(State(state): SharedState) -> StatusCode {
        state.runs.no_content.increment();
        StatusCode::NO_CONTENT
    }

    #[idempotent]
    async fn panics(State(state): SharedState) -> String {
        let run = state.runs.panics.increment();
        if run == 1 {
            panic!("the /panics handler panics on its first run");
        }
        format!("recovered run {run}")
    }

    #[idempotent]
    async fn json(
        State(state): SharedState,
        Json(value): Json<serde_json::Value>,
    ) -> Json<serde_json::Value> {
        let run = state.runs.json.increment();
        Json(serde_json::json!({ "run": run, "received": value }))
    }

    #[idempotent(max_body = "16B")]
    async fn sized(State(state): SharedState, Path(length): Path<usize>) -> &'static [u8] {
        state.runs.sized.increment();
        &SIZED_BODY[..length]
    }

    #[idempotent]
    async fn stream(State(state): SharedState) -> Body {
        state.runs.stream.increment();
        let chunks =
            STREAM_CHUNKS.map(|chunk| Ok::<_, Infallible>(Bytes::from_static(chunk.as_bytes())));
        Body::from_stream(futures_util::stream::iter(chunks))
    }

    #[idempotent(ttl = "2s")]
    async fn short_ttl(State(state): SharedState) -> String {
        let run = state.runs.short_ttl.increment();
        format!("short ttl run {run}")
    }

    /// The caller's tenant, from the `X-Tenant` header.
    #[derive(Debug)]
    pub struct Tenant(String);

    impl<S: Send + Sync> FromRequestParts<S> for Tenant {
        type Rejection = (StatusCode, &'static str);

        async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
            let tenant = parts
                .headers
                .get("x-tenant")
                .and_then(|value| value.to_str().ok())
                .ok_or(MISSING_TENANT)?;
            Ok(Self(tenant.to_owned()))
        }
    }

    impl IdempotencyScope for Tenant {
        fn scope(&self) -> impl AsRef<[u8]> + '_ {
            self.0.as_bytes()
        }
    }

    #[idempotent(scope = Tenant)]
    async fn scoped(State(state): SharedState, tenant: Tenant) -> String {
        let run = state.runs.scoped.increment();
        format!("tenant {} run {run}", tenant.0)
    }

    #[idempotent]
    async fn cookie(State(state): SharedState) -> impl IntoResponse {
        let run = state.runs.cookie.increment();
        (
            [(header::SET_COOKIE, "session=first-client; HttpOnly")],
            format!("cookie run {run}"),
        )
    }

    #[idempotent(fingerprint = "method,path")]
    async fn method_path(State(state): SharedState, body: Bytes) -> String {
        let run = state.runs.method_path.increment();
        format!("run {run} received {} bytes", body.len())
    }

    #[idempotent(fingerprint = "method,path,json")]
    async fn canonical_json(
        State(state): SharedState,
        Json(value): Json<serde_json::Value>,
    ) -> String {
        let run = state.runs.canonical_json.increment();
        format!("run {run} received {value}")
    }

    #[idempotent]
    async fn account_charge(State(state): SharedState, Path(account): Path<String>) -> String {
        let run = state.runs.account_charge.increment();
        format!("charged {account} run {run}")
    }

    #[idempotent(fingerprint = "method")]
    async fn pay_any(State(state): SharedState) -> String {
        let run = state.runs.pay_any.increment();
        format!("payment run {run}")
    }

    #[idempotent(fingerprint = "method")]
    async fn refund_any(State(state): SharedState) -> String {
        let run = state.runs.refund_any.increment();
        format!("refund run {run}")
    }

    /// Builds the test application's router on `store`.
    pub fn router(
        state: Arc<AppState>,
        store: Arc<dyn idempotent_runtime::IdempotencyStore>,
    ) -> Router {
        Router::new()
            .route("/safe", get(safe).options(safe))
            .route("/rich", post(rich))
            .route("/plain/rich", post(plain_rich))
            .route(
                "/compressed",
                post(compressed).layer(CompressionLayer::new()),
            )
            .route("/items/{id}", post(item).put(item))
            .route("/optional-key", post(optional_key))
            .route("/required-key", post(required_key))
            .route("/custom-header", post(custom_header))
            .route("/gated", post(gated))
            .route("/gated-wait", post(gated_wait))
            .route("/gated-wait-bounded", post(gated_wait_bounded))
            .route("/gated-short-lock", post(gated_short_lock))
            .route("/status/{code}", post(status))
            .route("/status-5xx/{code}", post(status_5xx))
            .route("/no-content", post(no_content))
            .route("/panics", post(panics))
            .route("/json", post(json))
            .route("/sized/{length}", post(sized))
            .route("/stream", post(stream))
            .route("/short-ttl", post(short_ttl))
            .route("/scoped", post(scoped))
            .route("/cookie", post(cookie))
            .route("/method-path", post(method_path))
            .route("/canonical-json", post(canonical_json))
            .nest(
                "/accounts/{account}",
                Router::new().route("/charge", post(account_charge)),
            )
            .route("/pay-any", post(pay_any))
            .route("/refund-any", post(refund_any))
            .with_state(state)
            .layer(IdempotencyLayer::from_shared(store))
    }

    /// The test application, served on `127.0.0.1` at a free port until dropped.
    pub struct TestApp {
        address: SocketAddr,
        state: Arc<AppState>,
        client: reqwest::Client,
        server: JoinHandle<()>,
        redis_prefix: Option<String>,
    }

    impl TestApp {
        /// Starts the application on a fresh store of `kind`.
        ///
        /// # Panics
        ///
        /// Panics when the store or the listener cannot be set up.
        pub async fn start(kind: StoreKind) -> Self {
            let store = make_store(kind).await;
            let state = Arc::new(AppState::default());
            let router = router(Arc::clone(&state), store.store);

            let (address, server) = crate::serve(router).await;
            let client = reqwest::Client::builder()
                .no_proxy()
                .timeout(crate::suite::REQUEST_TIMEOUT)
                .build()
                .expect("could not build the HTTP client");

            Self {
                address,
                state,
                client,
                server,
                redis_prefix: store.redis_prefix,
            }
        }

        /// Returns the server's address.
        pub fn address(&self) -> SocketAddr {
            self.address
        }

        /// Returns the absolute URL of `path`.
        pub fn url(&self, path: &str) -> String {
            format!("http://{}{path}", self.address)
        }

        /// Returns the run counters.
        pub fn runs(&self) -> &Runs {
            &self.state.runs
        }

        /// Returns the gates of the gated routes.
        pub fn gates(&self) -> &Gates {
            &self.state.gates
        }

        /// Starts a reqwest request.
        pub fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
            self.client.request(method, self.url(path))
        }

        /// Starts a reqwest `POST` request.
        pub fn post(&self, path: &str) -> reqwest::RequestBuilder {
            self.request(reqwest::Method::POST, path)
        }

        /// Sends `request` byte for byte on a new connection and reads one response.
        ///
        /// # Panics
        ///
        /// Panics when the server closes the connection without a response.
        pub async fn raw(&self, request: &RawRequest) -> TestResponse {
            self.raw_exchange(request)
                .await
                .expect("the server closed the connection without sending a response")
        }

        /// Sends `request` byte for byte on a new connection and reads one response, or returns
        /// `None` when the server closes the connection without one.
        pub async fn raw_exchange(&self, request: &RawRequest) -> Option<TestResponse> {
            exchange(self.address, &request.to_bytes(self.address)).await
        }
    }

    impl Drop for TestApp {
        fn drop(&mut self) {
            self.server.abort();
            if let Some(prefix) = &self.redis_prefix {
                delete_redis_keys(prefix);
            }
        }
    }
}

pub mod client {
    //! The clients: reqwest for ordinary requests, and a raw HTTP/1.1 client for what reqwest
    //! cannot send or show (repeated or non-ASCII request headers, framing on the wire, hang-ups).

    use std::net::SocketAddr;

    use bytes::Bytes;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;
    use tokio::task::JoinHandle;

    /// A response as received: status, header lines in wire order with lowercase names, and the
    /// body with any chunked framing removed.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct TestResponse {
        /// The status code.
        pub status: u16,
        /// The header lines in the order received, names in lowercase.
        pub headers: Vec<(String, Bytes)>,
        /// The body bytes.
        pub body: Bytes,
    }

    impl TestResponse {
        /// Reads a whole reqwest response.
        ///
        /// # Panics
        ///
        /// Panics when the body cannot be read.
        pub async fn read(response: reqwest::Response) -> Self {
            let status = response.status().as_u16();
            let headers = response
                .headers()
                .iter()
                .map(|(name, value)| {
                    let value = Bytes::copy_from_slice(value.as_bytes());
                    (name.as_str().to_owned(), value)
                })
                .collect();
            let body = response
                .bytes()
                .await
                .expect("could not read the response body");
            Self {
                status,
                headers,
                body,
            }
        }

        /// Returns the first value of the header `name` (lowercase).
        pub fn header(&self, name: &str) -> Option<Bytes> {
            self.headers
                .iter()
                .find(|(candidate, _)| candidate == name)
                .map(|(_, value)| value.clone())
        }

        /// Returns the first value of the header `name` (lowercase) as text.
        ///
        /// # Panics
        ///
        /// Panics when the value is not UTF-8.
        pub fn header_text(&self, name: &str) -> Option<&str> {
            self.headers
                .iter()
                .find(|(candidate, _)| candidate == name)
                .map(|(_, value)| {
                    std::str::from_utf8(value).expect("the header value is not UTF-8 text")
                })
        }

        /// Returns every value of the header `name` (lowercase), in wire order.
        pub fn header_values(&self, name: &str) -> Vec<Bytes> {
            self.headers
                .iter()
                .filter(|(candidate, _)| candidate == name)
                .map(|(_, value)| value.clone())
                .collect()
        }

        /// Returns whether the response carries `Idempotent-Replayed: true`.
        pub fn is_replayed(&self) -> bool {
            let values = self.header_values("idempotent-replayed");
            assert!(
                values.len() <= 1,
                "Idempotent-Replayed is sent {} times",
                values.len()
            );
            match values.first() {
                None => false,
                Some(value) if value == "true" => true,
                Some(value) => panic!(
                    "Idempotent-Replayed has the value {:?}, expected `true`",
                    String::from_utf8_lossy(value)
                ),
            }
        }

        /// Returns the body as text.
        ///
        /// # Panics
        ///
        /// Panics when the body is not UTF-8.
        pub fn text(&self) -> &str {
            std::str::from_utf8(&self.body).expect("the response body is not UTF-8 text")
        }
    }

    /// Sends a reqwest request and reads the whole response.
    ///
    /// # Panics
    ///
    /// Panics when the request fails.
    pub async fn send(request: reqwest::RequestBuilder) -> TestResponse {
        let response = request.send().await.expect("the request failed");
        TestResponse::read(response).await
    }

    /// Sends a reqwest request in a task of its own, to overlap it with other requests.
    pub fn spawn_send(request: reqwest::RequestBuilder) -> JoinHandle<TestResponse> {
        tokio::spawn(send(request))
    }

    /// An HTTP/1.1 request written byte for byte.
    ///
    /// `to_bytes` adds `host` and `content-length` but no `connection: close`, so the server adds
    /// no `connection` header of its own to the response.
    #[derive(Debug, Clone)]
    pub struct RawRequest {
        method: &'static str,
        path: String,
        headers: Vec<(String, Vec<u8>)>,
        body: Vec<u8>,
    }

    impl RawRequest {
        /// Starts a `POST` request to `path`.
        pub fn post(path: &str) -> Self {
            Self {
                method: "POST",
                path: path.to_owned(),
                headers: Vec::new(),
                body: Vec::new(),
            }
        }

        /// Adds a header line, value as raw bytes. Repeating a name sends it twice.
        pub fn header(mut self, name: &str, value: impl AsRef<[u8]>) -> Self {
            self.headers
                .push((name.to_owned(), value.as_ref().to_vec()));
            self
        }

        /// Sets the body.
        pub fn body(mut self, body: impl AsRef<[u8]>) -> Self {
            self.body = body.as_ref().to_vec();
            self
        }

        /// Returns the request as sent to `address`.
        pub fn to_bytes(&self, address: SocketAddr) -> Vec<u8> {
            let mut bytes = format!(
                "{} {} HTTP/1.1\r\nhost: {address}\r\n",
                self.method, self.path
            )
            .into_bytes();
            for (name, value) in &self.headers {
                bytes.extend_from_slice(name.as_bytes());
                bytes.extend_from_slice(b": ");
                bytes.extend_from_slice(value);
                bytes.extend_from_slice(b"\r\n");
            }
            bytes.extend_from_slice(
                format!("content-length: {}\r\n\r\n", self.body.len()).as_bytes(),
            );
            bytes.extend_from_slice(&self.body);
            bytes
        }
    }

    /// Opens a connection to `address` and writes `request` on it.
    ///
    /// # Panics
    ///
    /// Panics when the connection or the write fails.
    pub async fn connect_and_send(address: SocketAddr, request: &[u8]) -> TcpStream {
        let mut stream = TcpStream::connect(address)
            .await
            .expect("could not connect to the test server");
        stream
            .write_all(request)
            .await
            .expect("could not write the request");
        stream
    }

    /// Writes `request` on a new connection and reads one response, or returns `None` when the
    /// server closes the connection before sending any byte.
    ///
    /// # Panics
    ///
    /// Panics when the connection fails, the response is not valid HTTP/1.1, or it is cut off.
    pub async fn exchange(address: SocketAddr, request: &[u8]) -> Option<TestResponse> {
        let mut stream = connect_and_send(address, request).await;
        tokio::time::timeout(crate::suite::REQUEST_TIMEOUT, read_response(&mut stream))
            .await
            .expect("no whole response within REQUEST_TIMEOUT")
    }

    /// The parsed head of a response and the length of the head in bytes.
    struct Head {
        length: usize,
        status: u16,
        headers: Vec<(String, Bytes)>,
    }

    fn parse_head(buffer: &[u8]) -> Option<Head> {
        let mut slots = [httparse::EMPTY_HEADER; 64];
        let mut response = httparse::Response::new(&mut slots);
        let status = response
            .parse(buffer)
            .expect("the response head is not valid HTTP/1.1");
        let httparse::Status::Complete(length) = status else {
            return None;
        };
        let headers = response
            .headers
            .iter()
            .map(|line| {
                let value = Bytes::copy_from_slice(line.value);
                (line.name.to_ascii_lowercase(), value)
            })
            .collect();
        Some(Head {
            length,
            status: response.code.expect("a complete head has a status"),
            headers,
        })
    }

    /// Removes chunked framing, or returns `None` while the last chunk has not arrived.
    fn decode_chunked(mut data: &[u8]) -> Option<Vec<u8>> {
        let mut body = Vec::new();
        loop {
            let status = httparse::parse_chunk_size(data).expect("invalid chunk size line");
            let httparse::Status::Complete((line_length, size)) = status else {
                return None;
            };
            let size = usize::try_from(size).expect("chunk size fits in usize");
            data = &data[line_length..];
            if size == 0 {
                // The last chunk. The test application sends no trailers.
                return data.starts_with(b"\r\n").then_some(body);
            }
            if data.len() < size + 2 {
                return None;
            }
            body.extend_from_slice(&data[..size]);
            data = &data[size + 2..];
        }
    }

    async fn read_more(stream: &mut TcpStream, buffer: &mut Vec<u8>) -> usize {
        let mut chunk = [0u8; 16 * 1024];
        let read = stream
            .read(&mut chunk)
            .await
            .expect("could not read from the connection");
        buffer.extend_from_slice(&chunk[..read]);
        read
    }

    async fn read_response(stream: &mut TcpStream) -> Option<TestResponse> {
        let mut buffer = Vec::new();
        let head = loop {
            if let Some(head) = parse_head(&buffer) {
                break head;
            }
            if read_more(stream, &mut buffer).await == 0 {
                assert!(
                    buffer.is_empty(),
                    "the connection closed in the middle of the response head"
                );
                return None;
            }
        };

        let response = TestResponse {
            status: head.status,
            headers: head.headers,
            body: Bytes::new(),
        };
        let chunked = response
            .header_values("transfer-encoding")
            .iter()
            .any(|value| value.eq_ignore_ascii_case(b"chunked"));
        let content_length = response.header_text("content-length").map(|value| {
            value
                .parse::<usize>()
                .expect("content-length is a decimal number")
        });
        // RFC 9112 section 6.3: these responses end with their head, regardless of their headers.
        let bodiless = response.status == 204 || response.status == 304 || response.status < 200;
        let body = loop {
            let received = &buffer[head.length..];
            if bodiless {
                break Bytes::new();
            }
            if chunked {
                if let Some(body) = decode_chunked(received) {
                    break Bytes::from(body);
                }
            } else if let Some(length) = content_length
                && received.len() >= length
            {
                break Bytes::copy_from_slice(&received[..length]);
            }
            if read_more(stream, &mut buffer).await == 0 {
                assert!(
                    !chunked && content_length.is_none(),
                    "the connection closed before the end of the response body"
                );
                break Bytes::copy_from_slice(&buffer[head.length..]);
            }
        };
        Some(TestResponse { body, ..response })
    }
}

pub mod check {
    //! Checks that several tests share.

    use std::io::Read;

    use bytes::Bytes;

    use crate::client::TestResponse;

    /// The key header, in lowercase.
    pub const KEY_HEADER: &str = "idempotency-key";

    /// Problem `type` of a request without a required key.
    pub const MISSING_KEY: &str = "urn:idempotent:problem:missing-key";
    /// Problem `type` of an invalid key header.
    pub const INVALID_KEY: &str = "urn:idempotent:problem:invalid-key";
    /// Problem `type` of a retry while the first request runs.
    pub const IN_FLIGHT: &str = "urn:idempotent:problem:request-in-flight";
    /// Problem `type` of a key reused with a different request.
    pub const KEY_REUSED: &str = "urn:idempotent:problem:key-reused";

    /// Asserts that `response` is the runtime's problem document: `status`, content type
    /// `application/problem+json`, and a JSON object with exactly `type`, `title`, `status`
    /// and `detail`, with a non-empty title and detail.
    pub fn assert_problem(response: &TestResponse, status: u16, problem_type: &str) {
        assert_eq!(
            response.status, status,
            "status of the {problem_type} problem"
        );
        assert_eq!(
            response.header_text("content-type"),
            Some("application/problem+json"),
            "content type of the {problem_type} problem"
        );

        let document: serde_json::Map<String, serde_json::Value> =
            serde_json::from_slice(&response.body).unwrap_or_else(|error| {
                panic!(
                    "the {problem_type} problem body is not a JSON object ({error}): {:?}",
                    String::from_utf8_lossy(&response.body)
                )
            });
        let mut fields: Vec<&str> = document.keys().map(String::as_str).collect();
        fields.sort_unstable();
        assert_eq!(
            fields,
            ["detail", "status", "title", "type"],
            "problem fields"
        );

        assert_eq!(document["type"], problem_type, "problem type");
        assert_eq!(document["status"], status, "problem status field");
        let title = document["title"].as_str().unwrap_or_default();
        assert!(!title.is_empty(), "the {problem_type} problem has no title");
        let detail = document["detail"].as_str().unwrap_or_default();
        assert!(
            !detail.is_empty(),
            "the {problem_type} problem has no detail"
        );
    }

    /// Asserts that `response` is a `409` in-flight problem whose `Retry-After` is a whole
    /// number of seconds from 1 to `lock_timeout_seconds`.
    pub fn assert_in_flight(response: &TestResponse, lock_timeout_seconds: u64) {
        assert_problem(response, 409, IN_FLIGHT);
        let retry_after = response
            .header_text("retry-after")
            .expect("a 409 in-flight problem carries Retry-After");
        let seconds: u64 = retry_after
            .parse()
            .unwrap_or_else(|_| panic!("Retry-After {retry_after:?} is not whole seconds"));
        assert!(
            (1..=lock_timeout_seconds).contains(&seconds),
            "Retry-After is {seconds}, expected 1 to {lock_timeout_seconds} seconds"
        );
    }

    /// Returns the header names that the `Connection` header of `response` lists, in
    /// lowercase: RFC 9110 section 7.6.1 makes each of them hop-by-hop.
    pub fn connection_options(response: &TestResponse) -> Vec<String> {
        let mut options = Vec::new();
        for value in response.header_values("connection") {
            for option in String::from_utf8_lossy(&value).split(',') {
                options.push(option.trim().to_ascii_lowercase());
            }
        }
        options
    }

    /// Returns the header lines that describe the response itself.
    ///
    /// Leaves out `date`, which the server sets per response, `content-length` and the
    /// runtime's own `idempotent-*` headers, the hop-by-hop headers that RFC 9110 section 7.6.1
    /// names, and the headers in `connection_options`.
    pub fn end_to_end_headers(
        response: &TestResponse,
        connection_options: &[String],
    ) -> Vec<(String, Bytes)> {
        const LEFT_OUT: [&str; 11] = [
            "date",
            "content-length",
            "idempotent-replayed",
            "idempotent-replayable",
            "connection",
            "keep-alive",
            "proxy-connection",
            "te",
            "trailer",
            "transfer-encoding",
            "upgrade",
        ];
        response
            .headers
            .iter()
            .filter(|(name, _)| !LEFT_OUT.contains(&name.as_str()))
            .filter(|(name, _)| !connection_options.contains(name))
            .cloned()
            .collect()
    }

    /// Returns the header lines without `date`, which the server sets per response.
    pub fn without_date(response: &TestResponse) -> Vec<(String, Bytes)> {
        response
            .headers
            .iter()
            .filter(|(name, _)| name != "date")
            .cloned()
            .collect()
    }

    /// Decompresses a gzip body.
    ///
    /// # Panics
    ///
    /// Panics when `body` is not valid gzip.
    pub fn gunzip(body: &[u8]) -> Vec<u8> {
        let mut decoded = Vec::new();
        flate2::read::GzDecoder::new(body)
            .read_to_end(&mut decoded)
            .expect("the body is not valid gzip");
        decoded
    }
}

pub mod suite {
    //! The test bodies. Each runs against a fresh [`TestApp`] and its own store, so keys and run
    //! counts start from zero.

    use std::collections::BTreeMap;
    use std::time::Duration;

    use bytes::Bytes;
    use reqwest::Method;
    use tokio::sync::mpsc;

    use crate::TestApp;
    use crate::app::{MISSING_TENANT, RAW_HEADER_VALUE, SIZED_BODY, STREAM_CHUNKS, binary_body};
    use crate::check::{
        INVALID_KEY, KEY_HEADER, KEY_REUSED, MISSING_KEY, assert_in_flight, assert_problem,
        connection_options, end_to_end_headers, gunzip, without_date,
    };
    use crate::client::{RawRequest, TestResponse, connect_and_send, send, spawn_send};

    /// The maximum time one test may run.
    pub const TEST_TIMEOUT: Duration = Duration::from_secs(40);

    /// The maximum time a test waits for a handler to reach or leave its gate.
    pub const GATE_TIMEOUT: Duration = Duration::from_secs(10);

    /// The maximum time one request may take.
    pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(20);

    /// The default `lock_timeout`, in seconds, which bounds `Retry-After`.
    const DEFAULT_LOCK_TIMEOUT_SECONDS: u64 = 30;

    /// How long a waiting retry is watched to show that it does not finish while the first
    /// request runs. A retry that finishes in this time is a failure, whatever the load.
    const STILL_WAITING: Duration = Duration::from_millis(300);

    /// The number of requests in the concurrency tests.
    const CONCURRENT_REQUESTS: usize = 100;

    /// Sends `POST path` with the key `key` and no body.
    async fn post_with_key(app: &TestApp, path: &str, key: &str) -> TestResponse {
        send(app.post(path).header(KEY_HEADER, key)).await
    }

    /// Checks that safe methods (GET, HEAD, OPTIONS) run the handler every time, even with a key.
    pub async fn safe_methods_pass_through(app: &TestApp) {
        let methods = [Method::GET, Method::GET, Method::HEAD, Method::OPTIONS];

        let mut responses = Vec::new();
        for method in methods {
            let request = app.request(method, "/safe").header(KEY_HEADER, "safe-key");
            responses.push(send(request).await);
        }

        for response in &responses {
            assert_eq!(response.status, 200);
            assert!(!response.is_replayed());
        }
        assert_eq!(responses[0].text(), "safe run 1");
        assert_eq!(responses[1].text(), "safe run 2");
        assert!(responses[2].body.is_empty(), "HEAD response with a body");
        assert_eq!(responses[3].text(), "safe run 4");
        assert_eq!(app.runs().safe.get(), 4);
    }

    /// Checks that the first response with a new key is exactly what the handler without the
    /// attribute sends, and it is stored.
    pub async fn first_response_matches_unannotated_handler(app: &TestApp) {
        let annotated = RawRequest::post("/rich")
            .header(KEY_HEADER, "first-key")
            .body("order");
        let plain = RawRequest::post("/plain/rich")
            .header(KEY_HEADER, "first-key")
            .body("order");

        let first = app.raw(&annotated).await;
        let unannotated = app.raw(&plain).await;
        let retry = app.raw(&annotated).await;

        assert_eq!(first.status, unannotated.status);
        assert_eq!(without_date(&first), without_date(&unannotated));
        assert_eq!(first.body, unannotated.body);
        assert!(!first.is_replayed());
        assert!(retry.is_replayed());
        assert_eq!(app.runs().rich.get(), 1);
        assert_eq!(app.runs().plain_rich.get(), 1);
    }

    /// Checks that a retry gets the stored status and body bytes, marked as replayed, and the
    /// handler does not run again.
    pub async fn replays_stored_response(app: &TestApp) {
        let request = RawRequest::post("/rich")
            .header(KEY_HEADER, "replay-key")
            .body("order");

        let first = app.raw(&request).await;
        let retry = app.raw(&request).await;

        assert_eq!(first.status, 201);
        assert_eq!(first.body, binary_body());
        assert!(!first.is_replayed());
        assert_eq!(retry.status, 201);
        assert_eq!(retry.body, binary_body());
        assert!(retry.is_replayed());
        assert_eq!(app.runs().rich.get(), 1);
    }

    /// Checks that a replay repeats every end-to-end header line in its order, repeated names and
    /// non-UTF-8 values included.
    pub async fn replay_keeps_header_order_and_bytes(app: &TestApp) {
        let request = RawRequest::post("/rich").header(KEY_HEADER, "header-key");

        let first = app.raw(&request).await;
        let retry = app.raw(&request).await;

        // The header that `connection` lists is left out here: `replay_drops_hop_by_hop_headers`
        // checks it.
        let hop_by_hop = connection_options(&first);
        assert_eq!(hop_by_hop, ["x-hop"]);
        assert_eq!(
            end_to_end_headers(&retry, &hop_by_hop),
            end_to_end_headers(&first, &hop_by_hop)
        );
        assert_eq!(retry.header_values("x-order"), ["1", "2", "3"]);
        assert_eq!(
            retry.header("x-raw"),
            Some(Bytes::from_static(RAW_HEADER_VALUE))
        );
        assert_eq!(
            retry.header_text("content-type"),
            Some("application/octet-stream")
        );
        assert_eq!(retry.header_text("cache-control"), Some("no-store"));
        assert_eq!(retry.header_text("x-trace"), Some("a"));
    }

    /// Checks that the first response carries the handler's `Connection`, `Keep-Alive` and
    /// `Proxy-Connection` headers and the header that `Connection` lists, and that the replay
    /// carries none of them.
    pub async fn replay_drops_hop_by_hop_headers(app: &TestApp) {
        let request = RawRequest::post("/rich").header(KEY_HEADER, "hop-key");

        let first = app.raw(&request).await;
        let retry = app.raw(&request).await;

        assert_eq!(first.header_text("connection"), Some("x-hop"));
        assert_eq!(first.header_text("x-hop"), Some("for this connection only"));
        assert_eq!(first.header_text("keep-alive"), Some("timeout=5"));
        assert_eq!(first.header_text("proxy-connection"), Some("keep-alive"));
        assert!(retry.is_replayed());
        assert_eq!(retry.header("connection"), None);
        assert_eq!(retry.header("keep-alive"), None);
        assert_eq!(retry.header("proxy-connection"), None);
        assert_eq!(
            retry.header_text("x-hop"),
            None,
            "a header listed in Connection is hop-by-hop (RFC 9110 section 7.6.1) and must \
             not be stored"
        );
    }

    /// Checks that a replay is framed by one `Content-Length` equal to the body length, without
    /// chunking.
    pub async fn replay_content_length_matches_body(app: &TestApp) {
        let request = RawRequest::post("/rich").header(KEY_HEADER, "length-key");

        let first = app.raw(&request).await;
        let retry = app.raw(&request).await;

        let length = binary_body().len().to_string();
        assert_eq!(first.header_text("content-length"), Some(length.as_str()));
        assert_eq!(retry.header_values("content-length"), [length.as_str()]);
        assert_eq!(retry.header("transfer-encoding"), None);
        assert_eq!(retry.body.len(), binary_body().len());
    }

    /// Checks that `CompressionLayer` outside the handler compresses a replay for a client that
    /// asks for gzip, although the stored first response was sent uncompressed.
    pub async fn replay_is_compressed_for_gzip_client(app: &TestApp) {
        let first = send(app.post("/compressed").header(KEY_HEADER, "gzip-later")).await;
        let retry = send(
            app.post("/compressed")
                .header(KEY_HEADER, "gzip-later")
                .header("accept-encoding", "gzip"),
        )
        .await;

        assert_eq!(first.status, 200);
        assert_eq!(first.header("content-encoding"), None);
        assert_eq!(first.body, binary_body());
        assert_eq!(retry.status, 200);
        assert!(retry.is_replayed());
        assert_eq!(retry.header_text("content-encoding"), Some("gzip"));
        assert_ne!(retry.body, binary_body());
        assert_eq!(gunzip(&retry.body), binary_body());
        assert_eq!(app.runs().compressed.get(), 1);
    }

    /// Checks that `CompressionLayer` outside the handler sends a replay uncompressed to a client
    /// that does not ask for gzip, although the first response was compressed.
    pub async fn replay_is_identity_for_plain_client(app: &TestApp) {
        let first = send(
            app.post("/compressed")
                .header(KEY_HEADER, "gzip-first")
                .header("accept-encoding", "gzip"),
        )
        .await;
        let retry = send(app.post("/compressed").header(KEY_HEADER, "gzip-first")).await;

        assert_eq!(first.status, 200);
        assert_eq!(first.header_text("content-encoding"), Some("gzip"));
        assert_eq!(gunzip(&first.body), binary_body());
        assert_eq!(retry.status, 200);
        assert!(retry.is_replayed());
        assert_eq!(retry.header("content-encoding"), None);
        assert_eq!(retry.body, binary_body());
        assert_eq!(app.runs().compressed.get(), 1);
    }

    /// Checks that a key reused with a different body, path, query or method gets `422` and the
    /// handler does not run.
    pub async fn reused_key_with_different_request_is_rejected(app: &TestApp) {
        let cases = [
            (
                "body",
                (Method::POST, "/items/1", "a"),
                (Method::POST, "/items/1", "b"),
            ),
            (
                "path",
                (Method::POST, "/items/1", ""),
                (Method::POST, "/items/2", ""),
            ),
            (
                "query",
                (Method::POST, "/items/1?x=1", ""),
                (Method::POST, "/items/1?x=2", ""),
            ),
            (
                "method",
                (Method::POST, "/items/1", ""),
                (Method::PUT, "/items/1", ""),
            ),
        ];

        for (runs_before, (part, original, changed)) in cases.into_iter().enumerate() {
            let key = format!("reused-{part}");
            let (method, path, body) = original;
            let first = send(
                app.request(method, path)
                    .header(KEY_HEADER, &key)
                    .body(body),
            )
            .await;
            let (method, path, body) = changed;
            let retry = send(
                app.request(method, path)
                    .header(KEY_HEADER, &key)
                    .body(body),
            )
            .await;

            assert_eq!(first.status, 200, "first request, different {part}");
            assert_problem(&retry, 422, KEY_REUSED);
            assert_eq!(
                app.runs().item.get(),
                runs_before + 1,
                "runs, different {part}"
            );
        }
    }

    /// Checks that a different request with the key of a request still running gets `422`, not
    /// `409`.
    pub async fn different_request_during_run_is_rejected(app: &TestApp) {
        let first = spawn_send(app.post("/gated").header(KEY_HEADER, "running").body("a"));
        app.gates().gated.entered().await;

        let different = send(app.post("/gated").header(KEY_HEADER, "running").body("b")).await;
        app.gates().gated.open();
        let first = first.await.expect("the first request's task panicked");

        assert_problem(&different, 422, KEY_REUSED);
        assert_eq!(first.status, 200);
        assert_eq!(app.runs().gated.get(), 1);
    }

    /// Checks that without a key, a handler whose key is optional runs for every request.
    pub async fn missing_key_passes_through(app: &TestApp) {
        let first = send(app.post("/optional-key")).await;
        let second = send(app.post("/optional-key")).await;

        assert_eq!(first.status, 200);
        assert_eq!(first.text(), "no key run 1");
        assert!(!first.is_replayed());
        assert_eq!(second.status, 200);
        assert_eq!(second.text(), "no key run 2");
        assert!(!second.is_replayed());
        assert_eq!(app.runs().optional_key.get(), 2);
    }

    /// Checks that with `required = true`, a request without a key gets `400` and the handler does
    /// not run.
    pub async fn missing_required_key_is_rejected(app: &TestApp) {
        let response = send(app.post("/required-key")).await;

        assert_problem(&response, 400, MISSING_KEY);
        assert_eq!(app.runs().required_key.get(), 0);
    }

    /// Checks that empty, too long, badly quoted and repeated keys, and keys with a space or a
    /// non-ASCII byte, get `400` and the handler does not run.
    pub async fn invalid_keys_are_rejected(app: &TestApp) {
        let too_long = vec![b'k'; 256];
        let cases: [(&str, Vec<&[u8]>); 9] = [
            ("empty", vec![b""]),
            ("empty quoted", vec![b"\"\""]),
            ("256 bytes", vec![&too_long]),
            ("space", vec![b"a b"]),
            ("non-ASCII", vec![&[b'a', 0xc3, 0xa9]]),
            ("sent twice", vec![b"twice", b"twice"]),
            ("unclosed quote", vec![b"\"abc"]),
            ("text after quote", vec![b"\"ab\"c"]),
            ("bad escape", vec![b"\"a\\nb\""]),
        ];

        for (case, values) in cases {
            let mut request = RawRequest::post("/optional-key");
            for value in values {
                request = request.header(KEY_HEADER, value);
            }

            let response = app.raw(&request).await;

            assert_eq!(response.status, 400, "{case} key");
            assert_problem(&response, 400, INVALID_KEY);
        }
        assert_eq!(app.runs().optional_key.get(), 0);
    }

    /// Checks that a key of 255 bytes, the maximum, is accepted and replayed.
    pub async fn longest_key_is_accepted(app: &TestApp) {
        let key = "k".repeat(255);

        let first = post_with_key(app, "/optional-key", &key).await;
        let retry = post_with_key(app, "/optional-key", &key).await;

        assert_eq!(first.status, 200);
        assert_eq!(first.text(), format!("key {key} run 1"));
        assert!(retry.is_replayed());
        assert_eq!(retry.body, first.body);
        assert_eq!(app.runs().optional_key.get(), 1);
    }

    /// Checks that `"abc"` (a structured-field string) and `abc` are the same key.
    pub async fn quoted_and_bare_key_are_one_key(app: &TestApp) {
        let quoted = post_with_key(app, "/optional-key", "\"abc\"").await;
        let bare = post_with_key(app, "/optional-key", "abc").await;

        assert_eq!(quoted.status, 200);
        assert_eq!(quoted.text(), "key abc run 1");
        assert!(!quoted.is_replayed());
        assert!(bare.is_replayed());
        assert_eq!(bare.text(), "key abc run 1");
        assert_eq!(app.runs().optional_key.get(), 1);
    }

    /// Checks that the handler's key argument contains the validated key, without quotes and
    /// escapes.
    pub async fn handler_receives_unquoted_key(app: &TestApp) {
        let quoted = post_with_key(app, "/required-key", "\"k-1\"").await;
        let escaped = post_with_key(app, "/required-key", r#""a\"b\\c""#).await;
        let optional = post_with_key(app, "/optional-key", "\"k-2\"").await;

        assert_eq!(quoted.text(), "key k-1 run 1");
        assert_eq!(escaped.text(), r#"key a"b\c run 2"#);
        assert_eq!(optional.text(), "key k-2 run 1");
    }

    /// Checks that `header = "X-Idempotency-Key"` reads the key from that header, and the default
    /// header is then ignored, even when invalid.
    pub async fn custom_header_names_the_key(app: &TestApp) {
        let first = send(
            app.post("/custom-header")
                .header("x-idempotency-key", "custom"),
        )
        .await;
        let retry = send(
            app.post("/custom-header")
                .header("x-idempotency-key", "custom"),
        )
        .await;
        let default_header = post_with_key(app, "/custom-header", "default").await;
        let default_again = post_with_key(app, "/custom-header", "default").await;
        let invalid_default = post_with_key(app, "/custom-header", "a b").await;

        assert_eq!(first.text(), "key custom run 1");
        assert!(retry.is_replayed());
        assert_eq!(retry.text(), "key custom run 1");
        assert_eq!(default_header.text(), "no key run 2");
        assert!(!default_again.is_replayed());
        assert_eq!(default_again.text(), "no key run 3");
        assert_eq!(invalid_default.status, 200);
        assert_eq!(invalid_default.text(), "no key run 4");
        assert_eq!(app.runs().custom_header.get(), 4);
    }

    /// Checks that a retry while the first request runs gets `409` with `Retry-After`, and a retry
    /// after the first finishes gets the replay.
    pub async fn retry_during_run_gets_conflict(app: &TestApp) {
        let first = spawn_send(app.post("/gated").header(KEY_HEADER, "in-flight"));
        app.gates().gated.entered().await;

        let during = post_with_key(app, "/gated", "in-flight").await;
        app.gates().gated.open();
        let first = first.await.expect("the first request's task panicked");
        let after = post_with_key(app, "/gated", "in-flight").await;

        assert_in_flight(&during, DEFAULT_LOCK_TIMEOUT_SECONDS);
        assert_eq!(first.status, 200);
        assert_eq!(first.text(), "gated run 1");
        assert!(!first.is_replayed());
        assert!(after.is_replayed());
        assert_eq!(after.text(), "gated run 1");
        assert_eq!(app.runs().gated.get(), 1);
    }

    /// Checks that with `on_conflict = "wait"`, a retry while the first request runs waits and gets
    /// the replay.
    pub async fn retry_during_run_waits_for_replay(app: &TestApp) {
        let first = spawn_send(app.post("/gated-wait").header(KEY_HEADER, "wait"));
        app.gates().gated_wait.entered().await;

        let mut retry = spawn_send(app.post("/gated-wait").header(KEY_HEADER, "wait"));
        let early = tokio::time::timeout(STILL_WAITING, &mut retry).await;
        app.gates().gated_wait.open();
        let first = first.await.expect("the first request's task panicked");
        let retry = retry.await.expect("the retry's task panicked");

        assert!(
            early.is_err(),
            "the retry finished while the first request ran: {early:?}"
        );
        assert_eq!(first.status, 200);
        assert!(!first.is_replayed());
        assert_eq!(retry.status, 200);
        assert!(retry.is_replayed());
        assert_eq!(retry.body, first.body);
        assert_eq!(app.runs().gated_wait.get(), 1);
    }

    /// Checks that with `on_conflict = "wait"`, a retry waits at most `lock_timeout` (2 s here),
    /// then gets `409`.
    pub async fn wait_ends_at_lock_timeout(app: &TestApp) {
        let first = spawn_send(
            app.post("/gated-wait-bounded")
                .header(KEY_HEADER, "bounded"),
        );
        app.gates().gated_wait_bounded.entered().await;

        let retry = post_with_key(app, "/gated-wait-bounded", "bounded").await;
        app.gates().gated_wait_bounded.open();
        let first = first.await.expect("the first request's task panicked");

        assert_in_flight(&retry, 2);
        assert_eq!(first.status, 200);
        assert_eq!(app.runs().gated_wait_bounded.get(), 1);
    }

    /// Checks that a handler that runs past `lock_timeout` (1 s here) keeps its key, because the
    /// runtime renews the lease: a retry after 1.5 s still gets `409` and does not run the handler.
    pub async fn long_run_keeps_its_lock(app: &TestApp) {
        let first = spawn_send(app.post("/gated-short-lock").header(KEY_HEADER, "long"));
        app.gates().gated_short_lock.entered().await;

        tokio::time::sleep(Duration::from_millis(1500)).await;
        let retry = post_with_key(app, "/gated-short-lock", "long").await;
        app.gates().gated_short_lock.open();
        let first = first.await.expect("the first request's task panicked");

        assert_in_flight(&retry, 1);
        assert_eq!(first.status, 200);
        assert_eq!(app.runs().gated_short_lock.get(), 1);
    }

    /// Checks that `500`, `408` and `429` are not stored by default, so the retry runs the handler
    /// again.
    pub async fn retryable_statuses_are_not_stored(app: &TestApp) {
        for (index, code) in [500u16, 408, 429].into_iter().enumerate() {
            let path = format!("/status/{code}");
            let key = format!("status-{code}");

            let first = post_with_key(app, &path, &key).await;
            let retry = post_with_key(app, &path, &key).await;

            let runs_before = index * 2;
            assert_eq!(first.status, code);
            assert_eq!(
                first.text(),
                format!("status {code} run {}", runs_before + 1)
            );
            assert_eq!(retry.status, code);
            assert!(!retry.is_replayed(), "{code} was replayed");
            assert_eq!(
                retry.text(),
                format!("status {code} run {}", runs_before + 2)
            );
        }
        assert_eq!(app.runs().status.get(), 6);
    }

    /// Checks that a `404` is stored by default and replayed.
    pub async fn default_store_status_keeps_4xx(app: &TestApp) {
        let first = post_with_key(app, "/status/404", "status-404").await;
        let retry = post_with_key(app, "/status/404", "status-404").await;

        assert_eq!(first.status, 404);
        assert_eq!(retry.status, 404);
        assert!(retry.is_replayed());
        assert_eq!(retry.text(), "status 404 run 1");
        assert_eq!(app.runs().status.get(), 1);
    }

    /// Checks that a replayed `204` has no `Content-Length`, like the first response: RFC 9110
    /// section 8.6 forbids the header in a `204`.
    pub async fn no_content_replay_has_no_length(app: &TestApp) {
        let request = RawRequest::post("/no-content").header(KEY_HEADER, "no-content");

        let first = app.raw(&request).await;
        let retry = app.raw(&request).await;

        assert_eq!(first.status, 204);
        assert_eq!(first.header("content-length"), None);
        assert_eq!(retry.status, 204);
        assert!(retry.is_replayed());
        assert_eq!(retry.header("content-length"), None);
        assert!(retry.body.is_empty());
        assert_eq!(app.runs().no_content.get(), 1);
    }

    /// Checks that `store_status = "2xx,5xx"` stores a `503` and not a `404`.
    pub async fn store_status_selects_statuses(app: &TestApp) {
        let unavailable = post_with_key(app, "/status-5xx/503", "select-503").await;
        let unavailable_retry = post_with_key(app, "/status-5xx/503", "select-503").await;
        let not_found = post_with_key(app, "/status-5xx/404", "select-404").await;
        let not_found_retry = post_with_key(app, "/status-5xx/404", "select-404").await;

        assert_eq!(unavailable.status, 503);
        assert_eq!(unavailable_retry.status, 503);
        assert!(unavailable_retry.is_replayed());
        assert_eq!(unavailable_retry.text(), "status 503 run 1");
        assert_eq!(not_found.status, 404);
        assert_eq!(not_found_retry.status, 404);
        assert!(!not_found_retry.is_replayed());
        assert_eq!(not_found_retry.text(), "status 404 run 3");
        assert_eq!(app.runs().status_5xx.get(), 3);
    }

    /// Checks that a handler that panics stores nothing and releases its key: the retry runs it
    /// again.
    pub async fn panic_releases_key(app: &TestApp) {
        let request = RawRequest::post("/panics").header(KEY_HEADER, "panic");

        let first = app.raw_exchange(&request).await;
        let retry = app.raw(&request).await;
        let replay = app.raw(&request).await;

        assert_eq!(
            first, None,
            "the server sent a response to a request whose handler panicked"
        );
        assert_eq!(retry.status, 200);
        assert_eq!(retry.text(), "recovered run 2");
        assert!(!retry.is_replayed());
        assert!(replay.is_replayed());
        assert_eq!(replay.text(), "recovered run 2");
        assert_eq!(app.runs().panics.get(), 2);
    }

    /// Checks that a request that the handler's extractor rejects (invalid JSON) stores nothing, so
    /// the key is free for the corrected request.
    pub async fn extractor_rejection_runs_nothing(app: &TestApp) {
        let invalid = || {
            app.post("/json")
                .header(KEY_HEADER, "json-key")
                .header("content-type", "application/json")
                .body("{\"amount\":")
        };
        let valid = || {
            app.post("/json")
                .header(KEY_HEADER, "json-key")
                .header("content-type", "application/json")
                .body("{\"amount\":5}")
        };

        let rejected = send(invalid()).await;
        let rejected_again = send(invalid()).await;
        let accepted = send(valid()).await;
        let replay = send(valid()).await;

        assert_eq!(rejected.status, 400);
        assert!(!rejected.is_replayed());
        assert_eq!(rejected_again.status, 400);
        assert!(!rejected_again.is_replayed());
        assert_eq!(accepted.status, 200);
        assert_eq!(accepted.text(), r#"{"received":{"amount":5},"run":1}"#);
        assert!(replay.is_replayed());
        assert_eq!(replay.body, accepted.body);
        assert_eq!(app.runs().json.get(), 1);
    }

    /// Checks that a client that closes its connection while the handler runs does not cancel it: a
    /// retry during the run gets `409`, and a retry after it gets the stored response.
    pub async fn hang_up_does_not_cancel_handler(app: &TestApp) {
        let request = RawRequest::post("/gated").header(KEY_HEADER, "hang-up");
        let connection = connect_and_send(app.address(), &request.to_bytes(app.address())).await;
        app.gates().gated.entered().await;

        drop(connection);
        let during = app.raw(&request).await;
        app.gates().gated.open();
        app.gates().gated.finished().await;
        let after = retry_while_in_flight(app, &request).await;

        assert_in_flight(&during, DEFAULT_LOCK_TIMEOUT_SECONDS);
        assert_eq!(after.status, 200);
        assert!(after.is_replayed());
        assert_eq!(after.text(), "gated run 1");
        assert_eq!(app.runs().gated.get(), 1);
    }

    /// Sends `request` until the response is not `409`: the handler has returned, and its
    /// response is being stored.
    async fn retry_while_in_flight(app: &TestApp, request: &RawRequest) -> TestResponse {
        for _ in 0..100 {
            let response = app.raw(request).await;
            if response.status != 409 {
                return response;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("the key stayed in flight after its handler returned");
    }

    /// Checks that a body of exactly `max_body` (16 bytes here) is stored and replayed.
    pub async fn body_at_max_body_is_stored(app: &TestApp) {
        let request = RawRequest::post("/sized/16").header(KEY_HEADER, "at-limit");

        let first = app.raw(&request).await;
        let retry = app.raw(&request).await;

        assert_eq!(first.status, 200);
        assert_eq!(first.body, SIZED_BODY[..16]);
        assert_eq!(first.header("idempotent-replayable"), None);
        assert!(retry.is_replayed());
        assert_eq!(retry.body, SIZED_BODY[..16]);
        assert_eq!(app.runs().sized.get(), 1);
    }

    /// Checks that a body one byte over `max_body` is sent whole with `Idempotent-Replayable:
    /// false` and not stored, so the retry runs the handler again.
    pub async fn oversized_body_is_not_stored(app: &TestApp) {
        let request = RawRequest::post("/sized/17").header(KEY_HEADER, "over-limit");

        let first = app.raw(&request).await;
        let retry = app.raw(&request).await;

        for response in [&first, &retry] {
            assert_eq!(response.status, 200);
            assert_eq!(response.body, SIZED_BODY[..17]);
            assert_eq!(response.header_text("content-length"), Some("17"));
            assert_eq!(response.header_text("idempotent-replayable"), Some("false"));
            assert!(!response.is_replayed());
        }
        assert_eq!(app.runs().sized.get(), 2);
    }

    /// Checks that a streaming body arrives chunked and whole, with `Idempotent-Replayable: false`,
    /// and is not stored, so the retry runs the handler again.
    pub async fn streaming_body_is_not_stored(app: &TestApp) {
        let request = RawRequest::post("/stream").header(KEY_HEADER, "stream");

        let first = app.raw(&request).await;
        let retry = app.raw(&request).await;

        let whole = STREAM_CHUNKS.concat();
        for response in [&first, &retry] {
            assert_eq!(response.status, 200);
            assert_eq!(response.header_text("transfer-encoding"), Some("chunked"));
            assert_eq!(response.header("content-length"), None);
            assert_eq!(response.text(), whole);
            assert_eq!(response.header_text("idempotent-replayable"), Some("false"));
            assert!(!response.is_replayed());
        }
        assert_eq!(app.runs().stream.get(), 2);
    }

    /// Checks that after `ttl` (2 s here) the key is new again.
    pub async fn expired_key_runs_again(app: &TestApp) {
        let first = post_with_key(app, "/short-ttl", "expiring").await;
        let replay = post_with_key(app, "/short-ttl", "expiring").await;
        tokio::time::sleep(Duration::from_millis(2500)).await;
        let after_ttl = post_with_key(app, "/short-ttl", "expiring").await;

        assert_eq!(first.text(), "short ttl run 1");
        assert!(replay.is_replayed());
        assert_eq!(replay.text(), "short ttl run 1");
        assert!(!after_ttl.is_replayed());
        assert_eq!(after_ttl.text(), "short ttl run 2");
        assert_eq!(app.runs().short_ttl.get(), 2);
    }

    /// Starts `CONCURRENT_REQUESTS` requests with one key at once and returns a channel that
    /// yields each response as it arrives.
    fn send_concurrently(
        app: &TestApp,
        path: &str,
        key: &str,
    ) -> mpsc::UnboundedReceiver<TestResponse> {
        let (sender, receiver) = mpsc::unbounded_channel();
        for _ in 0..CONCURRENT_REQUESTS {
            let request = app.post(path).header(KEY_HEADER, key);
            let sender = sender.clone();
            tokio::spawn(async move {
                // The receiver lives until the test ends.
                let _ = sender.send(send(request).await);
            });
        }
        receiver
    }

    async fn receive(receiver: &mut mpsc::UnboundedReceiver<TestResponse>) -> TestResponse {
        tokio::time::timeout(REQUEST_TIMEOUT, receiver.recv())
            .await
            .expect("no response within REQUEST_TIMEOUT")
            .expect("a request task ended without a response")
    }

    fn count_statuses(responses: &[TestResponse]) -> BTreeMap<u16, usize> {
        let mut counts = BTreeMap::new();
        for response in responses {
            *counts.entry(response.status).or_default() += 1;
        }
        counts
    }

    /// Checks that 100 concurrent requests with one key run the handler once, and that while it
    /// runs the other 99 get `409`.
    pub async fn one_key_runs_once_when_rejecting(app: &TestApp) {
        let mut receiver = send_concurrently(app, "/gated", "crowd");
        app.gates().gated.entered().await;

        let mut rejected = Vec::new();
        for _ in 1..CONCURRENT_REQUESTS {
            rejected.push(receive(&mut receiver).await);
        }
        app.gates().gated.open();
        let completed = receive(&mut receiver).await;

        assert_eq!(count_statuses(&rejected), BTreeMap::from([(409, 99)]));
        for response in &rejected {
            assert_in_flight(response, DEFAULT_LOCK_TIMEOUT_SECONDS);
        }
        assert_eq!(completed.status, 200);
        assert_eq!(completed.text(), "gated run 1");
        assert!(!completed.is_replayed());
        assert_eq!(app.runs().gated.get(), 1);
    }

    /// Checks that 100 concurrent requests with one key and `on_conflict = "wait"` run the handler
    /// once, and the other 99 wait and get its replay.
    pub async fn one_key_runs_once_when_waiting(app: &TestApp) {
        let mut receiver = send_concurrently(app, "/gated-wait", "crowd");
        app.gates().gated_wait.entered().await;

        let early = tokio::time::timeout(STILL_WAITING, receiver.recv()).await;
        app.gates().gated_wait.open();
        let mut responses = Vec::new();
        for _ in 0..CONCURRENT_REQUESTS {
            responses.push(receive(&mut receiver).await);
        }

        assert!(
            early.is_err(),
            "a request finished while the handler ran: {early:?}"
        );
        assert_eq!(count_statuses(&responses), BTreeMap::from([(200, 100)]));
        let replayed = responses
            .iter()
            .filter(|response| response.is_replayed())
            .count();
        assert_eq!(replayed, 99);
        for response in &responses {
            assert_eq!(response.text(), "gated wait run 1");
        }
        assert_eq!(app.runs().gated_wait.get(), 1);
    }

    /// Checks that with `scope = Tenant`, two tenants with the same key each run the handler once
    /// and each get their own replay.
    pub async fn scoped_keys_are_separate(app: &TestApp) {
        let as_tenant = |tenant: &str| {
            app.post("/scoped")
                .header(KEY_HEADER, "shared")
                .header("x-tenant", tenant)
        };

        let alice = send(as_tenant("alice")).await;
        let bob = send(as_tenant("bob")).await;
        let alice_retry = send(as_tenant("alice")).await;
        let bob_retry = send(as_tenant("bob")).await;

        assert_eq!(alice.text(), "tenant alice run 1");
        assert!(!alice.is_replayed());
        assert_eq!(bob.text(), "tenant bob run 2");
        assert!(!bob.is_replayed());
        assert!(alice_retry.is_replayed());
        assert_eq!(alice_retry.text(), "tenant alice run 1");
        assert!(bob_retry.is_replayed());
        assert_eq!(bob_retry.text(), "tenant bob run 2");
        assert_eq!(app.runs().scoped.get(), 2);
    }

    /// Checks that without a tenant, the scope extractor's rejection is sent as is and the handler
    /// does not run.
    pub async fn missing_scope_is_rejected(app: &TestApp) {
        let response = post_with_key(app, "/scoped", "no-tenant").await;

        let (status, body) = MISSING_TENANT;
        assert_eq!(response.status, status.as_u16());
        assert_eq!(response.text(), body);
        assert_eq!(app.runs().scoped.get(), 0);
    }

    /// Checks that `Set-Cookie` goes out with the first response and is not replayed.
    pub async fn set_cookie_is_not_replayed(app: &TestApp) {
        let first = post_with_key(app, "/cookie", "cookie").await;
        let retry = post_with_key(app, "/cookie", "cookie").await;

        assert_eq!(
            first.header_text("set-cookie"),
            Some("session=first-client; HttpOnly")
        );
        assert!(retry.is_replayed());
        assert_eq!(retry.header("set-cookie"), None);
        assert_eq!(retry.text(), "cookie run 1");
        assert_eq!(app.runs().cookie.get(), 1);
    }

    /// Checks that with `fingerprint = "method,path"`, a retry with another body is the same
    /// request.
    pub async fn fingerprint_without_body_ignores_body(app: &TestApp) {
        let first = send(
            app.post("/method-path")
                .header(KEY_HEADER, "no-body")
                .body("a"),
        )
        .await;
        let retry = send(
            app.post("/method-path")
                .header(KEY_HEADER, "no-body")
                .body("bb"),
        )
        .await;

        assert_eq!(first.text(), "run 1 received 1 bytes");
        assert!(retry.is_replayed());
        assert_eq!(retry.text(), "run 1 received 1 bytes");
        assert_eq!(app.runs().method_path.get(), 1);
    }

    /// Checks that with `fingerprint = "method,path,json"`, JSON bodies that differ only in key
    /// order are the same request, and a different value is not.
    pub async fn json_fingerprint_ignores_key_order(app: &TestApp) {
        let with_body = |body: &'static str| {
            app.post("/canonical-json")
                .header(KEY_HEADER, "canonical")
                .header("content-type", "application/json")
                .body(body)
        };

        let first = send(with_body(r#"{"a":1,"b":2}"#)).await;
        let reordered = send(with_body(r#"{"b":2,"a":1}"#)).await;
        let changed = send(with_body(r#"{"a":1,"b":3}"#)).await;

        assert_eq!(first.status, 200);
        assert!(reordered.is_replayed());
        assert_eq!(reordered.body, first.body);
        assert_problem(&changed, 422, KEY_REUSED);
        assert_eq!(app.runs().canonical_json.get(), 1);
    }

    /// Checks that inside a nested router the prefix, which here contains the account, stays in
    /// the fingerprint, so one account never gets another account's replay.
    pub async fn nested_router_prefix_is_fingerprinted(app: &TestApp) {
        let alice = post_with_key(app, "/accounts/alice/charge", "nested").await;
        let bob = post_with_key(app, "/accounts/bob/charge", "nested").await;

        assert_eq!(alice.status, 200);
        assert_eq!(alice.text(), "charged alice run 1");
        assert_problem(&bob, 422, KEY_REUSED);
        assert_eq!(app.runs().account_charge.get(), 1);
    }

    /// Checks that one key sent to two handlers whose fingerprints leave the path out is a
    /// reused key, not a replay of the other handler's response.
    pub async fn same_key_on_two_endpoints_is_rejected(app: &TestApp) {
        let payment = post_with_key(app, "/pay-any", "two-endpoints").await;
        let refund = post_with_key(app, "/refund-any", "two-endpoints").await;

        assert_eq!(payment.status, 200);
        assert_eq!(payment.text(), "payment run 1");
        assert_problem(&refund, 422, KEY_REUSED);
        assert_eq!(app.runs().pay_any.get(), 1);
        assert_eq!(app.runs().refund_any.get(), 0);
    }
}
