//! `Path`, `Query`, `HeaderMap` and a custom extractor before the body, and as the last one.
#![deny(warnings)]

use std::collections::HashMap;

use axum::extract::{FromRequestParts, Path, Query};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::{Json, Router};
use idempotent_runtime::idempotent;

struct UserAgent(String);

impl<S: Send + Sync> FromRequestParts<S> for UserAgent {
    type Rejection = StatusCode;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let agent = parts.headers.get("user-agent").ok_or(StatusCode::BAD_REQUEST)?;
        Ok(Self(agent.to_str().unwrap_or_default().to_owned()))
    }
}

#[idempotent]
async fn update(
    Path(id): Path<u64>,
    Query(params): Query<HashMap<String, String>>,
    headers: HeaderMap,
    UserAgent(agent): UserAgent,
    Json(value): Json<i64>,
) -> String {
    format!("{id} {} {} {agent} {value}", params.len(), headers.len())
}

#[idempotent]
async fn last_is_custom(Path(id): Path<u64>, UserAgent(agent): UserAgent) -> String {
    format!("{id} {agent}")
}

#[idempotent]
async fn last_is_headers(headers: HeaderMap) -> String {
    headers.len().to_string()
}

fn main() {
    let _app: Router = Router::new()
        .route("/items/{id}", post(update))
        .route("/agents/{id}", post(last_is_custom))
        .route("/headers", post(last_is_headers));
}
