//! `impl IntoResponse` as the return type, alone, with more traits and inside `Result`.
#![deny(warnings)]

use std::fmt::Debug;

use axum::Router;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::post;
use idempotent_runtime::idempotent;

#[idempotent]
async fn created(body: String) -> impl IntoResponse {
    (StatusCode::CREATED, body)
}

#[idempotent]
async fn with_more_traits(body: String) -> impl IntoResponse + Debug + Send + 'static {
    body
}

#[idempotent]
async fn maybe(body: String) -> Result<impl IntoResponse, StatusCode> {
    if body.is_empty() {
        return Err(StatusCode::BAD_REQUEST);
    }
    Ok((StatusCode::CREATED, body))
}

#[idempotent]
async fn generic<T>(body: String) -> impl IntoResponse
where
    T: Default + Debug,
{
    format!("{body} {:?}", T::default())
}

fn main() {
    let _app: Router = Router::new()
        .route("/created", post(created))
        .route("/more", post(with_more_traits))
        .route("/maybe", post(maybe))
        .route("/generic", post(generic::<u8>));
}
