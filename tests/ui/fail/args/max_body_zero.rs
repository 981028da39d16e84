//! A `max_body` of zero bytes.

use axum::Router;
use axum::routing::post;
use idempotent_runtime::idempotent;

#[idempotent(max_body = 0)]
async fn create(body: String) -> String {
    body
}

fn main() {
    let _app: Router = Router::new().route("/", post(create));
}
