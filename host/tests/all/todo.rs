//! The todo example (SQL + key-value cache + the exported `users` service) through the host: the
//! same suite on SQLite + the embedded store and on PostgreSQL + Redis; and persistence.

use crate::support::{group, TestHost};

/// The groups todo needs, plus `extra` services.
fn groups(services: &str) -> String {
    format!("{services}\n[services.userstore]\nkind = \"kv\"\n{}{}", group("plugins/users"), group("examples/todo"))
}

const EMBEDDED: &str = "[services.db]\nkind = \"sqlite\"\n[services.cache]\nkind = \"kv\"\n";

/// The behaviour a user sees, whatever the backends.
async fn suite(h: &TestHost) {
    assert!(h.readiness().ready, "{:?}", h.readiness());
    let ann = h.send("POST", "/users", &[], br#"{"name":"Ann","email":"ann@example.com"}"#).await;
    assert_eq!(ann.status, 201, "{}", ann.text());
    let ann_id = ann.json()["id"].as_u64().unwrap();

    let res = h.send("POST", "/todos", &[], format!(r#"{{"title":"buy milk","owner_id":{ann_id}}}"#).as_bytes()).await;
    assert_eq!(res.status, 201, "{}", res.text());
    let todo = res.json();
    let id = todo["id"].as_i64().unwrap();
    assert_eq!(todo, serde_json::json!({"id": id, "title": "buy milk", "done": false, "owner_id": ann_id}));

    // An owner the users service does not know is refused.
    let res = h.send("POST", "/todos", &[], br#"{"title":"x","owner_id":999999}"#).await;
    assert_eq!(res.status, 422, "{}", res.text());
    assert!(res.json()["message"].as_str().unwrap().contains("not a known user"));

    // Reads go through the cache; an update invalidates it.
    let path = format!("/todos/{id}");
    assert_eq!(h.get(&path).await.json()["title"], "buy milk");
    assert_eq!(h.get(&path).await.json()["title"], "buy milk");
    let res = h.send("PUT", &path, &[], br#"{"done":true,"title":"buy oat milk"}"#).await;
    assert_eq!(res.status, 200, "{}", res.text());
    let read = h.get(&path).await.json();
    assert_eq!((read["title"].as_str(), read["done"].as_bool()), (Some("buy oat milk"), Some(true)));

    // SQL injection through a parameter stays data; the table is still there.
    let evil = r#"{"title":"'); DROP TABLE todos; --"}"#;
    let res = h.send("POST", "/todos", &[], evil.as_bytes()).await;
    assert_eq!(res.status, 201, "{}", res.text());
    let evil_id = res.json()["id"].as_i64().unwrap();
    assert_eq!(h.get(&format!("/todos/{evil_id}")).await.json()["title"], "'); DROP TABLE todos; --");
    let listed = h.get("/todos").await.json();
    assert_eq!(listed.as_array().unwrap().len(), 2, "{listed}");

    // Bad input: clear errors, nothing stored.
    let empty = h.send("POST", "/todos", &[], br#"{"title":""}"#).await;
    assert_eq!(empty.status, 422);
    let body = empty.json();
    assert_eq!(body["error"], "validation");
    assert_eq!(body["fields"], serde_json::json!([{ "path": "title", "message": "must not be empty" }]));
    assert_eq!(body["request_id"].as_str(), empty.header("x-request-id"), "{body}");
    assert_eq!(empty.header("content-type"), Some("application/json"));
    let long = format!(r#"{{"title":"{}"}}"#, "x".repeat(501));
    assert_eq!(h.send("POST", "/todos", &[], long.as_bytes()).await.status, 422);
    assert_eq!(h.send("POST", "/todos", &[], b"{not json").await.status, 400);
    assert_eq!(h.get("/todos/abc").await.status, 400);
    assert_eq!(h.get("/todos").await.json().as_array().unwrap().len(), 2);

    // Delete, then it is gone from the database and the cache.
    assert_eq!(h.send("DELETE", &path, &[], b"").await.status, 204);
    assert_eq!(h.get(&path).await.status, 404);
    assert_eq!(h.send("DELETE", &path, &[], b"").await.status, 404);
}

#[tokio::test]
async fn todo_on_sqlite_and_the_embedded_store() {
    let h = TestHost::start(&groups(EMBEDDED)).await;
    suite(&h).await;
    assert!(h.data_dir().join("sql/db.db").exists(), "SQLite lives under the data directory");
    h.stop().await;
}

#[tokio::test]
async fn todo_on_postgres_and_redis() {
    use sqlx::Connection as _;
    let admin_url = std::env::var("DATABASE_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let redis_url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let db = format!("berth_todo_{}", std::process::id());
    let mut admin = sqlx::PgConnection::connect(&admin_url)
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL at {admin_url} ({e}); start it or set DATABASE_URL"));
    sqlx::query(&format!("DROP DATABASE IF EXISTS {db}")).execute(&mut admin).await.unwrap();
    sqlx::query(&format!("CREATE DATABASE {db}")).execute(&mut admin).await.unwrap();
    let url = match admin_url.rsplit_once('/') {
        Some((base, _)) => format!("{base}/{db}"),
        None => panic!("DATABASE_URL needs a database name"),
    };
    let prefix = format!("berth-test-{}:", std::process::id());
    let services = format!(
        "[services.db]\nkind = \"postgres\"\nurl = \"{url}\"\n[services.cache]\nkind = \"redis-kv\"\nurl = \"{redis_url}\"\nkey_prefix = \"{prefix}\"\n"
    );
    let h = TestHost::start(&groups(&services)).await;
    suite(&h).await;
    h.stop().await;

    // Clean up: the database and every key under our prefix.
    sqlx::query(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)")).execute(&mut admin).await.unwrap();
    let client = redis::Client::open(redis_url.as_str()).unwrap();
    let mut con = client.get_multiplexed_async_connection().await.unwrap();
    let keys: Vec<String> = redis::cmd("KEYS").arg(format!("{prefix}*")).query_async(&mut con).await.unwrap();
    if !keys.is_empty() {
        let _: () = redis::cmd("DEL").arg(&keys).query_async(&mut con).await.unwrap();
    }
}

#[tokio::test]
async fn todos_survive_a_restart_of_the_host() {
    let dir = tempfile::tempdir().unwrap();
    let h = TestHost::start_in(dir.path(), "", &groups(EMBEDDED)).await;
    let res = h.send("POST", "/todos", &[], br#"{"title":"remember me"}"#).await;
    assert_eq!(res.status, 201, "{}", res.text());
    let id = res.json()["id"].as_i64().unwrap();
    let user = h.send("POST", "/users", &[], br#"{"name":"Bo","email":"bo@example.com"}"#).await.json();
    h.stop().await;

    let h = TestHost::start_in(dir.path(), "", &groups(EMBEDDED)).await;
    assert_eq!(h.get(&format!("/todos/{id}")).await.json()["title"], "remember me");
    assert_eq!(h.get(&format!("/users/{}", user["id"])).await.json()["name"], "Bo");
    h.stop().await;
}
