//! SQLite: a file under the data directory, in WAL mode, with foreign keys on.
//!
//! Values come back by their storage class: INTEGER → number (or `true`/`false` in a column
//! declared `BOOLEAN`), REAL → number, TEXT → string, BLOB → array of byte numbers, NULL → null.

use std::path::Path;
use std::time::Duration;

use berth_plugin_api::{SqlExecuted, SqlValue};
use serde_json::Value;
use sqlx::sqlite::{
    SqliteArguments, SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteRow, SqliteSynchronous,
};
use sqlx::{Arguments as _, Column as _, Decode, Executor, Row as _, Sqlite, SqlitePool, TypeInfo as _, ValueRef as _};

use super::placeholders::{self, Dialect};
use super::{bytes_json, float_json, Failure, JsonRow, SqlPool};
use crate::config::SqliteConfig;
use crate::SetupError;
use std::sync::Arc;

use berth_core::metrics::ServiceMetrics;
use berth_core::provider::{OpenContext, OpenedService, TypedProvider};

/// How long a SQLite call waits for a pooled connection (SQLite has no `acquire_timeout` key:
/// its connections never go away, so only a full pool makes a call wait).
const SQLITE_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a SQLite statement waits for another connection's write lock.
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Creates the database file (and its folder) now, so a bad path refuses the service at setup;
/// connections open on first use.
pub(super) fn open(
    name: &str,
    cfg: &SqliteConfig,
    data_dir: &Path,
    busy_timeout: Duration,
    acquire_timeout: Duration,
) -> Result<SqlitePool, SetupError> {
    let path = match &cfg.path {
        Some(p) if p.is_absolute() => p.clone(),
        Some(p) => data_dir.join(p),
        None => data_dir.join("sql").join(format!("{name}.db")),
    };
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .map_err(|e| SetupError(format!("cannot create folder `{}`: {e}", parent.display())))?;
    }
    // An empty file is an empty database.
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .map_err(|e| SetupError(format!("cannot open database file `{}`: {e}", path.display())))?;
    let options = SqliteConnectOptions::new()
        .filename(&path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .foreign_keys(true)
        .busy_timeout(busy_timeout);
    Ok(SqlitePoolOptions::new()
        .max_connections(cfg.max_connections.max(1))
        .acquire_timeout(acquire_timeout)
        // A file does not go away under an open connection: skip the ping per call.
        .test_before_acquire(false)
        .connect_lazy_with(options))
}

// === the provider ===

/// `kind = "sqlite"`: SQLite, a file under the data directory.
pub const PROVIDER: TypedProvider<SqliteConfig> = TypedProvider::new("sqlite", "sql", open_pool);

fn open_pool(cfg: &SqliteConfig, ctx: OpenContext<'_>) -> Result<Arc<dyn OpenedService>, String> {
    Ok(Arc::new(SqlPool::sqlite(ctx.name, cfg, ctx.data_dir, ctx.metrics).map_err(|e| e.0)?))
}

impl SqlPool {
    /// A SQLite pool on its file (default `<data_dir>/sql/<name>.db`), created now so that a bad
    /// path fails here.
    ///
    /// Must be called inside the tokio runtime (the pool's maintenance task lives there).
    pub fn sqlite(
        name: &str,
        cfg: &SqliteConfig,
        data_dir: &Path,
        metrics: ServiceMetrics,
    ) -> Result<SqlPool, SetupError> {
        SqlPool::require_runtime()?;
        let pool = open(name, cfg, data_dir, SQLITE_BUSY_TIMEOUT, SQLITE_ACQUIRE_TIMEOUT)?;
        Ok(SqlPool::new(name, "sqlite", SQLITE_ACQUIRE_TIMEOUT, super::Pool::Sqlite(pool), metrics))
    }
}

fn arguments<'q>(sql: &str, params: &[&'q SqlValue]) -> Result<SqliteArguments<'q>, Failure> {
    let scanned = placeholders::scan(sql, Dialect::Sqlite).map_err(Failure::Invalid)?;
    // SQLite reads a parameter it was not given as NULL; a typo must not become a NULL write.
    placeholders::check_count(&scanned.order, params.len()).map_err(Failure::Invalid)?;
    let mut args = SqliteArguments::default();
    super::bind_all(&mut args, params.iter().copied().enumerate(), "SQLite", |a| a.add(None::<i64>))?;
    Ok(args)
}

pub(super) async fn query<'c>(
    ex: impl Executor<'c, Database = Sqlite>,
    sql: &str,
    params: &[&SqlValue],
) -> Result<Vec<JsonRow>, Failure> {
    let rows = sqlx::query_with(sql, arguments(sql, params)?).fetch_all(ex).await?;
    rows.iter().map(row_json).collect()
}

pub(super) async fn execute<'c>(
    ex: impl Executor<'c, Database = Sqlite>,
    sql: &str,
    params: &[&SqlValue],
) -> Result<SqlExecuted, Failure> {
    let done = sqlx::query_with(sql, arguments(sql, params)?).execute(ex).await?;
    Ok(SqlExecuted { rows_affected: done.rows_affected(), last_insert_id: done.last_insert_rowid() })
}

enum Storage {
    Integer,
    Real,
    Text,
    Blob,
}

fn row_json(row: &SqliteRow) -> Result<JsonRow, Failure> {
    let mut out = JsonRow::new();
    for (i, col) in row.columns().iter().enumerate() {
        let raw = row.try_get_raw(i)?;
        let decode_err = |e: sqlx::error::BoxDynError| Failure::Decode(format!("column `{}`: {e}", col.name()));
        let value = if raw.is_null() {
            Value::Null
        } else {
            let storage = match raw.type_info().name() {
                "INTEGER" => Storage::Integer,
                "REAL" => Storage::Real,
                "BLOB" => Storage::Blob,
                _ => Storage::Text,
            };
            match storage {
                Storage::Integer => {
                    let n = <i64 as Decode<Sqlite>>::decode(raw).map_err(decode_err)?;
                    if col.type_info().name() == "BOOLEAN" {
                        Value::Bool(n != 0)
                    } else {
                        Value::from(n)
                    }
                }
                Storage::Real => float_json(<f64 as Decode<Sqlite>>::decode(raw).map_err(decode_err)?),
                Storage::Text => Value::String(<String as Decode<Sqlite>>::decode(raw).map_err(decode_err)?),
                Storage::Blob => bytes_json(<&[u8] as Decode<Sqlite>>::decode(raw).map_err(decode_err)?),
            }
        };
        out.insert(col.name().to_owned(), value);
    }
    Ok(out)
}
