//! Each common body extractor as the last argument.
#![deny(warnings)]

use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::routing::post;
use axum::{Form, Json, Router};
use idempotent_runtime::idempotent;
use serde::Deserialize;

#[derive(Deserialize)]
struct Signup {
    email: String,
}

#[idempotent]
async fn json(Json(signup): Json<Signup>) -> String {
    signup.email
}

#[idempotent]
async fn form(Form(signup): Form<Signup>) -> String {
    signup.email
}

#[idempotent]
async fn bytes(body: Bytes) -> Bytes {
    body
}

#[idempotent]
async fn string(mut body: String) -> String {
    body.push('!');
    body
}

#[idempotent]
async fn raw_body(body: Body) -> Body {
    body
}

#[idempotent]
async fn request(request: Request) -> String {
    request.uri().to_string()
}

#[idempotent]
async fn optional_json(body: Option<Json<Signup>>) -> String {
    body.map(|Json(signup)| signup.email).unwrap_or_default()
}

fn main() {
    let _app: Router = Router::new()
        .route("/json", post(json))
        .route("/form", post(form))
        .route("/bytes", post(bytes))
        .route("/string", post(string))
        .route("/body", post(raw_body))
        .route("/request", post(request))
        .route("/optional", post(optional_json));
}
