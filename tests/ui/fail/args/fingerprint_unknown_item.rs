//! A misspelled fingerprint item.

use axum::Router;
use axum::routing::post;
use idempotent_runtime::idempotent;

#[idempotent(fingerprint = "method,paht")]
async fn create(body: String) -> String {
    body
}

fn main() {
    let _app: Router = Router::new().route("/", post(create));
}
