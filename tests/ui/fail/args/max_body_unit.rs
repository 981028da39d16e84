//! A size unit in the wrong case gets the accepted spelling.

use axum::Router;
use axum::routing::post;
use idempotent_runtime::idempotent;

#[idempotent(max_body = "1mib")]
async fn create(body: String) -> String {
    body
}

fn main() {
    let _app: Router = Router::new().route("/", post(create));
}
