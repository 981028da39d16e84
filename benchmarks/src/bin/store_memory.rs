//! Measures the memory of the moka store: bytes per stored entry, and peak memory and the
//! weighted size under a flood of unique keys.
//!
//! ```text
//! store_memory per-entry [--entries 100000] [--body-bytes 1024]
//! store_memory flood [--keys 1000000] [--max-capacity-bytes BYTES] [--body-bytes 1024]
//! ```
//!
//! Both modes store a `201` response with a JSON body of `--body-bytes` (1 KiB unless set) and
//! six headers under each key,
//! through the store API (`begin`, then `complete`) as an annotated handler does, and print
//! `name value` lines. Run each mode in a fresh process, because `VmHWM` is the peak of the
//! whole process.
//!
//! `per-entry` counts the bytes that the global allocator hands out (requested sizes, without
//! malloc's own headers) while entries go into a store whose bound is far above their total,
//! so nothing is evicted. It also reports the growth of `VmRSS`, which includes malloc's
//! headers and rounding.
//!
//! `flood` sends `--keys` distinct keys into `MokaStore::new()` (or a store with
//! `--max-capacity-bytes`), reads `weighted_bytes` after every 1,000 keys without forcing moka's
//! housekeeping, and reports the largest value seen next to the bound and the process's peak
//! resident memory.

use std::alloc::System;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::StatusCode;
use idempotent_benchmarks::{RESPONSE_BODY_LEN, header_bytes, json_body, response_headers};
use idempotent_runtime::fingerprint::store_key;
use idempotent_runtime::store::{
    Begin, DEFAULT_MAX_CAPACITY_BYTES, Fingerprint, IdempotencyStore, StoreKey,
};
use idempotent_runtime::{MokaStore, StoredResponse};
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

const LEASE: Duration = Duration::from_secs(30);
const TTL: Duration = Duration::from_secs(24 * 60 * 60);

/// A bound far above what `per-entry` stores, so that nothing is evicted while it counts.
const UNBOUNDED_BYTES: u64 = 1 << 40;

/// The smallest JSON body `json_body` can build: `{"lines":[],"pad":""}`.
const MIN_BODY_BYTES: u64 = 21;

const USAGE: &str = "usage: store_memory per-entry [--entries N] [--body-bytes N] | \
                     store_memory flood [--keys N] [--max-capacity-bytes BYTES] [--body-bytes N]";

/// One annotated request's worth of store traffic: a new key, then its response.
struct Inserter {
    store: MokaStore,
    body: Bytes,
    headers: http::HeaderMap,
    fingerprint: Fingerprint,
}

impl Inserter {
    fn new(store: MokaStore, body_bytes: usize) -> Self {
        Self {
            store,
            body: Bytes::from(json_body(body_bytes)),
            headers: response_headers(),
            fingerprint: Fingerprint([7; 32]),
        }
    }

    /// Stores a freshly encoded response under the key named `index`, as the runtime does
    /// for a request with a new key.
    async fn insert(&self, index: u64) {
        let key: StoreKey = store_key(None, &format!("memory-{index}"));
        let lease = match self.store.begin(&key, &self.fingerprint, LEASE).await {
            Ok(Begin::Acquired(lease)) => lease,
            other => panic!("expected key {index} to be new, got {other:?}"),
        };
        let stored = StoredResponse::encode(StatusCode::CREATED, &self.headers, &self.body);
        let result = self.store.complete(&key, &lease, &stored, TTL).await;
        assert!(
            result.is_ok(),
            "complete failed for key {index}: {result:?}"
        );
    }

    /// Counts the keys in `indexes` whose response a retry would replay. Keys that are gone
    /// are acquired by the check, as a retry would acquire them.
    async fn count_replayable(&self, indexes: std::ops::Range<u64>) -> u64 {
        let mut replayable = 0;
        for index in indexes {
            let key = store_key(None, &format!("memory-{index}"));
            let begin = self.store.begin(&key, &self.fingerprint, LEASE).await;
            if matches!(begin, Ok(Begin::Completed(_))) {
                replayable += 1;
            }
        }
        replayable
    }
}

/// How many of the newest and of the oldest keys `flood` checks for a stored response.
const PROBED_KEYS: u64 = 1000;

/// Net bytes held by the global allocator since `region` started.
fn net_allocated(region: &Region<'_, System>) -> i64 {
    let change = region.change();
    to_i64(change.bytes_allocated) - to_i64(change.bytes_deallocated)
        + i64::try_from(change.bytes_reallocated).unwrap_or(i64::MAX)
}

fn net_allocations(region: &Region<'_, System>) -> i64 {
    let change = region.change();
    to_i64(change.allocations) - to_i64(change.deallocations)
}

fn to_i64(value: usize) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// Reads a `kB` field such as `VmRSS` from `/proc/self/status`, in bytes.
fn proc_status_bytes(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|rest| {
            rest.trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<u64>()
                .ok()
        })
        .map_or(0, |kib| kib * 1024)
}

async fn per_entry(entries: u64, body_bytes: usize) {
    let store = MokaStore::builder()
        .max_capacity_bytes(UNBOUNDED_BYTES)
        .build();
    let inserter = Inserter::new(store.clone(), body_bytes);
    let sample = StoredResponse::encode(StatusCode::CREATED, &inserter.headers, &inserter.body);
    let content = inserter.body.len() + header_bytes(&inserter.headers);

    // Warm up the store's lazily grown parts (hash tables, write buffers) with keys that are
    // not counted. Then count two halves: the second half gives the marginal cost.
    let warm_up = entries / 10;
    for index in 0..warm_up {
        inserter.insert(u64::MAX - index).await;
    }
    store.run_pending_tasks();

    let rss_before = proc_status_bytes("VmRSS");
    let region = Region::new(GLOBAL);
    let half = entries / 2;
    for index in 0..half {
        inserter.insert(index).await;
    }
    store.run_pending_tasks();
    let first_half_bytes = net_allocated(&region);
    for index in half..entries {
        inserter.insert(index).await;
    }
    store.run_pending_tasks();
    let total_bytes = net_allocated(&region);
    let total_allocations = net_allocations(&region);
    let rss_after = proc_status_bytes("VmRSS");

    let stored_entries = store.entry_count() - warm_up;
    assert_eq!(stored_entries, entries, "entries kept by the store");
    let per_entry = total_bytes as f64 / entries as f64;
    let marginal = (total_bytes - first_half_bytes) as f64 / (entries - half) as f64;
    let weighted = store.weighted_bytes() as f64 / store.entry_count() as f64;
    let rss_per_entry = rss_after.saturating_sub(rss_before) as f64 / entries as f64;

    println!("entries {entries}");
    println!("body_bytes {}", inserter.body.len());
    println!("header_bytes {}", header_bytes(&inserter.headers));
    println!("stored_format_bytes {}", sample.as_bytes().len());
    println!("weigher_bytes_per_entry {weighted:.0}");
    println!("allocated_bytes_per_entry {per_entry:.1}");
    println!("allocated_bytes_per_entry_marginal {marginal:.1}");
    println!(
        "allocations_per_entry {:.2}",
        total_allocations as f64 / entries as f64
    );
    println!(
        "overhead_beyond_body_and_headers {:.1}",
        per_entry - content as f64
    );
    println!("rss_bytes_per_entry {rss_per_entry:.1}");
}

async fn flood(keys: u64, max_capacity_bytes: Option<u64>, body_bytes: usize) {
    let (store, bound) = match max_capacity_bytes {
        Some(bytes) => (
            MokaStore::builder().max_capacity_bytes(bytes).build(),
            bytes,
        ),
        None => (MokaStore::new(), DEFAULT_MAX_CAPACITY_BYTES),
    };
    let inserter = Inserter::new(store.clone(), body_bytes);
    let rss_start = proc_status_bytes("VmRSS");
    let start = Instant::now();

    let mut max_weighted = 0;
    let mut max_entries = 0;
    let mut samples_over_bound = 0_u64;
    for index in 0..keys {
        inserter.insert(index).await;
        if index % 1000 == 999 {
            let weighted = store.weighted_bytes();
            max_weighted = max_weighted.max(weighted);
            max_entries = max_entries.max(store.entry_count());
            if weighted > bound {
                samples_over_bound += 1;
            }
        }
    }
    let elapsed = start.elapsed();
    store.run_pending_tasks();
    let newest_replayable = inserter
        .count_replayable(keys.saturating_sub(PROBED_KEYS)..keys)
        .await;
    let oldest_replayable = inserter.count_replayable(0..PROBED_KEYS.min(keys)).await;

    println!("keys {keys}");
    println!("max_capacity_bytes {bound}");
    println!("max_weighted_bytes_seen {max_weighted}");
    println!("samples_over_bound {samples_over_bound}");
    println!("final_weighted_bytes {}", store.weighted_bytes());
    println!("final_entries {}", store.entry_count());
    println!("max_entries_seen {max_entries}");
    println!("newest_{PROBED_KEYS}_keys_replayable {newest_replayable}");
    println!("oldest_{PROBED_KEYS}_keys_replayable {oldest_replayable}");
    println!("rss_at_start_bytes {rss_start}");
    println!("rss_bytes {}", proc_status_bytes("VmRSS"));
    println!("peak_rss_bytes {}", proc_status_bytes("VmHWM"));
    println!("keys_per_second {:.0}", keys as f64 / elapsed.as_secs_f64());
}

fn parse_number(flag: &str, value: Option<String>) -> Result<u64, String> {
    let value = value.ok_or(format!("missing value after {flag}\n{USAGE}"))?;
    value
        .replace('_', "")
        .parse()
        .map_err(|_| format!("invalid {flag} {value:?}: expected a whole number"))
}

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let mode = args.next().unwrap_or_default();
    let mut entries = 100_000;
    let mut keys = 1_000_000;
    let mut max_capacity_bytes = None;
    let mut body_bytes = RESPONSE_BODY_LEN as u64;
    while let Some(flag) = args.next() {
        let parsed = match flag.as_str() {
            "--entries" => parse_number(&flag, args.next()).map(|n| entries = n),
            "--keys" => parse_number(&flag, args.next()).map(|n| keys = n),
            "--body-bytes" => parse_number(&flag, args.next()).map(|n| body_bytes = n),
            "--max-capacity-bytes" => {
                parse_number(&flag, args.next()).map(|n| max_capacity_bytes = Some(n))
            }
            other => Err(format!("unknown argument {other:?}\n{USAGE}")),
        };
        if let Err(message) = parsed {
            eprintln!("{message}");
            return ExitCode::FAILURE;
        }
    }

    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a Tokio runtime starts");
    match mode.as_str() {
        _ if body_bytes < MIN_BODY_BYTES => {
            eprintln!("invalid --body-bytes {body_bytes}: expected {MIN_BODY_BYTES} or more");
            return ExitCode::FAILURE;
        }
        "per-entry" if entries >= 2 => runtime.block_on(per_entry(entries, body_bytes as usize)),
        "per-entry" => {
            eprintln!("invalid --entries {entries}: expected 2 or more");
            return ExitCode::FAILURE;
        }
        "flood" => runtime.block_on(flood(keys, max_capacity_bytes, body_bytes as usize)),
        _ => {
            eprintln!("{USAGE}");
            return ExitCode::FAILURE;
        }
    }
    ExitCode::SUCCESS
}
