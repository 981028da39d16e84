//! A `ttl` over 365 days.

use axum::Router;
use axum::routing::post;
use idempotent_runtime::idempotent;

#[idempotent(ttl = "400d")]
async fn create(body: String) -> String {
    body
}

fn main() {
    let _app: Router = Router::new().route("/", post(create));
}
