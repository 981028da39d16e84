//! Both ways of hashing the body at once.

use axum::Router;
use axum::routing::post;
use idempotent_runtime::idempotent;

#[idempotent(fingerprint = "method,body,json")]
async fn create(body: String) -> String {
    body
}

fn main() {
    let _app: Router = Router::new().route("/", post(create));
}
