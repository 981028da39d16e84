//! Every argument at once, with a `scope` extractor and a required key.
#![deny(warnings)]

use axum::Json;
use axum::Router;
use axum::extract::FromRequestParts;
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::routing::post;
use idempotent_runtime::{IdempotencyKey, IdempotencyScope, idempotent};

struct Tenant(String);

impl<S: Send + Sync> FromRequestParts<S> for Tenant {
    type Rejection = StatusCode;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let tenant = parts.headers.get("x-tenant").ok_or(StatusCode::UNAUTHORIZED)?;
        let tenant = tenant.to_str().map_err(|_| StatusCode::UNAUTHORIZED)?;
        Ok(Self(tenant.to_owned()))
    }
}

impl IdempotencyScope for Tenant {
    fn scope(&self) -> impl AsRef<[u8]> + '_ {
        self.0.as_bytes()
    }
}

#[idempotent(
    ttl = "7d",
    lock_timeout = "1m 30s",
    required = true,
    header = "X-Idempotency-Key",
    max_body = "64KiB",
    on_conflict = "wait",
    scope = Tenant,
    fingerprint = "method,path,json,header:X-Tenant",
    store_status = "2xx,4xx,!409,!429",
)]
async fn create_order(key: IdempotencyKey, Json(order): Json<Vec<u32>>) -> (StatusCode, String) {
    (StatusCode::CREATED, format!("{} items for {}", order.len(), key.as_str()))
}

#[idempotent(max_body = 4096, required = false, on_conflict = "reject", fingerprint = "body")]
async fn upload(body: String) -> String {
    body
}

fn main() {
    let _app: Router = Router::new()
        .route("/orders", post(create_order))
        .route("/uploads", post(upload));
}
