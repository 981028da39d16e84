//! The key type under another name: the attribute does not recognise it as the key argument,
//! and since `IdempotencyKey` is not an extractor, the route fails to compile rather than
//! reading a header the attribute does not use.

use axum::Router;
use axum::routing::post;
use idempotent_runtime::IdempotencyKey as Key;
use idempotent_runtime::idempotent;

#[idempotent(required = true, header = "X-Idempotency-Key")]
async fn create(key: Key, body: String) -> String {
    format!("{} {body}", key.as_str())
}

fn main() {
    let _app: Router = Router::new().route("/", post(create));
}
