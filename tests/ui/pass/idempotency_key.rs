//! `IdempotencyKey` and `Option<IdempotencyKey>` arguments, anywhere in the list.
#![deny(warnings)]

use axum::extract::Path;
use axum::routing::post;
use axum::{Json, Router};
use idempotent_runtime::{IdempotencyKey, idempotent};

#[idempotent(required = true)]
async fn required(key: IdempotencyKey, Json(amount): Json<u64>) -> String {
    format!("{}: {amount}", key.as_str())
}

#[idempotent]
async fn optional(Path(id): Path<u32>, key: Option<IdempotencyKey>, body: String) -> String {
    let key = key.as_ref().map_or("none", IdempotencyKey::as_str);
    format!("{id} {key} {body}")
}

#[idempotent(required = true)]
async fn optional_but_required(body: String, key: Option<IdempotencyKey>) -> String {
    format!("{body} {}", key.is_some())
}

#[idempotent(required = true)]
async fn key_only(key: idempotent_runtime::IdempotencyKey) -> String {
    key.as_str().to_owned()
}

fn main() {
    let _app: Router = Router::new()
        .route("/required", post(required))
        .route("/optional/{id}", post(optional))
        .route("/optional-but-required", post(optional_but_required))
        .route("/key-only", post(key_only));
}
