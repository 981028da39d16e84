//! The `application/problem+json` (RFC 9457) responses that the runtime sends.

use std::time::Duration;

use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};

use crate::config::{BodyFingerprint, FingerprintConfig};
use crate::key::KeyError;

/// The media type of every error response.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// The kinds of problem the runtime reports; each has a fixed `type` URI and status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProblemKind {
    /// `400`: the endpoint requires a key and the request has none.
    MissingKey,
    /// `400`: the key header is empty, too long, badly quoted, repeated or has invalid bytes.
    InvalidKey,
    /// `409`: a request with the same key is still running.
    InFlight,
    /// `422`: the key was used before with a different request.
    KeyReused,
    /// `413`: the request body is larger than the server's body limit.
    BodyTooLarge,
    /// `400`: the request body could not be read.
    BodyUnreadable,
    /// `503`: the idempotency store failed, so the request was not run.
    StoreUnavailable,
}

impl ProblemKind {
    /// Returns the problem's `type` URI.
    pub fn type_uri(self) -> &'static str {
        match self {
            Self::MissingKey => "urn:idempotent:problem:missing-key",
            Self::InvalidKey => "urn:idempotent:problem:invalid-key",
            Self::InFlight => "urn:idempotent:problem:request-in-flight",
            Self::KeyReused => "urn:idempotent:problem:key-reused",
            Self::BodyTooLarge => "urn:idempotent:problem:body-too-large",
            Self::BodyUnreadable => "urn:idempotent:problem:body-unreadable",
            Self::StoreUnavailable => "urn:idempotent:problem:store-unavailable",
        }
    }

    /// Returns the HTTP status.
    pub fn status(self) -> StatusCode {
        match self {
            Self::MissingKey | Self::InvalidKey | Self::BodyUnreadable => StatusCode::BAD_REQUEST,
            Self::InFlight => StatusCode::CONFLICT,
            Self::KeyReused => StatusCode::UNPROCESSABLE_ENTITY,
            Self::BodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::StoreUnavailable => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// Returns the problem's `title`: a short summary that is the same for every occurrence.
    pub fn title(self) -> &'static str {
        match self {
            Self::MissingKey => "Idempotency key missing",
            Self::InvalidKey => "Idempotency key invalid",
            Self::InFlight => "Request with this idempotency key still in progress",
            Self::KeyReused => "Idempotency key reused with a different request",
            Self::BodyTooLarge => "Request body too large",
            Self::BodyUnreadable => "Request body unreadable",
            Self::StoreUnavailable => "Idempotency store unavailable",
        }
    }
}

/// The JSON body, with the members in the order RFC 9457 lists them.
#[derive(serde::Serialize)]
struct ProblemBody<'a> {
    #[serde(rename = "type")]
    type_uri: &'static str,
    title: &'static str,
    status: u16,
    detail: &'a str,
}

/// One problem response: kind, a `detail` for this occurrence, and optional `Retry-After`.
#[derive(Debug, Clone)]
pub struct Problem {
    kind: ProblemKind,
    detail: String,
    retry_after: Option<Duration>,
}

impl Problem {
    /// Creates a problem whose `detail` states what was wrong and what the client should do next.
    pub fn new(kind: ProblemKind, detail: impl Into<String>) -> Self {
        Self {
            kind,
            detail: detail.into(),
            retry_after: None,
        }
    }

    /// Adds a `Retry-After` header, rounded up to whole seconds, at least 1.
    pub fn with_retry_after(mut self, after: Duration) -> Self {
        self.retry_after = Some(after);
        self
    }

    /// Returns the kind.
    pub fn kind(&self) -> ProblemKind {
        self.kind
    }

    /// Returns the detail text.
    pub fn detail(&self) -> &str {
        &self.detail
    }

    pub(crate) fn missing_key(header: &str) -> Self {
        let header = display_name(header);
        Self::new(
            ProblemKind::MissingKey,
            format!(
                "This endpoint requires an idempotency key. Send a unique value, such as a \
                 UUID, in the `{header}` header and reuse it when you retry this request."
            ),
        )
    }

    pub(crate) fn invalid_key(header: &str, error: &KeyError) -> Self {
        let header = display_name(header);
        Self::new(
            ProblemKind::InvalidKey,
            format!(
                "The `{header}` header is invalid: {error}. Send it once, as 1 to 255 visible \
                 ASCII characters, bare or as a quoted string, for example `{header}: \
                 \"8e03978e-40d5-43e8-bc93-6894a57f9324\"`."
            ),
        )
    }

    pub(crate) fn in_flight(retry_after: Duration) -> Self {
        Self::new(
            ProblemKind::InFlight,
            "A request with this idempotency key is still being processed. Retry the same \
             request with the same key after the Retry-After delay to get its response.",
        )
        .with_retry_after(retry_after)
    }

    pub(crate) fn key_reused(fingerprint: &FingerprintConfig) -> Self {
        Self::new(
            ProblemKind::KeyReused,
            format!(
                "This idempotency key was already used with a different request ({}). Send the \
                 original request to get its response, or use a new key for a new request.",
                compared_parts(fingerprint)
            ),
        )
    }

    pub(crate) fn store_unavailable() -> Self {
        Self::new(
            ProblemKind::StoreUnavailable,
            "The idempotency store could not be reached, so the request was not processed and \
             nothing was changed. Retry the same request with the same key later.",
        )
        .with_retry_after(Duration::from_secs(1))
    }
}

/// Lists what a retry must repeat, for the key-reused detail: "endpoint, method, path, query or
/// body", for example.
fn compared_parts(fingerprint: &FingerprintConfig) -> String {
    let FingerprintConfig {
        method,
        path,
        query,
        body,
        headers,
    } = fingerprint;
    let mut parts = vec!["endpoint".to_owned()];
    for (included, name) in [(*method, "method"), (*path, "path"), (*query, "query")] {
        if included {
            parts.push(name.to_owned());
        }
    }
    for header in *headers {
        parts.push(format!("`{}` header", display_name(header)));
    }
    match body {
        BodyFingerprint::Ignore => {}
        BodyFingerprint::Bytes => parts.push("body".to_owned()),
        BodyFingerprint::Json => parts.push("JSON body".to_owned()),
    }
    match parts.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} or {last}", rest.join(", ")),
        _ => parts.concat(),
    }
}

/// Writes a lowercase header name the way documentation spells it: `idempotency-key` becomes
/// `Idempotency-Key`.
fn display_name(header: &str) -> String {
    let mut name = String::with_capacity(header.len());
    let mut word_start = true;
    for character in header.chars() {
        if word_start {
            name.push(character.to_ascii_uppercase());
        } else {
            name.push(character);
        }
        word_start = character == '-';
    }
    name
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = self.kind.status();
        let body = ProblemBody {
            type_uri: self.kind.type_uri(),
            title: self.kind.title(),
            status: status.as_u16(),
            detail: &self.detail,
        };
        // Serialising four plain fields into a string cannot fail.
        let body = serde_json::to_string(&body).expect("problem serialises");
        let mut response = (status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        if let Some(after) = self.retry_after {
            let seconds = after.as_secs() + u64::from(after.subsec_nanos() > 0);
            headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds.max(1)));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    #[test]
    fn header_names_are_capitalised_per_word() {
        assert_eq!(display_name("idempotency-key"), "Idempotency-Key");
        assert_eq!(display_name("x-request-id"), "X-Request-Id");
    }

    #[test]
    fn key_reused_detail_names_fingerprint_parts() {
        let default = Problem::key_reused(&FingerprintConfig::DEFAULT);
        let custom = Problem::key_reused(&FingerprintConfig {
            method: true,
            path: true,
            query: false,
            body: BodyFingerprint::Json,
            headers: &["x-currency"],
        });

        assert!(
            default
                .detail()
                .contains("(endpoint, method, path, query or body)"),
            "{}",
            default.detail()
        );
        assert!(
            custom
                .detail()
                .contains("(endpoint, method, path, `X-Currency` header or JSON body)"),
            "{}",
            custom.detail()
        );
    }

    #[tokio::test]
    async fn renders_rfc_9457_body_and_retry_after() {
        let problem = Problem::in_flight(Duration::from_millis(1500));

        let response = problem.into_response();

        assert_eq!(response.status(), StatusCode::CONFLICT);
        assert_eq!(response.headers()[header::CONTENT_TYPE], PROBLEM_JSON);
        assert_eq!(response.headers()[header::RETRY_AFTER], "2");
        let body = response.into_body().collect().await.unwrap().to_bytes();
        let expected = format!(
            r#"{{"type":"urn:idempotent:problem:request-in-flight","title":"{}","status":409,"detail":"{}"}}"#,
            ProblemKind::InFlight.title(),
            Problem::in_flight(Duration::ZERO).detail()
        );
        assert_eq!(std::str::from_utf8(&body).unwrap(), expected);
    }
}
