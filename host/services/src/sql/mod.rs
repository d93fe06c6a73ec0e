//! SQL backends on sqlx: SQLite (a file under the data directory), PostgreSQL, and MySQL/MariaDB.
//!
//! One [`SqlPool`] per `[services.<name>]`; every group that declares the service shares it.
//!
//! - **Parameters** are always bound, never spliced into the text. Statements use `$1..$N` on
//!   every backend: SQLite and PostgreSQL take them natively; for MySQL they are rewritten to `?`
//!   outside quoted strings, identifiers and comments, binding the values in the order the
//!   placeholders appear (so `$2 .. $1` works). On PostgreSQL a text parameter is `text`: write
//!   `$1::uuid`, `$1::timestamptz`, `$1::jsonb` where a column wants another type.
//! - **Rows** come back as a JSON array of objects, column name → value (see each backend's
//!   module for the type mapping: numeric/decimal as strings, timestamps as RFC 3339 strings,
//!   json as embedded JSON, blobs as arrays of byte numbers).
//! - **Transactions** are host-made objects holding one connection; dropping one without
//!   commit rolls it back.
//! - **Failures** carry a [`service_error_kind`](kind): a database that is down answers
//!   `UNAVAILABLE` or (no connection within `acquire_timeout`) `TIMEOUT`, never a hang; the pool
//!   tests idle connections before use, so calls work again once the database is back.
//! - **Migrations**: [`SqlPool::migrate`] applies a group's `*.sql` files once each, in order.

mod migrate;
#[cfg(feature = "mysql")]
pub mod mysql;
mod placeholders;
#[cfg(feature = "postgres")]
pub mod postgres;
#[cfg(feature = "sqlite")]
pub mod sqlite;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use berth_core::host_future::FutureExt as _;
use berth_plugin_api::abi_stable::{
    sabi_trait::TD_Opaque,
    std_types::{RArc, RBox},
};
use berth_plugin_api::{
    service_error_kind as kind, RString, RVec, ServiceError, ServiceResult, SqlExecuted, SqlHandle, SqlService,
    SqlService_TO, SqlTransaction, SqlTransactionBox, SqlTransaction_TO, SqlValue, SqlValue_NE,
};
use sqlx::error::ErrorKind;
#[cfg(feature = "mysql")]
use sqlx::MySql;
#[cfg(feature = "postgres")]
use sqlx::Postgres;
#[cfg(feature = "sqlite")]
use sqlx::Sqlite;
use sqlx::Transaction;
use tokio::sync::Mutex;

use crate::SetupError;
use berth_core::metrics::ServiceMetrics;
use berth_core::provider::{GroupLoad, OpenedService, ProviderFuture, ServiceHandle};

/// One row: column name → value.
type JsonRow = serde_json::Map<String, serde_json::Value>;

/// Why a statement failed before it became a [`ServiceError`].
#[derive(Debug)]
enum Failure {
    Sql(sqlx::Error),
    /// Refused by Berth itself (placeholders that do not match the parameters, ...).
    Invalid(String),
    /// A value the database returned that Berth cannot put into JSON.
    Decode(String),
}

impl From<sqlx::Error> for Failure {
    fn from(e: sqlx::Error) -> Self {
        Failure::Sql(e)
    }
}

/// Adds `params` (with their positions, for messages) to a driver's arguments; `null` adds a
/// NULL the way that driver wants one. `database` names the driver when a value kind is refused.
fn bind_all<'q, A>(
    args: &mut A,
    params: impl IntoIterator<Item = (usize, &'q SqlValue)>,
    database: &str,
    mut null: impl FnMut(&mut A) -> Result<(), sqlx::error::BoxDynError>,
) -> Result<(), Failure>
where
    A: sqlx::Arguments<'q>,
    bool: sqlx::Encode<'q, A::Database> + sqlx::Type<A::Database>,
    i64: sqlx::Encode<'q, A::Database> + sqlx::Type<A::Database>,
    f64: sqlx::Encode<'q, A::Database> + sqlx::Type<A::Database>,
    &'q str: sqlx::Encode<'q, A::Database> + sqlx::Type<A::Database>,
    &'q [u8]: sqlx::Encode<'q, A::Database> + sqlx::Type<A::Database>,
{
    for (i, p) in params {
        let added = match p {
            SqlValue::Null => null(args),
            SqlValue::Bool(b) => args.add(*b),
            SqlValue::Int(n) => args.add(*n),
            SqlValue::Float(f) => args.add(*f),
            SqlValue::Text(s) => args.add(s.as_str()),
            SqlValue::Bytes(b) => args.add(b.as_slice()),
            _ => return Err(Failure::Invalid(format!("parameter ${} has a value kind {database} cannot take", i + 1))),
        };
        added.map_err(|e| Failure::Invalid(format!("parameter ${}: {e}", i + 1)))?;
    }
    Ok(())
}

// === impl SqlPool ===

#[derive(Clone)]
enum Pool {
    #[cfg(feature = "sqlite")]
    Sqlite(sqlx::SqlitePool),
    #[cfg(feature = "postgres")]
    Postgres(sqlx::PgPool),
    #[cfg(feature = "mysql")]
    Mysql(sqlx::MySqlPool),
}

struct Inner {
    name: Arc<str>,
    /// `sqlite`, `postgres` or `mysql`, as configured.
    backend: &'static str,
    acquire_timeout: Duration,
    pool: Pool,
    metrics: ServiceMetrics,
}

/// A pool of connections to one configured database. Cheap to clone.
#[derive(Clone)]
pub struct SqlPool(Arc<Inner>);

impl SqlPool {
    /// A pool around an opened `sqlx` pool (each backend's file makes one: `SqlPool::sqlite`,
    /// `SqlPool::postgres`, `SqlPool::mysql`).
    fn new(name: &str, backend: &'static str, acquire_timeout: Duration, pool: Pool, metrics: ServiceMetrics) -> Self {
        SqlPool(Arc::new(Inner { name: name.into(), backend, acquire_timeout, pool, metrics }))
    }

    /// Refuses to set a pool up outside the tokio runtime (its maintenance task lives there).
    fn require_runtime() -> Result<(), SetupError> {
        match tokio::runtime::Handle::try_current() {
            Ok(_) => Ok(()),
            Err(_) => Err(SetupError("SQL pools must be opened inside the tokio runtime".into())),
        }
    }

    /// The handle groups get.
    pub fn handle(&self) -> SqlHandle {
        SqlService_TO::from_ptr(RArc::new(self.clone()), TD_Opaque)
    }

    /// The service name as configured.
    pub fn name(&self) -> &str {
        &self.0.name
    }

    /// `sqlite`, `postgres` or `mysql`.
    pub fn backend(&self) -> &'static str {
        self.0.backend
    }

    /// Applies the `*.sql` files of `dir` (or of `dir/<backend>/` when that folder exists, so one
    /// crate can carry `migrations/sqlite/` and `migrations/postgres/`) that `group` has not
    /// applied yet, in lexical order of their names, each in its own transaction, recording each
    /// in `_berth_migrations`. Returns the names applied now. Refuses to go on when an applied
    /// file changed since (its checksum differs). The error names the file and the service.
    pub async fn migrate(&self, group: &str, dir: &Path) -> Result<Vec<String>, String> {
        migrate::run(self, group, dir).await
    }

    /// Turns a failure into the error a plugin sees, naming this service.
    fn error(&self, failure: Failure) -> ServiceError {
        service_error(&self.0.name, self.0.backend, self.0.acquire_timeout, failure)
    }

    async fn run_query(&self, sql: &str, params: &[&SqlValue]) -> Result<Vec<JsonRow>, ServiceError> {
        let rows = match &self.0.pool {
            #[cfg(feature = "sqlite")]
            Pool::Sqlite(p) => sqlite::query(p, sql, params).await,
            #[cfg(feature = "postgres")]
            Pool::Postgres(p) => postgres::query(p, sql, params).await,
            #[cfg(feature = "mysql")]
            Pool::Mysql(p) => mysql::query(p, sql, params).await,
        };
        rows.map_err(|e| self.error(e))
    }

    async fn run_execute(&self, sql: &str, params: &[&SqlValue]) -> Result<SqlExecuted, ServiceError> {
        let done = match &self.0.pool {
            #[cfg(feature = "sqlite")]
            Pool::Sqlite(p) => sqlite::execute(p, sql, params).await,
            #[cfg(feature = "postgres")]
            Pool::Postgres(p) => postgres::execute(p, sql, params).await,
            #[cfg(feature = "mysql")]
            Pool::Mysql(p) => mysql::execute(p, sql, params).await,
        };
        done.map_err(|e| self.error(e))
    }

    async fn begin(&self) -> Result<Tx, ServiceError> {
        let tx = match &self.0.pool {
            // IMMEDIATE takes the write lock up front: a deferred transaction that reads and then
            // writes can fail at once with SQLITE_BUSY when another connection wrote meanwhile.
            #[cfg(feature = "sqlite")]
            Pool::Sqlite(p) => p.begin_with("BEGIN IMMEDIATE").await.map(Tx::Sqlite),
            #[cfg(feature = "postgres")]
            Pool::Postgres(p) => p.begin().await.map(Tx::Postgres),
            #[cfg(feature = "mysql")]
            Pool::Mysql(p) => p.begin().await.map(Tx::Mysql),
        };
        tx.map_err(|e| self.error(e.into()))
    }
}

impl SqlService for SqlPool {
    fn query(&self, sql: RString, params: RVec<SqlValue_NE>) -> ServiceResult<RString> {
        let pool = self.clone();
        async move {
            let rows = async {
                let params = abi_params(&pool.0.name, &params)?;
                pool.run_query(&sql, &params).await.map(|rows| rows_json(&rows))
            };
            pool.0.metrics.observe("query", rows).await
        }
        .into_ffi()
    }

    fn execute(&self, sql: RString, params: RVec<SqlValue_NE>) -> ServiceResult<SqlExecuted> {
        let pool = self.clone();
        async move {
            let done = async {
                let params = abi_params(&pool.0.name, &params)?;
                pool.run_execute(&sql, &params).await
            };
            pool.0.metrics.observe("execute", done).await
        }
        .into_ffi()
    }

    fn begin(&self) -> ServiceResult<SqlTransactionBox> {
        let pool = self.clone();
        async move {
            let tx = async {
                let tx = pool.begin().await?;
                let open = OpenTx {
                    pool: pool.clone(),
                    state: Arc::new(TxState { tx: Mutex::new(Some(tx)), runtime: tokio::runtime::Handle::current() }),
                };
                Ok(SqlTransaction_TO::from_ptr(RBox::new(open), TD_Opaque))
            };
            pool.0.metrics.observe("begin", tx).await
        }
        .into_ffi()
    }
}

/// The pool of a database server (PostgreSQL, MySQL): connections are made on first use.
#[cfg(any(feature = "postgres", feature = "mysql"))]
fn server_pool<DB: sqlx::Database>(
    options: <DB::Connection as sqlx::Connection>::Options,
    cfg: &crate::config::SqlServerConfig,
) -> sqlx::Pool<DB> {
    sqlx::pool::PoolOptions::<DB>::new()
        .max_connections(cfg.max_connections.max(1))
        .acquire_timeout(cfg.acquire_timeout)
        .connect_lazy_with(options)
}

// === impl OpenedService for SqlPool ===

/// What every SQL provider opens: groups share the pool; a group that declares exactly one SQL
/// service gets its migrations applied to it when it loads.
impl OpenedService for SqlPool {
    fn bind(&self, _group: &str, _declared_as: &str) -> ServiceHandle {
        ServiceHandle::Sql(self.handle())
    }

    fn on_group_load<'a>(&'a self, load: GroupLoad<'a>) -> ProviderFuture<'a, Result<Vec<String>, String>> {
        Box::pin(async move {
            match load.migrations {
                Some(dir) if load.declared_of_family == 1 => self.migrate(load.group, dir).await,
                _ => Ok(Vec::new()),
            }
        })
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

// === impl OpenTx ===

/// A transaction in progress on one connection of a pool.
enum Tx {
    #[cfg(feature = "sqlite")]
    Sqlite(Transaction<'static, Sqlite>),
    #[cfg(feature = "postgres")]
    Postgres(Transaction<'static, Postgres>),
    #[cfg(feature = "mysql")]
    Mysql(Transaction<'static, MySql>),
}

impl Tx {
    async fn query(&mut self, sql: &str, params: &[&SqlValue]) -> Result<Vec<JsonRow>, Failure> {
        match self {
            #[cfg(feature = "sqlite")]
            Tx::Sqlite(tx) => sqlite::query(&mut **tx, sql, params).await,
            #[cfg(feature = "postgres")]
            Tx::Postgres(tx) => postgres::query(&mut **tx, sql, params).await,
            #[cfg(feature = "mysql")]
            Tx::Mysql(tx) => mysql::query(&mut **tx, sql, params).await,
        }
    }

    async fn execute(&mut self, sql: &str, params: &[&SqlValue]) -> Result<SqlExecuted, Failure> {
        match self {
            #[cfg(feature = "sqlite")]
            Tx::Sqlite(tx) => sqlite::execute(&mut **tx, sql, params).await,
            #[cfg(feature = "postgres")]
            Tx::Postgres(tx) => postgres::execute(&mut **tx, sql, params).await,
            #[cfg(feature = "mysql")]
            Tx::Mysql(tx) => mysql::execute(&mut **tx, sql, params).await,
        }
    }

    /// Runs a script of several statements, without parameters (migrations).
    async fn script(&mut self, sql: &str) -> Result<(), Failure> {
        use sqlx::Executor as _;
        let raw = sqlx::raw_sql(sql);
        match self {
            #[cfg(feature = "sqlite")]
            Tx::Sqlite(tx) => tx.execute(raw).await.map(drop)?,
            #[cfg(feature = "postgres")]
            Tx::Postgres(tx) => tx.execute(raw).await.map(drop)?,
            #[cfg(feature = "mysql")]
            Tx::Mysql(tx) => tx.execute(raw).await.map(drop)?,
        }
        Ok(())
    }

    async fn commit(self) -> Result<(), sqlx::Error> {
        match self {
            #[cfg(feature = "sqlite")]
            Tx::Sqlite(tx) => tx.commit().await,
            #[cfg(feature = "postgres")]
            Tx::Postgres(tx) => tx.commit().await,
            #[cfg(feature = "mysql")]
            Tx::Mysql(tx) => tx.commit().await,
        }
    }

    async fn rollback(self) -> Result<(), sqlx::Error> {
        match self {
            #[cfg(feature = "sqlite")]
            Tx::Sqlite(tx) => tx.rollback().await,
            #[cfg(feature = "postgres")]
            Tx::Postgres(tx) => tx.rollback().await,
            #[cfg(feature = "mysql")]
            Tx::Mysql(tx) => tx.rollback().await,
        }
    }
}

/// The transaction, shared with the futures of calls in flight; `None` once finished.
struct TxState {
    tx: Mutex<Option<Tx>>,
    /// Where a transaction dropped outside the runtime still returns its connection (sqlx rolls
    /// back and returns it from a spawned task).
    runtime: tokio::runtime::Handle,
}

impl Drop for TxState {
    fn drop(&mut self) {
        if let Some(tx) = self.tx.get_mut().take() {
            let _entered = tokio::runtime::Handle::try_current().is_err().then(|| self.runtime.enter());
            drop(tx); // sqlx queues the rollback; it runs before the connection is reused
        }
    }
}

/// The object a plugin holds for an open transaction.
#[derive(Clone)]
struct OpenTx {
    pool: SqlPool,
    state: Arc<TxState>,
}

impl OpenTx {
    fn finished(&self) -> ServiceError {
        let Inner { name, backend, .. } = &*self.pool.0;
        ServiceError::new(kind::INVALID, name, format!("{backend} `{name}`: transaction already finished"))
    }

    async fn query(&self, sql: &str, params: &[SqlValue_NE]) -> Result<Vec<JsonRow>, ServiceError> {
        let params = abi_params(&self.pool.0.name, params)?;
        let mut tx = self.state.tx.lock().await;
        let tx = tx.as_mut().ok_or_else(|| self.finished())?;
        tx.query(sql, &params).await.map_err(|e| self.pool.error(e))
    }

    async fn execute(&self, sql: &str, params: &[SqlValue_NE]) -> Result<SqlExecuted, ServiceError> {
        let params = abi_params(&self.pool.0.name, params)?;
        let mut tx = self.state.tx.lock().await;
        let tx = tx.as_mut().ok_or_else(|| self.finished())?;
        tx.execute(sql, &params).await.map_err(|e| self.pool.error(e))
    }

    /// Commits (`true`) or rolls back; the transaction is finished whatever the outcome.
    async fn finish(&self, commit: bool) -> Result<(), ServiceError> {
        let tx = self.state.tx.lock().await.take().ok_or_else(|| self.finished())?;
        let done = if commit { tx.commit().await } else { tx.rollback().await };
        done.map_err(|e| self.pool.error(e.into()))
    }
}

impl SqlTransaction for OpenTx {
    fn query(&self, sql: RString, params: RVec<SqlValue_NE>) -> ServiceResult<RString> {
        let tx = self.clone();
        async move {
            let rows = tx.query(&sql, &params);
            tx.pool.0.metrics.observe("query", async { rows.await.map(|rows| rows_json(&rows)) }).await
        }
        .into_ffi()
    }

    fn execute(&self, sql: RString, params: RVec<SqlValue_NE>) -> ServiceResult<SqlExecuted> {
        let tx = self.clone();
        async move { tx.pool.0.metrics.observe("execute", tx.execute(&sql, &params)).await }.into_ffi()
    }

    fn commit(&self) -> ServiceResult<()> {
        let tx = self.clone();
        async move { tx.pool.0.metrics.observe("commit", tx.finish(true)).await }.into_ffi()
    }

    fn rollback(&self) -> ServiceResult<()> {
        let tx = self.clone();
        async move { tx.pool.0.metrics.observe("rollback", tx.finish(false)).await }.into_ffi()
    }
}

// === Parameters and rows ===

/// The parameters as the ABI enum; a kind this host does not know is refused.
fn abi_params<'a>(service: &str, params: &'a [SqlValue_NE]) -> Result<Vec<&'a SqlValue>, ServiceError> {
    params
        .iter()
        .enumerate()
        .map(|(i, p)| {
            p.as_enum().map_err(|_| {
                ServiceError::new(
                    kind::INVALID,
                    service,
                    format!("parameter ${} has a value kind this host does not know; upgrade the host", i + 1),
                )
            })
        })
        .collect()
}

fn rows_json(rows: &[JsonRow]) -> RString {
    // A map of JSON values always serialises.
    serde_json::to_string(rows).unwrap_or_else(|_| "[]".into()).into()
}

/// A float as JSON: non-finite values (NaN, ±Infinity) have no JSON number, so they are strings.
fn float_json(f: f64) -> serde_json::Value {
    serde_json::Number::from_f64(f).map(serde_json::Value::Number).unwrap_or_else(|| {
        serde_json::Value::String(
            if f.is_nan() {
                "NaN"
            } else if f > 0.0 {
                "Infinity"
            } else {
                "-Infinity"
            }
            .into(),
        )
    })
}

/// A 4-byte float as JSON, keeping its shortest decimal form (`1.1`, not `1.100000023841858`).
#[cfg(any(feature = "postgres", feature = "mysql"))]
fn f32_json(f: f32) -> serde_json::Value {
    float_json(f.to_string().parse().unwrap_or(f as f64))
}

fn bytes_json(b: &[u8]) -> serde_json::Value {
    serde_json::Value::Array(b.iter().map(|&b| serde_json::Value::from(b)).collect())
}

// === Errors ===

/// The error a plugin sees for `failure` on service `name` (backend `backend`).
fn service_error(name: &str, backend: &str, acquire_timeout: Duration, failure: Failure) -> ServiceError {
    let err = |k: u8, message: String| ServiceError::new(k, name, format!("{backend} `{name}`: {message}"));
    let e = match failure {
        Failure::Invalid(message) => return err(kind::INVALID, message),
        Failure::Decode(message) => return err(kind::OTHER, message),
        Failure::Sql(e) => e,
    };
    match e {
        sqlx::Error::Database(db) => {
            let code = db.code().map(|c| c.into_owned()).unwrap_or_default();
            let message =
                if code.is_empty() { db.message().to_owned() } else { format!("{} (code {code})", db.message()) };
            let k = match db.kind() {
                ErrorKind::UniqueViolation | ErrorKind::ForeignKeyViolation => kind::CONFLICT,
                _ => database_error_kind(backend, &code, db.as_ref()),
            };
            err(k, message)
        }
        sqlx::Error::PoolTimedOut => err(
            kind::TIMEOUT,
            format!(
                "no connection within {:?} (the database is down or unreachable, or every connection is busy)",
                acquire_timeout
            ),
        ),
        sqlx::Error::PoolClosed => {
            err(kind::UNAVAILABLE, "the connection pool is closed (the host is stopping)".into())
        }
        sqlx::Error::Io(e) => err(kind::UNAVAILABLE, format!("database unreachable: {e}")),
        sqlx::Error::Tls(e) => err(kind::UNAVAILABLE, format!("TLS with the database failed: {e}")),
        sqlx::Error::WorkerCrashed => err(kind::UNAVAILABLE, "the database worker stopped".into()),
        // A reply that makes no sense is almost always a connection cut mid-message.
        sqlx::Error::Protocol(m) => err(kind::UNAVAILABLE, format!("connection to the database broke: {m}")),
        e @ (sqlx::Error::ColumnDecode { .. } | sqlx::Error::Decode(_)) => err(kind::OTHER, e.to_string()),
        e @ (sqlx::Error::Configuration(_)
        | sqlx::Error::Encode(_)
        | sqlx::Error::TypeNotFound { .. }
        | sqlx::Error::ColumnIndexOutOfBounds { .. }
        | sqlx::Error::ColumnNotFound(_)
        | sqlx::Error::InvalidArgument(_)) => err(kind::INVALID, e.to_string()),
        e => err(kind::OTHER, e.to_string()),
    }
}

/// The kind of a database error that is not a constraint violation, by SQLSTATE (PostgreSQL,
/// MySQL) or result code (SQLite). Everything not listed is the statement's fault: `INVALID`.
fn database_error_kind(backend: &str, code: &str, db: &dyn sqlx::error::DatabaseError) -> u8 {
    let _ = db;
    if backend == "sqlite" {
        // Extended result codes: the primary code is the low byte.
        return match code.parse::<i32>().map(|c| c & 0xff) {
            Ok(5) => kind::TIMEOUT,                    // SQLITE_BUSY: the write lock stayed taken
            Ok(6) => kind::CONFLICT,                   // SQLITE_LOCKED
            Ok(8 | 10 | 13 | 14) => kind::UNAVAILABLE, // READONLY, IOERR, FULL, CANTOPEN
            _ => kind::INVALID,
        };
    }
    #[cfg(feature = "mysql")]
    if let Some(my) = db.try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>() {
        match my.number() {
            1205 => return kind::TIMEOUT,                          // lock wait timeout
            1213 => return kind::CONFLICT,                         // deadlock
            1040 | 1053 | 1152 | 1203 => return kind::UNAVAILABLE, // too many connections, shutdown, aborted
            _ => {}
        }
    }
    match code {
        "40001" | "40P01" => kind::CONFLICT, // serialization failure, deadlock
        "08P01" => kind::INVALID,            // protocol violation: parameters that do not fit the statement
        "57014" | "55P03" => kind::TIMEOUT,  // statement timeout / cancelled, lock not available
        c if c.starts_with("08") || c.starts_with("53") || c.starts_with("57P") => kind::UNAVAILABLE,
        _ => kind::INVALID,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Group loading runs in spawned tasks (admin deploys, hot swaps): migrating must be `Send`
    /// for any lifetime, which a closure held across an await quietly breaks.
    #[test]
    fn migrating_can_run_in_a_spawned_task() {
        fn spawnable<F: std::future::Future + Send + 'static>(_: F) {}
        fn check(pool: SqlPool) {
            spawnable(async move { pool.migrate("g", Path::new("migrations")).await });
        }
        let _ = check;
    }
}
