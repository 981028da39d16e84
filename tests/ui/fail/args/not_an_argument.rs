//! A literal where an argument name belongs.

use axum::Router;
use axum::routing::post;
use idempotent_runtime::idempotent;

#[idempotent("24h")]
async fn create(body: String) -> String {
    body
}

fn main() {
    let _app: Router = Router::new().route("/", post(create));
}
