//! A scope type written as a string.

use axum::Router;
use axum::routing::post;
use idempotent_runtime::idempotent;

#[idempotent(scope = "Tenant")]
async fn create(body: String) -> String {
    body
}

fn main() {
    let _app: Router = Router::new().route("/", post(create));
}
