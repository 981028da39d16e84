//! Handlers written by a `macro_rules!` macro, whose types arrive in invisible groups.
#![deny(warnings)]

use axum::Router;
use axum::response::IntoResponse;
use axum::routing::post;
use idempotent_runtime::{IdempotencyKey, idempotent};

macro_rules! echo_handler {
    ($name:ident, $key:ty, $body:ty, $output:ty) => {
        #[idempotent]
        async fn $name(key: $key, body: $body) -> $output {
            let _ = key;
            body
        }
    };
}

echo_handler!(echo, Option<IdempotencyKey>, String, String);
echo_handler!(echo_opaque, Option<IdempotencyKey>, String, impl IntoResponse);

fn main() {
    let _app: Router = Router::new()
        .route("/echo", post(echo))
        .route("/echo-opaque", post(echo_opaque));
}
