//! The HTTP server that `benchmarks/http.sh` loads with wrk.
//!
//! Each route pair runs the same handler body, once plain (the baseline) and once under
//! `#[idempotent(ttl = "24h")]`:
//!
//! | plain | annotated | handler work |
//! | --- | --- | --- |
//! | `POST /plain` | `POST /idempotent` | parse a small JSON order, respond `201` with JSON |
//! | `POST /plain/cpu` | `POST /idempotent/cpu` | the same after 1 ms of spinning on the CPU |
//! | `POST /plain/sleep` | `POST /idempotent/sleep` | the same after a 1 ms `tokio::time::sleep` |
//!
//! ```text
//! bench_server [--addr 127.0.0.1:8080] [--store moka|redis]
//!              [--redis-url redis://127.0.0.1:6379] [--redis-prefix PREFIX]
//! ```
//!
//! With `--store moka` the annotated routes use the process-wide default `MokaStore`, as a
//! handler without an `IdempotencyLayer` does. With `--store redis` (built with the `redis`
//! feature) an `IdempotencyLayer` on the annotated routes gives them a `RedisStore`. The server
//! prints `listening on ADDR` once it accepts connections, and stops on Ctrl-C or SIGTERM.
//! No tracing subscriber is installed, so the runtime's log events cost only their level check.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use axum::routing::{MethodRouter, post};
use axum::{Json, Router};
use idempotent_runtime::idempotent;
use serde::{Deserialize, Serialize};

/// How long the `/cpu` and `/sleep` handlers work before they respond.
const WORK: Duration = Duration::from_millis(1);

/// The request body: one order line.
#[derive(Debug, Deserialize)]
struct NewOrder {
    sku: String,
    quantity: u32,
}

/// The response body: the order as created.
#[derive(Debug, Serialize)]
struct Order {
    id: u64,
    sku: String,
    quantity: u32,
    status: &'static str,
}

/// Creates the order that every handler responds with.
fn create_order(order: NewOrder) -> (StatusCode, Json<Order>) {
    static NEXT_ID: AtomicU64 = AtomicU64::new(1);
    let order = Order {
        id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
        sku: order.sku,
        quantity: order.quantity,
        status: "created",
    };
    (StatusCode::CREATED, Json(order))
}

/// Keeps the CPU busy for `WORK` of wall-clock time.
fn spin_cpu() {
    let start = Instant::now();
    let mut state = 0_u64;
    while start.elapsed() < WORK {
        for _ in 0..64 {
            state = std::hint::black_box(
                state
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1),
            );
        }
    }
}

async fn plain(Json(order): Json<NewOrder>) -> (StatusCode, Json<Order>) {
    create_order(order)
}

#[idempotent(ttl = "24h")]
async fn annotated(Json(order): Json<NewOrder>) -> (StatusCode, Json<Order>) {
    create_order(order)
}

async fn plain_cpu(Json(order): Json<NewOrder>) -> (StatusCode, Json<Order>) {
    spin_cpu();
    create_order(order)
}

#[idempotent(ttl = "24h")]
async fn annotated_cpu(Json(order): Json<NewOrder>) -> (StatusCode, Json<Order>) {
    spin_cpu();
    create_order(order)
}

async fn plain_sleep(Json(order): Json<NewOrder>) -> (StatusCode, Json<Order>) {
    tokio::time::sleep(WORK).await;
    create_order(order)
}

#[idempotent(ttl = "24h")]
async fn annotated_sleep(Json(order): Json<NewOrder>) -> (StatusCode, Json<Order>) {
    tokio::time::sleep(WORK).await;
    create_order(order)
}

/// The store behind the annotated routes.
enum StoreChoice {
    Moka,
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    Redis {
        url: String,
        prefix: String,
    },
}

struct Options {
    addr: SocketAddr,
    store: StoreChoice,
}

const USAGE: &str = "usage: bench_server [--addr 127.0.0.1:8080] [--store moka|redis] \
                     [--redis-url redis://127.0.0.1:6379] [--redis-prefix PREFIX]";

fn parse_options() -> Result<Options, String> {
    let mut addr: SocketAddr = ([127, 0, 0, 1], 8080).into();
    let mut store = "moka".to_owned();
    let mut redis_url = "redis://127.0.0.1:6379".to_owned();
    let mut redis_prefix = format!("idempotent-bench-{}:", std::process::id());

    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || {
            args.next()
                .ok_or(format!("missing value after {flag}\n{USAGE}"))
        };
        match flag.as_str() {
            "--addr" => {
                let text = value()?;
                addr = text.parse().map_err(|error| {
                    format!("invalid --addr {text:?}: {error}; expected an address such as 127.0.0.1:8080")
                })?;
            }
            "--store" => store = value()?,
            "--redis-url" => redis_url = value()?,
            "--redis-prefix" => redis_prefix = value()?,
            "--help" | "-h" => return Err(USAGE.to_owned()),
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }

    let store = match store.as_str() {
        "moka" => StoreChoice::Moka,
        "redis" => StoreChoice::Redis {
            url: redis_url,
            prefix: redis_prefix,
        },
        other => return Err(format!("invalid --store {other:?}: expected moka or redis")),
    };
    Ok(Options { addr, store })
}

/// Builds the router, with `wrap` applied to each annotated route.
fn router(wrap: impl Fn(MethodRouter) -> MethodRouter) -> Router {
    Router::new()
        .route("/plain", post(plain))
        .route("/idempotent", wrap(post(annotated)))
        .route("/plain/cpu", post(plain_cpu))
        .route("/idempotent/cpu", wrap(post(annotated_cpu)))
        .route("/plain/sleep", post(plain_sleep))
        .route("/idempotent/sleep", wrap(post(annotated_sleep)))
}

async fn build_router(store: StoreChoice) -> Result<Router, String> {
    match store {
        StoreChoice::Moka => Ok(router(|route| route)),
        #[cfg(feature = "redis")]
        StoreChoice::Redis { url, prefix } => {
            let store = idempotent_runtime::store::RedisStore::builder(url.as_str())
                .prefix(prefix)
                .build()
                .await
                .map_err(|error| format!("could not connect to Redis at {url}: {error}"))?;
            let layer = idempotent_runtime::IdempotencyLayer::new(store);
            Ok(router(move |route| route.layer(layer.clone())))
        }
        #[cfg(not(feature = "redis"))]
        StoreChoice::Redis { .. } => {
            Err("--store redis needs the redis feature: build with `--features redis`".to_owned())
        }
    }
}

async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("a SIGTERM handler installs");
    tokio::select! {
        _ = interrupt => {}
        _ = terminate.recv() => {}
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    match serve().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("{message}");
            ExitCode::FAILURE
        }
    }
}

async fn serve() -> Result<(), String> {
    let options = parse_options()?;
    let app = build_router(options.store).await?;
    let listener = tokio::net::TcpListener::bind(options.addr)
        .await
        .map_err(|error| format!("could not listen on {}: {error}", options.addr))?;
    println!("listening on {}", options.addr);
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown_signal())
        .await
        .map_err(|error| format!("server failed: {error}"))
}
