//! The embedded key-value store (`kind = "kv"`): one SQLite file under the data directory.
//!
//! It keeps one table, `kv (key TEXT PRIMARY KEY, value BLOB, expires_at INTEGER)`, in WAL mode.
//! Expiry is a Unix time in milliseconds: expired rows are invisible to every operation, deleted
//! when a `get` meets them, and swept in the background every [`SWEEP_EVERY`] writes.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use berth_core::clock::now_unix_ms;
use berth_core::metrics::ServiceMetrics;
use berth_core::provider::{OpenContext, OpenedService, TypedProvider};
use berth_plugin_api::service_error_kind as kind;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{ConnectOptions as _, Connection as _};

use super::{KvBackend, KvError, KvService};
use crate::config::EmbeddedKvConfig;
use crate::SetupError;

/// Connections of the embedded store's pool (SQLite serialises writers anyway).
const EMBEDDED_CONNECTIONS: u32 = 4;
/// How long an embedded call waits for a connection, and for a writer to release the file.
const EMBEDDED_WAIT: Duration = Duration::from_secs(5);
/// Expired rows of the embedded store are swept after this many writes.
pub const SWEEP_EVERY: u64 = 1024;

// === the provider ===

/// `kind = "kv"`: the embedded store.
pub const PROVIDER: TypedProvider<EmbeddedKvConfig> = TypedProvider::new("kv", "kv", open_store);

fn open_store(cfg: &EmbeddedKvConfig, ctx: OpenContext<'_>) -> Result<Arc<dyn OpenedService>, String> {
    let backend = open_embedded(ctx.name, cfg, ctx.data_dir, ctx.metrics).map_err(|e| e.0)?;
    Ok(Arc::new(KvService { backend, shared: cfg.shared }))
}

/// Opens the embedded store of `[services.<name>]`, creating its file and table if needed.
pub fn open_embedded(
    name: &str,
    cfg: &EmbeddedKvConfig,
    data_dir: &Path,
    metrics: ServiceMetrics,
) -> Result<Arc<dyn KvBackend>, SetupError> {
    Ok(Arc::new(EmbeddedStore::open(name, cfg, data_dir, metrics)?))
}

// === impl EmbeddedStore ===

/// The embedded store: one SQLite file.
pub struct EmbeddedStore {
    pool: SqlitePool,
    max_value_size: u64,
    metrics: ServiceMetrics,
    writes: AtomicU64,
}

const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value BLOB NOT NULL, expires_at INTEGER);
CREATE INDEX IF NOT EXISTS kv_expires_at ON kv (expires_at) WHERE expires_at IS NOT NULL;";

/// The expiry time of a value set now with `ttl_ms` (0: none).
fn expires_at(ttl_ms: u64) -> Option<i64> {
    (ttl_ms > 0).then(|| i64::try_from(now_unix_ms().saturating_add(ttl_ms)).unwrap_or(i64::MAX))
}

fn now() -> i64 {
    i64::try_from(now_unix_ms()).unwrap_or(i64::MAX)
}

fn live(expires_at: Option<i64>, now: i64) -> bool {
    expires_at.is_none_or(|t| t > now)
}

/// The smallest string greater than every string starting with `prefix`, if there is one: the
/// exclusive upper end of the key range `list_keys` reads (UTF-8 order is code point order).
fn prefix_end(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(last) = chars.pop() {
        let next = (u32::from(last) + 1..=u32::from(char::MAX)).find_map(char::from_u32);
        if let Some(next) = next {
            chars.push(next);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

fn sql_error(e: sqlx::Error) -> KvError {
    let kind = match &e {
        sqlx::Error::PoolTimedOut => kind::TIMEOUT,
        sqlx::Error::Io(_) | sqlx::Error::PoolClosed | sqlx::Error::WorkerCrashed => kind::UNAVAILABLE,
        // SQLITE_BUSY, SQLITE_LOCKED, SQLITE_READONLY, SQLITE_IOERR, SQLITE_FULL, SQLITE_CANTOPEN
        // (extended codes keep the primary code in the low byte).
        sqlx::Error::Database(d) => match d.code().and_then(|c| c.parse::<i32>().ok()).map(|c| c & 0xff) {
            Some(5 | 6 | 8 | 10 | 13 | 14) => kind::UNAVAILABLE,
            _ => kind::OTHER,
        },
        _ => kind::OTHER,
    };
    KvError::failed(kind, format!("embedded store: {e}"))
}

impl EmbeddedStore {
    /// Opens (creating if needed) the store's file and table. The pool connects lazily; the
    /// table is created here, on a short-lived connection, so a bad path refuses the group at load.
    pub fn open(
        name: &str,
        cfg: &EmbeddedKvConfig,
        data_dir: &Path,
        metrics: ServiceMetrics,
    ) -> Result<EmbeddedStore, SetupError> {
        let path = match &cfg.path {
            Some(p) if p.is_absolute() => p.clone(),
            Some(p) => data_dir.join(p),
            None => data_dir.join("kv").join(format!("{name}.db")),
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| SetupError(format!("cannot create directory `{}`: {e}", dir.display())))?;
        }
        let options = SqliteConnectOptions::new()
            .filename(&path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(EMBEDDED_WAIT);
        create_schema(&options)
            .map_err(|e| SetupError(format!("cannot open key-value file `{}`: {e}", path.display())))?;
        // No idle timeout, lifetime or minimum: the pool then spawns no maintenance task, so it
        // can be made outside a runtime and used from any.
        let pool = SqlitePoolOptions::new()
            .max_connections(EMBEDDED_CONNECTIONS)
            .min_connections(0)
            .idle_timeout(None)
            .max_lifetime(None)
            .acquire_timeout(EMBEDDED_WAIT)
            .connect_lazy_with(options);
        Ok(EmbeddedStore { pool, max_value_size: cfg.max_value_size.as_u64(), metrics, writes: AtomicU64::new(0) })
    }

    /// Counts a write; every [`SWEEP_EVERY`]th starts a background sweep of expired rows.
    fn wrote(&self) {
        if self.writes.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY == SWEEP_EVERY - 1 {
            let pool = self.pool.clone();
            tokio::spawn(async move {
                let swept = sqlx::query("DELETE FROM kv WHERE expires_at <= ?1").bind(now()).execute(&pool).await;
                if let Err(e) = swept {
                    tracing::debug!(error = %e, "sweeping expired keys failed; the next sweep retries");
                }
            });
        }
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        let row: Option<(Vec<u8>, Option<i64>)> = sqlx::query_as("SELECT value, expires_at FROM kv WHERE key = ?1")
            .bind(key)
            .fetch_optional(&self.pool)
            .await
            .map_err(sql_error)?;
        let now = now();
        match row {
            Some((value, exp)) if live(exp, now) => Ok(Some(value)),
            Some(_) => {
                // Expired: remove it unless someone has set it again meanwhile.
                let _ = sqlx::query("DELETE FROM kv WHERE key = ?1 AND expires_at <= ?2")
                    .bind(key)
                    .bind(now)
                    .execute(&self.pool)
                    .await;
                Ok(None)
            }
            None => Ok(None),
        }
    }

    async fn set(&self, key: &str, value: Vec<u8>, ttl_ms: u64) -> Result<(), KvError> {
        sqlx::query(
            "INSERT INTO kv (key, value, expires_at) VALUES (?1, ?2, ?3)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at",
        )
        .bind(key)
        .bind(value)
        .bind(expires_at(ttl_ms))
        .execute(&self.pool)
        .await
        .map_err(sql_error)?;
        self.wrote();
        Ok(())
    }

    async fn delete(&self, key: &str) -> Result<bool, KvError> {
        let gone: Option<(Option<i64>,)> = sqlx::query_as("DELETE FROM kv WHERE key = ?1 RETURNING expires_at")
            .bind(key)
            .fetch_optional(&self.pool)
            .await
            .map_err(sql_error)?;
        Ok(gone.is_some_and(|(exp,)| live(exp, now())))
    }

    async fn increment(&self, key: &str, delta: i64) -> Result<i64, KvError> {
        // IMMEDIATE takes the write lock first, so no other writer slips in between read and write.
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await.map_err(sql_error)?;
        let row: Option<(Vec<u8>, Option<i64>)> = sqlx::query_as("SELECT value, expires_at FROM kv WHERE key = ?1")
            .bind(key)
            .fetch_optional(&mut *tx)
            .await
            .map_err(sql_error)?;
        let (current, exp) = match row {
            Some((value, exp)) if live(exp, now()) => (super::counter_value(&value)?, exp),
            _ => (0, None),
        };
        let next = current.checked_add(delta).ok_or(KvError::Overflow)?;
        sqlx::query(
            "INSERT INTO kv (key, value, expires_at) VALUES (?1, ?2, ?3)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at",
        )
        .bind(key)
        .bind(next.to_string().into_bytes())
        .bind(exp)
        .execute(&mut *tx)
        .await
        .map_err(sql_error)?;
        tx.commit().await.map_err(sql_error)?;
        self.wrote();
        Ok(next)
    }

    async fn compare_and_swap(
        &self,
        key: &str,
        expected: Option<Vec<u8>>,
        new: Vec<u8>,
        ttl_ms: u64,
    ) -> Result<bool, KvError> {
        // One statement each way, so the comparison and the write are atomic.
        let done = match expected {
            None => sqlx::query(
                "INSERT INTO kv (key, value, expires_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at
                 WHERE kv.expires_at IS NOT NULL AND kv.expires_at <= ?4",
            )
            .bind(key)
            .bind(new)
            .bind(expires_at(ttl_ms))
            .bind(now()),
            Some(expected) => sqlx::query(
                "UPDATE kv SET value = ?2, expires_at = ?3
                 WHERE key = ?1 AND value = ?5 AND (expires_at IS NULL OR expires_at > ?4)",
            )
            .bind(key)
            .bind(new)
            .bind(expires_at(ttl_ms))
            .bind(now())
            .bind(expected),
        }
        .execute(&self.pool)
        .await
        .map_err(sql_error)?;
        let swapped = done.rows_affected() == 1;
        if swapped {
            self.wrote();
        }
        Ok(swapped)
    }

    async fn list_keys(&self, prefix: &str, limit: u32) -> Result<Vec<String>, KvError> {
        // A key range, not LIKE: `%` and `_` in the prefix stay literal, and LIKE would also
        // match ASCII case-insensitively.
        let keys: Vec<(String,)> = sqlx::query_as(
            "SELECT key FROM kv WHERE key >= ?1 AND (?2 IS NULL OR key < ?2)
             AND (expires_at IS NULL OR expires_at > ?3) ORDER BY key LIMIT ?4",
        )
        .bind(prefix)
        .bind(prefix_end(prefix))
        .bind(now())
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(sql_error)?;
        Ok(keys.into_iter().map(|(k,)| k).filter(|k| k.starts_with(prefix)).collect())
    }
}

/// Creates the table on a connection of its own. `open` is synchronous and may run inside or
/// outside a runtime, so this runs on a scoped thread with a runtime of its own.
fn create_schema(options: &SqliteConnectOptions) -> Result<(), sqlx::Error> {
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
                rt.block_on(async {
                    let mut conn = options.connect().await?;
                    sqlx::raw_sql(SCHEMA).execute(&mut conn).await?;
                    conn.close().await
                })
            })
            .join()
            .unwrap_or_else(|_| Err(sqlx::Error::WorkerCrashed))
    })
}

super::kv_backend_from_inherent!(EmbeddedStore);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_ranges() {
        assert_eq!(prefix_end("a").as_deref(), Some("b"));
        assert_eq!(prefix_end("g1/").as_deref(), Some("g10"));
        assert_eq!(prefix_end("a\u{10FFFF}").as_deref(), Some("b"));
        assert_eq!(prefix_end("\u{D7FF}").as_deref(), Some("\u{E000}"));
        assert_eq!(prefix_end(""), None);
        assert_eq!(prefix_end("\u{10FFFF}"), None);
    }
}
