//! A typo in the arguments of a handler that takes the key: the only error is the typo, not
//! an axum `Handler` error on the route, because the handler is emitted unchanged and
//! `IdempotencyKey` is an extractor on its own.

use axum::Router;
use axum::routing::post;
use idempotent_runtime::{IdempotencyKey, idempotent};

#[idempotent(required = true, on_confict = "wait")]
async fn create(key: IdempotencyKey, body: String) -> String {
    format!("{} {body}", key.as_str())
}

fn main() {
    let _app: Router = Router::new().route("/", post(create));
}
