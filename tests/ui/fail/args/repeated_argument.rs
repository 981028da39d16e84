//! An argument given twice is reported at its second occurrence.

use axum::Router;
use axum::routing::post;
use idempotent_runtime::idempotent;

#[idempotent(ttl = "1h", required = true, ttl = "2h")]
async fn create(body: String) -> String {
    body
}

fn main() {
    let _app: Router = Router::new().route("/", post(create));
}
