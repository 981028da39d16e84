//! A body extractor before the last argument.

use axum::Json;
use axum::extract::Path;
use idempotent_runtime::idempotent;

#[idempotent]
async fn create(Json(amount): Json<u64>, Path(id): Path<u32>) -> String {
    format!("{id}: {amount}")
}

fn main() {}
