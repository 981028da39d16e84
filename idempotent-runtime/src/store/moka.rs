//! The in-process store, on a moka cache bounded by bytes.

use std::sync::Arc;
use std::time::{Duration, Instant};

use moka::Expiry;
use moka::notification::RemovalCause;
use moka::ops::compute::Op;
use moka::sync::Cache;

use super::{
    Begin, BoxFuture, Fingerprint, IdempotencyStore, Lease, StoreError, StoreErrorKind, StoreKey,
};
use crate::response::StoredResponse;

/// The default memory bound of a [`MokaStore`]: 128 MiB of keys and stored responses.
pub const DEFAULT_MAX_CAPACITY_BYTES: u64 = 128 * 1024 * 1024;

/// An estimate of what moka keeps per entry beyond our key and value: its node, hash-table slot
/// and the access-order and write-order list links. Counting it keeps the byte bound honest
/// for many small entries.
const CACHE_OVERHEAD_BYTES: usize = 160;

#[derive(Clone)]
enum Entry {
    InFlight {
        fingerprint: Fingerprint,
        lease: Lease,
        expires_at: Instant,
    },
    Completed {
        fingerprint: Fingerprint,
        response: StoredResponse,
        ttl: Duration,
    },
}

impl Entry {
    fn fingerprint(&self) -> &Fingerprint {
        match self {
            Self::InFlight { fingerprint, .. } | Self::Completed { fingerprint, .. } => fingerprint,
        }
    }

    fn weight(&self) -> u32 {
        let response = match self {
            Self::InFlight { .. } => 0,
            Self::Completed { response, .. } => response.as_bytes().len(),
        };
        let total = size_of::<StoreKey>() + size_of::<Self>() + CACHE_OVERHEAD_BYTES + response;
        u32::try_from(total).unwrap_or(u32::MAX)
    }

    /// Returns how long the entry lives from `now`: the lease for an in-flight key, the ttl for
    /// a completed one.
    fn time_to_live(&self, now: Instant) -> Duration {
        match self {
            Self::InFlight { expires_at, .. } => expires_at.saturating_duration_since(now),
            Self::Completed { ttl, .. } => *ttl,
        }
    }
}

struct EntryExpiry;

impl Expiry<StoreKey, Entry> for EntryExpiry {
    fn expire_after_create(
        &self,
        _: &StoreKey,
        value: &Entry,
        created_at: Instant,
    ) -> Option<Duration> {
        Some(value.time_to_live(created_at))
    }

    fn expire_after_update(
        &self,
        _: &StoreKey,
        value: &Entry,
        updated_at: Instant,
        _: Option<Duration>,
    ) -> Option<Duration> {
        Some(value.time_to_live(updated_at))
    }
}

/// The in-process store: a moka cache whose memory is bounded by the bytes of its entries.
///
/// # Concurrency guarantees
///
/// Each call takes moka's per-key lock, so `begin` hands a key to exactly one caller among all
/// tasks of this process. Separate processes do not share a `MokaStore`: behind a load
/// balancer, use the Redis store.
///
/// # Eviction
///
/// When the byte bound is reached, moka evicts entries before their ttl. A retry with an evicted
/// key runs the handler again, so each such eviction is logged as a warning; raise the bound
/// when it happens.
#[derive(Clone)]
pub struct MokaStore {
    cache: Cache<StoreKey, Entry>,
}

impl std::fmt::Debug for MokaStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MokaStore")
            .field("entries", &self.cache.entry_count())
            .field("weighted_bytes", &self.cache.weighted_size())
            .finish()
    }
}

impl Default for MokaStore {
    fn default() -> Self {
        Self::new()
    }
}

impl MokaStore {
    /// Creates a store bounded by [`DEFAULT_MAX_CAPACITY_BYTES`].
    pub fn new() -> Self {
        Self::builder().build()
    }

    /// Starts configuring a store.
    pub fn builder() -> MokaStoreBuilder {
        MokaStoreBuilder {
            max_capacity_bytes: DEFAULT_MAX_CAPACITY_BYTES,
        }
    }

    /// Returns the number of keys held, in flight or completed. Moka counts lazily, so the value
    /// can lag behind recent writes.
    pub fn entry_count(&self) -> u64 {
        self.cache.entry_count()
    }

    /// Returns the bytes the entries weigh, as counted against the bound. Moka counts lazily.
    pub fn weighted_bytes(&self) -> u64 {
        self.cache.weighted_size()
    }

    /// Runs moka's pending housekeeping (expiry, eviction, counts) now.
    pub fn run_pending_tasks(&self) {
        self.cache.run_pending_tasks();
    }

    fn begin_now(
        &self,
        key: &StoreKey,
        fingerprint: &Fingerprint,
        lease_duration: Duration,
    ) -> Begin {
        let mut outcome = None;
        self.cache.entry(*key).and_compute_with(|existing| {
            let now = Instant::now();
            let existing = existing.map(|entry| entry.into_value());
            let (result, op) = match existing {
                Some(entry) if entry.fingerprint() != fingerprint && is_live(&entry, now) => {
                    (Begin::Mismatch, Op::Nop)
                }
                Some(Entry::Completed { response, .. }) => (Begin::Completed(response), Op::Nop),
                Some(Entry::InFlight { expires_at, .. }) if expires_at > now => (
                    Begin::InFlight {
                        retry_after: expires_at - now,
                    },
                    Op::Nop,
                ),
                _ => {
                    let lease = Lease::new();
                    let entry = Entry::InFlight {
                        fingerprint: *fingerprint,
                        lease,
                        expires_at: now + lease_duration,
                    };
                    (Begin::Acquired(lease), Op::Put(entry))
                }
            };
            outcome = Some(result);
            op
        });
        outcome.expect("moka runs the compute closure exactly once")
    }

    /// Applies `change` to the in-flight entry that `lease` holds, atomically.
    fn with_lease(
        &self,
        key: &StoreKey,
        lease: &Lease,
        change: impl FnOnce(&Fingerprint) -> Op<Entry>,
    ) -> Result<(), StoreErrorKind> {
        let mut held = false;
        self.cache.entry(*key).and_compute_with(|existing| {
            match existing.map(|entry| entry.into_value()) {
                Some(Entry::InFlight {
                    fingerprint,
                    lease: current,
                    expires_at,
                }) if current == *lease && expires_at > Instant::now() => {
                    held = true;
                    change(&fingerprint)
                }
                _ => Op::Nop,
            }
        });
        if held {
            Ok(())
        } else {
            Err(StoreErrorKind::LeaseLost)
        }
    }
}

fn is_live(entry: &Entry, now: Instant) -> bool {
    match entry {
        Entry::InFlight { expires_at, .. } => *expires_at > now,
        Entry::Completed { .. } => true,
    }
}

impl IdempotencyStore for MokaStore {
    fn begin<'a>(
        &'a self,
        key: &'a StoreKey,
        fingerprint: &'a Fingerprint,
        lease_duration: Duration,
    ) -> BoxFuture<'a, Result<Begin, StoreError>> {
        let outcome = self.begin_now(key, fingerprint, lease_duration);
        Box::pin(std::future::ready(Ok(outcome)))
    }

    fn complete<'a>(
        &'a self,
        key: &'a StoreKey,
        lease: &'a Lease,
        response: &'a StoredResponse,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        let result = self.with_lease(key, lease, |fingerprint| {
            Op::Put(Entry::Completed {
                fingerprint: *fingerprint,
                response: response.clone(),
                ttl,
            })
        });
        Box::pin(std::future::ready(result.map_err(StoreError::new)))
    }

    fn release<'a>(
        &'a self,
        key: &'a StoreKey,
        lease: &'a Lease,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        // A lease that no longer holds the key has nothing to release.
        let _ = self.with_lease(key, lease, |_| Op::Remove);
        Box::pin(std::future::ready(Ok(())))
    }

    fn renew<'a>(
        &'a self,
        key: &'a StoreKey,
        lease: &'a Lease,
        lease_duration: Duration,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        let result = self.with_lease(key, lease, |fingerprint| {
            Op::Put(Entry::InFlight {
                fingerprint: *fingerprint,
                lease: *lease,
                expires_at: Instant::now() + lease_duration,
            })
        });
        Box::pin(std::future::ready(result.map_err(StoreError::new)))
    }
}

/// Configures a [`MokaStore`].
#[derive(Debug, Clone)]
pub struct MokaStoreBuilder {
    max_capacity_bytes: u64,
}

impl MokaStoreBuilder {
    /// Sets the memory bound: the most bytes of keys, stored responses and bookkeeping kept.
    pub fn max_capacity_bytes(mut self, bytes: u64) -> Self {
        self.max_capacity_bytes = bytes;
        self
    }

    /// Builds the store.
    pub fn build(self) -> MokaStore {
        let cache = Cache::builder()
            .max_capacity(self.max_capacity_bytes)
            .weigher(|_key: &StoreKey, entry: &Entry| entry.weight())
            .expire_after(EntryExpiry)
            .eviction_listener(log_early_eviction)
            .build();
        MokaStore { cache }
    }
}

fn log_early_eviction(key: Arc<StoreKey>, entry: Entry, cause: RemovalCause) {
    if cause != RemovalCause::Size {
        return;
    }
    let state = match entry {
        Entry::InFlight { .. } => "in flight",
        Entry::Completed { .. } => "completed",
    };
    tracing::warn!(
        target: "idempotent",
        key = %key.short(),
        state,
        "idempotency key evicted before its ttl because the store reached its memory bound; \
         a retry with this key will run the handler again, so raise max_capacity_bytes"
    );
}
