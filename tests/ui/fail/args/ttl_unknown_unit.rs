//! A duration with a unit that does not exist.

use axum::Router;
use axum::routing::post;
use idempotent_runtime::idempotent;

#[idempotent(ttl = "24 parsecs")]
async fn create(body: String) -> String {
    body
}

fn main() {
    let _app: Router = Router::new().route("/", post(create));
}
