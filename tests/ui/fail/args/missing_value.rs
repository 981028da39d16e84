//! An argument name without `= value`.

use axum::Router;
use axum::routing::post;
use idempotent_runtime::idempotent;

#[idempotent(required)]
async fn create(body: String) -> String {
    body
}

fn main() {
    let _app: Router = Router::new().route("/", post(create));
}
