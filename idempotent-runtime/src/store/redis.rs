//! The Redis store, for several server instances that share one key space.
//!
//! [`RedisStore`] documents the record format, the concurrency guarantees and the failure
//! behaviour.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use bytes::Bytes;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{FromRedisValue, RedisError, Script, ScriptInvocation, Value};

use super::{
    Begin, BoxFuture, Fingerprint, IdempotencyStore, Lease, StoreError, StoreErrorKind, StoreKey,
};
use crate::response::StoredResponse;

const TARGET: &str = "idempotent";

/// The bytes before the stored response in a completed record: the tag and the fingerprint.
/// The Lua scripts hard-code the same offsets.
const COMPLETED_HEADER_LEN: usize = 1 + 32;

/// The maximum expiry sent to Redis, in milliseconds. Redis rejects an expiry whose absolute
/// time overflows a signed 64-bit millisecond count, and 2^62 ms stays far below that.
const MAX_EXPIRY_MILLIS: u64 = 1 << 62;

/// The Lua function `holds(record, token)`, which returns whether `record` is an in-flight
/// record (tag `I`, 49 bytes) with the lease token `token`. A missing key reads as `false`.
const LUA_HOLDS: &str = r"
local function holds(record, token)
  return record and #record == 49 and string.sub(record, 1, 1) == 'I'
    and string.sub(record, 34, 49) == token
end
";

// KEYS[1]: record key. ARGV[1]: fingerprint, ARGV[2]: new lease token, ARGV[3]: lease in ms.
// Returns {0} acquired, {1, pttl} in flight, {2, record} completed, {3} mismatch, or
// {4, length} for a record in no known format. An in-flight record with the caller's own
// token counts as acquired, so that a begin resent after a lost reply still acquires.
const LUA_BEGIN: &str = r"
local record = redis.call('GET', KEYS[1])
if not record then
  redis.call('SET', KEYS[1], 'I' .. ARGV[1] .. ARGV[2], 'PX', ARGV[3])
  return {0}
end
local tag = string.sub(record, 1, 1)
local known = (tag == 'I' and #record == 49) or (tag == 'C' and #record > 33)
if not known then
  return {4, #record}
end
if string.sub(record, 2, 33) ~= ARGV[1] then
  return {3}
end
if tag == 'I' then
  if string.sub(record, 34, 49) == ARGV[2] then
    return {0}
  end
  return {1, redis.call('PTTL', KEYS[1])}
end
return {2, record}
";

// KEYS[1]: record key. ARGV[1]: lease token, ARGV[2]: stored response, ARGV[3]: ttl in ms.
// Returns 1 when the lease held the key and the completed record replaced it, else 0. A
// completed record that already contains exactly this response also returns 1, so that a
// complete resent after a lost reply does not report a lost lease.
const LUA_COMPLETE: &str = r"
local record = redis.call('GET', KEYS[1])
if record and string.sub(record, 1, 1) == 'C' and string.sub(record, 34) == ARGV[2] then
  return 1
end
if not holds(record, ARGV[1]) then
  return 0
end
redis.call('SET', KEYS[1], 'C' .. string.sub(record, 2, 33) .. ARGV[2], 'PX', ARGV[3])
return 1
";

// KEYS[1]: record key. ARGV[1]: lease token. Returns 1 when the lease held the key and the
// record was deleted, else 0.
const LUA_RELEASE: &str = r"
if not holds(redis.call('GET', KEYS[1]), ARGV[1]) then
  return 0
end
redis.call('DEL', KEYS[1])
return 1
";

// KEYS[1]: record key. ARGV[1]: lease token, ARGV[2]: lease in ms. Returns 1 when the lease
// held the key and its expiry was reset, else 0.
const LUA_RENEW: &str = r"
if not holds(redis.call('GET', KEYS[1]), ARGV[1]) then
  return 0
end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
";

const BEGIN_ACQUIRED: i64 = 0;
const BEGIN_IN_FLIGHT: i64 = 1;
const BEGIN_COMPLETED: i64 = 2;
const BEGIN_MISMATCH: i64 = 3;
const BEGIN_UNKNOWN_FORMAT: i64 = 4;

struct Scripts {
    begin: Script,
    complete: Script,
    release: Script,
    renew: Script,
}

impl Scripts {
    fn all(&self) -> [&Script; 4] {
        [&self.begin, &self.complete, &self.release, &self.renew]
    }
}

static SCRIPTS: LazyLock<Scripts> = LazyLock::new(|| Scripts {
    begin: Script::new(LUA_BEGIN),
    complete: Script::new(&format!("{LUA_HOLDS}{LUA_COMPLETE}")),
    release: Script::new(&format!("{LUA_HOLDS}{LUA_RELEASE}")),
    renew: Script::new(&format!("{LUA_HOLDS}{LUA_RENEW}")),
});

/// The Redis store: keys, leases and stored responses shared by every process that uses the
/// same Redis server and prefix. Clones share one connection.
///
/// ```no_run
/// use std::time::Duration;
///
/// use idempotent_runtime::IdempotencyLayer;
/// use idempotent_runtime::store::{RedisStore, StoreError};
///
/// # async fn example() -> Result<(), StoreError> {
/// let store = RedisStore::builder("redis://127.0.0.1:6379/0")
///     .prefix("payments:")
///     .timeout(Duration::from_millis(500))
///     .build()
///     .await?;
/// let layer = IdempotencyLayer::new(store);
/// # Ok(())
/// # }
/// ```
///
/// # Concurrency guarantees
///
/// Every operation is one Lua script that reads and writes one key, and Redis runs each script
/// atomically. So for one [`StoreKey`], `begin` returns [`Begin::Acquired`] to exactly one
/// caller among all processes that use the same Redis server and prefix, until that lease is
/// released or expires. `complete`, `release` and `renew` compare the lease token inside their
/// script, so a holder whose lease expired and was taken over cannot touch the new holder's
/// record.
///
/// These guarantees end where Redis's own end:
///
/// - Leases expire on the Redis server's clock (`PX`). A handler that runs longer than its lease
///   without renewal loses the key, which the runtime prevents by renewing every third of the
///   lock timeout.
/// - Redis replicates asynchronously. After a failover to a replica, writes that the old primary
///   acknowledged can be missing, so a key acquired or completed just before can be acquired
///   again and its handler runs a second time. The same holds for a restart without
///   persistence, which loses every key.
/// - A call that times out on the client can still have run on the server. A `begin` that
///   timed out can leave an in-flight record whose lease no caller has, so retries find the key
///   in flight until its lease expires. A `complete` that timed out can have stored the
///   response.
///
/// # Record format
///
/// Each key is one Redis string named `{prefix}{key}`, where `key` is the 64 lowercase hex
/// digits of the [`StoreKey`]. That key is a SHA-256 hash, so bytes chosen by clients never
/// reach key names. The prefix defaults to [`RedisStore::DEFAULT_PREFIX`].
///
/// | state | value | expiry |
/// | --- | --- | --- |
/// | in flight | `I`, fingerprint (32 bytes), lease token (16 bytes): 49 bytes | `PX` = lease duration, reset by `renew` |
/// | completed | `C`, fingerprint (32 bytes), the [`StoredResponse`] encoding | `PX` = ttl |
///
/// An in-flight record whose lease expired is gone, so the next `begin` acquires the key.
/// Values are binary: `redis-cli` shows them with escapes. Durations are rounded up to whole
/// milliseconds. A value that matches neither row, or a completed record whose response does
/// not decode, makes `begin` fail with [`StoreErrorKind::Corrupt`] and is logged at error
/// level. The record stays in place until it expires, because it can come from a newer version
/// of this crate during a rolling upgrade, and deleting it would run the handler again.
///
/// # Failure behaviour
///
/// Every call has a timeout, [`RedisStore::DEFAULT_TIMEOUT`] unless
/// [`RedisStoreBuilder::timeout`] sets another. A call that gets no reply within it fails with
/// [`StoreErrorKind::Timeout`], and any error from Redis or the connection fails it with
/// [`StoreErrorKind::Unavailable`]. By default the store fails closed: the runtime responds
/// with `503` and the handler does not run. With
/// [`RedisStoreBuilder::fail_open`] the runtime runs the handler without idempotency instead,
/// so a retry during the outage can run it twice.
///
/// The store uses one multiplexed connection through redis-rs's `ConnectionManager`.
/// [`RedisStoreBuilder::build`] connects and fails when Redis cannot be reached, so a service
/// does not start against a wrong URL unnoticed. The caller decides whether to retry. When
/// the connection drops later, the call that finds it broken fails and starts one reconnection
/// attempt in the background. Calls meanwhile wait for that attempt, within their timeout, and
/// fail when it fails. A refused connection therefore fails calls at once rather than after the
/// timeout. A call that fails on a broken connection is sent once more, which reconnects, so
/// the first call after Redis is back succeeds and the same store works without a restart.
///
/// # Eviction
///
/// A key that Redis evicts before its ttl is gone, so a retry with it runs the handler again.
/// [`RedisStoreBuilder::build`] reads `maxmemory-policy` and `maxmemory` and logs a warning when
/// the server can evict these keys: every `allkeys-*` policy, and every `volatile-*` policy
/// because all of these keys carry a ttl. Use `noeviction` instead. Under it, a full Redis
/// (tested with 7.0) rejects the writes of new keys and completions with an `OOM` error, which
/// fails those calls as unavailable, while replays, renewals and releases still work. Managed
/// services that forbid `CONFIG GET` get an info event instead of the check.
///
/// # What is not supported
///
/// - Redis Cluster: every operation touches one key, so the scripts would work with a cluster
///   client, but this store uses a single-node connection. A cluster node rejects commands
///   on keys of other slots with a `MOVED` error, which fails the call as unavailable.
/// - Sentinel discovery: point the URL at the primary or at a proxy that follows failovers.
/// - `rediss://` URLs, unless a TLS feature of the `redis` crate is enabled:
///   `tokio-native-tls-comp` (OpenSSL on Linux) or `tokio-rustls-comp` (rustls 0.23, which also
///   needs a crypto provider such as its `ring` feature). This crate enables neither. An
///   application can enable one on its own `redis` dependency of the same version, and Cargo
///   unifies the features. Without one, `build` fails with "can't connect with TLS, the feature
///   is not enabled".
#[derive(Clone)]
pub struct RedisStore {
    connection: ConnectionManager,
    prefix: Arc<str>,
    address: Arc<str>,
    timeout: Duration,
    fail_open: bool,
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStore")
            .field("address", &self.address)
            .field("prefix", &self.prefix)
            .field("timeout", &self.timeout)
            .field("fail_open", &self.fail_open)
            .finish_non_exhaustive()
    }
}

impl RedisStore {
    /// The prefix of every key name unless [`RedisStoreBuilder::prefix`] sets another.
    pub const DEFAULT_PREFIX: &str = "idempotent:";

    /// The maximum time of one call unless [`RedisStoreBuilder::timeout`] sets another.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);

    /// Starts configuring a store for the Redis server at `url`.
    ///
    /// The URL has the form `redis://[[user]:password@]host[:port][/database]`. See
    /// [`RedisStore`] for `rediss://`.
    pub fn builder(url: impl Into<String>) -> RedisStoreBuilder {
        RedisStoreBuilder {
            url: url.into(),
            prefix: Self::DEFAULT_PREFIX.to_owned(),
            timeout: Self::DEFAULT_TIMEOUT,
            fail_open: false,
        }
    }

    /// Connects to the Redis server at `url` with the default settings.
    ///
    /// # Errors
    ///
    /// As [`RedisStoreBuilder::build`].
    pub async fn connect(url: impl Into<String>) -> Result<Self, StoreError> {
        Self::builder(url).build().await
    }

    /// Returns the prefix of every key name.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Returns the name of the Redis key that contains the record of `key`.
    fn key_name(&self, key: &StoreKey) -> String {
        format!("{}{}", self.prefix, key.to_hex())
    }

    /// Runs one script invocation within the store's timeout. An invocation that fails on a
    /// broken connection is sent once more, because the connection manager reconnects only
    /// after such a failure: without the second attempt, the first call after Redis comes back
    /// would fail. Every script is safe to resend: `begin` with the same lease token acquires
    /// again, and the lease scripts check the token.
    async fn call<T: FromRedisValue>(
        &self,
        invocation: &ScriptInvocation<'_>,
    ) -> Result<T, StoreError> {
        let attempts = async {
            let mut connection = self.connection.clone();
            match invocation.invoke_async(&mut connection).await {
                Err(error) if is_connection_error(&error) => {
                    tracing::debug!(target: TARGET, %error, "Redis connection failed, sending the call once more");
                    invocation.invoke_async(&mut connection).await
                }
                result => result,
            }
        };
        with_timeout(self.timeout, attempts).await
    }

    /// Runs a lease script (complete, release or renew) and returns whether the lease held
    /// the key.
    async fn run_lease_script(
        &self,
        script: &Script,
        key: &StoreKey,
        lease: &Lease,
        extra_args: &[&[u8]],
    ) -> Result<bool, StoreError> {
        let mut invocation = script.prepare_invoke();
        invocation.key(self.key_name(key)).arg(&lease.token()[..]);
        for arg in extra_args {
            invocation.arg(*arg);
        }
        let lease_matched: i64 = self.call(&invocation).await?;
        Ok(lease_matched == 1)
    }
}

impl IdempotencyStore for RedisStore {
    fn begin<'a>(
        &'a self,
        key: &'a StoreKey,
        fingerprint: &'a Fingerprint,
        lease_duration: Duration,
    ) -> BoxFuture<'a, Result<Begin, StoreError>> {
        Box::pin(async move {
            let lease = Lease::new();
            let mut invocation = SCRIPTS.begin.prepare_invoke();
            invocation
                .key(self.key_name(key))
                .arg(&fingerprint.0[..])
                .arg(&lease.token()[..])
                .arg(expiry_millis(lease_duration));
            let reply: Value = self.call(&invocation).await?;
            decode_begin(reply, key, lease)
        })
    }

    fn complete<'a>(
        &'a self,
        key: &'a StoreKey,
        lease: &'a Lease,
        response: &'a StoredResponse,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let ttl = expiry_millis(ttl).to_string();
            let args: [&[u8]; 2] = [&response.as_bytes()[..], ttl.as_bytes()];
            let lease_held = self
                .run_lease_script(&SCRIPTS.complete, key, lease, &args)
                .await?;
            if lease_held {
                Ok(())
            } else {
                Err(StoreError::new(StoreErrorKind::LeaseLost))
            }
        })
    }

    fn release<'a>(
        &'a self,
        key: &'a StoreKey,
        lease: &'a Lease,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let lease_held = self
                .run_lease_script(&SCRIPTS.release, key, lease, &[])
                .await?;
            if !lease_held {
                tracing::debug!(target: TARGET, key = %key.short(), "lease was already lost, so nothing was released");
            }
            Ok(())
        })
    }

    fn renew<'a>(
        &'a self,
        key: &'a StoreKey,
        lease: &'a Lease,
        lease_duration: Duration,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let lease_millis = expiry_millis(lease_duration).to_string();
            let args: [&[u8]; 1] = [lease_millis.as_bytes()];
            let lease_held = self
                .run_lease_script(&SCRIPTS.renew, key, lease, &args)
                .await?;
            if lease_held {
                Ok(())
            } else {
                Err(StoreError::new(StoreErrorKind::LeaseLost))
            }
        })
    }

    fn fail_open(&self) -> bool {
        self.fail_open
    }
}

/// Turns the reply of the begin script into a [`Begin`], with `lease` as the lease sent to it.
fn decode_begin(reply: Value, key: &StoreKey, lease: Lease) -> Result<Begin, StoreError> {
    let Value::Array(items) = reply else {
        return Err(unexpected_reply("begin", &reply));
    };
    let mut items = items.into_iter();
    let (code, detail) = (items.next(), items.next());
    match (code, detail) {
        (Some(Value::Int(BEGIN_ACQUIRED)), None) => Ok(Begin::Acquired(lease)),
        (Some(Value::Int(BEGIN_IN_FLIGHT)), Some(Value::Int(pttl))) => Ok(Begin::InFlight {
            // PTTL is negative only for a key without expiry or a missing key, and the script
            // reads it from an in-flight record, which always has an expiry.
            retry_after: Duration::from_millis(u64::try_from(pttl).unwrap_or(0)),
        }),
        (Some(Value::Int(BEGIN_COMPLETED)), Some(Value::BulkString(record))) => {
            decode_completed(&Bytes::from(record), key).map(Begin::Completed)
        }
        (Some(Value::Int(BEGIN_MISMATCH)), None) => Ok(Begin::Mismatch),
        (Some(Value::Int(BEGIN_UNKNOWN_FORMAT)), Some(Value::Int(length))) => {
            let error = StoreError::with_source(
                StoreErrorKind::Corrupt,
                format!("Redis record of {length} bytes is in no known format"),
            );
            log_corrupt(key, &error);
            Err(error)
        }
        (code, detail) => {
            let reply = Value::Array(code.into_iter().chain(detail).collect());
            Err(unexpected_reply("begin", &reply))
        }
    }
}

/// Decodes the stored response of a completed record.
fn decode_completed(record: &Bytes, key: &StoreKey) -> Result<StoredResponse, StoreError> {
    let result = if record.len() > COMPLETED_HEADER_LEN {
        StoredResponse::from_bytes(record.slice(COMPLETED_HEADER_LEN..))
    } else {
        Err(StoreError::with_source(
            StoreErrorKind::Corrupt,
            format!("completed Redis record of {} bytes", record.len()),
        ))
    };
    result.inspect_err(|error| log_corrupt(key, error))
}

fn log_corrupt(key: &StoreKey, error: &StoreError) {
    tracing::error!(
        target: TARGET,
        key = %key.short(),
        %error,
        "corrupt idempotency record in Redis, so requests with this key fail until the \
         record expires or is deleted"
    );
}

fn unexpected_reply(script: &str, reply: &Value) -> StoreError {
    StoreError::with_source(
        StoreErrorKind::Unavailable,
        format!("unexpected reply from the {script} script: {reply:?}"),
    )
}

/// Converts a duration to milliseconds for `PX` and `PEXPIRE`, rounded up and clamped to
/// 1..=2^62, because Redis rejects an expiry of 0.
fn expiry_millis(duration: Duration) -> u64 {
    let millis = u64::try_from(duration.as_nanos().div_ceil(1_000_000)).unwrap_or(u64::MAX);
    millis.clamp(1, MAX_EXPIRY_MILLIS)
}

/// Runs `future` for at most `timeout` and maps its failure to a [`StoreError`].
async fn with_timeout<T>(
    timeout: Duration,
    future: impl Future<Output = Result<T, RedisError>>,
) -> Result<T, StoreError> {
    match tokio::time::timeout(timeout, future).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(error)) => Err(redis_error(error)),
        Err(_) => Err(StoreError::with_source(
            StoreErrorKind::Timeout,
            format!("no reply from Redis within {timeout:?}"),
        )),
    }
}

/// Returns whether `error` comes from the connection rather than from Redis executing the call.
fn is_connection_error(error: &RedisError) -> bool {
    error.is_connection_dropped() || error.is_connection_refusal() || error.is_io_error()
}

fn redis_error(error: RedisError) -> StoreError {
    // The connection's own response timeout, set to the store's timeout, reports an I/O
    // timeout that can win the race against `tokio::time::timeout`.
    let kind = if error.is_timeout() {
        StoreErrorKind::Timeout
    } else {
        StoreErrorKind::Unavailable
    };
    StoreError::with_source(kind, error)
}

/// Adds what the store was doing, and with which server, to an error's cause.
fn with_context(error: &StoreError, context: &str) -> StoreError {
    let cause = match std::error::Error::source(error) {
        Some(source) => format!("{context}: {source}"),
        None => context.to_owned(),
    };
    StoreError::with_source(error.kind(), cause)
}

/// Configures a [`RedisStore`].
#[derive(Clone)]
pub struct RedisStoreBuilder {
    url: String,
    prefix: String,
    timeout: Duration,
    fail_open: bool,
}

impl fmt::Debug for RedisStoreBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The URL can contain a password, so it is left out.
        f.debug_struct("RedisStoreBuilder")
            .field("prefix", &self.prefix)
            .field("timeout", &self.timeout)
            .field("fail_open", &self.fail_open)
            .finish_non_exhaustive()
    }
}

impl RedisStoreBuilder {
    /// Sets the prefix of every key name, [`RedisStore::DEFAULT_PREFIX`] by default.
    ///
    /// Services that share a Redis server but not their keys need different prefixes.
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// Sets the maximum time that one call to Redis may take, [`RedisStore::DEFAULT_TIMEOUT`]
    /// by default.
    ///
    /// A call that takes longer fails with [`StoreErrorKind::Timeout`]. The same limit applies
    /// to each step of [`build`](Self::build).
    ///
    /// # Panics
    ///
    /// Panics when `timeout` is zero.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        assert!(
            !timeout.is_zero(),
            "RedisStore timeout must be greater than zero"
        );
        self.timeout = timeout;
        self
    }

    /// Sets whether requests run without idempotency when Redis fails, `false` by default.
    ///
    /// With `false` the store fails closed and the runtime responds with `503`. With `true` the
    /// handler runs, so a retry during the outage can run it twice.
    pub fn fail_open(mut self, fail_open: bool) -> Self {
        self.fail_open = fail_open;
        self
    }

    /// Connects to Redis, checks its eviction policy and loads the Lua scripts.
    ///
    /// Connecting, reading the policy and loading the scripts each get the timeout, so the
    /// build takes at most about three times the timeout. A failed policy read is logged and
    /// does not fail the build.
    ///
    /// # Errors
    ///
    /// [`StoreErrorKind::Unavailable`] when the URL is invalid, needs a TLS feature that is not
    /// enabled, or the server refuses the connection or the scripts.
    /// [`StoreErrorKind::Timeout`] when the server does not reply within the timeout.
    pub async fn build(self) -> Result<RedisStore, StoreError> {
        let Self {
            url,
            prefix,
            timeout,
            fail_open,
        } = self;

        let client = open_client(&url)?;
        let address = client.get_connection_info().addr().to_string();
        // One connection attempt per reconnection, so that calls during an outage fail at
        // once instead of waiting for a retry schedule that outlasts their timeout.
        // NOTE: redis-rs 1.8 reconnects after errors that mean a dropped connection, not after
        // response timeouts, and no TCP keepalive is set. A connection that dies without a
        // reset (a host gone from the network) times every call out until the OS closes it.
        let config = ConnectionManagerConfig::new()
            .set_number_of_retries(0)
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout));
        let mut connection =
            with_timeout(timeout, ConnectionManager::new_with_config(client, config))
                .await
                .map_err(|error| {
                    with_context(&error, &format!("could not connect to Redis at {address}"))
                })?;

        check_eviction_policy(&mut connection, &address, timeout).await;
        load_scripts(&mut connection, timeout)
            .await
            .map_err(|error| {
                with_context(
                    &error,
                    &format!("could not load the Lua scripts into Redis at {address}"),
                )
            })?;

        tracing::info!(target: TARGET, %address, %prefix, "Redis idempotency store connected");
        Ok(RedisStore {
            connection,
            prefix: prefix.into(),
            address: address.into(),
            timeout,
            fail_open,
        })
    }
}

/// Creates a client for `url` with `TCP_NODELAY` set.
///
/// redis-rs 1.8 leaves Nagle's algorithm on, which holds back small writes while earlier ones
/// are unacknowledged, and so delays concurrent calls on the one multiplexed connection. With
/// 32 tasks against Redis 7.0 on localhost (2 cores, release build), the store made about
/// 30,000 calls/s without `TCP_NODELAY` and 40,000 to 50,000 with it.
fn open_client(url: &str) -> Result<redis::Client, StoreError> {
    let invalid_url = |error| {
        with_context(
            &redis_error(error),
            "could not use the Redis URL of the idempotency store",
        )
    };
    let info = redis::IntoConnectionInfo::into_connection_info(url).map_err(invalid_url)?;
    let tcp_settings = info.tcp_settings().clone().set_nodelay(true);
    redis::Client::open(info.set_tcp_settings(tcp_settings)).map_err(invalid_url)
}

/// Loads every script with `SCRIPT LOAD`, so that calls need one `EVALSHA` round trip and a
/// server that forbids scripting fails the build rather than the first request.
async fn load_scripts(
    connection: &mut ConnectionManager,
    timeout: Duration,
) -> Result<(), StoreError> {
    with_timeout(timeout, async {
        for script in SCRIPTS.all() {
            script.load_async(connection).await?;
        }
        Ok(())
    })
    .await
}

/// Configuration parameters and their values, as `CONFIG GET` returns them.
type ConfigValues = HashMap<String, String>;

/// Logs a warning when the server's eviction policy can delete keys before their ttl.
async fn check_eviction_policy(
    connection: &mut ConnectionManager,
    address: &str,
    timeout: Duration,
) {
    // Two commands, because `CONFIG GET` takes several parameters only since Redis 7.
    let mut pipeline = redis::pipe();
    pipeline
        .cmd("CONFIG")
        .arg("GET")
        .arg("maxmemory-policy")
        .cmd("CONFIG")
        .arg("GET")
        .arg("maxmemory");
    let reply: Result<(ConfigValues, ConfigValues), StoreError> =
        with_timeout(timeout, pipeline.query_async(connection)).await;
    let (policies, limits) = match reply {
        Ok(reply) => reply,
        Err(error) => {
            tracing::info!(
                target: TARGET,
                %address,
                %error,
                "could not read maxmemory-policy, which some managed Redis services forbid. \
                 If the server evicts keys, a retry whose key was evicted runs the handler again"
            );
            return;
        }
    };

    let Some(policy) = policies.get("maxmemory-policy") else {
        tracing::info!(target: TARGET, %address, "Redis returned no maxmemory-policy, so eviction was not checked");
        return;
    };
    if !policy_can_evict(policy) {
        return;
    }
    let maxmemory = limits.get("maxmemory").map_or("unknown", String::as_str);
    match maxmemory {
        // Redis on 64-bit systems evicts nothing while maxmemory is 0 (no limit).
        "0" => tracing::info!(
            target: TARGET,
            %address,
            %policy,
            "Redis maxmemory is 0, so nothing is evicted now. If a maxmemory is set later, \
             this policy can evict idempotency keys and their retries run the handler again"
        ),
        _ => tracing::warn!(
            target: TARGET,
            %address,
            %policy,
            %maxmemory,
            "Redis can evict idempotency keys before their ttl when memory reaches maxmemory, \
             and a retry whose key was evicted runs the handler again. Set maxmemory-policy \
             to noeviction, or use a Redis server of its own for these keys"
        ),
    }
}

/// Returns whether keys with a ttl can be evicted under `policy`: every policy except
/// `noeviction`, because the `volatile-*` policies evict exactly the keys that have a ttl.
fn policy_can_evict(policy: &str) -> bool {
    policy != "noeviction"
}

#[cfg(test)]
mod tests {
    use std::net::{SocketAddr, TcpListener, TcpStream};
    use std::process::{Child, Command, Stdio};
    use std::time::Instant;

    use http::{HeaderMap, HeaderValue, StatusCode};

    use super::*;

    /// The environment variable that overrides the Redis URL of these tests.
    const URL_VARIABLE: &str = "IDEMPOTENT_REDIS_URL";
    /// Database 15 keeps test keys away from applications on database 0.
    const DEFAULT_URL: &str = "redis://127.0.0.1:6379/15";
    const LEASE: Duration = Duration::from_secs(10);
    const TTL: Duration = Duration::from_secs(60);

    fn test_url() -> String {
        std::env::var(URL_VARIABLE).unwrap_or_else(|_| DEFAULT_URL.to_owned())
    }

    /// Connects to the test Redis with a prefix of its own, so that tests do not share keys.
    async fn test_store() -> RedisStore {
        let prefix = format!("idempotent-test:{:016x}:", rand::random::<u64>());
        RedisStore::builder(test_url())
            .prefix(prefix)
            .build()
            .await
            .unwrap_or_else(|error| {
                panic!(
                    "could not connect to the Redis server of the RedisStore tests: {error}. \
                     Start redis-server on 127.0.0.1:6379, or set {URL_VARIABLE} to the URL \
                     of a running server (default {DEFAULT_URL})."
                )
            })
    }

    fn random_key() -> StoreKey {
        StoreKey(rand::random())
    }

    fn fingerprint(byte: u8) -> Fingerprint {
        Fingerprint([byte; 32])
    }

    fn small_response() -> StoredResponse {
        StoredResponse::encode(StatusCode::CREATED, &HeaderMap::new(), b"created")
    }

    async fn acquire(store: &RedisStore, key: &StoreKey, lease_duration: Duration) -> Lease {
        match store.begin(key, &fingerprint(1), lease_duration).await {
            Ok(Begin::Acquired(lease)) => lease,
            other => panic!("expected a new key to be acquired, got {other:?}"),
        }
    }

    async fn raw_record(store: &RedisStore, key: &StoreKey) -> Option<Vec<u8>> {
        let mut connection = store.connection.clone();
        redis::cmd("GET")
            .arg(store.key_name(key))
            .query_async(&mut connection)
            .await
            .expect("GET failed")
    }

    async fn raw_pttl(store: &RedisStore, key: &StoreKey) -> i64 {
        let mut connection = store.connection.clone();
        redis::cmd("PTTL")
            .arg(store.key_name(key))
            .query_async(&mut connection)
            .await
            .expect("PTTL failed")
    }

    async fn raw_set(store: &RedisStore, key: &StoreKey, value: &[u8]) {
        let mut connection = store.connection.clone();
        let () = redis::cmd("SET")
            .arg(store.key_name(key))
            .arg(value)
            .arg("PX")
            .arg(60_000)
            .query_async(&mut connection)
            .await
            .expect("SET failed");
    }

    #[tokio::test]
    async fn begin_complete_replay() {
        let store = test_store().await;
        let key = random_key();
        let response = small_response();

        let lease = acquire(&store, &key, LEASE).await;
        store.complete(&key, &lease, &response, TTL).await.unwrap();
        let replay = store.begin(&key, &fingerprint(1), LEASE).await.unwrap();

        match replay {
            Begin::Completed(stored) => assert_eq!(stored, response),
            other => panic!("expected the stored response, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn other_fingerprint_is_mismatch() {
        let store = test_store().await;
        let key = random_key();

        let lease = acquire(&store, &key, LEASE).await;
        let while_in_flight = store.begin(&key, &fingerprint(2), LEASE).await.unwrap();
        store
            .complete(&key, &lease, &small_response(), TTL)
            .await
            .unwrap();
        let after_completion = store.begin(&key, &fingerprint(2), LEASE).await.unwrap();

        assert!(
            matches!(while_in_flight, Begin::Mismatch),
            "{while_in_flight:?}"
        );
        assert!(
            matches!(after_completion, Begin::Mismatch),
            "{after_completion:?}"
        );
    }

    #[tokio::test]
    async fn second_begin_is_in_flight() {
        let store = test_store().await;
        let key = random_key();

        acquire(&store, &key, LEASE).await;
        let second = store.begin(&key, &fingerprint(1), LEASE).await.unwrap();

        let Begin::InFlight { retry_after } = second else {
            panic!("expected in flight, got {second:?}");
        };
        assert!(retry_after <= LEASE, "retry_after {retry_after:?}");
        assert!(
            retry_after > LEASE - Duration::from_secs(2),
            "retry_after {retry_after:?}"
        );
    }

    #[tokio::test]
    async fn concurrent_begins_acquire_once() {
        let store = test_store().await;
        let key = random_key();
        let fingerprint = fingerprint(1);

        let begins = (0..64).map(|_| store.begin(&key, &fingerprint, LEASE));
        let outcomes = futures_util::future::join_all(begins).await;

        let acquired = outcomes
            .iter()
            .filter(|outcome| matches!(outcome, Ok(Begin::Acquired(_))))
            .count();
        let in_flight = outcomes
            .iter()
            .filter(|outcome| matches!(outcome, Ok(Begin::InFlight { .. })))
            .count();
        assert_eq!(acquired, 1);
        assert_eq!(in_flight, 63);
    }

    #[tokio::test]
    async fn expired_lease_is_taken_over() {
        let store = test_store().await;
        let key = random_key();
        let short_lease = Duration::from_millis(200);

        let stale = acquire(&store, &key, short_lease).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let current = acquire(&store, &key, LEASE).await;

        assert!(stale != current);
        let error = store
            .complete(&key, &stale, &small_response(), TTL)
            .await
            .unwrap_err();
        assert_eq!(error.kind(), StoreErrorKind::LeaseLost);
        let error = store.renew(&key, &stale, LEASE).await.unwrap_err();
        assert_eq!(error.kind(), StoreErrorKind::LeaseLost);
        store.release(&key, &stale).await.unwrap();
        let still_held = store.begin(&key, &fingerprint(1), LEASE).await.unwrap();
        assert!(
            matches!(still_held, Begin::InFlight { .. }),
            "{still_held:?}"
        );
        store
            .complete(&key, &current, &small_response(), TTL)
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn release_lets_next_begin_acquire() {
        let store = test_store().await;
        let key = random_key();

        let lease = acquire(&store, &key, LEASE).await;
        store.release(&key, &lease).await.unwrap();

        assert_eq!(raw_record(&store, &key).await, None);
        acquire(&store, &key, LEASE).await;
    }

    #[tokio::test]
    async fn renew_extends_lease() {
        let store = test_store().await;
        let key = random_key();

        let lease = acquire(&store, &key, Duration::from_millis(300)).await;
        tokio::time::sleep(Duration::from_millis(150)).await;
        store
            .renew(&key, &lease, Duration::from_millis(2_000))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;

        let pttl = raw_pttl(&store, &key).await;
        assert!(pttl > 1_000, "PTTL {pttl} ms after renewing to 2000 ms");
        let outcome = store.begin(&key, &fingerprint(1), LEASE).await.unwrap();
        assert!(matches!(outcome, Begin::InFlight { .. }), "{outcome:?}");
        store
            .complete(&key, &lease, &small_response(), TTL)
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn completed_key_is_not_held() {
        let store = test_store().await;
        let key = random_key();

        let lease = acquire(&store, &key, LEASE).await;
        store
            .complete(&key, &lease, &small_response(), TTL)
            .await
            .unwrap();

        let renew = store.renew(&key, &lease, LEASE).await.unwrap_err();
        assert_eq!(renew.kind(), StoreErrorKind::LeaseLost);
        let other_response = StoredResponse::encode(StatusCode::ACCEPTED, &HeaderMap::new(), b"x");
        let complete = store
            .complete(&key, &lease, &other_response, TTL)
            .await
            .unwrap_err();
        assert_eq!(complete.kind(), StoreErrorKind::LeaseLost);
        store.release(&key, &lease).await.unwrap();
        assert!(raw_record(&store, &key).await.is_some());
    }

    #[tokio::test]
    async fn resent_complete_of_same_response_succeeds() {
        let store = test_store().await;
        let key = random_key();
        let lease = acquire(&store, &key, LEASE).await;
        store
            .complete(&key, &lease, &small_response(), TTL)
            .await
            .unwrap();

        let resent = store.complete(&key, &lease, &small_response(), TTL).await;

        assert!(resent.is_ok(), "{resent:?}");
    }

    #[tokio::test]
    async fn lease_on_missing_key_is_lost() {
        let store = test_store().await;
        let key = random_key();
        let lease = Lease::new();

        let renew = store.renew(&key, &lease, LEASE).await.unwrap_err();
        let complete = store
            .complete(&key, &lease, &small_response(), TTL)
            .await
            .unwrap_err();
        store.release(&key, &lease).await.unwrap();

        assert_eq!(renew.kind(), StoreErrorKind::LeaseLost);
        assert_eq!(complete.kind(), StoreErrorKind::LeaseLost);
        assert_eq!(raw_record(&store, &key).await, None);
    }

    #[tokio::test]
    async fn record_layout_matches_docs() {
        let store = test_store().await;
        let key = random_key();
        let response = small_response();

        let lease = acquire(&store, &key, LEASE).await;
        let in_flight = raw_record(&store, &key).await.unwrap();
        let lease_pttl = raw_pttl(&store, &key).await;
        store.complete(&key, &lease, &response, TTL).await.unwrap();
        let completed = raw_record(&store, &key).await.unwrap();
        let ttl_pttl = raw_pttl(&store, &key).await;

        assert_eq!(
            store.key_name(&key),
            format!("{}{}", store.prefix(), key.to_hex())
        );
        assert_eq!(in_flight.len(), 49);
        assert_eq!(in_flight[0], b'I');
        assert_eq!(&in_flight[1..33], &fingerprint(1).0[..]);
        assert_eq!(&in_flight[33..], &lease.token()[..]);
        assert!(
            (9_000..=10_000).contains(&lease_pttl),
            "lease PTTL {lease_pttl}"
        );
        assert_eq!(completed[0], b'C');
        assert_eq!(&completed[1..33], &fingerprint(1).0[..]);
        assert_eq!(&completed[33..], &response.as_bytes()[..]);
        assert!((59_000..=60_000).contains(&ttl_pttl), "ttl PTTL {ttl_pttl}");
    }

    #[tokio::test]
    async fn binary_response_survives_round_trip() {
        let store = test_store().await;
        let key = random_key();
        let mut headers = HeaderMap::new();
        headers.append("x-repeated", HeaderValue::from_static("first"));
        headers.append("x-repeated", HeaderValue::from_static("second"));
        let not_utf8 = HeaderValue::from_bytes(&[b'a', 0x80, 0xff, 0xfe, b'z']).unwrap();
        headers.append("x-binary", not_utf8.clone());
        let large = HeaderValue::from_bytes(&vec![b'v'; 64 * 1024]).unwrap();
        headers.append("x-large", large.clone());
        // Every byte value, including NUL, CR and LF, over 1 MiB.
        let body: Vec<u8> = (0..=255u8).cycle().take(1 << 20).collect();
        let response = StoredResponse::encode(StatusCode::OK, &headers, &body);

        let lease = acquire(&store, &key, LEASE).await;
        store.complete(&key, &lease, &response, TTL).await.unwrap();
        let replay = store.begin(&key, &fingerprint(1), LEASE).await.unwrap();

        let Begin::Completed(stored) = replay else {
            panic!("expected the stored response, got {replay:?}");
        };
        assert_eq!(stored.as_bytes(), response.as_bytes());
        assert_eq!(&stored.body()[..], &body[..]);
        let replayed = stored.to_response();
        let repeated: Vec<_> = replayed.headers().get_all("x-repeated").iter().collect();
        assert_eq!(repeated, ["first", "second"]);
        assert_eq!(replayed.headers()["x-binary"], not_utf8);
        assert_eq!(replayed.headers()["x-large"], large);
    }

    #[tokio::test]
    async fn unknown_record_format_is_corrupt() {
        let store = test_store().await;
        let cases: [(&str, Vec<u8>); 4] = [
            ("unknown tag", vec![b'X'; 49]),
            ("short in-flight record", vec![b'I'; 20]),
            ("completed record without response", vec![b'C'; 33]),
            ("empty value", Vec::new()),
        ];

        for (case, value) in cases {
            let key = random_key();
            raw_set(&store, &key, &value).await;

            let error = store.begin(&key, &fingerprint(1), LEASE).await.unwrap_err();

            assert_eq!(error.kind(), StoreErrorKind::Corrupt, "{case}");
            assert_eq!(raw_record(&store, &key).await, Some(value), "{case}");
        }
    }

    #[tokio::test]
    async fn invalid_stored_response_is_corrupt() {
        let store = test_store().await;
        let key = random_key();
        let mut record = vec![b'C'];
        record.extend_from_slice(&fingerprint(1).0);
        record.extend_from_slice(b"not a stored response");
        raw_set(&store, &key, &record).await;

        let error = store.begin(&key, &fingerprint(1), LEASE).await.unwrap_err();

        assert_eq!(error.kind(), StoreErrorKind::Corrupt);
    }

    #[tokio::test]
    async fn fail_open_follows_builder() {
        let default = test_store().await;
        let open = RedisStore::builder(test_url())
            .fail_open(true)
            .build()
            .await
            .unwrap();

        assert!(!default.fail_open());
        assert!(open.fail_open());
    }

    #[tokio::test]
    async fn refused_connection_is_unavailable() {
        let port = free_port();

        let error = RedisStore::builder(format!("redis://127.0.0.1:{port}"))
            .timeout(Duration::from_secs(1))
            .build()
            .await
            .unwrap_err();

        // Unavailable rather than Timeout: the refusal failed the call before the timeout.
        assert_eq!(error.kind(), StoreErrorKind::Unavailable, "{error}");
        assert!(
            error.to_string().contains(&format!("127.0.0.1:{port}")),
            "{error}"
        );
    }

    #[tokio::test]
    async fn silent_server_times_out() {
        // A listener that accepts connections and never replies.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let accepting = tokio::spawn(async move {
            let mut sockets = Vec::new();
            while let Ok((socket, _)) = listener.accept().await {
                sockets.push(socket);
            }
        });
        let timeout = Duration::from_millis(200);

        let error = RedisStore::builder(format!("redis://127.0.0.1:{port}"))
            .timeout(timeout)
            .build()
            .await
            .unwrap_err();

        accepting.abort();
        assert_eq!(error.kind(), StoreErrorKind::Timeout, "{error}");
    }

    #[tokio::test]
    async fn rediss_without_tls_feature_is_unavailable() {
        let error = RedisStore::connect("rediss://127.0.0.1:6379")
            .await
            .unwrap_err();

        assert_eq!(error.kind(), StoreErrorKind::Unavailable);
        assert!(error.to_string().contains("TLS"), "{error}");
    }

    #[test]
    fn builder_debug_hides_url() {
        let builder = RedisStore::builder("redis://user:secret-password@127.0.0.1:6379/0");

        let debug = format!("{builder:?}");

        assert!(!debug.contains("secret-password"), "{debug}");
    }

    #[test]
    #[should_panic(expected = "greater than zero")]
    fn zero_timeout_panics() {
        let _ = RedisStore::builder(DEFAULT_URL).timeout(Duration::ZERO);
    }

    #[test]
    fn expiry_rounds_up_to_milliseconds() {
        assert_eq!(expiry_millis(Duration::ZERO), 1);
        assert_eq!(expiry_millis(Duration::from_micros(1)), 1);
        assert_eq!(expiry_millis(Duration::from_micros(1_001)), 2);
        assert_eq!(expiry_millis(Duration::from_secs(2)), 2_000);
        assert_eq!(expiry_millis(Duration::MAX), MAX_EXPIRY_MILLIS);
    }

    #[test]
    fn eviction_policies_that_evict() {
        assert!(!policy_can_evict("noeviction"));
        for policy in [
            "allkeys-lru",
            "allkeys-lfu",
            "allkeys-random",
            "volatile-lru",
            "volatile-lfu",
            "volatile-random",
            "volatile-ttl",
        ] {
            assert!(policy_can_evict(policy), "{policy}");
        }
    }

    /// A redis-server process of its own on a free port, for tests that stop the server.
    struct PrivateRedis {
        child: Child,
    }

    impl PrivateRedis {
        fn start(port: u16) -> Self {
            let child = Command::new("redis-server")
                .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
                .args(["--save", "", "--appendonly", "no"])
                .stdout(Stdio::null())
                .spawn()
                .unwrap_or_else(|error| {
                    panic!("could not start redis-server, which this test needs on PATH: {error}")
                });
            let server = Self { child };
            let address = SocketAddr::from(([127, 0, 0, 1], port));
            let deadline = Instant::now() + Duration::from_secs(5);
            while TcpStream::connect(address).is_err() {
                assert!(
                    Instant::now() < deadline,
                    "redis-server did not listen on {address} within 5 s"
                );
                std::thread::sleep(Duration::from_millis(20));
            }
            server
        }

        fn stop(mut self) {
            self.child.kill().expect("could not stop redis-server");
            self.child.wait().expect("could not wait for redis-server");
        }
    }

    impl Drop for PrivateRedis {
        fn drop(&mut self) {
            // Stops the server when a test panics; after `stop` both calls fail harmlessly.
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    fn free_port() -> u16 {
        let listener = TcpListener::bind("127.0.0.1:0").expect("no free port on 127.0.0.1");
        listener
            .local_addr()
            .expect("listener without address")
            .port()
    }

    #[tokio::test]
    async fn store_recovers_after_redis_restart() {
        let port = free_port();
        let server = PrivateRedis::start(port);
        let timeout = Duration::from_millis(500);
        let store = RedisStore::builder(format!("redis://127.0.0.1:{port}"))
            .timeout(timeout)
            .build()
            .await
            .unwrap();
        acquire(&store, &random_key(), LEASE).await;

        server.stop();
        for attempt in 0..3 {
            let error = store
                .begin(&random_key(), &fingerprint(1), LEASE)
                .await
                .unwrap_err();
            assert!(
                matches!(
                    error.kind(),
                    StoreErrorKind::Unavailable | StoreErrorKind::Timeout
                ),
                "call {attempt} while down: {error}"
            );
        }

        let _server = PrivateRedis::start(port);
        let outcome = store
            .begin(&random_key(), &fingerprint(1), LEASE)
            .await
            .expect("the first call after the restart reconnects");

        assert!(matches!(outcome, Begin::Acquired(_)), "{outcome:?}");
    }
}
