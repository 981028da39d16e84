//! A status class outside 1xx to 5xx.

use axum::Router;
use axum::routing::post;
use idempotent_runtime::idempotent;

#[idempotent(store_status = "2xx,6xx")]
async fn create(body: String) -> String {
    body
}

fn main() {
    let _app: Router = Router::new().route("/", post(create));
}
