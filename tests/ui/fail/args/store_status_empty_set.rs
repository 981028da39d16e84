//! A status list that stores nothing, because it starts from the empty set.

use axum::Router;
use axum::routing::post;
use idempotent_runtime::idempotent;

#[idempotent(store_status = "!429")]
async fn create(body: String) -> String {
    body
}

fn main() {
    let _app: Router = Router::new().route("/", post(create));
}
