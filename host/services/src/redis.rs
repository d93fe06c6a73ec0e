//! Redis: direct command access (`kind = "redis"`), and the [`LazyConnection`] it shares with the
//! key-value store on Redis ([`crate::kv::redis`]) and the Redis queue trigger.
//!
//! Opening never touches the network: the connection is made by the first call and made again
//! by the call after a failure, so a host starts while Redis is down and its calls work again,
//! without a restart, once Redis is back. Every call, connecting included, is bounded by the
//! configured `timeout` (`TIMEOUT` past it); an unreachable server answers `UNAVAILABLE`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use berth_core::host_future::FutureExt as _;
use berth_plugin_api::abi_stable::{sabi_trait::TD_Opaque, std_types::RArc};
use berth_plugin_api::{
    service_error_kind as kind, RString, RVec, RedisClient, RedisClient_TO, RedisHandle, ServiceError, ServiceResult,
};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{ErrorKind, RedisError, ServerErrorKind, Value};

use berth_core::metrics::ServiceMetrics;
use berth_core::provider::{OpenContext, OpenedService, ServiceHandle, TypedProvider};

use crate::config::RedisConfig;
use crate::SetupError;

/// Keys asked for per `SCAN` step of `list_keys`.
pub(crate) const SCAN_COUNT: u64 = 1000;

// === the provider ===

/// `kind = "redis"`: direct command access for groups that need more than key-value.
pub const PROVIDER: TypedProvider<RedisConfig> = TypedProvider::new("redis", "redis", open_client);

fn open_client(cfg: &RedisConfig, ctx: OpenContext<'_>) -> Result<Arc<dyn OpenedService>, String> {
    Ok(Arc::new(RedisService(open(ctx.name, cfg, ctx.metrics).map_err(|e| e.0)?)))
}

/// An opened `[services.*] kind = "redis"`: every group gets the same client.
struct RedisService(RedisHandle);

impl OpenedService for RedisService {
    fn bind(&self, _group: &str, _declared_as: &str) -> ServiceHandle {
        ServiceHandle::Redis(self.0.clone())
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

/// Opens direct access to the Redis server of `[services.<name>]`.
pub fn open(name: &str, cfg: &RedisConfig, metrics: ServiceMetrics) -> Result<RedisHandle, SetupError> {
    let conn = LazyConnection::new(&cfg.url, cfg.timeout)?;
    let direct = DirectRedis(Arc::new(DirectInner { name: name.into(), conn, metrics }));
    Ok(RedisClient_TO::from_ptr(RArc::new(direct), TD_Opaque))
}

// === impl LazyConnection ===

/// A call that did not get an answer from Redis.
#[derive(Debug)]
pub enum RedisFailure {
    /// No answer within the configured timeout.
    TimedOut(Duration),
    /// Redis, or the way to it, answered with an error.
    Redis(RedisError),
}

impl RedisFailure {
    /// The error a caller sees.
    pub fn into_service_error(self, service: &str) -> ServiceError {
        let (kind, message) = self.describe();
        ServiceError::new(kind, service, message)
    }

    pub(crate) fn describe(&self) -> (u8, String) {
        match self {
            RedisFailure::TimedOut(t) => (kind::TIMEOUT, format!("Redis did not answer within {} ms", t.as_millis())),
            RedisFailure::Redis(e) => {
                let kind = error_kind(e);
                let message = match e.code() {
                    // A reply from the server: its own words, as redis-cli shows them.
                    Some(code) => format!("{code} {}", e.detail().unwrap_or_default()).trim_end().to_owned(),
                    None if kind == kind::UNAVAILABLE => format!("Redis is unreachable: {e}"),
                    None => format!("Redis: {e}"),
                };
                (kind, message)
            }
        }
    }
}

/// The kind of a Redis error.
fn error_kind(e: &RedisError) -> u8 {
    if e.is_timeout() {
        return kind::TIMEOUT;
    }
    if e.is_io_error() || e.is_connection_dropped() || e.is_connection_refusal() {
        return kind::UNAVAILABLE;
    }
    match e.kind() {
        ErrorKind::Server(
            ServerErrorKind::BusyLoading
            | ServerErrorKind::TryAgain
            | ServerErrorKind::MasterDown
            | ServerErrorKind::ClusterDown
            | ServerErrorKind::ReadOnly,
        ) => kind::UNAVAILABLE,
        ErrorKind::Server(_) | ErrorKind::Extension => kind::INVALID,
        ErrorKind::AuthenticationFailed | ErrorKind::InvalidClientConfig => kind::UNAVAILABLE,
        _ => kind::OTHER,
    }
}

/// Whether the connection that produced `e` should be dropped and made again.
fn breaks_connection(e: &RedisError) -> bool {
    e.is_io_error()
        || e.is_connection_dropped()
        || e.is_timeout()
        || e.is_unrecoverable_error()
        || matches!(e.kind(), ErrorKind::AuthenticationFailed)
}

/// A Redis connection made on first use and made again after a failure.
///
/// It holds a [`ConnectionManager`] (one multiplexed connection, shared by every concurrent call).
/// Creating one fails while the server is down, and a connection that timed out may be half
/// open, so after any such failure it is forgotten and the next call connects afresh. Only one
/// call connects at a time; the others wait for it (each within its own timeout).
pub struct LazyConnection {
    client: redis::Client,
    config: ConnectionManagerConfig,
    timeout: Duration,
    /// The current connection and its generation.
    current: Mutex<Option<(u64, ConnectionManager)>>,
    connecting: tokio::sync::Mutex<()>,
    generations: AtomicU64,
}

impl LazyConnection {
    /// Checks `url`; connects nothing.
    pub fn new(url: &str, timeout: Duration) -> Result<LazyConnection, SetupError> {
        let client = redis::Client::open(url)
            .map_err(|e| SetupError(format!("invalid Redis url (expected redis://host:port/db): {e}")))?;
        let config = ConnectionManagerConfig::new()
            // One attempt per call: the call after a failure tries again, so a caller waits at
            // most its timeout, never for a backoff schedule.
            .set_number_of_retries(0)
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout));
        Ok(LazyConnection {
            client,
            config,
            timeout,
            current: Mutex::new(None),
            connecting: tokio::sync::Mutex::new(()),
            generations: AtomicU64::new(0),
        })
    }

    fn cached(&self) -> Option<(u64, ConnectionManager)> {
        self.current.lock().expect("redis connection lock").clone()
    }

    async fn connection(&self) -> Result<(u64, ConnectionManager), RedisError> {
        if let Some(c) = self.cached() {
            return Ok(c);
        }
        let _connecting = self.connecting.lock().await;
        if let Some(c) = self.cached() {
            return Ok(c);
        }
        let manager = ConnectionManager::new_with_config(self.client.clone(), self.config.clone()).await?;
        let generation = self.generations.fetch_add(1, Ordering::Relaxed) + 1;
        *self.current.lock().expect("redis connection lock") = Some((generation, manager.clone()));
        Ok((generation, manager))
    }

    /// Forgets connection `generation`, if it is still the current one.
    fn forget(&self, generation: u64) {
        let mut current = self.current.lock().expect("redis connection lock");
        if current.as_ref().is_some_and(|(g, _)| *g == generation) {
            *current = None;
        }
    }

    /// Runs `op` on the connection (connecting first if needed), all within the timeout.
    pub async fn run<T, F, Fut>(&self, op: F) -> Result<T, RedisFailure>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: std::future::Future<Output = redis::RedisResult<T>>,
    {
        let used = AtomicU64::new(0);
        let call = async {
            let (generation, conn) = self.connection().await?;
            used.store(generation, Ordering::Relaxed);
            let out = op(conn).await;
            if let Err(e) = &out {
                if breaks_connection(e) {
                    self.forget(generation);
                }
            }
            out
        };
        match tokio::time::timeout(self.timeout, call).await {
            Ok(out) => out.map_err(RedisFailure::Redis),
            Err(_) => {
                // Possibly a half-open connection: the next call makes a new one.
                self.forget(used.load(Ordering::Relaxed));
                Err(RedisFailure::TimedOut(self.timeout))
            }
        }
    }
}

// === impl DirectRedis ===

struct DirectInner {
    name: Arc<str>,
    conn: LazyConnection,
    metrics: ServiceMetrics,
}

/// Direct access to one Redis server. Cheap to clone.
#[derive(Clone)]
pub struct DirectRedis(Arc<DirectInner>);

/// Commands refused on the shared connection: they would change its state for every other
/// caller (database, protocol, transactions, subscriptions) or block it for everyone.
const REFUSED: &str = "AUTH HELLO SELECT RESET QUIT CLIENT MULTI EXEC DISCARD WATCH UNWATCH SUBSCRIBE PSUBSCRIBE \
    SSUBSCRIBE UNSUBSCRIBE PUNSUBSCRIBE SUNSUBSCRIBE MONITOR SYNC PSYNC BLPOP BRPOP BRPOPLPUSH BLMOVE BLMPOP BZPOPMIN \
    BZPOPMAX BZMPOP WAIT WAITAOF";

fn check_command(service: &str, args: &[RVec<u8>]) -> Result<(), ServiceError> {
    let Some(name) = args.first() else {
        return Err(ServiceError::new(kind::INVALID, service, "empty command: pass at least the command name"));
    };
    let name = String::from_utf8_lossy(name).to_ascii_uppercase();
    let blocking_stream = matches!(name.as_str(), "XREAD" | "XREADGROUP")
        && args[1..].iter().any(|a| a.as_slice().eq_ignore_ascii_case(b"BLOCK"));
    if REFUSED.split_whitespace().any(|c| c == name) || blocking_stream {
        return Err(ServiceError::new(
            kind::INVALID,
            service,
            format!(
                "`{name}` is not allowed: the connection is shared by every call, and this command would change \
                 its state or block it; use the non-blocking form, or one command per operation"
            ),
        ));
    }
    Ok(())
}

impl DirectRedis {
    /// Runs one command; the reply as JSON.
    pub async fn command(&self, args: Vec<RVec<u8>>) -> Result<serde_json::Value, ServiceError> {
        let service = &*self.0.name;
        check_command(service, &args)?;
        let mut cmd = redis::Cmd::new();
        for a in &args {
            cmd.arg(a.as_slice());
        }
        let reply = self
            .0
            .conn
            .run(|mut c| async move { cmd.query_async::<Value>(&mut c).await })
            .await
            .map_err(|f| f.into_service_error(service))?;
        Ok(to_json(reply))
    }
}

impl RedisClient for DirectRedis {
    fn command(&self, args: RVec<RVec<u8>>) -> ServiceResult<RString> {
        let r = self.clone();
        async move {
            let run = async { r.command(args.into_vec()).await.map(|json| RString::from(json.to_string())) };
            r.0.metrics.observe("command", run).await
        }
        .into_ffi()
    }
}

/// A reply as JSON: nil → null, bulk strings → strings when UTF-8 else arrays of bytes, arrays
/// and sets → arrays, maps → objects (keys as strings).
pub fn to_json(v: Value) -> serde_json::Value {
    use serde_json::Value as J;
    let bytes = |b: Vec<u8>| match String::from_utf8(b) {
        Ok(s) => J::String(s),
        Err(e) => J::Array(e.into_bytes().into_iter().map(J::from).collect()),
    };
    match v {
        Value::Nil => J::Null,
        Value::Int(i) => J::from(i),
        Value::BulkString(b) => bytes(b),
        Value::SimpleString(s) => J::String(s),
        Value::Okay => J::String("OK".into()),
        Value::Array(items) | Value::Set(items) => J::Array(items.into_iter().map(to_json).collect()),
        Value::Push { data, .. } => J::Array(data.into_iter().map(to_json).collect()),
        Value::Map(pairs) => J::Object(
            pairs
                .into_iter()
                .map(|(k, v)| {
                    let key = match to_json(k) {
                        J::String(s) => s,
                        other => other.to_string(),
                    };
                    (key, to_json(v))
                })
                .collect(),
        ),
        Value::Attribute { data, .. } => to_json(*data),
        Value::Double(d) => serde_json::Number::from_f64(d).map(J::Number).unwrap_or_else(|| J::String(d.to_string())),
        Value::Boolean(b) => J::Bool(b),
        Value::VerbatimString { text, .. } => J::String(text),
        Value::BigNumber(digits) => J::String(String::from_utf8_lossy(&digits).into_owned()),
        Value::ServerError(e) => {
            serde_json::json!({ "error": format!("{} {}", e.code(), e.details().unwrap_or_default()).trim_end() })
        }
        other => J::String(format!("{other:?}")),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    //! Against a real Redis at `REDIS_URL` (default `redis://127.0.0.1:6379`); each test works
    //! under a key prefix of its own and deletes it afterwards. The fault test runs a private
    //! `redis-server` on a free port.

    use std::process::{Child, Command, Stdio};
    use std::time::Instant;

    use super::*;
    use crate::config::RedisKvConfig;
    use crate::kv::redis::{escape_glob, RedisKvStore};
    use berth_plugin_api::ROption;
    use bytesize::ByteSize;

    /// The environment variable that points the tests at another Redis.
    pub(crate) const REDIS_URL_ENV: &str = "REDIS_URL";

    pub(crate) fn redis_url() -> String {
        std::env::var(REDIS_URL_ENV).unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
    }

    /// A key prefix no other test (or run) uses. Every key under it is deleted when it is dropped,
    /// so also when the test fails.
    pub(crate) struct TestPrefix(String);

    impl TestPrefix {
        pub(crate) fn new() -> TestPrefix {
            static NEXT: AtomicU64 = AtomicU64::new(0);
            let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
            let n = NEXT.fetch_add(1, Ordering::Relaxed);
            TestPrefix(format!("berth-test:{}-{nanos:x}-{n}:", std::process::id()))
        }
    }

    impl std::ops::Deref for TestPrefix {
        type Target = str;
        fn deref(&self) -> &str {
            &self.0
        }
    }

    impl std::fmt::Display for TestPrefix {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(&self.0)
        }
    }

    impl Drop for TestPrefix {
        fn drop(&mut self) {
            // Synchronous, so that it can run in `drop`; a Redis that is down has nothing to clean.
            let Ok(mut c) = redis::Client::open(redis_url().as_str()).and_then(|c| c.get_connection()) else {
                return;
            };
            let pattern = format!("{}*", escape_glob(&self.0));
            let mut cursor = 0u64;
            loop {
                let scanned: redis::RedisResult<(u64, Vec<Vec<u8>>)> =
                    redis::cmd("SCAN").arg(cursor).arg("MATCH").arg(&pattern).arg("COUNT").arg(1000).query(&mut c);
                let Ok((next, keys)) = scanned else { return };
                if !keys.is_empty() {
                    let _: redis::RedisResult<i64> = redis::cmd("DEL").arg(keys).query(&mut c);
                }
                if next == 0 {
                    return;
                }
                cursor = next;
            }
        }
    }

    async fn raw_connection() -> redis::aio::MultiplexedConnection {
        let url = redis_url();
        let client = redis::Client::open(url.as_str()).unwrap();
        client
            .get_multiplexed_async_connection()
            .await
            .unwrap_or_else(|e| panic!("these tests need Redis at {url} (set {REDIS_URL_ENV} to use another): {e}"))
    }

    pub(crate) async fn raw_get(key: &str) -> Option<Vec<u8>> {
        redis::cmd("GET").arg(key).query_async(&mut raw_connection().await).await.unwrap()
    }

    fn metrics() -> ServiceMetrics {
        berth_core::metrics::Metrics::new().service("cache")
    }

    fn direct(url: &str, timeout: Duration) -> RedisHandle {
        open("cache", &RedisConfig { url: url.into(), timeout }, metrics()).unwrap()
    }

    async fn cmd(h: &RedisHandle, args: &[&str]) -> Result<serde_json::Value, ServiceError> {
        let args: RVec<RVec<u8>> = args.iter().map(|a| RVec::from(a.as_bytes())).collect();
        h.command(args).await.into_result().map(|json| serde_json::from_str(&json).unwrap())
    }

    #[tokio::test]
    async fn commands_round_trip_as_json() {
        let prefix = TestPrefix::new();
        let h = direct(&redis_url(), Duration::from_secs(2));
        let key = format!("{prefix}user:1");
        assert_eq!(cmd(&h, &["HSET", &key, "name", "ann", "age", "7"]).await.unwrap(), serde_json::json!(2));
        let all = cmd(&h, &["HGETALL", &key]).await.unwrap();
        let mut pairs: Vec<(String, String)> = all
            .as_array()
            .expect("RESP2 HGETALL is a flat array")
            .chunks(2)
            .map(|p| (p[0].as_str().unwrap().to_owned(), p[1].as_str().unwrap().to_owned()))
            .collect();
        pairs.sort();
        assert_eq!(pairs, [("age".into(), "7".into()), ("name".into(), "ann".into())]);
        assert_eq!(cmd(&h, &["GET", &format!("{prefix}missing")]).await.unwrap(), serde_json::Value::Null);
        assert_eq!(cmd(&h, &["SET", &format!("{prefix}s"), "v"]).await.unwrap(), serde_json::json!("OK"));
        assert_eq!(cmd(&h, &["PING"]).await.unwrap(), serde_json::json!("PONG"));
        let bin: RVec<RVec<u8>> =
            vec![RVec::from(&b"SET"[..]), format!("{prefix}bin").into_bytes().into(), RVec::from(&[0xff, 0, 1][..])]
                .into();
        h.command(bin).await.unwrap();
        assert_eq!(cmd(&h, &["GET", &format!("{prefix}bin")]).await.unwrap(), serde_json::json!([255, 0, 1]));
    }

    #[tokio::test]
    async fn error_replies_are_invalid_with_the_servers_message() {
        let prefix = TestPrefix::new();
        let h = direct(&redis_url(), Duration::from_secs(2));
        let key = format!("{prefix}list");
        cmd(&h, &["RPUSH", &key, "a"]).await.unwrap();
        let e = cmd(&h, &["GET", &key]).await.unwrap_err();
        assert_eq!(e.kind, kind::INVALID);
        assert!(e.message.starts_with("WRONGTYPE"), "{}", e.message);
        let e = cmd(&h, &["NOSUCHCOMMAND", "x"]).await.unwrap_err();
        assert_eq!(e.kind, kind::INVALID);
        assert!(e.message.starts_with("ERR unknown command"), "{}", e.message);
        assert_eq!(cmd(&h, &["select", "1"]).await.unwrap_err().kind, kind::INVALID, "refused: shared connection");
        assert_eq!(cmd(&h, &["BLPOP", &key, "0"]).await.unwrap_err().kind, kind::INVALID);
        assert_eq!(cmd(&h, &[]).await.unwrap_err().kind, kind::INVALID);
        assert_eq!(cmd(&h, &["LLEN", &key]).await.unwrap(), serde_json::json!(1), "the connection still works");
    }

    #[test]
    fn opening_needs_no_server_but_a_valid_url() {
        // Outside any runtime, pointing at a port nothing listens on.
        let _ = direct("redis://127.0.0.1:1", Duration::from_millis(100));
        let cfg = RedisKvConfig {
            url: "redis://127.0.0.1:1".into(),
            key_prefix: "x:".into(),
            shared: false,
            max_value_size: ByteSize::kib(1),
            timeout: Duration::from_millis(100),
        };
        assert!(RedisKvStore::open(&cfg, metrics()).is_ok());
        let e = open("cache", &RedisConfig { url: "http://nope".into(), timeout: Duration::from_secs(1) }, metrics());
        assert!(e.err().expect("not a redis url").0.contains("invalid Redis url"));
    }

    #[test]
    fn globs_are_escaped_and_replies_converted() {
        assert_eq!(escape_glob(r"a*b?c[d]e\f_g%"), r"a\*b\?c\[d\]e\\f_g%");
        let v = Value::Map(vec![
            (Value::SimpleString("n".into()), Value::Int(1)),
            (Value::BulkString(b"s".to_vec()), Value::Set(vec![Value::Boolean(true), Value::Double(1.5)])),
            (Value::Int(3), Value::Nil),
        ]);
        assert_eq!(to_json(v), serde_json::json!({"n": 1, "s": [true, 1.5], "3": null}));
        assert_eq!(to_json(Value::Okay), serde_json::json!("OK"));
    }

    // === fault test ===

    /// A private redis-server, killed when dropped.
    struct Server {
        port: u16,
        child: Option<Child>,
    }

    impl Server {
        fn start(port: u16) -> Server {
            let child = Command::new("redis-server")
                .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("this test needs `redis-server` on PATH");
            let server = Server { port, child: Some(child) };
            let started = Instant::now();
            while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
                assert!(started.elapsed() < Duration::from_secs(10), "redis-server did not start on port {port}");
                std::thread::sleep(Duration::from_millis(20));
            }
            server
        }

        fn kill(&mut self) {
            if let Some(mut child) = self.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }

    impl Drop for Server {
        fn drop(&mut self) {
            self.kill();
        }
    }

    fn free_port() -> u16 {
        std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_dead_server_fails_calls_in_time_and_a_restarted_one_serves_the_same_handles() {
        const TIMEOUT: Duration = Duration::from_millis(500);
        // Time a failing call may take beyond the timeout (scheduling, the kill itself).
        const SLACK: Duration = Duration::from_millis(300);
        let mut server = Server::start(free_port());
        let url = format!("redis://127.0.0.1:{}", server.port);
        let cfg = RedisKvConfig {
            url: url.clone(),
            key_prefix: "fault:".into(),
            shared: false,
            max_value_size: ByteSize::kib(1),
            timeout: TIMEOUT,
        };
        let kv = crate::kv::handle(crate::kv::redis::open_redis(&cfg, metrics()).unwrap(), Some("g".into()), "cache");
        let raw = direct(&url, TIMEOUT);
        kv.set("k".into(), RVec::from(&b"v"[..]), 0).await.unwrap();
        assert_eq!(cmd(&raw, &["GET", "fault:g/k"]).await.unwrap(), serde_json::json!("v"));

        // Traffic from a few tasks; the server dies under it.
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let traffic: Vec<_> = (0..4)
            .map(|i| {
                let (kv, stop) = (kv.clone(), stop.clone());
                tokio::spawn(async move {
                    let mut failures = Vec::new();
                    let mut ok = 0u32;
                    while !stop.load(Ordering::Relaxed) {
                        let started = Instant::now();
                        let out = if i % 2 == 0 {
                            kv.get("k".into()).await.into_result().map(drop)
                        } else {
                            kv.increment("n".into(), 1).await.into_result().map(drop)
                        };
                        match out {
                            Ok(()) => ok += 1,
                            Err(e) => {
                                failures.push((e.kind, started.elapsed(), e.message.to_string()));
                                tokio::time::sleep(Duration::from_millis(20)).await;
                            }
                        }
                    }
                    (ok, failures)
                })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(200)).await;
        server.kill();
        tokio::time::sleep(Duration::from_millis(1500)).await;
        stop.store(true, Ordering::Relaxed);
        let mut failures = Vec::new();
        for t in traffic {
            let (ok, f) = t.await.unwrap();
            assert!(ok > 0, "calls succeeded before the kill");
            failures.extend(f);
        }
        assert!(!failures.is_empty(), "calls fail while the server is down");
        for (k, took, message) in &failures {
            assert!(*k == kind::UNAVAILABLE || *k == kind::TIMEOUT, "kind {k}: {message}");
            assert!(*took <= TIMEOUT + SLACK, "a failing call took {took:?} ({message})");
        }

        // While down, every call fails in time, the direct handle too.
        for _ in 0..3 {
            let started = Instant::now();
            let e = kv.get("k".into()).await.unwrap_err();
            assert!(e.kind == kind::UNAVAILABLE || e.kind == kind::TIMEOUT, "{e:?}");
            assert!(started.elapsed() <= TIMEOUT + SLACK);
            let started = Instant::now();
            let e = cmd(&raw, &["PING"]).await.unwrap_err();
            assert!(e.kind == kind::UNAVAILABLE || e.kind == kind::TIMEOUT, "{e:?}");
            assert!(started.elapsed() <= TIMEOUT + SLACK);
        }

        // Back on the same port: the same handles work again (the data went with the old process).
        let port = server.port;
        drop(server);
        let _server = Server::start(port);
        assert_eq!(kv.get("k".into()).await.unwrap(), ROption::RNone);
        kv.set("k".into(), RVec::from(&b"again"[..]), 0).await.unwrap();
        assert_eq!(cmd(&raw, &["GET", "fault:g/k"]).await.unwrap(), serde_json::json!("again"));
        assert_eq!(kv.increment("n".into(), 2).await.unwrap(), 2);
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_hung_server_times_out_and_is_used_again_once_it_answers() {
        const TIMEOUT: Duration = Duration::from_millis(300);
        let server = Server::start(free_port());
        let pid = server.child.as_ref().unwrap().id().to_string();
        let signal = |sig: &str| assert!(Command::new("kill").args([sig, &pid]).status().unwrap().success());
        let raw = direct(&format!("redis://127.0.0.1:{}", server.port), TIMEOUT);
        assert_eq!(cmd(&raw, &["SET", "k", "v"]).await.unwrap(), serde_json::json!("OK"));

        signal("-STOP");
        for _ in 0..2 {
            let started = Instant::now();
            let e = cmd(&raw, &["GET", "k"]).await.unwrap_err();
            assert_eq!(e.kind, kind::TIMEOUT, "{e:?}");
            assert!(started.elapsed() < TIMEOUT + Duration::from_millis(300), "{:?}", started.elapsed());
        }
        signal("-CONT");
        assert_eq!(cmd(&raw, &["GET", "k"]).await.unwrap(), serde_json::json!("v"));
    }
}
