//! Handlers without a body extractor, and without any argument.
#![deny(warnings)]

use axum::Router;
use axum::extract::Path;
use axum::http::StatusCode;
use axum::routing::{delete, post};
use idempotent_runtime::idempotent;

#[idempotent]
async fn remove(Path(id): Path<u64>) -> StatusCode {
    let _ = id;
    StatusCode::NO_CONTENT
}

#[idempotent]
async fn trigger() {}

fn main() {
    let _app: Router = Router::new()
        .route("/items/{id}", delete(remove))
        .route("/trigger", post(trigger));
}
