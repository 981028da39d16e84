//! Sixteen extractors plus the `scope` extractor, one more than axum accepts.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method, StatusCode};
use idempotent_runtime::{IdempotencyScope, idempotent};

struct Tenant;

impl<S: Send + Sync> FromRequestParts<S> for Tenant {
    type Rejection = StatusCode;

    async fn from_request_parts(_: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Self)
    }
}

impl IdempotencyScope for Tenant {
    fn scope(&self) -> impl AsRef<[u8]> + '_ {
        b"tenant"
    }
}

#[idempotent(scope = Tenant)]
#[allow(clippy::too_many_arguments)]
async fn create(
    _m1: Method, _m2: Method, _m3: Method, _m4: Method,
    _m5: Method, _m6: Method, _m7: Method, _m8: Method,
    _m9: Method, _m10: Method, _m11: Method, _m12: Method,
    _m13: Method, _m14: Method, _m15: Method, _headers: HeaderMap,
) {}

fn main() {}
