//! Redis servers, HTTP servers and clients for the multi-instance Redis tests.

use std::net::{SocketAddr, TcpListener};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use axum::Router;
use bytes::Bytes;
use idempotent_runtime::RedisStore;
use idempotent_runtime::store::StoreError;
use reqwest::header::HeaderMap;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;

/// The Redis server that other test binaries use at the same time. Tests keep their keys apart
/// with a random prefix each, and never flush or stop this server.
pub const SHARED_REDIS_URL: &str = "redis://127.0.0.1:6379";

/// The command that starts the shared Redis server when it is missing.
const START_SHARED_REDIS: &str =
    "redis-server --port 6379 --bind 127.0.0.1 --save '' --appendonly no";

/// The maximum time one HTTP request of these tests may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(20);

/// The maximum time a private redis-server may take to accept connections after it starts.
const REDIS_START_TIMEOUT: Duration = Duration::from_secs(5);

/// Returns a new key prefix of its own for one test, ending in `:`.
///
/// The prefix contains no glob characters, so `SCAN MATCH {prefix}*` finds exactly its keys.
pub fn random_prefix() -> String {
    format!(
        "idempotent-test:redis-instances:{:032x}:",
        rand::random::<u128>()
    )
}

/// Returns a new random idempotency key.
pub fn random_key() -> String {
    format!("key-{:032x}", rand::random::<u128>())
}

/// Connects a [`RedisStore`] to `url` with `prefix`.
pub async fn connect_store(
    url: &str,
    prefix: &str,
    timeout: Duration,
    fail_open: bool,
) -> Result<RedisStore, StoreError> {
    RedisStore::builder(url)
        .prefix(prefix)
        .timeout(timeout)
        .fail_open(fail_open)
        .build()
        .await
}

/// Connects a [`RedisStore`] to the shared Redis server with `prefix` and the default timeout.
///
/// # Panics
///
/// Panics with instructions when the shared Redis server does not accept the connection.
pub async fn connect_shared_store(prefix: &str) -> RedisStore {
    connect_store(SHARED_REDIS_URL, prefix, RedisStore::DEFAULT_TIMEOUT, false)
        .await
        .unwrap_or_else(|error| {
            panic!(
                "could not connect the Redis store to the shared Redis server at \
                 {SHARED_REDIS_URL}: {error}. Start it with `{START_SHARED_REDIS}`."
            )
        })
}

/// Opens a plain connection to the shared Redis server, for reading keys directly.
///
/// # Panics
///
/// Panics with instructions when the server does not accept the connection.
pub async fn shared_redis_connection() -> redis::aio::MultiplexedConnection {
    let client = redis::Client::open(SHARED_REDIS_URL).expect("the shared Redis URL is valid");
    client
        .get_multiplexed_async_connection()
        .await
        .unwrap_or_else(|error| {
            panic!(
                "could not connect to the shared Redis server at {SHARED_REDIS_URL}: {error}. \
                 Start it with `{START_SHARED_REDIS}`."
            )
        })
}

/// Returns the names of every key on the shared Redis server that starts with `prefix`, from a
/// full `SCAN` with `MATCH {prefix}*`.
pub async fn scan_prefix(prefix: &str) -> Vec<Vec<u8>> {
    let mut connection = shared_redis_connection().await;
    let pattern = format!("{prefix}*");
    let mut cursor: u64 = 0;
    let mut names = Vec::new();
    loop {
        let (next, batch): (u64, Vec<Vec<u8>>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(&pattern)
            .arg("COUNT")
            .arg(1000)
            .query_async(&mut connection)
            .await
            .expect("SCAN on the shared Redis server failed");
        names.extend(batch);
        if next == 0 {
            return names;
        }
        cursor = next;
    }
}

/// Returns the value of the string key `name` on the shared Redis server.
pub async fn get_raw(name: &[u8]) -> Option<Vec<u8>> {
    let mut connection = shared_redis_connection().await;
    redis::cmd("GET")
        .arg(name)
        .query_async(&mut connection)
        .await
        .expect("GET on the shared Redis server failed")
}

/// Deletes the keys of one test's prefix from the shared Redis server when dropped, also when
/// the test panics.
pub struct PrefixCleanup {
    prefix: String,
}

impl PrefixCleanup {
    /// Creates the guard for `prefix`.
    pub fn new(prefix: &str) -> Self {
        Self {
            prefix: prefix.to_owned(),
        }
    }
}

impl Drop for PrefixCleanup {
    fn drop(&mut self) {
        // Errors are ignored, because a key left behind expires with its ttl.
        let Ok(client) = redis::Client::open(SHARED_REDIS_URL) else {
            return;
        };
        let Ok(mut connection) = client.get_connection_with_timeout(Duration::from_secs(2)) else {
            return;
        };
        let pattern = format!("{}*", self.prefix);
        let names: Vec<Vec<u8>> = match redis::Commands::scan_match(&mut connection, &pattern) {
            Ok(names) => names.filter_map(Result::ok).collect(),
            Err(_) => return,
        };
        if !names.is_empty() {
            let _: redis::RedisResult<usize> = redis::Commands::del(&mut connection, names);
        }
    }
}

/// Returns a TCP port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("could not bind 127.0.0.1:0");
    listener
        .local_addr()
        .expect("a bound listener has an address")
        .port()
}

/// A redis-server child process of one test, on 127.0.0.1, without persistence. Dropping it
/// kills the process, also when the test panics.
pub struct PrivateRedis {
    child: Child,
    port: u16,
}

impl PrivateRedis {
    /// Starts redis-server on `port` and waits until it accepts connections.
    ///
    /// # Panics
    ///
    /// Panics when redis-server is not on `PATH`, exits early (the port may be taken) or does
    /// not accept connections within [`REDIS_START_TIMEOUT`].
    pub fn start(port: u16) -> Self {
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .unwrap_or_else(|error| {
                panic!(
                    "could not start redis-server, which these tests need on PATH: {error}. \
                     Install Redis (for example `apt-get install redis-server`)."
                )
            });
        let mut server = Self { child, port };
        server.wait_until_listening();
        server
    }

    fn wait_until_listening(&mut self) {
        let address = SocketAddr::from(([127, 0, 0, 1], self.port));
        let deadline = Instant::now() + REDIS_START_TIMEOUT;
        while std::net::TcpStream::connect(address).is_err() {
            if let Some(status) = self.child.try_wait().expect("could not poll redis-server") {
                panic!("redis-server exited with {status} before listening on {address}");
            }
            assert!(
                Instant::now() < deadline,
                "redis-server did not listen on {address} within {REDIS_START_TIMEOUT:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Returns the port this server listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Returns the URL of this server.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Kills the server and waits for it to exit. Every key is lost, because the server keeps
    /// no data on disk.
    pub fn stop(mut self) {
        self.child.kill().expect("could not kill redis-server");
        self.child.wait().expect("could not wait for redis-server");
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        // After `stop` the process is gone, so both calls fail harmlessly.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An axum server on 127.0.0.1 at a free port, stopped when dropped.
pub struct TestServer {
    address: SocketAddr,
    task: JoinHandle<()>,
}

impl TestServer {
    /// Serves `router` on a new listener.
    pub async fn start(router: Router) -> Self {
        let (address, task) = idempotent_tests::serve(router).await;
        Self { address, task }
    }

    /// Returns the listening address.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Returns the absolute URL of `path` on this server.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Builds the HTTP client of one test. It never uses a proxy, so requests go only to the test
/// servers on 127.0.0.1.
pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(REQUEST_TIMEOUT)
        .build()
        .expect("could not build the HTTP client")
}

/// A whole response read with reqwest.
#[derive(Debug, Clone)]
pub struct Reply {
    /// The status code.
    pub status: u16,
    /// The headers.
    pub headers: HeaderMap,
    /// The body.
    pub body: Bytes,
}

impl Reply {
    /// Returns the only value of header `name` as text, or `None` when it is absent.
    ///
    /// # Panics
    ///
    /// Panics when the header repeats or its value is not visible ASCII.
    pub fn header(&self, name: &str) -> Option<&str> {
        let mut values = self.headers.get_all(name).iter();
        let value = values.next()?;
        assert!(
            values.next().is_none(),
            "header {name} is sent more than once"
        );
        Some(
            value
                .to_str()
                .unwrap_or_else(|_| panic!("header {name} is not visible ASCII: {value:?}")),
        )
    }

    /// Returns the body as text.
    pub fn text(&self) -> &str {
        std::str::from_utf8(&self.body).expect("the response body is not UTF-8")
    }
}

/// Sends `request` and reads the whole response.
///
/// # Panics
///
/// Panics when the request fails or times out.
pub async fn send(request: reqwest::RequestBuilder) -> Reply {
    let response = request.send().await.expect("the HTTP request failed");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response
        .bytes()
        .await
        .expect("could not read the response body");
    Reply {
        status,
        headers,
        body,
    }
}

/// A response as it arrived on the wire: header lines in order, names in lowercase, and the
/// body of exactly `Content-Length` bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawResponse {
    /// The status code.
    pub status: u16,
    /// The header lines in wire order.
    pub headers: Vec<(String, Vec<u8>)>,
    /// The body.
    pub body: Vec<u8>,
}

impl RawResponse {
    /// Returns every value of header `name` (lowercase), in wire order.
    pub fn header_values(&self, name: &str) -> Vec<&[u8]> {
        self.headers
            .iter()
            .filter(|(candidate, _)| candidate == name)
            .map(|(_, value)| value.as_slice())
            .collect()
    }
}

/// Sends one HTTP/1.1 `POST` byte for byte over a new connection with `Connection: close`, and
/// reads the response until the server closes the connection.
///
/// # Panics
///
/// Panics when the connection fails, the response does not parse, or its body length differs
/// from `Content-Length`.
pub async fn raw_post(
    address: SocketAddr,
    path: &str,
    headers: &[(&str, &[u8])],
    body: &[u8],
) -> RawResponse {
    let mut request = format!(
        "POST {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    )
    .into_bytes();
    for (name, value) in headers {
        request.extend_from_slice(name.as_bytes());
        request.extend_from_slice(b": ");
        request.extend_from_slice(value);
        request.extend_from_slice(b"\r\n");
    }
    request.extend_from_slice(b"\r\n");
    request.extend_from_slice(body);

    let exchange = async {
        let mut stream = TcpStream::connect(address)
            .await
            .expect("could not connect to the test server");
        stream
            .write_all(&request)
            .await
            .expect("could not send the request");
        let mut received = Vec::new();
        stream
            .read_to_end(&mut received)
            .await
            .expect("could not read the response");
        received
    };
    let received = tokio::time::timeout(REQUEST_TIMEOUT, exchange)
        .await
        .expect("the raw HTTP exchange timed out");
    parse_raw_response(&received)
}

fn parse_raw_response(received: &[u8]) -> RawResponse {
    let mut header_slots = [httparse::EMPTY_HEADER; 64];
    let mut parsed = httparse::Response::new(&mut header_slots);
    let head_len = match parsed.parse(received) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => panic!(
            "the response head is incomplete after {} bytes",
            received.len()
        ),
        Err(error) => panic!("the response head is invalid: {error}"),
    };
    let status = parsed.code.expect("a complete response has a status");
    let headers: Vec<(String, Vec<u8>)> = parsed
        .headers
        .iter()
        .map(|header| (header.name.to_ascii_lowercase(), header.value.to_vec()))
        .collect();
    let response = RawResponse {
        status,
        headers,
        body: received[head_len..].to_vec(),
    };

    assert!(
        response.header_values("transfer-encoding").is_empty(),
        "the raw client reads only bodies framed by Content-Length"
    );
    let lengths = response.header_values("content-length");
    assert_eq!(lengths.len(), 1, "expected one Content-Length header");
    let length: usize = std::str::from_utf8(lengths[0])
        .ok()
        .and_then(|text| text.parse().ok())
        .expect("Content-Length is not a number");
    assert_eq!(
        response.body.len(),
        length,
        "the body length differs from Content-Length"
    );
    response
}
