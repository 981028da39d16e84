//! A `max_body` over 1 GiB.

use axum::Router;
use axum::routing::post;
use idempotent_runtime::idempotent;

#[idempotent(max_body = "2GiB")]
async fn create(body: String) -> String {
    body
}

fn main() {
    let _app: Router = Router::new().route("/", post(create));
}
