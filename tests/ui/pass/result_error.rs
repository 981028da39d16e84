//! `Result<T, E>` with a custom error type, `?` and an early `return` in the body.
#![deny(warnings)]

use axum::Router;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use idempotent_runtime::idempotent;

enum AppError {
    InvalidNumber(std::num::ParseIntError),
    Negative,
}

impl From<std::num::ParseIntError> for AppError {
    fn from(error: std::num::ParseIntError) -> Self {
        Self::InvalidNumber(error)
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        match self {
            Self::InvalidNumber(error) => (StatusCode::BAD_REQUEST, error.to_string()),
            Self::Negative => (StatusCode::BAD_REQUEST, "negative".to_owned()),
        }
        .into_response()
    }
}

#[idempotent]
async fn double(body: String) -> Result<(StatusCode, String), AppError> {
    let number: i64 = body.trim().parse()?;
    if number < 0 {
        return Err(AppError::Negative);
    }
    Ok((StatusCode::CREATED, (number * 2).to_string()))
}

fn main() {
    let _app: Router = Router::new().route("/double", post(double));
}
