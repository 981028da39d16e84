//! A boolean written in quotes.

use axum::Router;
use axum::routing::post;
use idempotent_runtime::idempotent;

#[idempotent(required = "true")]
async fn create(body: String) -> String {
    body
}

fn main() {
    let _app: Router = Router::new().route("/", post(create));
}
