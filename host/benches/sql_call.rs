//! The cost of one one-row SQLite query, made three ways:
//!
//! - `sql_call/direct_sqlx`: host code running `SELECT id, name FROM bench_rows WHERE id = $1`
//!   with sqlx on its own pool (configured like the backend's: WAL, no ping per acquire), with
//!   `fetch_all` like the backend, decoding the row into `(i64, String)`: the database and nothing
//!   else. (`fetch_optional` measured slower here than `fetch_all` on sqlx-sqlite 0.8: it stops
//!   reading at the first row and leaves the worker to finish the statement.)
//! - `sql_call/host_handle`: host code awaiting `query` on the `SqlHandle` the group was given (adds
//!   the ABI trait object, parameter conversion, rows as JSON, metrics and the `FfiFuture`).
//! - `sql_call/through_plugin`: `FunctionGroup::call` of `sql_one` in the `svc-bench` fixture
//!   (release build), which runs `ctx.sql("db")?.query_opt::<Row>(..)`: the SDK glue, the
//!   registry-resolved handle, serde decoding of the JSON rows, and the answer back as an HTTP
//!   response with a JSON body.
//!
//! The database is a file (`bench_rows(id INTEGER PRIMARY KEY, name TEXT)`, one row) under a
//! scratch data directory. The group's services are resolved by a `ServiceRegistry` built from
//! `berth.toml` text (`[services.db] kind = "sqlite"`, `[services.cache] kind = "kv"`: the fixture
//! declares both). After criterion's runs a fixed interleaved loop prints the ratio direct /
//! through-plugin time per call (1.0 would be no overhead).
//!
//! `cargo bench -p berth-host --bench sql_call`

use std::collections::BTreeMap;
use std::hint::black_box;
use std::time::Duration;

use berth_host::config::BerthConfig;
use berth_host::services::host::GroupHost;
use berth_plugin_api::{FunctionGroup, RResult, RVec, SqlValue, SqlValue_NE};
use criterion::{criterion_group, criterion_main, Criterion};

mod support;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};

const GROUP: &str = "svc-bench";
const QUERY: &str = "SELECT id, name FROM bench_rows WHERE id = $1";

fn sql_call(c: &mut Criterion) {
    let support::Bench { so, scratch, plugin, index } = support::load("host/fixtures/svc-bench", "sql_one");
    let db_file = scratch.join("bench.db");

    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio runtime");

    // The table and its row, written with sqlx directly; this pool is also the direct path.
    let direct_pool = rt.block_on(async {
        let options =
            SqliteConnectOptions::new().filename(&db_file).create_if_missing(true).journal_mode(SqliteJournalMode::Wal);
        // As the backend configures its pool: no ping before each acquire (sqlx's default pings,
        // which would cost this baseline a round trip to the connection's worker thread).
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .test_before_acquire(false)
            .connect_with(options)
            .await
            .expect("opening bench.db");
        sqlx::raw_sql(
            "CREATE TABLE bench_rows (id INTEGER PRIMARY KEY, name TEXT); INSERT INTO bench_rows VALUES (1, 'one');",
        )
        .execute(&pool)
        .await
        .expect("creating bench_rows");
        pool
    });

    let toml = format!(
        "data_dir = {scratch:?}\n\n[[groups]]\nfile = {so:?}\n\n[services.db]\nkind = \"sqlite\"\npath = {db_file:?}\n\n\
         [services.cache]\nkind = \"kv\"\n"
    );
    let config = BerthConfig::parse(&toml, &scratch, &BTreeMap::new()).expect("bench berth.toml");
    let registry = support::registry(&config);
    // The pools' maintenance tasks live in the runtime: resolve inside it.
    let services = rt
        .block_on(registry.resolve(GROUP, &plugin.manifest.services, support::settings(&config.groups[0])))
        .expect("resolving `db` and `cache` (both backends must be available in this build)");
    let handle = services.sql("db").expect("the group's db handle");

    let host = GroupHost::with_services(GROUP, services.clone());
    let instance = rt.block_on(plugin.instantiate(host.clone())).expect("instantiating svc-bench");
    let call = || {
        let (ctx, input) = support::get(&host, "/sql/1", ("id", "1"));
        FunctionGroup::call(&instance.group, index, ctx, input)
    };
    let params = || RVec::from(vec![SqlValue_NE::new(SqlValue::Int(1))]);

    // All three read the same row.
    match rt.block_on(call()) {
        RResult::ROk(r) => assert_eq!((r.status, &r.body[..]), (200, &br#"{"id":1,"name":"one"}"#[..])),
        RResult::RErr(e) => panic!("sql_one failed: {}", berth_plugin_api::describe_error(&e)),
    }
    let json = rt.block_on(handle.query(QUERY.into(), params())).unwrap();
    assert_eq!(json.as_str(), r#"[{"id":1,"name":"one"}]"#);
    let row: Option<(i64, String)> =
        rt.block_on(sqlx::query_as(QUERY).bind(1i64).fetch_optional(&direct_pool)).unwrap();
    assert_eq!(row, Some((1, "one".to_owned())));

    let direct = || async {
        let rows: Vec<(i64, String)> =
            sqlx::query_as(QUERY).bind(black_box(1i64)).fetch_all(&direct_pool).await.unwrap();
        black_box(rows)
    };
    let via_handle = || async { black_box(handle.query(QUERY.into(), params()).await) };
    let via_plugin = || async { black_box(call().await) };

    let mut group = c.benchmark_group("sql_call");
    group.bench_function("direct_sqlx", |b| {
        b.iter_custom(|iters| rt.block_on(support::timed(iters, direct)));
    });
    group.bench_function("host_handle", |b| {
        b.iter_custom(|iters| rt.block_on(support::timed(iters, via_handle)));
    });
    group.bench_function("through_plugin", |b| {
        b.iter_custom(|iters| rt.block_on(support::timed(iters, via_plugin)));
    });
    group.finish();

    // The ratio, from interleaved rounds so that drift hits both sides alike.
    const ROUNDS: usize = 10;
    const PER_ROUND: u64 = 2_000;
    let (mut d, mut h, mut p) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        d.push(rt.block_on(support::timed(PER_ROUND, direct)));
        h.push(rt.block_on(support::timed(PER_ROUND, via_handle)));
        p.push(rt.block_on(support::timed(PER_ROUND, via_plugin)));
    }
    let per_call = |mut v: Vec<Duration>| {
        v.sort();
        v[v.len() / 2].as_nanos() as f64 / PER_ROUND as f64
    };
    let (d, h, p) = (per_call(d), per_call(h), per_call(p));
    println!(
        "sql_call: per one-row query (median of {ROUNDS} x {PER_ROUND}): direct sqlx {:.1} µs, host handle {:.1} µs, \
         through plugin {:.1} µs; direct/through-plugin = {:.3}, direct/host-handle = {:.3}",
        d / 1e3,
        h / 1e3,
        p / 1e3,
        d / p,
        d / h
    );

    rt.block_on(instance.group.shutdown());
    drop(instance);
    rt.block_on(direct_pool.close());
    let _ = std::fs::remove_dir_all(&scratch);
}

criterion_group! {
    name = benches;
    config = support::service_bench_config();
    targets = sql_call
}
criterion_main!(benches);
