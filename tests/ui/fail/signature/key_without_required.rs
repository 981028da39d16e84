//! An `IdempotencyKey` argument while the key is optional.

use axum::Json;
use idempotent_runtime::{IdempotencyKey, idempotent};

#[idempotent(ttl = "1h")]
async fn create(key: IdempotencyKey, Json(amount): Json<u64>) -> String {
    format!("{}: {amount}", key.as_str())
}

fn main() {}
