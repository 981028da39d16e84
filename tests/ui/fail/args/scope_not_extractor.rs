//! A scope type that implements `IdempotencyScope` but is not an extractor.

use axum::Router;
use axum::routing::post;
use idempotent_runtime::{IdempotencyScope, idempotent};

struct Tenant(String);

impl IdempotencyScope for Tenant {
    fn scope(&self) -> impl AsRef<[u8]> + '_ {
        self.0.as_bytes()
    }
}

#[idempotent(scope = Tenant)]
async fn create(body: String) -> String {
    body
}

fn main() {
    let _app: Router = Router::new().route("/", post(create));
}
