//! `berth::testing::TestServer` (feature `testing`): a group under test behind the host's own
//! HTTP listener, called over real HTTP; and a provider's own error reaching the consumer's
//! caller with its status.

use std::time::{Duration, Instant};

use berth::__private::{ExportDef, GroupDef};
use berth::testing::{ServeOptions, TestGroup};
use berth::{Context, Error, Json, Path, Query, Request, Result, StatusCode, Valid};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

// === the group under test ===

#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct Note {
    id: u64,
    text: String,
}

/// Keeps notes in the key-value store.
#[berth::http(POST, "/notes", body_limit = "1KiB")]
async fn add(ctx: Context, Json(text): Json<String>) -> Result<(StatusCode, Json<Note>)> {
    let id = ctx.kv("notes")?.increment("next", 1).await? as u64;
    ctx.kv("notes")?.set(&format!("note/{id}"), text.clone(), None).await?;
    Ok((StatusCode::CREATED, Json(Note { id, text })))
}

#[berth::http(GET, "/notes/{id}")]
async fn get(ctx: Context, Path(id): Path<u64>) -> Result<Json<Note>> {
    let text =
        ctx.kv("notes")?.get(&format!("note/{id}")).await?.ok_or_else(|| Error::not_found(format!("no note {id}")))?;
    Ok(Json(Note { id, text: String::from_utf8_lossy(&text).into_owned() }))
}

/// Answers the request id and the caller's `x-tenant` header as the function saw them.
#[berth::http(GET, "/whoami")]
async fn whoami(ctx: Context, req: Request) -> Json<Value> {
    Json(json!({ "request_id": ctx.request_id(), "tenant": req.header("x-tenant") }))
}

#[berth::http(GET, "/sleep/{ms}", timeout = "5s")]
async fn sleep(ctx: Context, Path(ms): Path<u64>) -> Result<String> {
    ctx.sleep(Duration::from_millis(ms)).await;
    Ok("awake".into())
}

#[berth::http(GET, "/panic")]
async fn boom() -> Result<String> {
    panic!("boom")
}

/// Signs a user up through the `accounts` provider's export.
#[berth::http(POST, "/signup")]
async fn signup(ctx: Context, Json(name): Json<String>) -> Result<Json<Value>> {
    let account: Value = ctx.service("accounts")?.call("open", &json!({ "name": name })).await?;
    Ok(Json(account))
}

/// Like `signup`, and says what it learnt of the provider's refusal.
#[berth::http(POST, "/signup/checked")]
async fn signup_checked(ctx: Context, Json(name): Json<String>) -> Result<Json<Value>> {
    match ctx.service("accounts")?.call::<_, Value>("open", &json!({ "name": name })).await {
        Ok(account) => Ok(Json(account)),
        Err(e) => Ok(Json(json!({
            "invalid": e.is_invalid(),
            "answered": e.answered().map(|(s, c)| json!([s.as_u16(), c])),
            "shown": e.to_string(),
        }))),
    }
}

#[derive(Deserialize, garde::Validate)]
struct Page {
    #[garde(range(min = 1, max = 100))]
    size: u32,
    #[garde(length(max = 20))]
    after: Option<String>,
}

/// Paging parameters checked with garde rules.
#[berth::http(GET, "/page")]
async fn page(Valid(Query(p)): Valid<Query<Page>>) -> String {
    format!("{} after {:?}", p.size, p.after)
}

/// Opens an account through the provider's validated `open_checked`.
#[berth::http(POST, "/signup/validated")]
async fn signup_validated(ctx: Context, Json(body): Json<Value>) -> Result<Json<Value>> {
    Ok(Json(ctx.service("accounts")?.call("open_checked", &body).await?))
}

berth::group! {
    name: "notes",
    functions: [add, get, whoami, sleep, boom, signup, signup_checked, page, signup_validated],
    services: [kv("notes"), service("accounts", "accounts-api", "1.0.0")],
}

/// A provider whose `open` refuses an empty name with a 422 and a taken one with a 409.
fn accounts_group() -> GroupDef {
    #[derive(Deserialize)]
    struct Open {
        name: String,
    }
    #[derive(Deserialize, garde::Validate)]
    struct Checked {
        #[garde(length(min = 3))]
        name: String,
        #[garde(range(min = 18))]
        age: u8,
    }
    let export = ExportDef::new("accounts", "accounts-api", "1.0.0")
        .method("open_checked", |_ctx: Context, c: Checked| async move {
            berth::validate(&c)?;
            Ok(json!({ "account": c.name }))
        })
        .method("open", |_ctx: Context, o: Open| async move {
            match o.name.as_str() {
                "" => Err(Error::unprocessable("`name` must not be empty")),
                "root" => Err(Error::conflict("`root` is taken")),
                "crash" => Err(Error::internal("the account store is corrupt")),
                name => Ok(json!({ "account": name })),
            }
        });
    GroupDef {
        name: "accounts",
        version: "1.0.0",
        functions: Vec::new(),
        init: None,
        stop: None,
        services: Vec::new(),
        exports: vec![export],
        middleware: Default::default(),
    }
}

fn group() -> TestGroup {
    TestGroup::builder(berth_group()).provider(accounts_group()).start().expect("the group starts")
}

fn metric(text: &str, line_start: &str) -> Option<f64> {
    text.lines().find_map(|l| l.strip_prefix(line_start)?.trim().parse().ok())
}

// === the tests ===

#[test]
fn requests_go_through_the_hosts_listener_with_its_headers_and_metrics() {
    let server = group().serve().unwrap();
    let res = server.post("/notes").json("milk").send();
    assert_eq!(res.status(), StatusCode::CREATED, "{}", res.text());
    assert_eq!(res.json::<Note>(), Note { id: 1, text: "milk".into() });
    assert_eq!(res.header("content-type"), Some("application/json"));
    let id = res.header("x-request-id").expect("every answer carries a request id").to_owned();

    let res = server.get("/notes/1").send();
    assert_eq!(res.json::<Note>().text, "milk");
    assert_ne!(res.header("x-request-id"), Some(id.as_str()), "each request has its own id");

    // The caller's request id and headers reach the function.
    let seen = server.get("/whoami").header("x-request-id", "req-42").header("x-tenant", "acme").send();
    assert_eq!(seen.header("x-request-id"), Some("req-42"));
    assert_eq!(seen.json::<Value>(), json!({ "request_id": "req-42", "tenant": "acme" }));

    assert_eq!(server.get("/healthz").send().status(), StatusCode::OK);
    let ready = server.get("/readyz").send();
    assert_eq!(ready.status(), StatusCode::OK);
    assert_eq!(ready.json::<Value>()["groups"], json!(["notes@0.1.0"]));
    let metrics = server.metrics();
    let created = r#"berth_function_invocations_total{function="add",group="notes",status_class="2xx"}"#;
    assert_eq!(metric(&metrics, created), Some(1.0), "{metrics}");
}

#[test]
fn the_host_answers_what_a_function_never_sees() {
    let server = group().serve().unwrap();
    let not_found = server.get("/nothing/here").send();
    assert_eq!(not_found.status(), StatusCode::NOT_FOUND);
    assert_eq!(not_found.json::<Value>()["error"], "not_found");

    let wrong_method = server.delete("/notes").send();
    assert_eq!(wrong_method.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(wrong_method.header("allow"), Some("POST"));

    // `add` declares `body_limit = "1KiB"`.
    let big = server.post("/notes").json(&"x".repeat(2000)).send();
    assert_eq!(big.status(), StatusCode::PAYLOAD_TOO_LARGE, "{}", big.text());
    assert_eq!(server.post("/notes").json(&"x".repeat(900)).send().status(), StatusCode::CREATED);

    let malformed = server.post("/notes").header("content-type", "application/json").body("{not json").send();
    assert_eq!(malformed.status(), StatusCode::BAD_REQUEST, "{}", malformed.text());

    let panicked = server.get("/panic").send();
    assert_eq!(panicked.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert!(panicked.header("x-request-id").is_some());
    // The server serves on after a panic.
    assert_eq!(server.get("/notes/1").send().status(), StatusCode::OK);
}

#[test]
fn limits_can_be_set_as_berth_toml_would() {
    let options = ServeOptions::default().timeout("sleep", Duration::from_millis(200)).body_limit("add", 8);
    let server = group().serve_with(options).unwrap();
    let started = Instant::now();
    let res = server.get("/sleep/3000").send();
    assert_eq!(res.status(), StatusCode::GATEWAY_TIMEOUT, "{}", res.text());
    assert!(started.elapsed() < Duration::from_secs(2), "cut off at the configured 200 ms, not the function's 5 s");
    assert_eq!(server.post("/notes").json("twelve bytes").send().status(), StatusCode::PAYLOAD_TOO_LARGE);

    let unknown = group().serve_with(ServeOptions::default().timeout("nope", Duration::from_secs(1))).unwrap_err();
    assert!(unknown.to_string().contains("function `nope`, which it does not have"), "{unknown}");
}

#[test]
fn requests_over_the_concurrency_limit_get_503_at_once() {
    let server = group().serve_with(ServeOptions::default().max_concurrency(1)).unwrap();
    std::thread::scope(|s| {
        let server = &server;
        // The slow request retries until it holds the one slot (a probe may hold it first).
        let slow = s.spawn(move || loop {
            let status = server.get("/sleep/1500").send().status();
            if status != StatusCode::SERVICE_UNAVAILABLE {
                return status;
            }
        });
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let res = server.get("/notes/1").send();
            if res.status() == StatusCode::SERVICE_UNAVAILABLE {
                assert_eq!(res.json::<Value>()["error"], "overloaded");
                break;
            }
            assert!(Instant::now() < deadline, "never refused while the slow request ran: {}", res.status());
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(slow.join().unwrap(), StatusCode::OK);
    });
    assert_eq!(server.get("/notes/1").send().status(), StatusCode::NOT_FOUND, "served again after it ended");
}

#[test]
fn direct_invoke_reaches_any_function_over_http() {
    let server = group().serve().unwrap();
    let res = server.post("/invoke/notes/whoami").header("x-request-id", "inv-1").send();
    assert_eq!(res.status(), StatusCode::OK, "{}", res.text());
    assert_eq!(res.json::<Value>()["request_id"], "inv-1");
    let unknown = server.post("/invoke/notes/nope").send();
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND, "{}", unknown.text());
}

#[test]
fn a_providers_own_error_reaches_the_caller_with_its_status_code_and_message() {
    let server = group().serve().unwrap();
    assert_eq!(server.post("/signup").json("ann").send().json::<Value>(), json!({ "account": "ann" }));

    let invalid = server.post("/signup").json("").send();
    assert_eq!(invalid.status(), StatusCode::UNPROCESSABLE_ENTITY, "{}", invalid.text());
    let error = invalid.json::<Value>();
    assert_eq!(error["error"], "unprocessable");
    assert_eq!(error["message"], "`name` must not be empty");
    assert_eq!(error["request_id"].as_str(), invalid.header("x-request-id"));

    assert_eq!(server.post("/signup").json("root").send().status(), StatusCode::CONFLICT);
    // A provider's server error stays a server error and names the service.
    let failed = server.post("/signup").json("crash").send();
    assert_eq!(failed.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let message = failed.json::<Value>()["message"].as_str().unwrap().to_owned();
    assert!(message.contains("service `accounts` answered 500") && message.contains("corrupt"), "{message}");

    let checked = server.post("/signup/checked").json("").send().json::<Value>();
    assert_eq!(checked["invalid"], true);
    assert_eq!(checked["answered"], json!([422, "unprocessable"]));
    assert_eq!(checked["shown"], "service `accounts` answered 422 unprocessable: `name` must not be empty");
}

#[test]
fn a_server_works_from_inside_a_tokio_test_and_stops_when_dropped() {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let addr = runtime.block_on(async {
        let server = group().serve().unwrap();
        assert_eq!(server.get("/healthz").send().text(), "ok\n");
        server.addr()
    });
    // Dropped: nothing listens on its port any more.
    assert!(std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_err(), "{addr} still listens");
}

#[test]
fn a_rule_broken_answers_422_with_every_failing_field() {
    let server = group().serve().unwrap();
    assert_eq!(server.get("/page?size=10").send().text(), "10 after None");
    let res = server.get(&format!("/page?size=0&after={}", "x".repeat(30))).send();
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY, "{}", res.text());
    assert_eq!(res.header("content-type"), Some("application/json"));
    let body = res.json::<Value>();
    assert_eq!(body["error"], "validation");
    assert_eq!(body["request_id"].as_str(), res.header("x-request-id"), "{body}");
    let paths: Vec<&str> = body["fields"].as_array().unwrap().iter().map(|f| f["path"].as_str().unwrap()).collect();
    assert_eq!(paths, ["after", "size"], "{body}");
    assert!(body["message"].as_str().unwrap().contains("`size`"), "{body}");
    // What does not parse is the extractor's 400, not a validation error.
    assert_eq!(server.get("/page?size=many").send().status(), StatusCode::BAD_REQUEST);

    // In-process, the same error with its fields.
    let err = group().request(Request::new("GET", "/page?size=500")).unwrap_err();
    assert_eq!((err.status(), err.code()), (StatusCode::UNPROCESSABLE_ENTITY, "validation"));
    assert_eq!(err.fields()[0].path, "size");
    let metrics = server.metrics();
    let refused = r#"berth_function_invocations_total{function="page",group="notes",status_class="4xx"}"#;
    assert_eq!(metric(&metrics, refused), Some(2.0), "the 422 and the 400: {metrics}");
}

#[test]
fn a_providers_validation_error_reaches_the_caller_with_its_fields() {
    let server = group().serve().unwrap();
    let ok = server.post("/signup/validated").json(&json!({ "name": "ann", "age": 30 })).send();
    assert_eq!(ok.json::<Value>(), json!({ "account": "ann" }));
    let res = server.post("/signup/validated").json(&json!({ "name": "a", "age": 9 })).send();
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY, "{}", res.text());
    let body = res.json::<Value>();
    assert_eq!(body["error"], "validation");
    let paths: Vec<&str> = body["fields"].as_array().unwrap().iter().map(|f| f["path"].as_str().unwrap()).collect();
    assert_eq!(paths, ["age", "name"], "{body}");
}
