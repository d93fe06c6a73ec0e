//! `berth::axum` (features `axum`, `testing`): an axum router served as a group, over the host's
//! own HTTP listener. What the request and the answer keep on the way (method, prefix handling,
//! query strings, repeated headers, large bodies, statuses), the group's other keys passing
//! through, and the apps that need tokio's runtime answering a clear 500 instead of hanging.

use std::collections::HashMap;
use std::convert::Infallible;
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, OriginalUri, Path, Query};
use axum::http::{HeaderMap, Method, StatusCode as AxumStatus, Uri};
use axum::response::{AppendHeaders, IntoResponse};
use axum::routing::{any, get, post};
use axum::{Extension, Json, Router};
use berth::axum::{App, NO_TOKIO_RUNTIME};
use berth::testing::{ServeOptions, TestGroup, TestServer};
use berth::{Context, Next, Request, Response, Result, StatusCode};
use serde_json::{json, Value};

// === the group under test ===

berth::axum::group! {
    prefix: "/p",
    router: router(),
    functions: [plain],
    middleware: [stamp],
}

/// A berth function next to the app.
#[berth::http(GET, "/plain")]
async fn plain() -> &'static str {
    "plain"
}

/// Group middleware: runs around the app's function too.
async fn stamp(ctx: Context, req: Request, next: Next) -> Result<Response> {
    Ok(next.run(ctx, req).await?.with_header("x-stamp", "1"))
}

/// What the app saw of a request.
async fn echo(
    method: Method,
    uri: Uri,
    OriginalUri(original): OriginalUri,
    headers: HeaderMap,
    body: Bytes,
) -> Json<Value> {
    let x_headers: Vec<(String, String)> = headers
        .iter()
        .filter(|(k, _)| k.as_str().starts_with("x-"))
        .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or_default().to_owned()))
        .collect();
    Json(json!({
        "method": method.as_str(),
        "uri": uri.to_string(),
        "original": original.to_string(),
        "x_headers": x_headers,
        "content_type": headers.get("content-type").and_then(|v| v.to_str().ok()),
        "body": String::from_utf8_lossy(&body),
    }))
}

fn router() -> Router {
    Router::new()
        .route("/", any(echo))
        .route("/echo", any(echo))
        .route("/echo/{*rest}", any(echo))
        .route("/files/{*name}", get(|Path(name): Path<String>| async move { name }))
        .route("/search", get(|Query(q): Query<Vec<(String, String)>>| async move { Json(q) }))
        .route("/map", get(|Query(q): Query<HashMap<String, u32>>| async move { Json(q) }))
        .route("/upload", post(|body: Bytes| async move { body }))
        .route("/upload-big", post(|body: Bytes| async move { body }).layer(DefaultBodyLimit::max(16 << 20)))
        .route(
            "/teapot",
            get(|| async {
                (
                    AxumStatus::IM_A_TEAPOT,
                    AppendHeaders([("set-cookie", "a=1"), ("set-cookie", "b=2")]),
                    "short and stout",
                )
            }),
        )
        .route("/ctx", get(|Extension(ctx): Extension<Context>| async move { ctx.request_id().to_owned() }))
        .route(
            "/host-sleep",
            get(|Extension(ctx): Extension<Context>| async move {
                ctx.sleep(Duration::from_millis(20)).await;
                berth::sleep(Duration::from_millis(20)).await;
                "slept on the host"
            }),
        )
        .route(
            "/tokio/sleep",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(30)).await;
                "woke"
            }),
        )
        .route(
            "/tokio/timeout",
            get(|| async {
                let _ = tokio::time::timeout(Duration::from_secs(30), std::future::pending::<()>()).await;
                "timed out"
            }),
        )
        .route("/tokio/spawn", get(|| async { tokio::spawn(async { "spawned" }).await.unwrap_or("join failed") }))
        .route(
            "/tokio/spawn-blocking",
            get(|| async { tokio::task::spawn_blocking(|| "blocking").await.unwrap_or("join failed") }),
        )
        // In-process the test's tokio runtime is reachable, so this stands for what tokio says in
        // a plugin (the same words), to see the answer the host makes of it over HTTP.
        .route(
            "/tokio/as-in-a-plugin",
            get(|| async {
                panic!("there is no reactor running, must be called from the context of a Tokio 1.x runtime");
                #[allow(unreachable_code)]
                ""
            }),
        )
        .route(
            "/boom",
            get(|| async {
                panic!("boom");
                #[allow(unreachable_code)]
                ""
            }),
        )
}

fn server() -> TestServer {
    TestGroup::start(berth_group())
        .expect("the group starts")
        .serve_with(ServeOptions::default().body_limit("axum", 16 << 20))
        .expect("it serves")
}

fn as_plugin(path: &str) -> Result<Response> {
    berth_axum_app().call_as_plugin(Request::new("GET", path))
}

// === the request on its way in ===

#[test]
fn the_prefix_is_stripped_and_the_original_uri_kept() {
    let server = server();
    for (path, uri) in [
        ("/p", "/"),
        ("/p/", "/"),
        ("/p/echo", "/echo"),
        ("/p/echo/a/b/", "/echo/a/b/"),
        ("/p/echo?x=1&y=%20two", "/echo?x=1&y=%20two"),
        ("/p/?q=1", "/?q=1"),
    ] {
        let res = server.get(path).send();
        assert_eq!(res.status(), StatusCode::OK, "{path}: {}", res.text());
        let seen: Value = res.json();
        assert_eq!(seen["uri"], uri, "{path}");
        assert_eq!(seen["original"], path, "{path}");
    }
    assert_eq!(server.get("/px").send().status(), StatusCode::NOT_FOUND, "not under the prefix");
    assert_eq!(server.get("/plain").send().text(), "plain", "the group's other function");
}

#[test]
fn every_method_reaches_the_app_with_its_body_and_headers() {
    let server = server();
    for method in ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"] {
        let res = server
            .request(method, "/p/echo/x")
            .header("x-one", "1")
            .header("x-many", "a")
            .header("x-many", "b")
            .header("content-type", "text/plain")
            .body(format!("{method} body"))
            .send();
        assert_eq!(res.status(), StatusCode::OK, "{method}: {}", res.text());
        let seen: Value = res.json();
        assert_eq!(seen["method"], method);
        assert_eq!(seen["body"], format!("{method} body"));
        assert_eq!(seen["content_type"], "text/plain");
        let x: Vec<(String, String)> = serde_json::from_value(seen["x_headers"].clone()).expect("pairs");
        assert!(x.contains(&("x-one".into(), "1".into())), "{x:?}");
        let many: Vec<&str> = x.iter().filter(|(k, _)| k == "x-many").map(|(_, v)| v.as_str()).collect();
        assert_eq!(many, ["a", "b"], "repeated headers arrive in order");
        assert_eq!(res.header("x-stamp"), Some("1"), "{method}: group middleware ran");
    }
    let head = server.request("HEAD", "/p/echo").send();
    assert_eq!(head.status(), StatusCode::OK);
    assert!(head.bytes().is_empty());
}

#[test]
fn query_strings_and_encoded_paths_reach_the_extractors() {
    let server = server();
    let res = server.get("/p/search?tag=a&tag=b&q=hello%20world&e=%26").send();
    let pairs: Vec<(String, String)> = res.json();
    assert_eq!(
        pairs,
        [("tag", "a"), ("tag", "b"), ("q", "hello world"), ("e", "&")].map(|(k, v)| (k.to_owned(), v.to_owned()))
    );
    let res = server.get("/p/files/docs/a%20b.txt").send();
    assert_eq!(res.text(), "docs/a b.txt");
    let res = server.get("/p/map?n=notanumber").send();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST, "axum's own query rejection: {}", res.text());
    assert!(res.text().contains("Failed to deserialize query string"), "{}", res.text());
}

#[test]
fn large_bodies_cross_both_ways_whole() {
    let server = server();
    let body: Vec<u8> = (0..(3 << 20)).map(|i: u32| (i % 251) as u8).collect();
    // axum's own 2 MB default limit of its body extractors still holds inside the group...
    let res = server.post("/p/upload").body(body.clone()).send();
    assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE, "{}", res.text());
    assert!(res.text().contains("length limit exceeded"), "axum's answer: {}", res.text());
    // ... and the app raises it as it did before (the host's `body_limit` comes first).
    let res = server.post("/p/upload-big").body(body.clone()).send();
    assert_eq!(res.status(), StatusCode::OK, "{}", res.text());
    assert_eq!(res.bytes().len(), body.len());
    assert!(res.bytes() == body.as_slice(), "the echoed body differs");
    assert_eq!(res.header("content-length"), Some("3145728"));
}

// === the answer on its way out ===

#[test]
fn statuses_and_repeated_headers_come_back_as_the_app_set_them() {
    let server = server();
    let res = server.get("/p/teapot").send();
    assert_eq!(res.status(), StatusCode::IM_A_TEAPOT);
    assert_eq!(res.text(), "short and stout");
    let cookies: Vec<&str> = res.headers().get_all("set-cookie").iter().filter_map(|v| v.to_str().ok()).collect();
    assert_eq!(cookies, ["a=1", "b=2"]);
    let res = server.get("/p/nothing").send();
    assert_eq!(res.status(), StatusCode::NOT_FOUND, "the app's own 404");
    assert!(res.bytes().is_empty());
    let res = server.request("PUT", "/p/teapot").send();
    assert_eq!(res.status(), StatusCode::METHOD_NOT_ALLOWED, "the app's own 405");
    assert_eq!(res.header("allow"), Some("GET,HEAD"));
}

#[test]
fn handlers_reach_the_call_context_and_host_timers() {
    let server = server();
    let res = server.get("/p/ctx").header("x-request-id", "axum-ctx-1").send();
    assert_eq!(res.text(), "axum-ctx-1");
    let started = Instant::now();
    let res = server.get("/p/host-sleep").send();
    assert_eq!((res.status(), res.text().as_str()), (StatusCode::OK, "slept on the host"));
    assert!(started.elapsed() >= Duration::from_millis(40));
}

// === what cannot cross: tokio's runtime ===

#[test]
fn tokio_timers_and_spawns_answer_a_clear_500_at_once_as_a_plugin() {
    for (path, call) in [
        ("/p/tokio/sleep", "GET /p/tokio/sleep"),
        ("/p/tokio/timeout", "GET /p/tokio/timeout"),
        ("/p/tokio/spawn", "GET /p/tokio/spawn"),
        ("/p/tokio/spawn-blocking", "GET /p/tokio/spawn-blocking"),
    ] {
        let started = Instant::now();
        let err = as_plugin(path).expect_err(path);
        assert!(started.elapsed() < Duration::from_secs(2), "{path} took {:?}", started.elapsed());
        assert_eq!((err.status(), err.code()), (StatusCode::INTERNAL_SERVER_ERROR, NO_TOKIO_RUNTIME), "{path}");
        let request = format!("`{call}`");
        for part in [request.as_str(), "Tokio 1.x runtime", "berth::sleep", "ctx.sleep", "spawn"] {
            assert!(err.message().contains(part), "{path}: `{part}` missing from {}", err.message());
        }
    }
    // What works without a runtime still works there: host timers, through the same adapter.
    let res = as_plugin("/p/host-sleep").expect("host timers need no tokio runtime");
    assert_eq!(res.body, b"slept on the host");
}

#[test]
fn the_no_runtime_answer_reaches_the_caller_with_its_code_and_request_id() {
    let server = server();
    let started = Instant::now();
    let res = server.get("/p/tokio/as-in-a-plugin").header("x-request-id", "no-rt-1").send();
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let body: Value = res.json();
    assert_eq!(body["error"], NO_TOKIO_RUNTIME);
    assert_eq!(body["request_id"], "no-rt-1");
    assert!(body["message"].as_str().unwrap_or_default().contains("berth::sleep"), "{body}");
}

#[test]
fn any_other_panic_of_the_app_is_the_functions_panic() {
    let server = server();
    let res = server.get("/p/boom").send();
    assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let body: Value = res.json();
    assert_eq!(body["error"], "panic", "{body}");
    let caught = std::panic::catch_unwind(|| as_plugin("/p/boom"));
    assert!(caught.is_err(), "not turned into the no-runtime answer");
    assert_eq!(server.get("/p/echo").send().status(), StatusCode::OK, "the app serves on");
}

// === App itself: prefixes, keep_prefix, tower services ===

#[test]
fn a_prefix_must_be_a_literal_path_segment() {
    for (prefix, problem) in [
        ("", "starts with `/`"),
        ("p", "starts with `/`"),
        ("/", "cannot be `/`"),
        ("/p/", "does not end with `/`"),
        ("/p/{id}", "literal"),
        ("/p/{*rest}", "literal"),
        ("/p?x", "no `?`"),
        ("/a//b", "empty segment"),
    ] {
        let err = App::new(prefix, Router::new()).expect_err(prefix);
        let message = err.to_string();
        assert!(message.contains(&format!("`{prefix}`")) && message.contains(problem), "{prefix}: {message}");
    }
    let app = App::new("/a/b", Router::new()).expect("two literal segments are fine");
    assert_eq!(app.routes(), ["/a/b", "/a/b/", "/a/b/{*path}"]);
}

#[test]
fn keep_prefix_passes_the_path_unchanged() {
    let app = App::new(
        "/items",
        Router::new().route("/items/{id}", get(|Path(id): Path<u32>| async move { id.to_string() })),
    )
    .expect("a prefix")
    .keep_prefix();
    let res = app.call_as_plugin(Request::new("GET", "/items/42")).expect("answers");
    assert_eq!((res.status, res.body.as_slice()), (StatusCode::OK, b"42".as_slice()));
    let stripped =
        App::new("/items", Router::new().route("/{id}", get(|Path(id): Path<u32>| async move { id.to_string() })))
            .expect("a prefix");
    let res = stripped.call_as_plugin(Request::new("GET", "/items/42")).expect("answers");
    assert_eq!(res.body, b"42");
    let err = stripped.call_as_plugin(Request::new("GET", "/elsewhere")).expect_err("outside the prefix");
    assert_eq!(err.status(), StatusCode::NOT_FOUND);
    assert!(err.message().contains("`/elsewhere`") && err.message().contains("`/items`"), "{}", err.message());
}

#[test]
fn any_tower_service_serves_through_service() {
    let svc = tower::service_fn(|req: axum::http::Request<Body>| async move {
        Ok::<_, Infallible>(format!("{} {}", req.method(), req.uri()).into_response())
    });
    let app = App::new("/svc", berth::axum::service(svc)).expect("a prefix");
    let res = app.call_as_plugin(Request::new("DELETE", "/svc/a/b?c=d")).expect("answers");
    assert_eq!(String::from_utf8_lossy(&res.body), "DELETE /a/b?c=d");
}
