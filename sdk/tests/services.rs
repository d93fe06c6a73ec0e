//! `berth::testing` with services (feature `testing`): one small group that declares one service
//! of each kind, each exercised through a function, on the backends the harness provisions.

use std::time::Duration;

use berth::__private::{decl, ExportDef, GroupDef};
use berth::testing::TestGroup;
use berth::{Bytes, Context, Error, GroupContext, Json, Path, Request, Result, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

// === the group under test ===

/// The init hook writes a key: it runs with the services already provisioned.
async fn setup(ctx: GroupContext) -> Result<()> {
    ctx.kv("cache")?.set("started", "yes", None).await?;
    Ok(())
}

#[berth::http(PUT, "/kv/{key}")]
async fn kv_put(ctx: Context, Path(key): Path<String>, body: Bytes) -> Result<StatusCode> {
    ctx.kv("cache")?.set(&key, body.0, Some(Duration::from_secs(60))).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[berth::http(GET, "/kv/{key}")]
async fn kv_get(ctx: Context, Path(key): Path<String>) -> Result<Vec<u8>> {
    ctx.kv("cache")?.get(&key).await?.ok_or_else(|| Error::not_found(format!("no key `{key}`")))
}

#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct Note {
    id: i64,
    body: String,
}

#[berth::http(POST, "/notes")]
async fn note_add(ctx: Context, body: String) -> Result<(StatusCode, Json<Note>)> {
    let note = ctx
        .sql("db")?
        .query_opt::<Note>("INSERT INTO notes (body) VALUES ($1) RETURNING id, body", berth::params![body])
        .await?
        .ok_or_else(|| Error::internal("no row"))?;
    Ok((StatusCode::CREATED, Json(note)))
}

#[berth::http(GET, "/notes")]
async fn note_list(ctx: Context) -> Result<Json<Vec<Note>>> {
    Ok(Json(ctx.sql("db")?.query("SELECT id, body FROM notes ORDER BY id", &[]).await?))
}

#[berth::http(PUT, "/files/{*name}")]
async fn file_put(ctx: Context, Path(name): Path<String>, body: Bytes) -> Result<StatusCode> {
    ctx.blob("files")?.put(&name, body.0).await?;
    Ok(StatusCode::CREATED)
}

#[berth::http(GET, "/files")]
async fn file_list(ctx: Context) -> Result<Json<Value>> {
    let files = ctx.blob("files")?.list("").await?;
    Ok(Json(files.iter().map(|f| json!({ "name": f.name, "size": f.size })).collect()))
}

#[berth::http(POST, "/orders")]
async fn order(ctx: Context, Json(order): Json<Value>) -> Result<Json<Value>> {
    let id = ctx.queue("orders")?.publish_json(&order).await?;
    Ok(Json(json!({ "message_id": id })))
}

#[berth::http(GET, "/secret")]
async fn secret(ctx: Context) -> Result<String> {
    Ok(ctx.secret("api_key")?)
}

#[berth::http(GET, "/config")]
async fn config(ctx: Context) -> Json<Value> {
    Json(ctx.config())
}

#[derive(Serialize, Deserialize)]
struct Greeting {
    text: String,
}

#[berth::http(GET, "/greet/{name}")]
async fn greet(ctx: Context, Path(name): Path<String>) -> Result<String> {
    let g: Greeting = ctx.service("greeter")?.call("greet", &json!({ "name": name })).await?;
    Ok(g.text)
}

#[berth::http(GET, "/fetch")]
async fn fetch(ctx: Context) -> Result<String> {
    let res = ctx.http()?.get("http://127.0.0.1:9/").await?;
    Ok(res.status.to_string())
}

#[derive(Deserialize)]
struct FetchTo {
    url: String,
}

/// `GET /fetch-to?url=...`: the status and body of `url`.
#[berth::http(GET, "/fetch-to")]
async fn fetch_to(ctx: Context, berth::Query(to): berth::Query<FetchTo>) -> Result<String> {
    let res = ctx.http()?.get(&to.url).await?;
    Ok(format!("{} {}", res.status, String::from_utf8_lossy(&res.body)))
}

/// Direct Redis: `KEYS <pattern>` (only with `REDIS_URL` and the `testing-redis` feature).
#[berth::http(GET, "/redis/keys/{pattern}")]
async fn redis_keys(ctx: Context, Path(pattern): Path<String>) -> Result<Json<Value>> {
    Ok(Json(ctx.redis("raw")?.cmd(&["KEYS", pattern.as_str()]).await?))
}

berth::group! {
    name: "svc",
    functions: [kv_put, kv_get, note_add, note_list, file_put, file_list, order, secret, config, greet, fetch,
                fetch_to, redis_keys],
    init: setup,
    services: [sql("db"), kv("cache"), blob("files"), queue("orders"), secret("api_key"), http(), redis("raw"),
               service("greeter", "greeter-api", "1.2.0")],
}

// === a provider, written out by hand (one `berth::group!` per test binary: it exports symbols) ===

/// A group exporting `greeter` (interface `greeter-api` 1.3.0), counting greetings in its own
/// key-value store.
fn greeter_group() -> GroupDef {
    #[derive(Deserialize)]
    struct Who {
        name: String,
    }
    let export =
        ExportDef::new("greeter", "greeter-api", "1.3.0").method("greet", |ctx: Context, who: Who| async move {
            let n = ctx.kv("counts")?.increment("greetings", 1).await?;
            Ok(Greeting { text: format!("hello {} (#{n})", who.name) })
        });
    GroupDef {
        name: "greeter",
        version: "1.0.0",
        functions: Vec::new(),
        init: None,
        stop: None,
        services: vec![decl::kv("counts")],
        exports: vec![export],
        middleware: Default::default(),
    }
}

fn start() -> TestGroup {
    TestGroup::builder(berth_group())
        .config(json!({ "greeting": "hi", "limits": { "max": 3 } }))
        .secret("api_key", "k-123")
        .migrations("db", "tests/migrations")
        .provider(greeter_group())
        .start()
        .unwrap_or_else(|e| panic!("the group starts: {e}"))
}

fn body(res: &berth::Response) -> &str {
    std::str::from_utf8(&res.body).expect("a UTF-8 body")
}

// === the tests ===

#[test]
fn kv_set_and_get_on_the_embedded_store() {
    let g = start();
    let res = g.request(Request::new("PUT", "/kv/color").with_body("blue")).unwrap();
    assert_eq!(res.status, StatusCode::NO_CONTENT);
    let res = g.request(Request::new("GET", "/kv/color")).unwrap();
    assert_eq!((res.status, body(&res)), (StatusCode::OK, "blue"));
    assert_eq!(
        g.request(Request::new("GET", "/kv/started")).map(|r| r.body).unwrap(),
        b"yes",
        "the init hook wrote it"
    );
    let e = g.request(Request::new("GET", "/kv/nothing")).unwrap_err();
    assert_eq!(e.status(), StatusCode::NOT_FOUND);
}

#[test]
fn sql_runs_on_the_migrated_schema() {
    let g = start();
    for text in ["first", "second"] {
        let res = g.request(Request::new("POST", "/notes").with_body(text)).unwrap();
        assert_eq!(res.status, StatusCode::CREATED);
    }
    let notes: Vec<Note> = g.request(Request::new("GET", "/notes")).unwrap().json_body().unwrap();
    assert_eq!(notes, vec![Note { id: 1, body: "first".into() }, Note { id: 2, body: "second".into() }]);
    // The migration was recorded like the host records it.
    let ctx = g.group_context();
    let applied: Vec<Value> =
        g.block_on(async { ctx.sql("db")?.query("SELECT name FROM _berth_migrations", &[]).await }).unwrap();
    assert_eq!(applied, vec![json!({ "name": "0001_notes.sql" })]);
}

#[test]
fn each_test_group_has_its_own_data() {
    let a = start();
    let b = start();
    a.request(Request::new("POST", "/notes").with_body("only in a")).unwrap();
    let in_b: Vec<Note> = b.request(Request::new("GET", "/notes")).unwrap().json_body().unwrap();
    assert!(in_b.is_empty(), "{in_b:?}");
    let dir = a.data_dir().to_owned();
    assert!(dir.is_dir());
    drop(a);
    assert!(!dir.exists(), "the temporary directory is removed on drop");
}

#[test]
fn blob_put_and_list_on_a_local_bucket() {
    let g = start();
    for (name, data) in [("a.txt", "alpha"), ("dir/b.txt", "beta!")] {
        let res = g.request(Request::new("PUT", &format!("/files/{name}")).with_body(data)).unwrap();
        assert_eq!(res.status, StatusCode::CREATED);
    }
    let listed: Value = g.request(Request::new("GET", "/files")).unwrap().json_body().unwrap();
    assert_eq!(listed, json!([{ "name": "a.txt", "size": 5 }, { "name": "dir/b.txt", "size": 5 }]));
    assert!(g.data_dir().join("blob/files/dir/b.txt").is_file(), "a bucket is a directory");
}

#[test]
fn published_messages_are_captured() {
    let g = start();
    assert!(g.published("orders").is_empty());
    let res: Value = g
        .request(Request::new("POST", "/orders").with_json(&json!({ "sku": "A-1", "qty": 2 })))
        .unwrap()
        .json_body()
        .unwrap();
    g.request(Request::new("POST", "/orders").with_json(&json!({ "sku": "B-7", "qty": 1 }))).unwrap();
    let published = g.published("orders");
    assert_eq!(published.len(), 2);
    assert_eq!(res["message_id"], published[0].id.as_str());
    assert_eq!(published[0].json::<Value>().unwrap(), json!({ "sku": "A-1", "qty": 2 }));
    assert_eq!(published[0].header("Content-Type"), Some("application/json"));
    assert_eq!(published[1].json::<Value>().unwrap()["sku"], "B-7");
    assert!(g.published("other").is_empty());
}

#[test]
fn secrets_and_config_are_given() {
    let g = start();
    assert_eq!(body(&g.request(Request::new("GET", "/secret")).unwrap()), "k-123");
    let config: Value = g.request(Request::new("GET", "/config")).unwrap().json_body().unwrap();
    assert_eq!(config, json!({ "greeting": "hi", "limits": { "max": 3 } }));
}

#[test]
fn a_providers_export_is_served() {
    let g = start();
    assert_eq!(body(&g.request(Request::new("GET", "/greet/ann")).unwrap()), "hello ann (#1)");
    assert_eq!(body(&g.request(Request::new("GET", "/greet/bob")).unwrap()), "hello bob (#2)", "the provider's store");
}

#[cfg(not(feature = "testing-http"))]
#[test]
fn http_without_its_feature_fails_naming_it() {
    let g = start();
    let e = g.request(Request::new("GET", "/fetch")).unwrap_err();
    assert!(e.message().contains("testing-http"), "{e}");
}

/// The group of [`start`], allowed to call `outbound`.
#[cfg(feature = "testing-http")]
fn start_allowing(outbound: &[&str]) -> TestGroup {
    TestGroup::builder(berth_group())
        .secret("api_key", "k-123")
        .migrations("db", "tests/migrations")
        .provider(greeter_group())
        .allow_outbound(outbound)
        .start()
        .unwrap_or_else(|e| panic!("the group starts: {e}"))
}

/// A server on 127.0.0.1 answering `200 ok` to each connection, on a thread of its own.
#[cfg(feature = "testing-http")]
fn ok_server() -> u16 {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            let mut head = [0u8; 4096];
            let _ = stream.read(&mut head);
            let _ = stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok");
        }
    });
    port
}

/// With `testing-http`, `http()` is the host's outbound client: a refused connection is a 503.
#[cfg(feature = "testing-http")]
#[test]
fn http_is_the_real_outbound_client() {
    let g = start_allowing(&["http://127.0.0.1:9"]);
    let e = g.request(Request::new("GET", "/fetch")).unwrap_err();
    assert_eq!(e.status(), StatusCode::SERVICE_UNAVAILABLE, "{e}");
    assert!(e.message().contains("127.0.0.1:9"), "{e}");
}

/// The harness's default is the host's: no outbound host. The refusal names the host and the
/// builder option (and the berth.toml key) that would allow it.
#[cfg(feature = "testing-http")]
#[test]
fn a_call_to_a_host_not_allowed_is_refused_naming_the_option_to_add() {
    let e = start().request(Request::new("GET", "/fetch")).unwrap_err();
    assert_eq!(e.status(), StatusCode::INTERNAL_SERVER_ERROR, "a missing grant is the operator's to fix: {e}");
    let m = e.message();
    assert!(m.contains("group `svc` may not call http://127.0.0.1:9"), "{m}");
    assert!(m.contains(".allow_outbound(&[\"http://127.0.0.1:9\"])"), "{m}");
    assert!(m.contains("allowed_outbound_hosts = [\"http://127.0.0.1:9\"]"), "{m}");

    let port = ok_server();
    let g = start_allowing(&["https://api.example.com", &format!("http://127.0.0.1:{port}")]);
    let ok = g.request(Request::new("GET", &format!("/fetch-to?url=http://127.0.0.1:{port}/"))).unwrap();
    assert_eq!(body(&ok), "200 ok");
    let e = g.request(Request::new("GET", "/fetch-to?url=http://169.254.169.254/latest/meta-data/")).unwrap_err();
    assert!(e.message().contains("may not call http://169.254.169.254:80"), "{e}");
    let e = g.request(Request::new("GET", &format!("/fetch-to?url=http://localhost:{port}/"))).unwrap_err();
    assert!(e.message().contains("may not call http://localhost:"), "a name is not its address: {e}");
}

#[test]
fn a_malformed_outbound_entry_fails_the_start_with_the_fix() {
    let e = start_error(TestGroup::builder(berth_group()).allow_outbound(&["api.example.com"]));
    assert!(e.contains("`.allow_outbound(...)` of group `svc`"), "{e}");
    assert!(e.contains("`api.example.com`") && e.contains("write `https://api.example.com`"), "{e}");
}

#[test]
fn redis_without_a_server_fails_naming_what_to_set() {
    if cfg!(feature = "testing-redis") && std::env::var_os("REDIS_URL").is_some() {
        return; // `on_redis_*` covers it
    }
    let g = start();
    let e = g.request(Request::new("GET", "/redis/keys/x")).unwrap_err();
    assert!(e.message().contains("REDIS_URL"), "{e}");
    assert_eq!(cfg!(feature = "testing-redis"), !e.message().contains("testing-redis"), "{e}");
}

/// With `DATABASE_URL` (feature `testing-postgres`): SQL runs in a schema of its own, dropped
/// with the test group.
#[cfg(feature = "testing-postgres")]
#[test]
fn on_postgres_each_test_group_has_a_fresh_schema_dropped_afterwards() {
    if std::env::var_os("DATABASE_URL").is_none() {
        eprintln!("DATABASE_URL is not set: skipped");
        return;
    }
    let schema_of = |g: &TestGroup| -> String {
        let ctx = g.group_context();
        let row: Value =
            g.block_on(async { ctx.sql("db")?.query_opt("SELECT current_schema() AS s", &[]).await }).unwrap().unwrap();
        row["s"].as_str().unwrap().to_owned()
    };
    let a = start();
    let b = start();
    a.request(Request::new("POST", "/notes").with_body("in a")).unwrap();
    let (sa, sb) = (schema_of(&a), schema_of(&b));
    assert!(sa.starts_with("berth_test_") && sa != sb, "{sa} {sb}");
    drop(a);
    let ctx = b.group_context();
    let left: Vec<Value> = b
        .block_on(async {
            ctx.sql("db")?
                .query(
                    "SELECT schema_name FROM information_schema.schemata WHERE schema_name = $1",
                    berth::params![sa.as_str()],
                )
                .await
        })
        .unwrap();
    assert!(left.is_empty(), "schema {sa} is dropped with its test group");
}

/// With `REDIS_URL` (feature `testing-redis`): the key-value store writes under a unique prefix,
/// whose keys are deleted with the test group.
#[cfg(feature = "testing-redis")]
#[test]
fn on_redis_kv_keys_have_a_unique_prefix_deleted_afterwards() {
    if std::env::var_os("REDIS_URL").is_none() {
        eprintln!("REDIS_URL is not set: skipped");
        return;
    }
    let keys = |g: &TestGroup| -> Vec<String> {
        let res = g.request(Request::new("GET", "/redis/keys/berth-test:*")).unwrap();
        let mut keys: Vec<String> = res.json_body().unwrap();
        keys.sort();
        keys
    };
    let a = start();
    a.request(Request::new("PUT", "/kv/probe-on-redis").with_body("blue")).unwrap();
    let b = start();
    let mine: Vec<String> = keys(&a).into_iter().filter(|k| k.ends_with("/probe-on-redis")).collect();
    assert_eq!(mine.len(), 1, "{mine:?}");
    let prefix = mine[0].trim_end_matches("svc/probe-on-redis").to_owned();
    assert!(prefix.starts_with("berth-test:") && prefix.ends_with(':'), "{prefix}");
    assert_eq!(b.request(Request::new("GET", "/kv/probe-on-redis")).unwrap_err().status(), StatusCode::NOT_FOUND);
    drop(a);
    assert!(!keys(&b).iter().any(|k| k.starts_with(&prefix)), "the keys under {prefix} are deleted");
}

#[test]
fn calls_work_from_inside_a_tokio_runtime() {
    let g = start();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let res = rt.block_on(async { g.request(Request::new("GET", "/kv/started")) }).unwrap();
    assert_eq!(res.body, b"yes");
}

#[test]
fn a_test_group_can_move_between_threads() {
    fn send_sync<T: Send + Sync>(_: &T) {}
    let g = start();
    send_sync(&g);
    let res = std::thread::spawn(move || g.request(Request::new("GET", "/kv/started")).map(|r| r.body)).join().unwrap();
    assert_eq!(res.unwrap(), b"yes");
}

// === what is refused at start, and why ===

fn start_error(builder: berth::testing::TestGroupBuilder) -> String {
    match builder.start() {
        Ok(_) => panic!("the group should be refused"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn a_secret_without_a_value_is_refused() {
    let e = start_error(TestGroup::builder(berth_group()).provider(greeter_group()));
    assert!(e.contains("secret `api_key`") && e.contains(".secret(\"api_key\""), "{e}");
}

#[test]
fn a_missing_provider_is_refused() {
    let e = start_error(TestGroup::builder(berth_group()).secret("api_key", "k"));
    assert!(e.contains("service `greeter`") && e.contains(".provider("), "{e}");
}

#[test]
fn an_incompatible_provider_is_refused_by_the_hosts_check() {
    let mut old = greeter_group();
    old.exports = vec![ExportDef::new("greeter", "greeter-api", "1.1.0")];
    let e = start_error(TestGroup::builder(berth_group()).secret("api_key", "k").provider(old));
    assert!(e.contains("incompatible") && e.contains("1.1.0"), "{e}");
}

#[test]
fn migrations_for_an_undeclared_service_or_a_missing_folder_are_refused() {
    let base = || TestGroup::builder(berth_group()).secret("api_key", "k").provider(greeter_group());
    let e = start_error(base().migrations("nope", "tests/migrations"));
    assert!(e.contains("declares no sql service `nope`") && e.contains("`db`"), "{e}");
    let e = start_error(base().migrations("db", "tests/no-such-folder"));
    assert!(e.contains("no-such-folder"), "{e}");
}

#[test]
fn config_must_be_an_object() {
    let e = start_error(TestGroup::builder(berth_group()).config(json!([1, 2])));
    assert!(e.contains("JSON object"), "{e}");
}

#[test]
fn start_keeps_working_and_reports_the_refusal() {
    // `start` provisions services too; this group needs a secret and a provider, so it is refused.
    let e = TestGroup::start(berth_group()).unwrap_err();
    assert_eq!(e.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert!(e.message().contains("secret `api_key`") && e.message().contains("service `greeter`"), "{e}");
}
