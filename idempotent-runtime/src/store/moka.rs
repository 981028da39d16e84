//! The in-process store: completed responses in a moka cache bounded by bytes, and leases of
//! running requests in locked maps kept apart, so that the bound never evicts them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use moka::Expiry;
use moka::notification::RemovalCause;
use moka::policy::EvictionPolicy;
use moka::sync::Cache;

use super::{
    Begin, BoxFuture, Fingerprint, IdempotencyStore, Lease, StoreError, StoreErrorKind, StoreKey,
};
use crate::rate_limit::EverySecond;
use crate::response::StoredResponse;

/// The default memory bound of a [`MokaStore`]: 128 MiB of keys and stored responses.
pub const DEFAULT_MAX_CAPACITY_BYTES: u64 = 128 * 1024 * 1024;

/// The bytes that moka 0.12.16 and glibc's malloc keep per entry beyond our key and value: moka's node,
/// hash-table bucket, deque and timer-wheel nodes, the `Bytes` header and malloc's chunk
/// headers. Measured as resident memory per entry with `benchmarks/src/bin/store_memory.rs` on
/// Linux; counting it keeps resident memory near the byte bound.
const CACHE_OVERHEAD_BYTES: usize = 390;

/// The number of lease maps, each behind its own lock. Store keys are SHA-256 hashes, so their
/// last byte spreads them evenly.
const LEASE_SHARDS: usize = 64;

/// The hasher of store keys. Keys are SHA-256 digests of what clients send, so a fast hash
/// with a per-process random seed spreads them as well as the standard library's SipHash.
/// It costs a fraction of what SipHash adds to every lookup, insert and eviction.
type KeyHasher = foldhash::fast::RandomState;

/// The lease of a request that is running.
#[derive(Clone)]
struct InFlight {
    fingerprint: Fingerprint,
    lease: Lease,
    expires_at: Instant,
}

/// A stored response and the fingerprint of the request that produced it.
#[derive(Clone)]
struct Completed {
    fingerprint: Fingerprint,
    response: StoredResponse,
    ttl: Duration,
}

impl Completed {
    fn weight(&self) -> u32 {
        let total = size_of::<StoreKey>()
            + size_of::<Self>()
            + CACHE_OVERHEAD_BYTES
            + self.response.as_bytes().len();
        u32::try_from(total).unwrap_or(u32::MAX)
    }
}

/// Expires completed responses after their ttl.
struct EntryExpiry;

impl Expiry<StoreKey, Completed> for EntryExpiry {
    fn expire_after_create(&self, _: &StoreKey, value: &Completed, _: Instant) -> Option<Duration> {
        Some(value.ttl)
    }
}

/// The in-process store: completed responses in a moka cache whose memory is bounded by bytes,
/// and the leases of running requests in a second cache that the bound does not touch.
///
/// # Concurrency guarantees
///
/// Every call locks the lease map that holds its key, and a response moves from lease to
/// completed under that lock, so `begin` hands a key to exactly one caller among all tasks of
/// this process. Leases are never evicted to make room: their number is the number of requests
/// running with a key, and each ends by completing, releasing or expiring. Separate processes
/// do not share a `MokaStore`: behind a load balancer, use the Redis store.
///
/// # Eviction
///
/// When the byte bound is reached, the least recently used completed responses are evicted
/// before their ttl, so every new response that fits the bound is stored. A response heavier
/// than the whole bound is rejected with [`StoreErrorKind::TooLarge`]. A retry with an evicted key runs the
/// handler again, so each such eviction is logged as a warning; raise the bound when it happens.
#[derive(Clone)]
pub struct MokaStore {
    leases: Arc<[Mutex<LeaseShard>; LEASE_SHARDS]>,
    completed: Cache<StoreKey, Completed, KeyHasher>,
    max_capacity_bytes: u64,
}

/// One lock's share of the leases.
#[derive(Default)]
struct LeaseShard {
    leases: HashMap<StoreKey, InFlight, KeyHasher>,
    /// The number of leases at which the next insert first drops the expired ones. A lease
    /// expires without being removed only when its request neither completes nor releases it.
    sweep_at: usize,
}

impl LeaseShard {
    fn insert(&mut self, key: StoreKey, running: InFlight, now: Instant) {
        if self.leases.len() >= self.sweep_at {
            self.leases.retain(|_, lease| lease.expires_at > now);
            self.sweep_at = (self.leases.len() * 2).max(64);
        }
        self.leases.insert(key, running);
    }
}

impl std::fmt::Debug for MokaStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MokaStore")
            .field("in_flight", &self.lease_count())
            .field("completed", &self.completed.entry_count())
            .field("weighted_bytes", &self.completed.weighted_size())
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
        self.lease_count() + self.completed.entry_count()
    }

    fn lease_count(&self) -> u64 {
        let count: usize = (0..LEASE_SHARDS)
            .map(|index| self.lock_shard(index).leases.len())
            .sum();
        count as u64
    }

    /// Returns the bytes the completed responses weigh, as counted against the bound. Moka
    /// counts lazily.
    pub fn weighted_bytes(&self) -> u64 {
        self.completed.weighted_size()
    }

    /// Runs moka's pending housekeeping (expiry, eviction, counts) now.
    pub fn run_pending_tasks(&self) {
        self.completed.run_pending_tasks();
    }

    fn lock_shard(&self, index: usize) -> MutexGuard<'_, LeaseShard> {
        // Every change to a shard is one map call, so a panic elsewhere cannot leave it half
        // written.
        self.leases[index]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn shard_of(&self, key: &StoreKey) -> MutexGuard<'_, LeaseShard> {
        self.lock_shard(usize::from(key.0[31]) % LEASE_SHARDS)
    }

    fn begin_now(
        &self,
        key: &StoreKey,
        fingerprint: &Fingerprint,
        lease_duration: Duration,
    ) -> Begin {
        let mut shard = self.shard_of(key);
        let now = Instant::now();
        let running = shard
            .leases
            .get(key)
            .filter(|running| running.expires_at > now);
        match running {
            Some(running) if running.fingerprint != *fingerprint => Begin::Mismatch,
            Some(running) => Begin::InFlight {
                retry_after: running.expires_at - now,
            },
            None => match self.completed.get(key) {
                Some(done) if done.fingerprint != *fingerprint => Begin::Mismatch,
                Some(done) => Begin::Completed(done.response),
                None => {
                    let lease = Lease::new();
                    let running = InFlight {
                        fingerprint: *fingerprint,
                        lease,
                        expires_at: now + lease_duration,
                    };
                    shard.insert(*key, running, now);
                    Begin::Acquired(lease)
                }
            },
        }
    }

    /// Applies `change` to the shard of `key` when `lease` is its live lease, under the
    /// shard's lock.
    fn with_lease(
        &self,
        key: &StoreKey,
        lease: &Lease,
        change: impl FnOnce(&mut LeaseShard),
    ) -> Result<(), StoreErrorKind> {
        let mut shard = self.shard_of(key);
        let lease_matches = shard
            .leases
            .get(key)
            .is_some_and(|running| running.lease == *lease && running.expires_at > Instant::now());
        if lease_matches {
            change(&mut shard);
            Ok(())
        } else {
            Err(StoreErrorKind::LeaseLost)
        }
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
        let done = Completed {
            fingerprint: Fingerprint([0; 32]),
            response: response.clone(),
            ttl,
        };
        if u64::from(done.weight()) > self.max_capacity_bytes {
            // Moka would evict it at once, and a retry would run the handler again.
            return Box::pin(std::future::ready(Err(StoreError::new(
                StoreErrorKind::TooLarge,
            ))));
        }
        let result = self.with_lease(key, lease, |shard| {
            // Inserted under the lease's lock, so a concurrent `begin` finds either the lease or
            // the response.
            if let Some(running) = shard.leases.remove(key) {
                let done = Completed {
                    fingerprint: running.fingerprint,
                    response: response.clone(),
                    ttl,
                };
                self.completed.insert(*key, done);
            }
        });
        Box::pin(std::future::ready(result.map_err(StoreError::new)))
    }

    fn release<'a>(
        &'a self,
        key: &'a StoreKey,
        lease: &'a Lease,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        // A lease that no longer holds the key has nothing to release.
        let _ = self.with_lease(key, lease, |shard| {
            shard.leases.remove(key);
        });
        Box::pin(std::future::ready(Ok(())))
    }

    fn renew<'a>(
        &'a self,
        key: &'a StoreKey,
        lease: &'a Lease,
        lease_duration: Duration,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        let result = self.with_lease(key, lease, |shard| {
            if let Some(running) = shard.leases.get_mut(key) {
                running.expires_at = Instant::now() + lease_duration;
            }
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
    /// Sets the memory bound of completed responses, in bytes, including keys and bookkeeping.
    pub fn max_capacity_bytes(mut self, bytes: u64) -> Self {
        self.max_capacity_bytes = bytes;
        self
    }

    /// Builds the store.
    pub fn build(self) -> MokaStore {
        let leases = Arc::new(std::array::from_fn(|_| Mutex::default()));
        // Least recently used eviction admits every new response. Moka's default, TinyLFU,
        // rejects new entries that are less popular than the ones held once the cache is full,
        // which would stop storing responses under a flood of unique keys.
        let completed = Cache::builder()
            .max_capacity(self.max_capacity_bytes)
            .eviction_policy(EvictionPolicy::lru())
            .weigher(|_key: &StoreKey, done: &Completed| done.weight())
            .expire_after(EntryExpiry)
            .eviction_listener(log_early_eviction)
            .build_with_hasher(KeyHasher::default());
        MokaStore {
            leases,
            completed,
            max_capacity_bytes: self.max_capacity_bytes,
        }
    }
}

fn log_early_eviction(key: Arc<StoreKey>, _: Completed, cause: RemovalCause) {
    // Once the store is full every new key evicts a response, so the warning is limited.
    static LIMIT: EverySecond = EverySecond::new();
    if cause != RemovalCause::Size {
        return;
    }
    if let Some(suppressed) = LIMIT.allow() {
        tracing::warn!(
            target: "idempotent",
            key = %key.short(),
            suppressed,
            "stored response evicted before its ttl because the store reached its memory bound; \
             a retry with this key will run the handler again, so raise max_capacity_bytes"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(body_len: usize) -> StoredResponse {
        StoredResponse::encode(
            http::StatusCode::OK,
            &http::HeaderMap::new(),
            &vec![7; body_len],
        )
    }

    fn acquire(store: &MokaStore, key: &StoreKey) -> Lease {
        match store.begin_now(key, &Fingerprint([1; 32]), Duration::from_secs(30)) {
            Begin::Acquired(lease) => lease,
            other => panic!("expected a new key, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn full_store_keeps_storing_new_responses() {
        let store = MokaStore::builder().max_capacity_bytes(64 * 1024).build();
        let keys: Vec<StoreKey> = (0..200u8).map(|index| StoreKey([index; 32])).collect();

        for key in &keys {
            let lease = acquire(&store, key);
            let body = response(1024);
            let ttl = Duration::from_secs(60);
            store.complete(key, &lease, &body, ttl).await.unwrap();
            store.run_pending_tasks();
        }

        let newest = store.begin_now(
            keys.last().unwrap(),
            &Fingerprint([1; 32]),
            Duration::from_secs(30),
        );
        assert!(matches!(newest, Begin::Completed(_)), "{newest:?}");
        let oldest = store.begin_now(&keys[0], &Fingerprint([1; 32]), Duration::from_secs(30));
        assert!(matches!(oldest, Begin::Acquired(_)), "{oldest:?}");
        assert!(
            store.weighted_bytes() <= 64 * 1024,
            "{}",
            store.weighted_bytes()
        );
    }

    #[tokio::test]
    async fn full_store_never_evicts_leases() {
        let store = MokaStore::builder().max_capacity_bytes(16 * 1024).build();
        let running = StoreKey([255; 32]);
        let lease = acquire(&store, &running);

        for index in 0..100u8 {
            let key = StoreKey([index; 32]);
            let other = acquire(&store, &key);
            let body = response(1024);
            let ttl = Duration::from_secs(60);
            store.complete(&key, &other, &body, ttl).await.unwrap();
            store.run_pending_tasks();
        }

        let retry = store.begin_now(&running, &Fingerprint([1; 32]), Duration::from_secs(30));
        assert!(matches!(retry, Begin::InFlight { .. }), "{retry:?}");
        store
            .complete(&running, &lease, &response(8), Duration::from_secs(60))
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn response_over_the_bound_is_too_large() {
        let store = MokaStore::builder().max_capacity_bytes(64 * 1024).build();
        let key = StoreKey([9; 32]);
        let lease = acquire(&store, &key);

        let result = store
            .complete(&key, &lease, &response(100 * 1024), Duration::from_secs(60))
            .await;

        assert_eq!(result.unwrap_err().kind(), StoreErrorKind::TooLarge);
        let retry = store.begin_now(&key, &Fingerprint([1; 32]), Duration::from_secs(30));
        assert!(matches!(retry, Begin::InFlight { .. }), "{retry:?}");
    }

    #[tokio::test]
    async fn stale_lease_cannot_complete() {
        let store = MokaStore::new();
        let key = StoreKey([3; 32]);
        let fingerprint = Fingerprint([1; 32]);
        let stale = match store.begin_now(&key, &fingerprint, Duration::from_millis(1)) {
            Begin::Acquired(lease) => lease,
            other => panic!("expected a new key, got {other:?}"),
        };
        std::thread::sleep(Duration::from_millis(5));
        let current = acquire(&store, &key);

        let late = store
            .complete(&key, &stale, &response(1), Duration::from_secs(60))
            .await;

        assert_eq!(late.unwrap_err().kind(), StoreErrorKind::LeaseLost);
        store
            .complete(&key, &current, &response(2), Duration::from_secs(60))
            .await
            .unwrap();
        let replay = store.begin_now(&key, &fingerprint, Duration::from_secs(30));
        match replay {
            Begin::Completed(stored) => assert_eq!(stored.body().len(), 2),
            other => panic!("expected the current holder's response, got {other:?}"),
        }
    }
}
