//! A `lock_timeout` over 24 hours.

use axum::Router;
use axum::routing::post;
use idempotent_runtime::idempotent;

#[idempotent(lock_timeout = "2d")]
async fn create(body: String) -> String {
    body
}

fn main() {
    let _app: Router = Router::new().route("/", post(create));
}
