//! Seventeen extractors, one more than axum accepts.

use axum::http::{HeaderMap, Method, Uri};
use idempotent_runtime::idempotent;

#[idempotent]
#[allow(clippy::too_many_arguments)]
async fn create(
    _m1: Method, _m2: Method, _m3: Method, _m4: Method,
    _m5: Method, _m6: Method, _m7: Method, _m8: Method,
    _m9: Method, _m10: Method, _m11: Method, _m12: Method,
    _m13: Method, _m14: Method, _m15: Method, _uri: Uri,
    _headers: HeaderMap,
) {}

fn main() {}
