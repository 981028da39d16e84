//! The per-endpoint configuration that `#[idempotent(...)]` builds at compile time.

use std::time::Duration;

/// The response to a retry while the first request with its key is still running.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnConflict {
    /// Respond `409 Conflict` with a `Retry-After` header at once.
    Reject,
    /// Wait for the first request to finish, at most `lock_timeout`, and replay its response.
    Wait,
}

/// The way the request body enters the fingerprint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFingerprint {
    /// The body is left out.
    Ignore,
    /// The body bytes as received.
    Bytes,
    /// The body parsed as JSON and canonicalised: object keys sorted, insignificant white
    /// space dropped. A body that is not valid JSON falls back to its raw bytes.
    Json,
}

/// The parts of a request whose hash is stored with a key; a retry whose hash differs gets `422`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FingerprintConfig {
    /// Include the HTTP method.
    pub method: bool,
    /// Include the URI path.
    pub path: bool,
    /// Include the raw query string.
    pub query: bool,
    /// The way the body is included.
    pub body: BodyFingerprint,
    /// Request headers whose values are included, as lowercase names.
    pub headers: &'static [&'static str],
}

impl FingerprintConfig {
    /// Method, path, query and body bytes: the default.
    pub const DEFAULT: Self = Self {
        method: true,
        path: true,
        query: true,
        body: BodyFingerprint::Bytes,
        headers: &[],
    };
}

/// A set of HTTP status codes from 100 to 599, stored as a bitset so that it can be a constant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatusSet {
    bits: [u64; 8],
}

impl StatusSet {
    /// Every status except the 5xx range, 408 and 429. Those statuses ask the client to try
    /// again, so they are not stored and the retry runs the handler.
    pub const DEFAULT: Self = Self::EMPTY.with_range(100, 499).without(408).without(429);

    /// The empty set.
    pub const EMPTY: Self = Self { bits: [0; 8] };

    /// Adds every status from `first` to `last`, both included. Codes outside 100..=599 are
    /// ignored.
    pub const fn with_range(mut self, first: u16, last: u16) -> Self {
        let mut code = first;
        while code <= last {
            if code >= 100 && code <= 599 {
                let index = (code - 100) as usize;
                self.bits[index / 64] |= 1 << (index % 64);
            }
            code += 1;
        }
        self
    }

    /// Removes one status.
    pub const fn without(mut self, code: u16) -> Self {
        if code >= 100 && code <= 599 {
            let index = (code - 100) as usize;
            self.bits[index / 64] &= !(1 << (index % 64));
        }
        self
    }

    /// Returns whether `code` is in the set.
    pub const fn contains(&self, code: u16) -> bool {
        if code < 100 || code > 599 {
            return false;
        }
        let index = (code - 100) as usize;
        self.bits[index / 64] & (1 << (index % 64)) != 0
    }
}

/// Everything the runtime needs to know about one annotated handler.
///
/// The attribute macro builds this as a `static`; every field was checked at compile time.
#[derive(Debug, Clone, Copy)]
pub struct Config {
    /// The handler's name, used in log events.
    pub endpoint: &'static str,
    /// How long a completed response is kept.
    pub ttl: Duration,
    /// How long a key stays locked while its request runs, if the holder vanishes.
    pub lock_timeout: Duration,
    /// Whether a request without a key is rejected with `400`.
    pub required: bool,
    /// The key header's name, in lowercase.
    pub header: &'static str,
    /// The largest response body that is stored, in bytes.
    pub max_body: usize,
    /// The response to a concurrent retry.
    pub on_conflict: OnConflict,
    /// The request parts hashed into the fingerprint.
    pub fingerprint: FingerprintConfig,
    /// The response statuses that are stored. Any other status releases the key.
    pub store_status: StatusSet,
}

impl Config {
    /// The defaults of a bare `#[idempotent]`: keep responses for 24 hours, a 30 second lock,
    /// an optional `Idempotency-Key` header and bodies of at most 1 MiB.
    pub const DEFAULT: Self = Self {
        endpoint: "",
        ttl: Duration::from_secs(24 * 60 * 60),
        lock_timeout: Duration::from_secs(30),
        required: false,
        header: "idempotency-key",
        max_body: 1024 * 1024,
        on_conflict: OnConflict::Reject,
        fingerprint: FingerprintConfig::DEFAULT,
        store_status: StatusSet::DEFAULT,
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_status_set_skips_retryable_codes() {
        let set = StatusSet::DEFAULT;

        assert!(set.contains(200));
        assert!(set.contains(201));
        assert!(set.contains(404));
        assert!(set.contains(422));
        assert!(!set.contains(408));
        assert!(!set.contains(429));
        assert!(!set.contains(500));
        assert!(!set.contains(503));
        assert!(!set.contains(99));
        assert!(!set.contains(600));
    }
}
