//! An unknown argument far from every name gets the list of accepted names.

use axum::Router;
use axum::routing::post;
use idempotent_runtime::idempotent;

#[idempotent(retries = 3)]
async fn create(body: String) -> String {
    body
}

fn main() {
    let _app: Router = Router::new().route("/", post(create));
}
