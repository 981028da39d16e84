//! Two arguments without a comma between them.

use axum::Router;
use axum::routing::post;
use idempotent_runtime::idempotent;

#[idempotent(ttl = "1h" required = true)]
async fn create(body: String) -> String {
    body
}

fn main() {
    let _app: Router = Router::new().route("/", post(create));
}
