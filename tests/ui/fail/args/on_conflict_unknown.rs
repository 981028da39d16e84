//! An `on_conflict` value other than "reject" or "wait".

use axum::Router;
use axum::routing::post;
use idempotent_runtime::idempotent;

#[idempotent(on_conflict = "maybe")]
async fn create(body: String) -> String {
    body
}

fn main() {
    let _app: Router = Router::new().route("/", post(create));
}
