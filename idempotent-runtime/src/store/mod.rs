//! The store trait that keeps keys and responses, and its backends.
//!
//! A store answers one question atomically, [`IdempotencyStore::begin`]: is this key new, still
//! running, completed, or used with another request? The holder of a new key gets a [`Lease`]
//! and later either [`complete`](IdempotencyStore::complete)s it with the response or
//! [`release`](IdempotencyStore::release)s it so that the next retry runs the handler.
//!
//! # Concurrency guarantees
//!
//! For one [`StoreKey`], `begin` returns [`Begin::Acquired`] to exactly one caller until that
//! lease is released or expires. `complete`, `release` and `renew` act only when the lease token
//! still matches, so a holder whose lease expired and was taken over cannot overwrite the new
//! holder's record. Each backend documents where this applies (one process for
//! [`MokaStore`], every client of one Redis server for the Redis store).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use crate::response::StoredResponse;

mod moka;

pub use self::moka::{DEFAULT_MAX_CAPACITY_BYTES, MokaStore, MokaStoreBuilder};

#[cfg(feature = "redis")]
mod redis;

#[cfg(feature = "redis")]
pub use self::redis::{RedisStore, RedisStoreBuilder};

/// A boxed, sendable future, the return type of every [`IdempotencyStore`] method.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The hashed identity of one idempotency key: SHA-256 over the scope and the client's key.
///
/// Hashing keeps client-chosen bytes out of store key names, so that a key cannot collide with
/// or inject into other data.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StoreKey(pub [u8; 32]);

impl StoreKey {
    /// Returns the key as 64 lowercase hex digits.
    pub fn to_hex(&self) -> String {
        crate::fingerprint::hex(&self.0)
    }

    /// Returns the first 8 hex digits, enough to correlate log events without revealing the key.
    pub fn short(&self) -> String {
        crate::fingerprint::hex(&self.0[..4])
    }
}

impl fmt::Debug for StoreKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StoreKey({}…)", self.short())
    }
}

/// The SHA-256 hash of the parts of a request that a retry must repeat.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint(pub [u8; 32]);

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint({}…)", crate::fingerprint::hex(&self.0[..4]))
    }
}

/// The proof of holding an in-flight key: a random token that fences late writers out.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Lease {
    token: [u8; 16],
}

impl Lease {
    /// Creates a lease with a fresh random token.
    pub fn new() -> Self {
        Self {
            token: rand::random(),
        }
    }

    /// Creates a lease from a token that a store kept.
    pub fn from_token(token: [u8; 16]) -> Self {
        Self { token }
    }

    /// Returns the token bytes.
    pub fn token(&self) -> &[u8; 16] {
        &self.token
    }
}

impl Default for Lease {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for Lease {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Lease(..)")
    }
}

/// The outcome of [`IdempotencyStore::begin`].
#[derive(Debug)]
pub enum Begin {
    /// The key was new (or its previous lease had expired): the caller now holds it and must run
    /// the handler, then complete or release the lease.
    Acquired(Lease),
    /// Another request has the key and is still running.
    InFlight {
        /// How long until that request's lease expires.
        retry_after: Duration,
    },
    /// The key completed with the same fingerprint: replay this response.
    Completed(StoredResponse),
    /// The key is in flight or completed with another fingerprint.
    Mismatch,
}

/// The kind of failure of a store call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum StoreErrorKind {
    /// The store could not be reached or returned an error.
    Unavailable,
    /// The store did not reply within its timeout.
    Timeout,
    /// The lease no longer matches: it expired and another request took the key over.
    LeaseLost,
    /// A stored record could not be decoded.
    Corrupt,
    /// The response is larger than the store can keep; the lease still holds the key.
    TooLarge,
}

/// An error from an [`IdempotencyStore`].
#[derive(Debug)]
pub struct StoreError {
    kind: StoreErrorKind,
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl StoreError {
    /// Creates an error of `kind` without a cause.
    pub fn new(kind: StoreErrorKind) -> Self {
        Self { kind, source: None }
    }

    /// Creates an error of `kind` caused by `source`.
    pub fn with_source(
        kind: StoreErrorKind,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        Self {
            kind,
            source: Some(source.into()),
        }
    }

    /// Returns the kind of failure.
    pub fn kind(&self) -> StoreErrorKind {
        self.kind
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = match self.kind {
            StoreErrorKind::Unavailable => "idempotency store unavailable",
            StoreErrorKind::Timeout => "idempotency store timed out",
            StoreErrorKind::LeaseLost => "idempotency lease lost to another request",
            StoreErrorKind::Corrupt => "idempotency store returned a corrupt record",
            StoreErrorKind::TooLarge => "response larger than the idempotency store can keep",
        };
        match &self.source {
            Some(source) => write!(f, "{text}: {source}"),
            None => f.write_str(text),
        }
    }
}

impl std::error::Error for StoreError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|source| source as &(dyn std::error::Error + 'static))
    }
}

/// A backend that keeps idempotency keys, leases and stored responses.
///
/// Implementations must make [`begin`](Self::begin) atomic per key: see the module docs for the
/// guarantees callers rely on.
pub trait IdempotencyStore: Send + Sync + 'static {
    /// Looks `key` up and, when it is new or its lease expired, takes it with a fresh lease that
    /// lasts `lease_duration`.
    ///
    /// A key that exists with another fingerprint returns [`Begin::Mismatch`].
    fn begin<'a>(
        &'a self,
        key: &'a StoreKey,
        fingerprint: &'a Fingerprint,
        lease_duration: Duration,
    ) -> BoxFuture<'a, Result<Begin, StoreError>>;

    /// Replaces the in-flight record held by `lease` with `response`, kept for `ttl`.
    ///
    /// # Errors
    ///
    /// [`StoreErrorKind::LeaseLost`] when the lease no longer holds the key, and
    /// [`StoreErrorKind::TooLarge`] when the store cannot keep a response of this size.
    fn complete<'a>(
        &'a self,
        key: &'a StoreKey,
        lease: &'a Lease,
        response: &'a StoredResponse,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<(), StoreError>>;

    /// Deletes the in-flight record held by `lease`, so that the next request with the key runs.
    ///
    /// Releasing a lease that no longer holds the key changes nothing and is not an error.
    fn release<'a>(
        &'a self,
        key: &'a StoreKey,
        lease: &'a Lease,
    ) -> BoxFuture<'a, Result<(), StoreError>>;

    /// Extends the lease held by `lease` to `lease_duration` from now.
    ///
    /// # Errors
    ///
    /// [`StoreErrorKind::LeaseLost`] when the lease no longer holds the key.
    fn renew<'a>(
        &'a self,
        key: &'a StoreKey,
        lease: &'a Lease,
        lease_duration: Duration,
    ) -> BoxFuture<'a, Result<(), StoreError>>;

    /// Returns whether a failure of this store should let requests run without idempotency.
    ///
    /// The default, `false`, fails closed: requests get `503` and the handler does not run.
    fn fail_open(&self) -> bool {
        false
    }
}
