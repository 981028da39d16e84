//! Stacked with `#[tracing::instrument]`, above and below it.
#![deny(warnings)]

use axum::extract::Path;
use axum::routing::post;
use axum::{Json, Router};
use idempotent_runtime::idempotent;

#[idempotent]
#[tracing::instrument(skip_all, fields(id))]
async fn below(Path(id): Path<u32>, Json(amount): Json<u64>) -> String {
    tracing::info!(amount, "charging");
    format!("{id}: {amount}")
}

#[tracing::instrument]
#[idempotent]
async fn above(Path(id): Path<u32>, body: String) -> String {
    format!("{id}: {body}")
}

fn main() {
    let _app: Router = Router::new()
        .route("/below/{id}", post(below))
        .route("/above/{id}", post(above));
}
