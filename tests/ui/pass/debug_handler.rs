//! Stacked above `#[axum::debug_handler]`, which then checks the generated handler.
#![deny(warnings)]

use axum::extract::{Path, State};
use axum::routing::post;
use axum::{Json, Router};
use idempotent_runtime::idempotent;

#[derive(Clone)]
struct AppState;

#[idempotent(required = false)]
#[axum::debug_handler]
async fn create(
    State(_state): State<AppState>,
    Path(id): Path<u32>,
    Json(amount): Json<u64>,
) -> Json<(u32, u64)> {
    Json((id, amount))
}

fn main() {
    let _app: Router = Router::new()
        .route("/accounts/{id}", post(create))
        .with_state(AppState);
}
