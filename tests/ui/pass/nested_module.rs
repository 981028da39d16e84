//! A handler in a nested module, named by its path from outside.
#![deny(warnings)]

use axum::Router;
use axum::routing::post;

mod api {
    pub mod v1 {
        use idempotent_runtime::idempotent;

        #[idempotent]
        pub async fn create(body: String) -> String {
            body
        }

        #[idempotent]
        pub(crate) async fn update(body: String) -> String {
            body
        }
    }
}

fn main() {
    let _app: Router = Router::new()
        .route("/v1/create", post(api::v1::create))
        .route("/v1/update", post(api::v1::update));
}
