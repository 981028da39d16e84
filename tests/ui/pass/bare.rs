//! A bare attribute on a handler without arguments.
#![deny(warnings)]

use axum::Router;
use axum::routing::post;
use idempotent_runtime::idempotent;

#[idempotent]
async fn ping() -> &'static str {
    "pong"
}

fn main() {
    let _app: Router = Router::new().route("/ping", post(ping));
}
