//! HTTP tests of what only the Redis store does. Several server instances share one key space,
//! leases expire and renew on the Redis server's clock, and a Redis server stops and restarts
//! under running applications. Binary responses and key names are checked in Redis itself.
//!
//! The tests need the shared Redis server on 127.0.0.1:6379, which other test binaries use at
//! the same time, so each test uses a random key prefix of its own and never flushes or stops
//! that server. The fault tests start and stop a private `redis-server` from `PATH`. A test
//! fails when either is missing.

#[path = "redis_instances/app.rs"]
mod app;
#[path = "redis_instances/support.rs"]
mod support;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, Method, StatusCode, Uri};
use idempotent_runtime::config::FingerprintConfig;
use idempotent_runtime::fingerprint::{fingerprint, store_key};
use idempotent_runtime::store::{Begin, StoreErrorKind};
use idempotent_runtime::{IdempotencyStore, RedisStore, StoredResponse};
use tokio::sync::mpsc;

use crate::app::{
    App, BINARY_HEADER_VALUE, LONG_LOCK, REPEATED_HEADER_VALUES, SHORT_LOCK, Shared,
    large_header_value, order_body,
};
use crate::support::{
    PrefixCleanup, PrivateRedis, RawResponse, Reply, connect_shared_store, connect_store,
    free_port, get_raw, http_client, random_key, random_prefix, raw_post, scan_prefix, send,
};

const KEY_HEADER: &str = "Idempotency-Key";

/// The request body of every order request.
const ORDER: &str = r#"{"sku":"tea","quantity":2}"#;

const IN_FLIGHT_TYPE: &str = "urn:idempotent:problem:request-in-flight";
const STORE_UNAVAILABLE_TYPE: &str = "urn:idempotent:problem:store-unavailable";

/// The number of concurrent requests with one key in the two-instance tests.
const CONCURRENT_REQUESTS: usize = 200;

/// The store timeout of the fault tests, short so that calls to a stopped server fail fast.
const FAULT_STORE_TIMEOUT: Duration = Duration::from_millis(300);

/// The maximum time a test waits for a state that Redis or the servers reach on their own, such
/// as a lease expiry, a reconnection or the arrival of all concurrent requests.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(10);

/// The maximum time a retry sent while its key runs may take. A retry that takes longer ran the
/// handler again, which then stopped at the closed gate.
const RETRY_TIMEOUT: Duration = Duration::from_secs(5);

const POLL_INTERVAL: Duration = Duration::from_millis(50);

/// Asserts that `reply` is an RFC 9457 problem of `problem_type` with `status`.
fn assert_problem(reply: &Reply, status: u16, problem_type: &str) {
    assert_eq!(reply.status, status, "status, body {:?}", reply.text());
    assert_eq!(
        reply.header("content-type"),
        Some("application/problem+json")
    );
    assert_eq!(reply.header("idempotent-replayed"), None);
    let problem: serde_json::Value =
        serde_json::from_slice(&reply.body).expect("the problem body is not JSON");
    assert_eq!(problem["type"], problem_type, "problem {problem}");
    assert_eq!(problem["status"], status, "problem {problem}");
}

/// Asserts that `reply` is the `409` for a key in flight on a route with `lock_timeout`.
fn assert_in_flight(reply: &Reply, lock_timeout: Duration) {
    assert_problem(reply, 409, IN_FLIGHT_TYPE);
    let retry_after = reply
        .header("retry-after")
        .expect("409 without Retry-After");
    let seconds: u64 = retry_after
        .parse()
        .unwrap_or_else(|_| panic!("Retry-After {retry_after:?} is not a number of seconds"));
    // The runtime rounds the remaining lease up to whole seconds, at least 1.
    let maximum = lock_timeout.as_secs().max(1);
    assert!(
        (1..=maximum).contains(&seconds),
        "Retry-After {seconds} is outside 1..={maximum} for lock_timeout {lock_timeout:?}"
    );
}

/// Asserts that `reply` is the response of a handler run, not a replay.
fn assert_handler_response(reply: &Reply, body: &str) {
    assert_eq!(reply.status, 201, "status, body {:?}", reply.text());
    assert_eq!(reply.header("idempotent-replayed"), None);
    assert_eq!(reply.header("content-type"), Some("application/json"));
    assert_eq!(reply.text(), body);
}

/// Asserts that `reply` replays a stored handler response with `body`.
fn assert_replay(reply: &Reply, body: &str) {
    assert_eq!(reply.status, 201, "status, body {:?}", reply.text());
    assert_eq!(reply.header("idempotent-replayed"), Some("true"));
    assert_eq!(reply.header("content-type"), Some("application/json"));
    assert_eq!(reply.text(), body);
}

fn order_request(
    client: &reqwest::Client,
    app: &App,
    path: &str,
    key: &str,
) -> reqwest::RequestBuilder {
    client
        .post(app.url(path))
        .header(KEY_HEADER, key)
        .body(ORDER)
}

/// Sends a retry while the handler of its key waits at the gate.
///
/// # Panics
///
/// Panics when the retry does not return within [`RETRY_TIMEOUT`], which means that it ran
/// the handler a second time.
async fn send_retry_during_run(request: reqwest::RequestBuilder, apps: &[&App]) -> Reply {
    match tokio::time::timeout(RETRY_TIMEOUT, send(request)).await {
        Ok(reply) => reply,
        Err(_) => panic!(
            "a retry sent while its key ran did not return within {RETRY_TIMEOUT:?}, so it ran \
             the handler again; handler runs: {}",
            total_runs(apps)
        ),
    }
}

fn total_runs(apps: &[&App]) -> usize {
    apps.iter().map(|app| app.runs()).sum()
}

/// Starts two instances, `a` and `b`, each with a Redis store connection of its own on the
/// shared server and one prefix.
async fn start_two_instances(prefix: &str) -> (App, App) {
    let shared = Arc::new(Shared::default());
    let a = App::start("a", connect_shared_store(prefix).await, Arc::clone(&shared)).await;
    let b = App::start("b", connect_shared_store(prefix).await, shared).await;
    (a, b)
}

/// Sends [`CONCURRENT_REQUESTS`] requests with `key` to `path`, alternating between the
/// instances, each in a task of its own. The replies arrive on the returned channel in the
/// order they complete.
fn spawn_concurrent_requests(
    client: &reqwest::Client,
    instances: [&App; 2],
    path: &str,
    key: &str,
) -> mpsc::UnboundedReceiver<Reply> {
    let (sender, receiver) = mpsc::unbounded_channel();
    for index in 0..CONCURRENT_REQUESTS {
        let request = order_request(client, instances[index % 2], path, key);
        let sender = sender.clone();
        tokio::spawn(async move {
            let reply = send(request).await;
            // The receiver is gone only when the test already failed.
            let _ = sender.send(reply);
        });
    }
    receiver
}

/// Returns the instance whose handler ran, after checking that exactly one run happened.
fn single_runner<'a>(a: &'a App, b: &'a App) -> (&'a App, &'a App) {
    assert_eq!(total_runs(&[a, b]), 1, "handler runs over both instances");
    if a.runs() == 1 { (a, b) } else { (b, a) }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_instances_reject_concurrent_retries() {
    let prefix = random_prefix();
    let _cleanup = PrefixCleanup::new(&prefix);
    let (a, b) = start_two_instances(&prefix).await;
    let gate = &a.instance.shared.gate;
    let client = http_client();
    let key = random_key();

    let mut replies = spawn_concurrent_requests(&client, [&a, &b], "/gated", &key);

    // The handler waits at the gate, so every request but the one running gets 409.
    gate.entered().await;
    let deadline = tokio::time::Instant::now() + SETTLE_TIMEOUT;
    let mut rejected = Vec::with_capacity(CONCURRENT_REQUESTS - 1);
    while rejected.len() < CONCURRENT_REQUESTS - 1 {
        match tokio::time::timeout_at(deadline, replies.recv()).await {
            Ok(Some(reply)) => rejected.push(reply),
            Ok(None) => panic!("a request task ended without a reply"),
            Err(_) => panic!(
                "only {} of {} retries returned while the handler waited at the gate; handler \
                 runs: {}",
                rejected.len(),
                CONCURRENT_REQUESTS - 1,
                total_runs(&[&a, &b])
            ),
        }
    }
    for reply in &rejected {
        assert_in_flight(reply, LONG_LOCK);
    }
    let (runner, other) = single_runner(&a, &b);

    gate.open();
    let first = replies
        .recv()
        .await
        .expect("the running request returned no reply");
    let body = order_body(runner.instance.name, 1);
    assert_handler_response(&first, &body);
    assert_eq!(total_runs(&[&a, &b]), 1);

    let retry = send(order_request(&client, other, "/gated", &key)).await;
    assert_replay(&retry, &body);
    assert_eq!(total_runs(&[&a, &b]), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_instances_replay_to_waiting_retries() {
    let prefix = random_prefix();
    let _cleanup = PrefixCleanup::new(&prefix);
    let (a, b) = start_two_instances(&prefix).await;
    let shared = Arc::clone(&a.instance.shared);
    let client = http_client();
    let key = random_key();

    let mut replies = spawn_concurrent_requests(&client, [&a, &b], "/gated-wait", &key);

    // Open the gate only once every request reached a router, so that the retries wait for
    // the stored response rather than find it already stored.
    shared.gate.entered().await;
    let deadline = Instant::now() + SETTLE_TIMEOUT;
    while shared.arrivals.load(Ordering::SeqCst) < CONCURRENT_REQUESTS {
        assert!(
            Instant::now() < deadline,
            "only {} of {CONCURRENT_REQUESTS} requests reached the servers within \
             {SETTLE_TIMEOUT:?}",
            shared.arrivals.load(Ordering::SeqCst)
        );
        tokio::time::sleep(POLL_INTERVAL).await;
    }
    let (runner, other) = single_runner(&a, &b);
    shared.gate.open();

    let mut all = Vec::with_capacity(CONCURRENT_REQUESTS);
    while let Some(reply) = replies.recv().await {
        all.push(reply);
    }
    assert_eq!(all.len(), CONCURRENT_REQUESTS, "replies received");
    let body = order_body(runner.instance.name, 1);
    let (replayed, ran): (Vec<&Reply>, Vec<&Reply>) = all
        .iter()
        .partition(|reply| reply.header("idempotent-replayed").is_some());
    assert_eq!(ran.len(), 1, "responses without Idempotent-Replayed");
    assert_handler_response(ran[0], &body);
    for reply in replayed {
        assert_replay(reply, &body);
    }
    assert_eq!(total_runs(&[&a, &b]), 1);

    let retry = send(order_request(&client, other, "/gated-wait", &key)).await;
    assert_replay(&retry, &body);
    assert_eq!(total_runs(&[&a, &b]), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vanished_holder_loses_key_at_lease_expiry() {
    let prefix = random_prefix();
    let _cleanup = PrefixCleanup::new(&prefix);
    let store = connect_shared_store(&prefix).await;
    let app = App::start("a", store.clone(), Arc::default()).await;
    let gate = &app.instance.shared.gate;
    let client = http_client();
    let key = random_key();
    let path = "/gated-short-lock";

    // A holder that vanished takes the key through the store, with the route's lock_timeout as
    // its lease, and never completes it. The fingerprint matches the HTTP request's.
    let record_key = store_key(None, &key);
    let request_fingerprint = fingerprint(
        &FingerprintConfig::DEFAULT,
        "redis_instances::app::gated_short_lock",
        &Method::POST,
        &Uri::from_static("/gated-short-lock"),
        &HeaderMap::new(),
        ORDER.as_bytes(),
    );
    let begin = store
        .begin(&record_key, &request_fingerprint, SHORT_LOCK)
        .await
        .expect("begin on the shared Redis server failed");
    let Begin::Acquired(stale_lease) = begin else {
        panic!("expected to acquire a new key, got {begin:?}");
    };

    let reply = send(order_request(&client, &app, path, &key)).await;
    assert_in_flight(&reply, SHORT_LOCK);
    assert_eq!(app.runs(), 0);

    // Retries get 409 until the stale lease expires on the Redis server, then one runs.
    let deadline = Instant::now() + SETTLE_TIMEOUT;
    let running = loop {
        assert!(
            Instant::now() < deadline,
            "the stale lease of {SHORT_LOCK:?} did not expire within {SETTLE_TIMEOUT:?}"
        );
        let mut retry = tokio::spawn(send(order_request(&client, &app, path, &key)));
        let returned = tokio::select! {
            () = gate.arrival() => None,
            joined = &mut retry => Some(joined.expect("the retry task panicked")),
        };
        let Some(reply) = returned else {
            break retry;
        };
        assert_in_flight(&reply, SHORT_LOCK);
        assert_eq!(app.runs(), 0);
        tokio::time::sleep(POLL_INTERVAL).await;
    };
    assert_eq!(app.runs(), 1);

    let during_run = send_retry_during_run(order_request(&client, &app, path, &key), &[&app]).await;
    assert_in_flight(&during_run, SHORT_LOCK);

    // The stale holder returns twice, while the new holder runs and after it completed. Both
    // late completions fail and change nothing.
    let late_response = StoredResponse::encode(
        StatusCode::CREATED,
        &HeaderMap::new(),
        b"late response of the vanished holder",
    );
    let ttl = Duration::from_secs(120);
    let error = store
        .complete(&record_key, &stale_lease, &late_response, ttl)
        .await
        .expect_err("a complete with an expired lease succeeded while the key ran");
    assert_eq!(error.kind(), StoreErrorKind::LeaseLost, "{error}");

    gate.open();
    let first = running.await.expect("the running request's task panicked");
    let body = order_body("a", 1);
    assert_handler_response(&first, &body);

    let error = store
        .complete(&record_key, &stale_lease, &late_response, ttl)
        .await
        .expect_err("a complete with an expired lease succeeded after the key completed");
    assert_eq!(error.kind(), StoreErrorKind::LeaseLost, "{error}");

    let retry = send(order_request(&client, &app, path, &key)).await;
    assert_replay(&retry, &body);
    assert_eq!(app.runs(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renewal_keeps_slow_handler_exclusive() {
    let prefix = random_prefix();
    let _cleanup = PrefixCleanup::new(&prefix);
    let app = App::start("a", connect_shared_store(&prefix).await, Arc::default()).await;
    let gate = &app.instance.shared.gate;
    let client = http_client();
    let key = random_key();
    let path = "/gated-short-lock";

    let running = tokio::spawn(send(order_request(&client, &app, path, &key)));
    gate.entered().await;

    // The handler stays at the gate for about 2.5 s, more than twice its 1 s lock_timeout, so
    // only the runtime's lease renewals keep the key locked.
    for _ in 0..5 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let retry = send_retry_during_run(order_request(&client, &app, path, &key), &[&app]).await;
        assert_in_flight(&retry, SHORT_LOCK);
        assert_eq!(app.runs(), 1);
    }

    gate.open();
    let first = running.await.expect("the running request's task panicked");
    let body = order_body("a", 1);
    assert_handler_response(&first, &body);

    let retry = send(order_request(&client, &app, path, &key)).await;
    assert_replay(&retry, &body);
    assert_eq!(app.runs(), 1);
}

/// Starts a private Redis server and, on it, instance `name` with a store of `fail_open`
/// and [`FAULT_STORE_TIMEOUT`]. Returns the server, a clone of the store and the instance.
async fn start_on_private_redis(
    name: &'static str,
    fail_open: bool,
) -> (PrivateRedis, RedisStore, App) {
    let redis = PrivateRedis::start(free_port());
    let url = redis.url();
    let store = connect_store(&url, &random_prefix(), FAULT_STORE_TIMEOUT, fail_open)
        .await
        .unwrap_or_else(|error| {
            panic!("could not connect to the private redis-server at {url}: {error}")
        });
    let app = App::start(name, store.clone(), Arc::default()).await;
    (redis, store, app)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fail_closed_store_recovers_after_restart() {
    let (redis, _store, app) = start_on_private_redis("closed", false).await;
    let port = redis.port();
    let gate = &app.instance.shared.gate;
    let client = http_client();

    // A handler that runs when Redis stops still sends its response, which is not stored.
    let running_key = random_key();
    let running = tokio::spawn(send(order_request(&client, &app, "/gated", &running_key)));
    gate.entered().await;
    redis.stop();
    gate.open();
    let reply = running.await.expect("the running request's task panicked");
    assert_handler_response(&reply, &order_body("closed", 1));

    // The request and its retry get 503, and the handler does not run.
    let key = random_key();
    for _ in 0..2 {
        let reply = send(order_request(&client, &app, "/plain", &key)).await;
        assert_problem(&reply, 503, STORE_UNAVAILABLE_TYPE);
        assert_eq!(reply.header("retry-after"), Some("1"));
        assert_eq!(app.runs(), 1);
    }

    // The same application resumes as soon as Redis runs again on the same port: the store
    // resends a call that failed on the broken connection, which reconnects.
    let _restarted = PrivateRedis::start(port);
    let recovered_key = random_key();
    let reply = send(order_request(&client, &app, "/plain", &recovered_key)).await;
    assert_handler_response(&reply, &order_body("closed", 2));
    let retry = send(order_request(&client, &app, "/plain", &recovered_key)).await;
    assert_replay(&retry, &order_body("closed", 2));
    assert_eq!(app.runs(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fail_open_store_recovers_after_restart() {
    let (redis, _store, app) = start_on_private_redis("open", true).await;
    let port = redis.port();
    let client = http_client();

    redis.stop();

    // The request and its retry both run the handler, without idempotency.
    let key = random_key();
    for run in 1..=2 {
        let reply = send(order_request(&client, &app, "/plain", &key)).await;
        assert_handler_response(&reply, &order_body("open", run));
        assert_eq!(app.runs(), run);
    }

    // The same application resumes as soon as Redis runs again on the same port, with
    // idempotency: the first request after the restart is stored and its retry replays.
    let _restarted = PrivateRedis::start(port);
    let key = random_key();
    let reply = send(order_request(&client, &app, "/plain", &key)).await;
    assert_handler_response(&reply, &order_body("open", 3));
    let retry = send(order_request(&client, &app, "/plain", &key)).await;
    assert_replay(&retry, &order_body("open", 3));
    assert_eq!(app.runs(), 3);
}

/// Returns the header lines of `response` without `Date` and `Idempotent-Replayed`, which
/// differ between a response and its replay.
fn stored_headers(response: &RawResponse) -> Vec<(String, Vec<u8>)> {
    response
        .headers
        .iter()
        .filter(|(name, _)| name != "date" && name != "idempotent-replayed")
        .cloned()
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_response_survives_redis_round_trip() {
    let prefix = random_prefix();
    let _cleanup = PrefixCleanup::new(&prefix);
    let app = App::start("a", connect_shared_store(&prefix).await, Arc::default()).await;
    let key = random_key();
    let headers: [(&str, &[u8]); 1] = [(KEY_HEADER, key.as_bytes())];
    // Every byte value, including NUL, CR and LF, in both orders.
    let body: Vec<u8> = (0..=u8::MAX).chain((0..=u8::MAX).rev()).collect();

    let first = raw_post(app.server.address(), "/binary", &headers, &body).await;
    let replay = raw_post(app.server.address(), "/binary", &headers, &body).await;

    assert_eq!(first.status, 200);
    assert_eq!(first.body, body);
    let repeated: Vec<&[u8]> = REPEATED_HEADER_VALUES
        .iter()
        .map(|value| value.as_bytes())
        .collect();
    assert_eq!(first.header_values("x-repeated"), repeated);
    assert_eq!(first.header_values("x-binary"), [BINARY_HEADER_VALUE]);
    assert_eq!(
        first.header_values("x-large"),
        [large_header_value().as_slice()]
    );
    assert!(first.header_values("idempotent-replayed").is_empty());

    assert_eq!(replay.header_values("idempotent-replayed"), [b"true"]);
    assert_eq!(replay.status, first.status);
    assert_eq!(replay.body, first.body);
    assert_eq!(stored_headers(&replay), stored_headers(&first));
    assert_eq!(app.runs(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_key_name_is_prefix_and_hash() {
    const CLIENT_KEY: &str = "../../etc*{}";
    let prefix = random_prefix();
    let _cleanup = PrefixCleanup::new(&prefix);
    let app = App::start("a", connect_shared_store(&prefix).await, Arc::default()).await;
    let client = http_client();

    let reply = send(order_request(&client, &app, "/plain", CLIENT_KEY)).await;
    assert_handler_response(&reply, &order_body("a", 1));

    let names = scan_prefix(&prefix).await;
    assert_eq!(names.len(), 1, "keys under the prefix: {names:?}");
    let name = &names[0];
    let hash = name
        .strip_prefix(prefix.as_bytes())
        .expect("SCAN MATCH returned a key without the prefix");
    assert_eq!(
        hash.len(),
        64,
        "key name {:?}",
        String::from_utf8_lossy(name)
    );
    assert!(
        hash.iter()
            .all(|byte| byte.is_ascii_digit() || (b'a'..=b'f').contains(byte)),
        "the key name after the prefix is not lowercase hex: {:?}",
        String::from_utf8_lossy(hash)
    );
    assert_eq!(hash, store_key(None, CLIENT_KEY).to_hex().as_bytes());
    for byte in CLIENT_KEY
        .bytes()
        .filter(|byte| !byte.is_ascii_alphanumeric())
    {
        assert!(
            !name.contains(&byte),
            "the key name contains {:?} from the client's key",
            char::from(byte)
        );
    }
    let record = get_raw(name).await.expect("the key has no value");
    assert!(
        !record
            .windows(CLIENT_KEY.len())
            .any(|window| window == CLIENT_KEY.as_bytes()),
        "the stored record contains the client's key"
    );

    let retry = send(order_request(&client, &app, "/plain", CLIENT_KEY)).await;
    assert_replay(&retry, &order_body("a", 1));
    assert_eq!(app.runs(), 1);
}
