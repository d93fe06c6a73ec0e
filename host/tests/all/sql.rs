//! The SQL backends against real databases: SQLite in a temporary folder, the PostgreSQL at
//! `DATABASE_URL` (default `postgres://postgres@127.0.0.1:5432/test`) in a fresh schema per test,
//! the MySQL/MariaDB at `MYSQL_URL` (default `mysql://root@127.0.0.1:3306`) in a fresh database per
//! test, and a private PostgreSQL cluster that is stopped and restarted under traffic.
//!
//! Every call goes through the ABI handle a plugin gets (`SqlHandle`). A server that cannot be
//! reached fails the test with how to start it; nothing is skipped.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use berth_host::config::{SqlServerConfig, SqliteConfig};
use berth_host::core::Metrics;
use berth_host::services::sql::SqlPool;
use berth_plugin_api::{
    service_error_kind as kind, ServiceError, SqlExecuted, SqlHandle, SqlTransactionBox, SqlValue, SqlValue_NE,
};
use serde_json::{json, Value};
use sqlx::{Connection as _, Executor as _};

const PG_DEFAULT: &str = "postgres://postgres@127.0.0.1:5432/test";
const MYSQL_DEFAULT: &str = "mysql://root@127.0.0.1:3306";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Backend {
    Sqlite,
    Postgres,
    Mysql,
}

pub(crate) fn pg_url() -> String {
    std::env::var("DATABASE_URL").unwrap_or_else(|_| PG_DEFAULT.into())
}

fn mysql_url() -> String {
    std::env::var("MYSQL_URL").unwrap_or_else(|_| MYSQL_DEFAULT.into())
}

/// A name no other test run uses.
pub(crate) fn unique_name() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
    format!("berth_test_{:x}_{:x}_{}", std::process::id(), nanos, NEXT.fetch_add(1, Ordering::Relaxed))
}

/// `url` with its path (database) replaced by `db`, query parameters kept.
fn with_database(url: &str, db: &str) -> String {
    let (base, query) = url.split_once('?').map_or((url, None), |(b, q)| (b, Some(q)));
    let after_scheme = base.find("://").map_or(0, |i| i + 3);
    let host_end = base[after_scheme..].find('/').map_or(base.len(), |i| after_scheme + i);
    let mut out = format!("{}/{db}", &base[..host_end]);
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}

pub(crate) fn with_param(url: &str, param: &str) -> String {
    format!("{url}{}{param}", if url.contains('?') { '&' } else { '?' })
}

/// Runs `sql` on the server at `url` from a thread of its own (usable from `Drop`).
pub(crate) fn admin(backend: Backend, url: &str, sql: &str) -> Result<(), String> {
    let (url, sql) = (url.to_owned(), sql.to_owned());
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let run = async {
                match backend {
                    Backend::Postgres => {
                        let mut c = sqlx::PgConnection::connect(&url).await?;
                        c.execute(sqlx::raw_sql(&sql)).await?;
                        c.close().await
                    }
                    Backend::Mysql => {
                        let mut c = sqlx::MySqlConnection::connect(&url).await?;
                        c.execute(sqlx::raw_sql(&sql)).await?;
                        c.close().await
                    }
                    Backend::Sqlite => unreachable!(),
                }
            };
            tokio::time::timeout(Duration::from_secs(10), run)
                .await
                .map_err(|_| "no answer within 10 s".to_string())?
                .map_err(|e| e.to_string())
        })
    })
    .join()
    .unwrap()
}

/// Drops what a test created, even when it panicked.
enum Cleanup {
    None,
    Sql { backend: Backend, url: String, sql: String },
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if let Cleanup::Sql { backend, url, sql } = self {
            if let Err(e) = admin(*backend, url, sql) {
                eprintln!("cleanup `{sql}` failed: {e}");
            }
        }
    }
}

/// How a test database is configured, by backend.
#[derive(Clone)]
enum DbConfig {
    Sqlite(SqliteConfig),
    Postgres(SqlServerConfig),
    Mysql(SqlServerConfig),
}

impl DbConfig {
    /// The pool the `[services.db]` provider of this backend opens.
    fn open(&self, data_dir: &std::path::Path, metrics: &Metrics) -> SqlPool {
        let pool = match self {
            DbConfig::Sqlite(c) => SqlPool::sqlite("db", c, data_dir, metrics.service("db")),
            DbConfig::Postgres(c) => SqlPool::postgres("db", c, metrics.service("db")),
            DbConfig::Mysql(c) => SqlPool::mysql("db", c, metrics.service("db")),
        };
        pool.expect("pool opens")
    }
}

/// One isolated database and the handle a plugin would get for it.
struct TestDb {
    backend: Backend,
    db: SqlHandle,
    pool: SqlPool,
    metrics: Metrics,
    cfg: DbConfig,
    dir: tempfile::TempDir,
    _cleanup: Cleanup,
}

impl TestDb {
    async fn new(backend: Backend) -> TestDb {
        let dir = tempfile::tempdir().unwrap();
        let name = unique_name();
        let server = |url: String| SqlServerConfig { url, max_connections: 4, acquire_timeout: Duration::from_secs(5) };
        let (cfg, cleanup) = match backend {
            Backend::Sqlite => (DbConfig::Sqlite(SqliteConfig { path: None, max_connections: 4 }), Cleanup::None),
            Backend::Postgres => {
                let url = pg_url();
                admin(backend, &url, &format!("CREATE SCHEMA {name}")).unwrap_or_else(|e| {
                    panic!(
                        "PostgreSQL is not usable at `{url}`: {e}. Start it (`service postgresql start`, trust auth \
                         for user postgres, database `test`) or point DATABASE_URL at one"
                    )
                });
                let cleanup =
                    Cleanup::Sql { backend, url: url.clone(), sql: format!("DROP SCHEMA IF EXISTS {name} CASCADE") };
                (DbConfig::Postgres(server(with_param(&url, &format!("options[search_path]={name}")))), cleanup)
            }
            Backend::Mysql => {
                let url = mysql_url();
                admin(backend, &url, &format!("CREATE DATABASE {name}")).unwrap_or_else(|e| {
                    panic!(
                        "MySQL/MariaDB is not usable at `{url}`: {e}. Start it (`service mariadb start`, user root \
                         without password) or point MYSQL_URL at one"
                    )
                });
                let cleanup =
                    Cleanup::Sql { backend, url: url.clone(), sql: format!("DROP DATABASE IF EXISTS {name}") };
                (DbConfig::Mysql(server(with_database(&url, &name))), cleanup)
            }
        };
        let metrics = Metrics::new();
        let pool = cfg.open(dir.path(), &metrics);
        TestDb { backend, db: pool.handle(), pool, metrics, cfg, dir, _cleanup: cleanup }
    }

    /// A second pool on the same database, as after a host restart.
    fn reopen(&self) -> SqlPool {
        self.cfg.open(self.dir.path(), &self.metrics)
    }

    async fn query(&self, sql: &str, params: Vec<SqlValue>) -> Result<Value, ServiceError> {
        query(&self.db, sql, params).await
    }

    async fn execute(&self, sql: &str, params: Vec<SqlValue>) -> Result<SqlExecuted, ServiceError> {
        let params = params.into_iter().map(SqlValue_NE::new).collect();
        self.db.execute(sql.into(), params).await.into_result()
    }

    async fn ok(&self, sql: &str, params: Vec<SqlValue>) -> SqlExecuted {
        self.execute(sql, params).await.unwrap_or_else(|e| panic!("{sql}: {e:?}"))
    }

    async fn rows(&self, sql: &str, params: Vec<SqlValue>) -> Value {
        self.query(sql, params).await.unwrap_or_else(|e| panic!("{sql}: {e:?}"))
    }

    async fn count(&self, table: &str) -> i64 {
        self.rows(&format!("SELECT COUNT(*) AS n FROM {table}"), vec![]).await[0]["n"].as_i64().unwrap()
    }

    async fn begin(&self) -> SqlTransactionBox {
        self.db.begin().await.into_result().expect("begin")
    }

    /// An auto-increment primary key column for this backend.
    fn id_column(&self) -> &'static str {
        match self.backend {
            Backend::Sqlite => "id INTEGER PRIMARY KEY AUTOINCREMENT",
            Backend::Postgres => "id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY",
            Backend::Mysql => "id BIGINT AUTO_INCREMENT PRIMARY KEY",
        }
    }
}

async fn query(db: &SqlHandle, sql: &str, params: Vec<SqlValue>) -> Result<Value, ServiceError> {
    let params = params.into_iter().map(SqlValue_NE::new).collect();
    let json = db.query(sql.into(), params).await.into_result()?;
    Ok(serde_json::from_str(&json).expect("rows are JSON"))
}

async fn tx_query(tx: &SqlTransactionBox, sql: &str, params: Vec<SqlValue>) -> Result<Value, ServiceError> {
    let params = params.into_iter().map(SqlValue_NE::new).collect();
    let json = tx.query(sql.into(), params).await.into_result()?;
    Ok(serde_json::from_str(&json).expect("rows are JSON"))
}

async fn tx_execute(tx: &SqlTransactionBox, sql: &str, params: Vec<SqlValue>) -> Result<SqlExecuted, ServiceError> {
    tx.execute(sql.into(), params.into_iter().map(SqlValue_NE::new).collect()).await.into_result()
}

fn text(s: &str) -> SqlValue {
    SqlValue::Text(s.into())
}

fn metric(text: &str, line_start: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(line_start))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no metric `{line_start}` in:\n{text}"))
}

// === Value round trips ===

async fn round_trips_every_value_type(backend: Backend) {
    let t = TestDb::new(backend).await;
    let (float, blob) = match backend {
        Backend::Sqlite => ("REAL", "BLOB"),
        Backend::Postgres => ("DOUBLE PRECISION", "BYTEA"),
        Backend::Mysql => ("DOUBLE", "BLOB"),
    };
    t.ok(
        &format!(
            "CREATE TABLE vals ({}, flag BOOLEAN, whole BIGINT, frac {float}, txt TEXT, bin {blob}, missing TEXT)",
            t.id_column()
        ),
        vec![],
    )
    .await;
    let odd_text = "héllo ✓ 'single' \"double\" \\ back`tick` $1 ?";
    let insert = "INSERT INTO vals (flag, whole, frac, txt, bin, missing) VALUES ($1, $2, $3, $4, $5, $6)";
    let params = vec![
        SqlValue::Bool(true),
        SqlValue::Int(-9_007_199_254_740_993), // not representable as f64: must stay exact
        SqlValue::Float(1.5e-7),
        text(odd_text),
        SqlValue::Bytes(vec![0, 1, 127, 128, 255].into()),
        SqlValue::Null,
    ];
    let done = t.ok(insert, params).await;
    assert_eq!(done.rows_affected, 1);
    match backend {
        Backend::Postgres => assert_eq!(done.last_insert_id, 0, "postgres reports no insert id"),
        _ => assert_eq!(done.last_insert_id, 1),
    }
    // A NULL where the previous call of the same statement had values, then values again: the
    // statement's parameter types must not stick to the NULL (nor the other way round).
    let nulls = vec![SqlValue::Null; 6];
    t.ok(insert, nulls).await;
    let again = vec![
        SqlValue::Bool(false),
        SqlValue::Int(7),
        SqlValue::Float(-2.25),
        text(""),
        SqlValue::Bytes(vec![].into()),
        text("x"),
    ];
    let done = t.ok(insert, again).await;
    if backend != Backend::Postgres {
        assert_eq!(done.last_insert_id, 3);
    }

    let rows = t.rows("SELECT id, flag, whole, frac, txt, bin, missing FROM vals ORDER BY id", vec![]).await;
    assert_eq!(
        rows,
        json!([
            {"id": 1, "flag": true, "whole": -9_007_199_254_740_993i64, "frac": 1.5e-7, "txt": odd_text, "bin": [0, 1, 127, 128, 255], "missing": null},
            {"id": 2, "flag": null, "whole": null, "frac": null, "txt": null, "bin": null, "missing": null},
            {"id": 3, "flag": false, "whole": 7, "frac": -2.25, "txt": "", "bin": [], "missing": "x"},
        ]),
        "{backend:?}"
    );
    // Parameters by number, in any order, any number of times.
    let rows = t.rows("SELECT $2 AS second, $1 AS first, $2 AS again", vec![text("a"), text("b")]).await;
    assert_eq!(rows, json!([{"second": "b", "first": "a", "again": "b"}]));
    let rows = t
        .rows("SELECT txt FROM vals WHERE whole = $1 AND flag = $2", vec![SqlValue::Int(7), SqlValue::Bool(false)])
        .await;
    assert_eq!(rows, json!([{"txt": ""}]));

    let m = t.metrics.render();
    assert!(metric(&m, "berth_service_calls_total{op=\"execute\",service=\"db\"}") >= 4.0, "{m}");
    assert!(metric(&m, "berth_service_calls_total{op=\"query\",service=\"db\"}") >= 3.0, "{m}");
}

#[tokio::test]
async fn sqlite_round_trips_every_value_type() {
    round_trips_every_value_type(Backend::Sqlite).await;
}

#[tokio::test]
async fn postgres_round_trips_every_value_type() {
    round_trips_every_value_type(Backend::Postgres).await;
}

#[tokio::test]
async fn mysql_round_trips_every_value_type() {
    round_trips_every_value_type(Backend::Mysql).await;
}

#[tokio::test]
async fn postgres_decodes_columns_by_type() {
    let t = TestDb::new(Backend::Postgres).await;
    let rows = t
        .rows(
            "SELECT 12345.678::numeric AS num, '2024-02-29 13:05:09.5+02'::timestamptz AS tstz, \
             '2024-02-29 13:05:09'::timestamp AS ts, '2024-02-29'::date AS d, '13:05:09.25'::time AS tm, \
             '13:05:09+05:30'::timetz AS tmz, '{\"a\": [1, 2]}'::jsonb AS jb, '{\"b\": null}'::json AS j, \
             '00010203-0405-0607-0809-0a0b0c0d0e0f'::uuid AS u, ARRAY[1, 2, NULL]::int[] AS arr, \
             ARRAY[['a', 'b'], ['c', 'd']] AS arr2, '{}'::text[] AS empty, 1.1::real AS r, 42::int2 AS s, \
             7::int4 AS i, 'NaN'::float8 AS nan, '1 year 2 mons 3 days 04:05:06.5'::interval AS iv, \
             '10.0.0.0/24'::cidr AS net, '::1'::inet AS host, '08:00:2b:01:02:03'::macaddr AS mac, \
             'x'::varchar AS vc, 'ab'::char(3) AS ch, 'name'::name AS nm, true AS yes, '\\x00ff'::bytea AS by, \
             26::oid AS o",
            vec![],
        )
        .await;
    assert_eq!(
        rows,
        json!([{
            "num": "12345.678", "tstz": "2024-02-29T11:05:09.5Z", "ts": "2024-02-29T13:05:09", "d": "2024-02-29",
            "tm": "13:05:09.25", "tmz": "13:05:09+05:30", "jb": {"a": [1, 2]}, "j": {"b": null},
            "u": "00010203-0405-0607-0809-0a0b0c0d0e0f", "arr": [1, 2, null], "arr2": [["a", "b"], ["c", "d"]],
            "empty": [], "r": 1.1, "s": 42, "i": 7, "nan": "NaN", "iv": "P1Y2M3DT4H5M6.5S", "net": "10.0.0.0/24",
            "host": "::1", "mac": "08:00:2b:01:02:03", "vc": "x", "ch": "ab ", "nm": "name", "yes": true,
            "by": [0, 255], "o": 26
        }])
    );
    // Numerics exactly as the server writes them.
    let rows = t
        .rows(
            "SELECT x::numeric AS n, x::numeric::text AS t FROM (VALUES ('0.000012'), ('-12345.678'), ('100000000'), \
             ('1e-20'), ('123456789012345678901234567890.000000001'), ('0'), ('-0.5'), ('10000.0001')) v(x)",
            vec![],
        )
        .await;
    for row in rows.as_array().unwrap() {
        assert_eq!(row["n"], row["t"]);
    }
    // An enum and a domain read as their labels and base type; a text parameter casts.
    t.ok("CREATE TYPE mood AS ENUM ('happy', 'sad')", vec![]).await;
    t.ok("CREATE DOMAIN positive AS integer CHECK (VALUE > 0)", vec![]).await;
    let rows = t
        .rows("SELECT 'sad'::mood AS m, 5::positive AS p, $1::timestamptz AS at", vec![text("2024-01-01T00:00:00Z")])
        .await;
    assert_eq!(rows, json!([{"m": "sad", "p": 5, "at": "2024-01-01T00:00:00Z"}]));
}

#[tokio::test]
async fn mysql_decodes_columns_by_type() {
    let t = TestDb::new(Backend::Mysql).await;
    t.ok(
        "CREATE TABLE typed (num DECIMAL(10,3), dt DATETIME(6), ts TIMESTAMP(6) NULL, d DATE, tm TIME(2), \
         j JSON, u BIGINT UNSIGNED, y YEAR, e ENUM('a','b'), fl FLOAT, vb VARBINARY(4), ti TINYINT, b BIT(8))",
        vec![],
    )
    .await;
    t.ok(
        "INSERT INTO typed VALUES (12345.678, '2024-02-29 13:05:09.5', '2024-02-29 13:05:09.5', '2024-02-29', \
         '-12:30:05.25', '{\"a\": [1, 2]}', 18446744073709551615, 2024, 'b', 1.1, x'00ff', -5, b'101')",
        vec![],
    )
    .await;
    let rows = t.rows("SELECT * FROM typed", vec![]).await;
    let row = &rows[0];
    let expected = json!({
        "num": "12345.678", "dt": "2024-02-29T13:05:09.5", "ts": "2024-02-29T13:05:09.5Z", "d": "2024-02-29",
        "tm": "-12:30:05.25", "u": 18446744073709551615u64, "y": 2024, "e": "b", "fl": 1.1, "vb": [0, 255],
        "ti": -5, "b": 5
    });
    for (k, v) in expected.as_object().unwrap() {
        assert_eq!(&row[k], v, "column {k} of {row}");
    }
    // MySQL sends JSON as JSON. MariaDB's JSON is a LONGTEXT with a binary collation on the wire,
    // which the protocol marks exactly like a LONGBLOB: it arrives as the bytes of its text.
    let j = match &row["j"] {
        Value::Array(bytes) => {
            let bytes: Vec<u8> = bytes.iter().map(|b| b.as_u64().unwrap() as u8).collect();
            serde_json::from_slice::<Value>(&bytes).unwrap()
        }
        other => other.clone(),
    };
    assert_eq!(j, json!({"a": [1, 2]}));
    let as_text = t.rows("SELECT CAST(j AS CHAR) AS j FROM typed", vec![]).await;
    assert_eq!(serde_json::from_str::<Value>(as_text[0]["j"].as_str().unwrap()).unwrap(), json!({"a": [1, 2]}));
}

// === Injection ===

async fn injection_attempts_stay_data(backend: Backend) {
    let t = TestDb::new(backend).await;
    t.ok(&format!("CREATE TABLE todos ({}, title TEXT NOT NULL)", t.id_column()), vec![]).await;
    let attempts = [
        "'); DROP TABLE todos; --",
        "\\'); DROP TABLE todos; --",
        "\"; DROP TABLE todos; --",
        "$1; DROP TABLE todos",
        "' OR '1'='1",
        "`; DROP TABLE todos; #",
        "/* */ DROP TABLE todos",
    ];
    for a in attempts {
        t.ok("INSERT INTO todos (title) VALUES ($1)", vec![text(a)]).await;
    }
    for a in attempts {
        let rows = t.rows("SELECT title FROM todos WHERE title = $1", vec![text(a)]).await;
        assert_eq!(rows, json!([{"title": a}]), "{backend:?}: {a}");
    }
    assert_eq!(t.count("todos").await, attempts.len() as i64, "the table is still there, with every row");
    // Placeholders inside literals and comments are text, not parameters.
    let rows = t.rows("SELECT '$1' AS lit, $1 AS p /* $2 */", vec![text("x")]).await;
    assert_eq!(rows, json!([{"lit": "$1", "p": "x"}]));
    // A statement naming a parameter it was not given is refused, not run with a NULL.
    let e = t.execute("DELETE FROM todos WHERE title = $2", vec![text("x")]).await.unwrap_err();
    assert_eq!(e.kind, kind::INVALID, "{e:?}");
    assert_eq!(t.count("todos").await, attempts.len() as i64);
}

#[tokio::test]
async fn sqlite_keeps_injection_attempts_as_data() {
    injection_attempts_stay_data(Backend::Sqlite).await;
}

#[tokio::test]
async fn postgres_keeps_injection_attempts_as_data() {
    injection_attempts_stay_data(Backend::Postgres).await;
}

#[tokio::test]
async fn mysql_keeps_injection_attempts_as_data() {
    injection_attempts_stay_data(Backend::Mysql).await;
}

// === Transactions ===

async fn transactions_commit_roll_back_and_roll_back_on_drop(backend: Backend) {
    let t = TestDb::new(backend).await;
    t.ok("CREATE TABLE items (name VARCHAR(50) NOT NULL)", vec![]).await;
    let insert = "INSERT INTO items (name) VALUES ($1)";

    let tx = t.begin().await;
    tx_execute(&tx, insert, vec![text("committed")]).await.unwrap();
    let inside = tx_query(&tx, "SELECT COUNT(*) AS n FROM items", vec![]).await.unwrap();
    assert_eq!(inside, json!([{"n": 1}]), "a transaction reads its own writes");
    tx.commit().await.into_result().unwrap();
    assert_eq!(t.count("items").await, 1);
    for e in [
        tx_query(&tx, "SELECT 1", vec![]).await.map(drop).unwrap_err(),
        tx_execute(&tx, insert, vec![text("late")]).await.map(drop).unwrap_err(),
        tx.commit().await.into_result().unwrap_err(),
        tx.rollback().await.into_result().unwrap_err(),
    ] {
        assert_eq!(e.kind, kind::INVALID);
        assert!(e.message.contains("transaction already finished") && e.message.contains("`db`"), "{e:?}");
    }
    drop(tx);

    let tx = t.begin().await;
    tx_execute(&tx, insert, vec![text("rolled back")]).await.unwrap();
    tx.rollback().await.into_result().unwrap();
    assert_eq!(t.count("items").await, 1);

    let tx = t.begin().await;
    tx_execute(&tx, insert, vec![text("dropped")]).await.unwrap();
    drop(tx);
    // Every connection of the pool, including the one the dropped transaction held, takes
    // writes again: nothing stays locked.
    for i in 0..8 {
        t.ok(insert, vec![text(&format!("after {i}"))]).await;
    }
    let rows =
        t.rows("SELECT name FROM items WHERE name IN ($1, $2)", vec![text("dropped"), text("rolled back")]).await;
    assert_eq!(rows, json!([]), "{backend:?}: dropping a transaction rolls it back");
    assert_eq!(t.count("items").await, 9);

    let m = t.metrics.render();
    for op in ["begin", "commit", "rollback"] {
        assert!(metric(&m, &format!("berth_service_calls_total{{op=\"{op}\",service=\"db\"}}")) >= 1.0, "{m}");
    }
}

#[tokio::test]
async fn sqlite_transactions_commit_roll_back_and_roll_back_on_drop() {
    transactions_commit_roll_back_and_roll_back_on_drop(Backend::Sqlite).await;
}

#[tokio::test]
async fn postgres_transactions_commit_roll_back_and_roll_back_on_drop() {
    transactions_commit_roll_back_and_roll_back_on_drop(Backend::Postgres).await;
}

#[tokio::test]
async fn mysql_transactions_commit_roll_back_and_roll_back_on_drop() {
    transactions_commit_roll_back_and_roll_back_on_drop(Backend::Mysql).await;
}

// === Errors ===

async fn violations_conflict_and_bad_sql_is_invalid(backend: Backend) {
    let t = TestDb::new(backend).await;
    t.ok("CREATE TABLE users (id BIGINT PRIMARY KEY, email VARCHAR(100) NOT NULL UNIQUE)", vec![]).await;
    t.ok("CREATE TABLE posts (id BIGINT PRIMARY KEY, user_id BIGINT NOT NULL REFERENCES users (id))", vec![]).await;
    let add = "INSERT INTO users (id, email) VALUES ($1, $2)";
    t.ok(add, vec![SqlValue::Int(1), text("a@example.com")]).await;

    let e = t.execute(add, vec![SqlValue::Int(2), text("a@example.com")]).await.unwrap_err();
    assert_eq!(e.kind, kind::CONFLICT, "{e:?}");
    assert_eq!(e.service.as_str(), "db");
    assert!(e.message.contains("`db`"), "the message names the service: {e:?}");

    let e = t
        .execute("INSERT INTO posts (id, user_id) VALUES ($1, $2)", vec![SqlValue::Int(1), SqlValue::Int(99)])
        .await
        .unwrap_err();
    assert_eq!(e.kind, kind::CONFLICT, "foreign key: {e:?}");

    let e = t.query("SELEC id FROM users", vec![]).await.unwrap_err();
    assert_eq!(e.kind, kind::INVALID, "{e:?}");
    assert!(e.message.contains("`db`"), "{e:?}");
    let db_says = match backend {
        Backend::Sqlite => "syntax error",
        Backend::Postgres => "syntax error at or near \"SELEC\"",
        Backend::Mysql => "You have an error in your SQL syntax",
    };
    assert!(e.message.contains(db_says), "the database's own message: {e:?}");

    let e = t.query("SELECT nope FROM users", vec![]).await.unwrap_err();
    assert_eq!(e.kind, kind::INVALID, "{e:?}");
    let e = t.query("SELECT * FROM users WHERE id = $3", vec![SqlValue::Int(1)]).await.unwrap_err();
    assert_eq!(e.kind, kind::INVALID, "{e:?}");

    let m = t.metrics.render();
    assert!(metric(&m, "berth_service_errors_total{kind=\"conflict\",op=\"execute\",service=\"db\"}") >= 2.0, "{m}");
    assert!(metric(&m, "berth_service_errors_total{kind=\"invalid\",op=\"query\",service=\"db\"}") >= 3.0, "{m}");
}

#[tokio::test]
async fn sqlite_violations_conflict_and_bad_sql_is_invalid() {
    violations_conflict_and_bad_sql_is_invalid(Backend::Sqlite).await;
}

#[tokio::test]
async fn postgres_violations_conflict_and_bad_sql_is_invalid() {
    violations_conflict_and_bad_sql_is_invalid(Backend::Postgres).await;
}

#[tokio::test]
async fn mysql_violations_conflict_and_bad_sql_is_invalid() {
    violations_conflict_and_bad_sql_is_invalid(Backend::Mysql).await;
}

// === Migrations ===

fn write(dir: &Path, name: &str, text: &str) {
    std::fs::write(dir.join(name), text).unwrap();
}

async fn migrations_apply_once_in_order_and_refuse_changes(backend: Backend) {
    let t = TestDb::new(backend).await;
    let dir = tempfile::tempdir().unwrap();
    let m = dir.path();
    // 002 needs 001's table: lexical order is the order they run in.
    write(
        m,
        "001_create.sql",
        "CREATE TABLE notes (id BIGINT PRIMARY KEY, body TEXT);\nCREATE TABLE tags (name VARCHAR(20));\n",
    );
    write(
        m,
        "002_seed.sql",
        "INSERT INTO notes (id, body) VALUES (1, 'first');\nINSERT INTO tags (name) VALUES ('a');\n",
    );
    write(m, "README.md", "not a migration");

    assert_eq!(t.pool.migrate("notes", m).await.unwrap(), ["001_create.sql", "002_seed.sql"]);
    assert_eq!(t.pool.migrate("notes", m).await.unwrap(), Vec::<String>::new(), "missing twice");

    // Another host (a second pool) sees them applied; a new file applies alone.
    write(m, "003_more.sql", "INSERT INTO notes (id, body) VALUES (2, 'second');");
    let second = t.reopen();
    assert_eq!(second.migrate("notes", m).await.unwrap(), ["003_more.sql"]);
    assert_eq!(second.migrate("notes", m).await.unwrap(), Vec::<String>::new());
    assert_eq!(t.count("notes").await, 2);
    assert_eq!(t.count("tags").await, 1);
    // Another group's history is its own.
    let other = tempfile::tempdir().unwrap();
    write(other.path(), "001_create.sql", "CREATE TABLE other_notes (id BIGINT);");
    assert_eq!(t.pool.migrate("other", other.path()).await.unwrap(), ["001_create.sql"]);

    // A failing file is refused by name, leaves missing recorded, and (where DDL is
    // transactional) missing behind.
    write(m, "004_broken.sql", "CREATE TABLE half (id BIGINT);\nSELEC nonsense;\n");
    let e = t.pool.migrate("notes", m).await.unwrap_err();
    assert!(e.contains("004_broken.sql") && e.contains("`db`"), "{e}");
    if backend != Backend::Mysql {
        assert!(t.query("SELECT * FROM half", vec![]).await.is_err(), "{backend:?}: the failed file was rolled back");
    }
    std::fs::remove_file(m.join("004_broken.sql")).unwrap();

    // Changing an applied file is refused, naming it, before anything new runs.
    write(m, "002_seed.sql", "INSERT INTO notes (id, body) VALUES (1, 'edited');");
    write(m, "005_new.sql", "INSERT INTO notes (id, body) VALUES (5, 'new');");
    let e = second.migrate("notes", m).await.unwrap_err();
    assert!(e.contains("002_seed.sql") && e.contains("changed after it was applied"), "{e}");
    assert_eq!(t.count("notes").await, 2, "005 did not run");

    let recorded = t.rows("SELECT group_name, name FROM _berth_migrations ORDER BY group_name, name", vec![]).await;
    assert_eq!(
        recorded,
        json!([
            {"group_name": "notes", "name": "001_create.sql"},
            {"group_name": "notes", "name": "002_seed.sql"},
            {"group_name": "notes", "name": "003_more.sql"},
            {"group_name": "other", "name": "001_create.sql"},
        ])
    );
}

#[tokio::test]
async fn sqlite_migrations_apply_once_in_order_and_refuse_changes() {
    migrations_apply_once_in_order_and_refuse_changes(Backend::Sqlite).await;
}

#[tokio::test]
async fn postgres_migrations_apply_once_in_order_and_refuse_changes() {
    migrations_apply_once_in_order_and_refuse_changes(Backend::Postgres).await;
}

#[tokio::test]
async fn mysql_migrations_apply_once_in_order_and_refuse_changes() {
    migrations_apply_once_in_order_and_refuse_changes(Backend::Mysql).await;
}

#[tokio::test]
async fn migrations_prefer_the_folder_of_the_backend() {
    let t = TestDb::new(Backend::Sqlite).await;
    let dir = tempfile::tempdir().unwrap();
    for backend in ["sqlite", "postgres"] {
        std::fs::create_dir(dir.path().join(backend)).unwrap();
        write(&dir.path().join(backend), "001.sql", &format!("CREATE TABLE made_for_{backend} (id INTEGER);"));
    }
    assert_eq!(t.pool.migrate("g", dir.path()).await.unwrap(), ["001.sql"]);
    assert_eq!(t.count("made_for_sqlite").await, 0);
    let e = t.pool.migrate("g", &dir.path().join("missing")).await.unwrap_err();
    assert!(e.contains("cannot read migrations folder"), "{e}");
}

#[tokio::test]
async fn sqlite_file_is_created_under_the_data_dir() {
    let t = TestDb::new(Backend::Sqlite).await;
    assert!(t.dir.path().join("sql/db.db").is_file());
    t.ok("CREATE TABLE x (id INTEGER)", vec![]).await;
    let mode = t.rows("PRAGMA journal_mode", vec![]).await;
    assert_eq!(mode, json!([{"journal_mode": "wal"}]));
}

// === Outage ===

/// A PostgreSQL cluster of its own on a free port, run as the `postgres` OS user.
struct PrivatePostgres {
    dir: tempfile::TempDir,
    bin: PathBuf,
    port: u16,
}

impl PrivatePostgres {
    fn bin_dir() -> PathBuf {
        let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
            .map(|d| d.flatten().map(|e| e.path().join("bin")).filter(|p| p.join("initdb").is_file()).collect())
            .unwrap_or_default();
        found.sort();
        found.pop().expect("PostgreSQL server binaries under /usr/lib/postgresql/*/bin (apt-get install postgresql)")
    }

    fn run(&self, tool: &str, args: &[&str]) -> std::process::Output {
        let out = Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(self.bin.join(tool))
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("running {tool} as the postgres user: {e}"));
        out
    }

    fn data(&self) -> String {
        self.dir.path().join("data").display().to_string()
    }

    fn init() -> PrivatePostgres {
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let status = Command::new("chown").args(["-R", "postgres:postgres"]).arg(dir.path()).status().unwrap();
        assert!(status.success(), "chown of the cluster folder to the postgres user");
        let pg = PrivatePostgres { dir, bin: Self::bin_dir(), port };
        let out = pg.run("initdb", &["-D", &pg.data(), "-A", "trust", "-U", "postgres", "--no-sync"]);
        assert!(out.status.success(), "initdb: {}", String::from_utf8_lossy(&out.stderr));
        pg
    }

    fn start(&self) {
        let opts = format!("-p {} -k {} -c listen_addresses=127.0.0.1", self.port, self.dir.path().display());
        let log = self.dir.path().join("log").display().to_string();
        let out = self.run("pg_ctl", &["-D", &self.data(), "-o", &opts, "-l", &log, "-w", "start"]);
        assert!(
            out.status.success(),
            "pg_ctl start: {}{}",
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(&log).unwrap_or_default()
        );
    }

    fn stop(&self) {
        let out = self.run("pg_ctl", &["-D", &self.data(), "-m", "fast", "-w", "stop"]);
        assert!(out.status.success(), "pg_ctl stop: {}", String::from_utf8_lossy(&out.stderr));
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        let _ = self.run("pg_ctl", &["-D", &self.data(), "-m", "immediate", "-w", "stop"]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_outage_fails_fast_and_recovers_without_restart() {
    let pg = std::sync::Arc::new(
        tokio::task::spawn_blocking(|| {
            let pg = PrivatePostgres::init();
            pg.start();
            pg
        })
        .await
        .unwrap(),
    );
    let acquire_timeout = Duration::from_secs(2);
    let cfg = SqlServerConfig { url: pg.url(), max_connections: 3, acquire_timeout };
    let pool = SqlPool::postgres("db", &cfg, Metrics::new().service("db")).unwrap();
    let db = pool.handle();
    for i in 0..5 {
        assert_eq!(query(&db, "SELECT $1::bigint AS i", vec![SqlValue::Int(i)]).await.unwrap(), json!([{"i": i}]));
    }
    let open_tx = db.begin().await.into_result().unwrap();
    tx_query(&open_tx, "SELECT 1 AS one", vec![]).await.unwrap();

    // Traffic from three callers while the server stops.
    let stop_at = Instant::now() + Duration::from_millis(300);
    let traffic_until = stop_at + Duration::from_secs(5);
    let mut callers = Vec::new();
    for _ in 0..3 {
        let db = db.clone();
        callers.push(tokio::spawn(async move {
            let mut calls = Vec::new();
            while Instant::now() < traffic_until {
                let started = Instant::now();
                let outcome = query(&db, "SELECT 1 AS one", vec![]).await;
                calls.push((started, started.elapsed(), outcome.map(drop)));
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            calls
        }));
    }
    tokio::time::sleep_until(stop_at.into()).await;
    let stopper = pg.clone();
    tokio::task::spawn_blocking(move || stopper.stop()).await.unwrap();
    let stopped = Instant::now();

    let (mut failures, mut unavailable, mut timeouts, mut slowest) = (0, 0, 0, Duration::ZERO);
    for caller in callers {
        for (started, took, outcome) in caller.await.unwrap() {
            slowest = slowest.max(took);
            assert!(
                took <= acquire_timeout + Duration::from_secs(1),
                "a call took {took:?} with acquire_timeout {acquire_timeout:?}"
            );
            match outcome {
                Ok(()) => assert!(started < stopped, "a call started after the stop succeeded"),
                Err(e) => {
                    assert!(matches!(e.kind, kind::UNAVAILABLE | kind::TIMEOUT), "{e:?}");
                    assert!(e.message.contains("`db`"), "{e:?}");
                    failures += 1;
                    unavailable += usize::from(e.kind == kind::UNAVAILABLE);
                    timeouts += usize::from(e.kind == kind::TIMEOUT);
                }
            }
        }
    }
    assert!(failures > 0, "calls after the stop failed");
    eprintln!(
        "outage: {failures} calls failed ({unavailable} unavailable, {timeouts} timeouts), slowest call {slowest:?}"
    );

    // The transaction's connection is gone: its calls fail at once, they do not hang.
    let started = Instant::now();
    let e = tx_query(&open_tx, "SELECT 1", vec![]).await.unwrap_err();
    assert!(matches!(e.kind, kind::UNAVAILABLE | kind::TIMEOUT), "{e:?}");
    assert!(started.elapsed() <= acquire_timeout + Duration::from_secs(1));
    drop(open_tx);

    // Back on the same port: the same pool serves again.
    let starter = pg.clone();
    tokio::task::spawn_blocking(move || starter.start()).await.unwrap();
    let mut back = None;
    for _ in 0..10 {
        match query(&db, "SELECT 2 AS two", vec![]).await {
            Ok(rows) => {
                back = Some(rows);
                break;
            }
            Err(e) => {
                eprintln!("not back yet: {e:?}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
    assert_eq!(back, Some(json!([{"two": 2}])), "calls succeed again after the restart");
    for _ in 0..10 {
        query(&db, "SELECT 1 AS one", vec![]).await.expect("every pooled connection works again");
    }
    let tx = db.begin().await.into_result().expect("transactions work again");
    tx.commit().await.into_result().unwrap();
    drop((db, pool));
}
