//! Criterion benchmarks of the steps an annotated handler takes per request: key validation,
//! fingerprinting, the stored-response format and the store calls.
//!
//! ```text
//! cargo bench -p idempotent-benchmarks --bench units
//! cargo bench -p idempotent-benchmarks --features redis --bench units   # also Redis
//! ```
//!
//! The Redis group needs a Redis server on 127.0.0.1:6379 (`REDIS_URL` overrides it) and is
//! skipped with a message when none accepts a connection. Its records live under a prefix
//! unique to the run and expire by themselves: in-flight records after the 30 s lease,
//! completed ones after 60 s.

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use http::{HeaderMap, Method, Uri};
use idempotent_benchmarks::{RESPONSE_BODY_LEN, UUID_KEY, json_body, stored_response};
use idempotent_runtime::__private::{BodyFingerprint, FingerprintConfig};
use idempotent_runtime::fingerprint::{fingerprint, store_key};
use idempotent_runtime::store::{Begin, Fingerprint, IdempotencyStore, Lease, StoreKey};
use idempotent_runtime::{IdempotencyKey, MokaStore, StoredResponse};

const LEASE: Duration = Duration::from_secs(30);
const TTL: Duration = Duration::from_secs(60);

/// The maximum number of keys the `complete` benchmark keeps in flight at once.
const COMPLETE_CHUNK: u64 = 1000;

fn key_validation(c: &mut Criterion) {
    let mut group = c.benchmark_group("key");
    let bare = UUID_KEY.as_bytes().to_vec();
    let quoted = format!("\"{UUID_KEY}\"").into_bytes();

    group.bench_function("parse_bare", |b| {
        b.iter(|| IdempotencyKey::parse(black_box(&bare)));
    });
    group.bench_function("parse_quoted", |b| {
        b.iter(|| IdempotencyKey::parse(black_box(&quoted)));
    });
    group.bench_function("store_key", |b| {
        b.iter(|| store_key(black_box(None), black_box(UUID_KEY)));
    });
    group.finish();
}

fn fingerprinting(c: &mut Criterion) {
    let uri: Uri = "/orders?source=bench".parse().expect("valid URI");
    let headers = HeaderMap::new();
    let modes = [
        ("bytes", BodyFingerprint::Bytes),
        ("json", BodyFingerprint::Json),
    ];

    for (mode_name, mode) in modes {
        let config = FingerprintConfig {
            body: mode,
            ..FingerprintConfig::DEFAULT
        };
        let mut group = c.benchmark_group(format!("fingerprint_{mode_name}"));
        for kib in [1, 4, 16, 64] {
            let body = json_body(kib * 1024);
            group.throughput(Throughput::Bytes(body.len() as u64));
            group.bench_function(format!("{kib}KiB"), |b| {
                b.iter(|| {
                    let body = black_box(&body);
                    fingerprint(&config, "create_order", &Method::POST, &uri, &headers, body)
                });
            });
        }
        group.finish();
    }
}

fn stored_format(c: &mut Criterion) {
    let mut group = c.benchmark_group("stored_response");
    let headers = idempotent_benchmarks::response_headers();
    let body = json_body(RESPONSE_BODY_LEN);
    let stored = stored_response(RESPONSE_BODY_LEN);
    let bytes = stored.as_bytes().clone();

    group.bench_function("encode", |b| {
        b.iter(|| StoredResponse::encode(http::StatusCode::CREATED, black_box(&headers), &body));
    });
    group.bench_function("from_bytes", |b| {
        b.iter(|| StoredResponse::from_bytes(black_box(bytes.clone())));
    });
    group.bench_function("to_response", |b| {
        b.iter(|| black_box(&stored).to_response());
    });
    group.finish();
}

/// Returns a store key that no earlier call returned in this process.
fn fresh_key() -> StoreKey {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let id = NEXT.fetch_add(1, Ordering::Relaxed);
    let mut key = [0; 32];
    key[..8].copy_from_slice(&id.to_le_bytes());
    key[8..16].copy_from_slice(&std::process::id().to_le_bytes().repeat(2));
    StoreKey(key)
}

/// Benchmarks `begin` on new keys, `complete` and `begin` on a completed key (a replay) for one
/// store. `runtime` polls the store's futures.
fn store_calls<S: IdempotencyStore>(
    c: &mut Criterion,
    name: &str,
    store: &S,
    runtime: &tokio::runtime::Runtime,
) {
    let mut group = c.benchmark_group(format!("store_{name}"));
    let fingerprint = Fingerprint([7; 32]);
    let response = stored_response(RESPONSE_BODY_LEN);

    group.bench_function("begin_new_key", |b| {
        b.to_async(runtime).iter(|| async {
            let key = fresh_key();
            let begin = store.begin(&key, &fingerprint, LEASE).await;
            assert!(matches!(begin, Ok(Begin::Acquired(_))), "{begin:?}");
        });
    });

    // Each sample acquires keys in chunks and times only the `complete` calls. A call whose
    // lease expired or was evicted first returns `LeaseLost`: such calls are timed as well, and
    // counted.
    let lost = AtomicU64::new(0);
    group.bench_function("complete", |b| {
        let (fingerprint, response, lost) = (&fingerprint, &response, &lost);
        b.to_async(runtime).iter_custom(|iters| async move {
            let mut elapsed = Duration::ZERO;
            let mut remaining = iters;
            while remaining > 0 {
                let chunk = remaining.min(COMPLETE_CHUNK);
                remaining -= chunk;
                let mut acquired = Vec::with_capacity(COMPLETE_CHUNK as usize);
                for _ in 0..chunk {
                    let key = fresh_key();
                    acquired.push((key, acquire(store, &key, fingerprint).await));
                }
                let start = Instant::now();
                for (key, lease) in &acquired {
                    if store.complete(key, lease, response, TTL).await.is_err() {
                        lost.fetch_add(1, Ordering::Relaxed);
                    }
                }
                elapsed += start.elapsed();
            }
            elapsed
        });
    });
    let lost = lost.load(Ordering::Relaxed);
    if lost > 0 {
        eprintln!("store_{name}/complete: {lost} calls failed because the key was evicted");
    }

    let replayed = fresh_key();
    runtime.block_on(async {
        let lease = acquire(store, &replayed, &fingerprint).await;
        let result = store.complete(&replayed, &lease, &response, TTL).await;
        assert!(result.is_ok(), "{result:?}");
    });
    group.bench_function("begin_replay", |b| {
        b.to_async(runtime).iter(|| async {
            let begin = store.begin(&replayed, &fingerprint, LEASE).await;
            assert!(matches!(begin, Ok(Begin::Completed(_))), "{begin:?}");
        });
    });
    group.finish();
}

async fn acquire<S: IdempotencyStore>(
    store: &S,
    key: &StoreKey,
    fingerprint: &Fingerprint,
) -> Lease {
    match store.begin(key, fingerprint, LEASE).await {
        Ok(Begin::Acquired(lease)) => lease,
        other => panic!("expected a new key to be acquired, got {other:?}"),
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a Tokio runtime starts")
}

fn moka_store(c: &mut Criterion) {
    let runtime = runtime();
    let store = MokaStore::new();
    store_calls(c, "moka", &store, &runtime);
}

#[cfg(feature = "redis")]
fn redis_store(c: &mut Criterion) {
    use idempotent_runtime::store::RedisStore;

    let runtime = runtime();
    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());
    let prefix = format!(
        "idempotent-bench-{}-{}:",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.as_millis())
    );
    let store = runtime.block_on(RedisStore::builder(url.as_str()).prefix(prefix).build());
    match store {
        Ok(store) => store_calls(c, "redis", &store, &runtime),
        Err(error) => eprintln!("skipping the Redis benchmarks: no Redis at {url}: {error}"),
    }
}

#[cfg(not(feature = "redis"))]
fn redis_store(_: &mut Criterion) {}

criterion_group!(
    benches,
    key_validation,
    fingerprinting,
    stored_format,
    moka_store,
    redis_store
);
criterion_main!(benches);
