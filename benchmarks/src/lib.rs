//! Fixtures shared by the benchmarks of `idempotent`: request and response bodies, response
//! headers and keys of fixed sizes, so that every benchmark measures the same inputs.
//!
//! The benchmarks themselves are `benches/units.rs` (Criterion), `src/bin/bench_server.rs`
//! with `http.sh` (HTTP over loopback with wrk) and `callgrind.sh` (instructions per request),
//! and `src/bin/store_memory.rs` (memory of the moka store). `BENCHMARKS.md` at the repository
//! root records their results.

use http::StatusCode;
use http::header::{self, HeaderMap, HeaderValue};
use idempotent_runtime::StoredResponse;
use serde_json::json;

/// A key as clients commonly send it: a UUID, 36 bytes.
pub const UUID_KEY: &str = "5f0c6a8e-2b1d-4c7e-9a3f-1d2e3f4a5b6c";

/// The size of the response body that the store benchmarks keep, in bytes.
pub const RESPONSE_BODY_LEN: usize = 1024;

/// Returns the six headers of a typical JSON API response.
///
/// `Content-Length` is not among them, because the stored format leaves it out and recomputes
/// it on replay.
pub fn response_headers() -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::DATE,
        HeaderValue::from_static("Fri, 04 Dec 2026 16:00:00 GMT"),
    );
    headers.insert(
        header::ETAG,
        HeaderValue::from_static("\"33a64df551425fcc55e4d42a148795d9f25f89d4\""),
    );
    headers.insert(header::LOCATION, HeaderValue::from_static("/orders/120457"));
    headers.insert(
        "x-request-id",
        HeaderValue::from_static("0b7c5f2e-91d4-4b8a-a6f3-5d2c1e0f9a87"),
    );
    headers
}

/// Returns the bytes of the names and values of `headers`: what a response's headers hold
/// before any framing.
pub fn header_bytes(headers: &HeaderMap) -> usize {
    headers
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len())
        .sum()
}

/// Returns a JSON object of exactly `len` bytes: an array of order lines, padded with a
/// string field.
///
/// # Panics
///
/// Panics when `len` is below 21 bytes, the size of `{"lines":[],"pad":""}`.
pub fn json_body(len: usize) -> Vec<u8> {
    const EMPTY_LEN: usize = r#"{"lines":[],"pad":""}"#.len();
    assert!(
        len >= EMPTY_LEN,
        "a JSON body needs at least {EMPTY_LEN} bytes, not {len}"
    );

    let mut lines = Vec::new();
    let mut encoded = EMPTY_LEN;
    loop {
        let id = lines.len();
        let line = json!({
            "id": id,
            "sku": format!("sku-{id:06}"),
            "quantity": id % 7 + 1,
            "price_cents": 1999 + id,
        });
        let separator = usize::from(id > 0);
        let line_len = line.to_string().len() + separator;
        if encoded + line_len > len {
            break;
        }
        encoded += line_len;
        lines.push(line);
    }
    let pad = "x".repeat(len - encoded);
    let body = serde_json::to_vec(&json!({ "lines": lines, "pad": pad }))
        .expect("a JSON value serialises");
    assert_eq!(body.len(), len, "JSON body length");
    body
}

/// Encodes a `201 Created` response with [`response_headers`] and a JSON body of `body_len`
/// bytes.
pub fn stored_response(body_len: usize) -> StoredResponse {
    StoredResponse::encode(
        StatusCode::CREATED,
        &response_headers(),
        &json_body(body_len),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_body_has_exact_length() {
        for len in [21, 22, 100, 1024, 4096, 65536] {
            let body = json_body(len);

            assert_eq!(body.len(), len);
            assert!(serde_json::from_slice::<serde_json::Value>(&body).is_ok());
        }
    }

    #[test]
    fn stored_response_keeps_six_headers() {
        let stored = stored_response(RESPONSE_BODY_LEN);

        assert_eq!(stored.headers().count(), 6);
        assert_eq!(stored.body().len(), RESPONSE_BODY_LEN);
    }
}
