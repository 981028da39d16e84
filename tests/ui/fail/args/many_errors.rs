//! Several bad arguments are all reported in one build.

use axum::Router;
use axum::routing::post;
use idempotent_runtime::idempotent;

#[idempotent(tll = "24h", required = "yes", max_body = "2GiB", on_conflict = "maybe")]
async fn create(body: String) -> String {
    body
}

fn main() {
    let _app: Router = Router::new().route("/", post(create));
}
