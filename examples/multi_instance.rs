//! Two or more instances of one API sharing their idempotency keys through Redis.
//!
//! Start two instances against one Redis, then send a request to the first and its retry to the
//! second:
//!
//! ```text
//! cargo run -p idempotent-examples --features redis --example multi_instance -- a 3001 &
//! cargo run -p idempotent-examples --features redis --example multi_instance -- b 3002 &
//! curl -i -X POST localhost:3001/orders -H 'Idempotency-Key: order-1' \
//!     -H 'Content-Type: application/json' -d '{"sku":"tea","quantity":2}'
//! curl -i -X POST localhost:3002/orders -H 'Idempotency-Key: order-1' \
//!     -H 'Content-Type: application/json' -d '{"sku":"tea","quantity":2}'
//! ```
//!
//! The second response comes from instance `b` but carries `"instance":"a"` and
//! `Idempotent-Replayed: true`: the order was placed once. `REDIS_URL` selects the server
//! (default `redis://127.0.0.1:6379`).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use idempotent_runtime::{IdempotencyLayer, RedisStore, idempotent};
use serde::{Deserialize, Serialize};

#[derive(Debug, Deserialize)]
struct NewOrder {
    sku: String,
    quantity: u32,
}

#[derive(Debug, Serialize)]
struct Order {
    instance: String,
    sku: String,
    quantity: u32,
    /// This instance's count of orders placed so far.
    placed_here: u64,
}

#[derive(Clone)]
struct Instance {
    name: Arc<str>,
    placed: Arc<AtomicU64>,
}

#[idempotent(ttl = "1h", required = true)]
async fn place_order(
    State(instance): State<Instance>,
    Json(order): Json<NewOrder>,
) -> (StatusCode, Json<Order>) {
    let placed_here = instance.placed.fetch_add(1, Ordering::SeqCst) + 1;
    let order = Order {
        instance: instance.name.to_string(),
        sku: order.sku,
        quantity: order.quantity,
        placed_here,
    };
    (StatusCode::CREATED, Json(order))
}

async fn stats(State(instance): State<Instance>) -> Json<serde_json::Value> {
    Json(serde_json::json!({
        "instance": &*instance.name,
        "placed_here": instance.placed.load(Ordering::SeqCst),
    }))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,idempotent=debug".into()),
        )
        .init();

    let mut args = std::env::args().skip(1);
    let usage = "usage: multi_instance NAME PORT, for example `multi_instance a 3001`";
    let name = args.next().ok_or(usage)?;
    let port: u16 = args.next().ok_or(usage)?.parse().map_err(|_| usage)?;
    let redis_url =
        std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());

    let store = RedisStore::builder(&redis_url)
        .prefix("idempotent:example:")
        .build()
        .await?;
    let instance = Instance {
        name: name.into(),
        placed: Arc::default(),
    };
    let app = Router::new()
        .route("/orders", post(place_order))
        .route("/stats", get(stats))
        .layer(IdempotencyLayer::new(store))
        .with_state(instance);

    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    tracing::info!(address = %listener.local_addr()?, redis = %redis_url, "instance listening");
    axum::serve(listener, app).await?;
    Ok(())
}
