//! The key-value store on Redis (`kind = "redis-kv"`): keys are `<key_prefix><namespace>/<key>`.

use std::sync::Arc;

use berth_core::metrics::ServiceMetrics;
use berth_core::provider::{OpenContext, OpenedService, TypedProvider};

use redis::aio::ConnectionManager;

use super::{KvBackend, KvError, KvService};
use crate::config::RedisKvConfig;
use crate::redis::{LazyConnection, RedisFailure, SCAN_COUNT};
use crate::SetupError;

// === the provider ===

/// `kind = "redis-kv"`: a key-value store on Redis. Nothing is connected until the first call.
pub const PROVIDER: TypedProvider<RedisKvConfig> = TypedProvider::new("redis-kv", "kv", open_store);

fn open_store(cfg: &RedisKvConfig, ctx: OpenContext<'_>) -> Result<Arc<dyn OpenedService>, String> {
    let backend = open_redis(cfg, ctx.metrics).map_err(|e| e.0)?;
    Ok(Arc::new(KvService { backend, shared: cfg.shared }))
}

/// Opens the Redis-backed store of `[services.<name>]`. Nothing is connected until the first call.
/// (Its keys are told apart by `key_prefix`, not by the service name.)
pub fn open_redis(cfg: &RedisKvConfig, metrics: ServiceMetrics) -> Result<Arc<dyn KvBackend>, SetupError> {
    Ok(Arc::new(RedisKvStore::open(cfg, metrics)?))
}

// === impl RedisKvStore ===

/// Compare-and-swap in one step on the server. ARGV: mode (`absent` or `equal`), expected, new,
/// ttl in ms (0: none).
const CAS_SCRIPT: &str = r"
local current = redis.call('GET', KEYS[1])
if ARGV[1] == 'absent' then
  if current then return 0 end
elseif current ~= ARGV[2] then
  return 0
end
if ARGV[4] == '0' then
  redis.call('SET', KEYS[1], ARGV[3])
else
  redis.call('SET', KEYS[1], ARGV[3], 'PX', ARGV[4])
end
return 1
";

/// The key-value store on Redis: keys are `<key_prefix><namespace>/<key>`.
pub struct RedisKvStore {
    conn: LazyConnection,
    key_prefix: String,
    max_value_size: u64,
    metrics: ServiceMetrics,
}

/// `s` with Redis glob characters escaped, so a `MATCH` pattern takes it literally.
pub fn escape_glob(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

impl From<RedisFailure> for KvError {
    fn from(f: RedisFailure) -> KvError {
        let (kind, message) = f.describe();
        KvError::failed(kind, message)
    }
}

impl RedisKvStore {
    /// Checks the configuration; connects nothing.
    pub fn open(cfg: &RedisKvConfig, metrics: ServiceMetrics) -> Result<RedisKvStore, SetupError> {
        Ok(RedisKvStore {
            conn: LazyConnection::new(&cfg.url, cfg.timeout)?,
            key_prefix: cfg.key_prefix.clone(),
            max_value_size: cfg.max_value_size.as_u64(),
            metrics,
        })
    }

    fn key(&self, key: &str) -> String {
        format!("{}{key}", self.key_prefix)
    }

    async fn query<T: redis::FromRedisValue>(&self, cmd: redis::Cmd) -> Result<T, KvError> {
        self.conn.run(|mut c| async move { cmd.query_async::<T>(&mut c).await }).await.map_err(KvError::from)
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        self.query(redis::cmd("GET").arg(self.key(key)).clone()).await
    }

    async fn set(&self, key: &str, value: Vec<u8>, ttl_ms: u64) -> Result<(), KvError> {
        let mut cmd = redis::cmd("SET");
        cmd.arg(self.key(key)).arg(value);
        if ttl_ms > 0 {
            cmd.arg("PX").arg(ttl_ms);
        }
        self.query(cmd).await
    }

    async fn delete(&self, key: &str) -> Result<bool, KvError> {
        Ok(self.query::<i64>(redis::cmd("DEL").arg(self.key(key)).clone()).await? > 0)
    }

    async fn increment(&self, key: &str, delta: i64) -> Result<i64, KvError> {
        let cmd = redis::cmd("INCRBY").arg(self.key(key)).arg(delta).clone();
        match self.conn.run(|mut c| async move { cmd.query_async::<i64>(&mut c).await }).await {
            Ok(n) => Ok(n),
            Err(RedisFailure::Redis(e)) if e.detail().is_some_and(|d| d.contains("not an integer")) => {
                Err(KvError::NotAnInteger)
            }
            Err(RedisFailure::Redis(e)) if e.detail().is_some_and(|d| d.contains("overflow")) => Err(KvError::Overflow),
            Err(f) => Err(f.into()),
        }
    }

    async fn compare_and_swap(
        &self,
        key: &str,
        expected: Option<Vec<u8>>,
        new: Vec<u8>,
        ttl_ms: u64,
    ) -> Result<bool, KvError> {
        let mut cmd = redis::cmd("EVAL");
        cmd.arg(CAS_SCRIPT).arg(1).arg(self.key(key));
        match expected {
            None => cmd.arg("absent").arg(""),
            Some(v) => cmd.arg("equal").arg(v),
        };
        cmd.arg(new).arg(ttl_ms);
        Ok(self.query::<i64>(cmd).await? == 1)
    }

    async fn list_keys(&self, prefix: &str, limit: u32) -> Result<Vec<String>, KvError> {
        let full = self.key(prefix);
        let pattern = format!("{}*", escape_glob(&full));
        let strip = self.key_prefix.len();
        let limit = limit as usize;
        let scan = |mut c: ConnectionManager| async move {
            // SCAN returns keys in no order: keep the `limit` smallest seen.
            let mut keys = std::collections::BTreeSet::new();
            let mut cursor = 0u64;
            loop {
                let (next, batch): (u64, Vec<Vec<u8>>) = redis::cmd("SCAN")
                    .arg(cursor)
                    .arg("MATCH")
                    .arg(&pattern)
                    .arg("COUNT")
                    .arg(SCAN_COUNT)
                    .query_async(&mut c)
                    .await?;
                for k in batch {
                    let Ok(k) = String::from_utf8(k) else { continue };
                    if k.starts_with(&full) {
                        keys.insert(k[strip..].to_owned());
                        if keys.len() > limit {
                            keys.pop_last();
                        }
                    }
                }
                if next == 0 {
                    return Ok(keys.into_iter().collect());
                }
                cursor = next;
            }
        };
        self.conn.run(scan).await.map_err(KvError::from)
    }
}

super::kv_backend_from_inherent!(RedisKvStore);
