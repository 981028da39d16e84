//! The stored-response format: one response as a single, versioned, binary-safe byte string.
//!
//! # Format, version 1
//!
//! All integers are big-endian.
//!
//! | bytes | field |
//! | --- | --- |
//! | 3 | magic `IDR` |
//! | 1 | format version, `1` |
//! | 2 | status code |
//! | 2 | header count `n` |
//! | per header, `n` times | name length (2), name bytes (lowercase), value length (4), value bytes |
//! | 4 | body length |
//! | rest | body bytes |
//!
//! Header values are kept as raw bytes, so values that are not UTF-8 survive. Headers keep their
//! order, and a name that repeats is stored once per value.
//!
//! # What is not stored
//!
//! - Connection-level headers (`Connection`, `Keep-Alive`, `Proxy-Connection`,
//!   `Transfer-Encoding`, `TE`, `Trailer`, `Upgrade`) describe one connection, not the response.
//! - `Content-Length` is recomputed from the stored body on replay, so it always matches.
//! - `Set-Cookie` is dropped: a cookie is a per-client credential, and replaying it would hand
//!   one client's session to any client that retries with the same key. A handler whose response sets a
//!   cookie still sends it on the first response; the replay has none.

use axum::body::Body;
use axum::response::Response;
use bytes::{BufMut, Bytes, BytesMut};
use http::StatusCode;
use http::header::{self, HeaderName, HeaderValue};

use crate::store::{StoreError, StoreErrorKind};

const MAGIC: &[u8; 3] = b"IDR";
const VERSION: u8 = 1;
const HEAD_LEN: usize = 3 + 1 + 2 + 2;

/// The header added to every replayed response.
pub const REPLAYED_HEADER: HeaderName = HeaderName::from_static("idempotent-replayed");

/// Returns whether a response header is left out of stored responses.
pub fn is_unstored_header(name: &HeaderName) -> bool {
    name == header::CONNECTION
        || name == header::TRANSFER_ENCODING
        || name == header::TE
        || name == header::TRAILER
        || name == header::UPGRADE
        || name == header::CONTENT_LENGTH
        || name == header::SET_COOKIE
        || name.as_str() == "keep-alive"
        || name.as_str() == "proxy-connection"
}

/// Returns the header names listed in `Connection` values, lowercased. Most responses have none,
/// and then nothing is allocated.
fn connection_options(headers: &http::HeaderMap) -> Vec<String> {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(|option| option.trim().to_ascii_lowercase())
        .filter(|option| !option.is_empty())
        .collect()
}

/// A response in the stored format: cheap to clone, and decoded lazily on replay.
#[derive(Clone, PartialEq, Eq)]
pub struct StoredResponse {
    bytes: Bytes,
    status: StatusCode,
}

impl std::fmt::Debug for StoredResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredResponse")
            .field("status", &self.status)
            .field("len", &self.bytes.len())
            .finish()
    }
}

impl StoredResponse {
    /// Encodes a response head and its complete body.
    ///
    /// Headers that [`is_unstored_header`] names are skipped, and so are the headers that the
    /// response's `Connection` header lists, which RFC 9110 (section 7.6.1) makes hop-by-hop.
    ///
    /// # Panics
    ///
    /// Panics when the body is 4 GiB or larger, or the head has more than 65,535 headers. The
    /// runtime stores bodies of at most `max_body`, which the attribute limits to 1 GiB.
    pub fn encode(status: StatusCode, headers: &http::HeaderMap, body: &[u8]) -> Self {
        let connection_listed = connection_options(headers);
        let stored_headers = || {
            headers.iter().filter(|(name, _)| {
                !is_unstored_header(name)
                    && !connection_listed
                        .iter()
                        .any(|listed| listed == name.as_str())
            })
        };
        let headers_len: usize = stored_headers()
            .map(|(name, value)| 2 + name.as_str().len() + 4 + value.len())
            .sum();
        let mut buffer = BytesMut::with_capacity(HEAD_LEN + headers_len + 4 + body.len());

        buffer.put_slice(MAGIC);
        buffer.put_u8(VERSION);
        buffer.put_u16(status.as_u16());
        let count =
            u16::try_from(stored_headers().count()).expect("more than 65535 response headers");
        buffer.put_u16(count);
        for (name, value) in stored_headers() {
            let name_len = u16::try_from(name.as_str().len()).expect("header name over 64 KiB");
            buffer.put_u16(name_len);
            buffer.put_slice(name.as_str().as_bytes());
            let value_len = u32::try_from(value.len()).expect("header value over 4 GiB");
            buffer.put_u32(value_len);
            buffer.put_slice(value.as_bytes());
        }
        let body_len = u32::try_from(body.len()).expect("response body over 4 GiB");
        buffer.put_u32(body_len);
        buffer.put_slice(body);

        Self {
            bytes: buffer.freeze(),
            status,
        }
    }

    /// Checks and wraps bytes in the stored format, as read back from a store.
    ///
    /// # Errors
    ///
    /// [`StoreErrorKind::Corrupt`] when the bytes are not a complete version-1 record.
    pub fn from_bytes(bytes: Bytes) -> Result<Self, StoreError> {
        let status = validate(&bytes).map_err(|reason| {
            StoreError::with_source(
                StoreErrorKind::Corrupt,
                format!("stored response: {reason}"),
            )
        })?;
        Ok(Self { bytes, status })
    }

    /// Returns the encoded bytes.
    pub fn as_bytes(&self) -> &Bytes {
        &self.bytes
    }

    /// Returns the status code.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// Returns the stored headers in their original order, as name and raw value bytes.
    pub fn headers(&self) -> HeaderIter<'_> {
        HeaderIter {
            bytes: &self.bytes,
            offset: HEAD_LEN,
            remaining: u16::from_be_bytes([self.bytes[6], self.bytes[7]]),
        }
    }

    /// Returns the body, sharing the stored allocation.
    pub fn body(&self) -> Bytes {
        let offset = self.body_offset();
        self.bytes.slice(offset + 4..)
    }

    fn body_offset(&self) -> usize {
        let mut headers = self.headers();
        for _ in headers.by_ref() {}
        headers.offset
    }

    /// Builds the replayed response: stored status, headers in order, body, a matching
    /// `Content-Length` and `Idempotent-Replayed: true`.
    pub fn to_response(&self) -> Response {
        let body = self.body();
        let mut response = Response::new(Body::empty());
        *response.status_mut() = self.status;
        let headers = response.headers_mut();
        headers.reserve(usize::from(self.headers().remaining) + 2);
        for (name, value) in self.headers() {
            // `validate` checked every name and value when the record was built or read back.
            let name = HeaderName::from_bytes(name).expect("validated header name");
            let value = HeaderValue::from_maybe_shared(self.bytes.slice_ref(value))
                .expect("validated header value");
            headers.append(name, value);
        }
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(body.len()));
        headers.insert(REPLAYED_HEADER, HeaderValue::from_static("true"));
        *response.body_mut() = Body::from(body);
        response
    }
}

/// An iterator over stored headers, as name and value bytes.
#[derive(Debug)]
pub struct HeaderIter<'a> {
    bytes: &'a [u8],
    offset: usize,
    remaining: u16,
}

impl<'a> Iterator for HeaderIter<'a> {
    type Item = (&'a [u8], &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        if self.remaining == 0 {
            return None;
        }
        self.remaining -= 1;
        let bytes = self.bytes;
        let mut at = self.offset;
        let name_len = usize::from(u16::from_be_bytes([bytes[at], bytes[at + 1]]));
        at += 2;
        let name = &bytes[at..at + name_len];
        at += name_len;
        let value_len = read_u32(bytes, at) as usize;
        at += 4;
        let value = &bytes[at..at + value_len];
        self.offset = at + value_len;
        Some((name, value))
    }
}

fn read_u32(bytes: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
}

/// Walks a whole record and returns its status, or what is wrong with it.
fn validate(bytes: &[u8]) -> Result<StatusCode, &'static str> {
    if bytes.len() < HEAD_LEN + 4 {
        return Err("shorter than the fixed header");
    }
    if &bytes[..3] != MAGIC {
        return Err("magic bytes missing");
    }
    if bytes[3] != VERSION {
        return Err("unknown format version");
    }
    let status = StatusCode::from_u16(u16::from_be_bytes([bytes[4], bytes[5]]))
        .map_err(|_| "invalid status code")?;
    let count = u16::from_be_bytes([bytes[6], bytes[7]]);
    let mut at = HEAD_LEN;
    for _ in 0..count {
        let name_len = bytes
            .get(at..at + 2)
            .map(|len| usize::from(u16::from_be_bytes([len[0], len[1]])))
            .ok_or("header name length cut off")?;
        at += 2;
        let name = bytes.get(at..at + name_len).ok_or("header name cut off")?;
        HeaderName::from_bytes(name).map_err(|_| "invalid header name")?;
        at += name_len;
        if bytes.len() < at + 4 {
            return Err("header value length cut off");
        }
        let value_len = read_u32(bytes, at) as usize;
        at += 4;
        let value = bytes
            .get(at..at + value_len)
            .ok_or("header value cut off")?;
        HeaderValue::from_bytes(value).map_err(|_| "invalid header value")?;
        at += value_len;
    }
    if bytes.len() < at + 4 {
        return Err("body length cut off");
    }
    let body_len = read_u32(bytes, at) as usize;
    if bytes.len() != at + 4 + body_len {
        return Err("body length does not match the record");
    }
    Ok(status)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> StoredResponse {
        let mut headers = http::HeaderMap::new();
        headers.append("x-a", HeaderValue::from_static("1"));
        headers.append(header::CONNECTION, HeaderValue::from_static("close, X-Hop"));
        headers.append("x-hop", HeaderValue::from_static("per connection"));
        headers.append("x-a", HeaderValue::from_static("2"));
        headers.append(header::SET_COOKIE, HeaderValue::from_static("s=1"));
        headers.append(
            "x-bin",
            HeaderValue::from_bytes(&[0xff, 0x80, b'a']).unwrap(),
        );
        headers.append(header::CONTENT_LENGTH, HeaderValue::from_static("999"));
        StoredResponse::encode(StatusCode::CREATED, &headers, &[0, 1, 2, 0xff])
    }

    #[test]
    fn round_trip_keeps_order_and_bytes() {
        let stored = sample();

        let decoded = StoredResponse::from_bytes(stored.as_bytes().clone()).unwrap();

        assert_eq!(decoded.status(), StatusCode::CREATED);
        let headers: Vec<_> = decoded.headers().collect();
        assert_eq!(
            headers,
            vec![
                (&b"x-a"[..], &b"1"[..]),
                (&b"x-a"[..], &b"2"[..]),
                (&b"x-bin"[..], &[0xff, 0x80, b'a'][..]),
            ]
        );
        assert_eq!(&decoded.body()[..], &[0, 1, 2, 0xff]);
    }

    #[test]
    fn replay_sets_length_and_marker() {
        let response = sample().to_response();

        assert_eq!(response.status(), StatusCode::CREATED);
        assert_eq!(response.headers()[header::CONTENT_LENGTH], "4");
        assert_eq!(response.headers()[REPLAYED_HEADER], "true");
        let values: Vec<_> = response.headers().get_all("x-a").iter().collect();
        assert_eq!(values, vec!["1", "2"]);
        assert!(response.headers().get(header::SET_COOKIE).is_none());
        assert!(response.headers().get(header::CONNECTION).is_none());
    }

    #[test]
    fn truncated_record_is_corrupt() {
        let bytes = sample().as_bytes().clone();

        for len in 0..bytes.len() {
            let error = StoredResponse::from_bytes(bytes.slice(..len)).unwrap_err();
            assert_eq!(error.kind(), StoreErrorKind::Corrupt, "length {len}");
        }
    }

    #[test]
    fn unknown_version_is_corrupt() {
        let mut bytes = sample().as_bytes().to_vec();
        bytes[3] = 2;

        let error = StoredResponse::from_bytes(Bytes::from(bytes)).unwrap_err();

        assert_eq!(error.kind(), StoreErrorKind::Corrupt);
    }
}
