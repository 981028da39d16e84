//! A header name with a space, which HTTP does not allow.

use axum::Router;
use axum::routing::post;
use idempotent_runtime::idempotent;

#[idempotent(header = "Idempotency Key")]
async fn create(body: String) -> String {
    body
}

fn main() {
    let _app: Router = Router::new().route("/", post(create));
}
