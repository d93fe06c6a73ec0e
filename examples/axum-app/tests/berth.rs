//! What the migration adds or changes, beyond the app's original tests: the Berth `Context`
//! reaches handlers, the prefix routes every method to the app, and the app's one tokio timer
//! answers a clear 500 at once in a plugin instead of hanging.

mod common;

use std::time::{Duration, Instant};

use berth::{Request, StatusCode};
use common::{Client, ServerClient};

/// `/export` calls `tokio::time::sleep`. Polled as the host polls a plugin (no tokio runtime),
/// the adapter answers a 500 naming the request, tokio's words and the fix, promptly.
#[test]
fn a_route_on_a_tokio_timer_answers_a_clear_500_at_once_as_a_plugin() {
    let started = Instant::now();
    let err = axum_app::berth_axum_app()
        .call_as_plugin(Request::new("GET", "/axum-app/export"))
        .expect_err("a plugin cannot run tokio timers");
    assert!(started.elapsed() < Duration::from_secs(2), "took {:?}", started.elapsed());
    assert_eq!(err.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(err.code(), berth::axum::NO_TOKIO_RUNTIME);
    for part in ["`GET /axum-app/export`", "there is no reactor running", "berth::sleep", "ctx.sleep", "tokio::spawn"] {
        assert!(err.message().contains(part), "`{part}` missing from: {}", err.message());
    }
}

/// The same app answers every route that needs no tokio runtime in plugin conditions, and its
/// Berth route waits on the host's timer there.
#[test]
fn routes_without_tokio_answer_as_a_plugin_and_host_timers_work() {
    let app = axum_app::berth_axum_app();
    let res = app.call_as_plugin(Request::new("GET", "/axum-app/health")).expect("health answers");
    assert_eq!((res.status, res.body.as_slice()), (StatusCode::OK, b"ok".as_slice()));
    let started = Instant::now();
    let res = app.call_as_plugin(Request::new("GET", "/axum-app/berth/ping?wait_ms=30")).expect("ping answers");
    assert_eq!(res.status, StatusCode::OK);
    assert!(started.elapsed() >= Duration::from_millis(30), "the host timer waited");
    let pong: serde_json::Value = res.json_body().expect("JSON");
    assert_eq!(pong["waited_ms"], 30);
}

/// Handlers take the call's `berth::Context` as an axum extension.
#[test]
fn handlers_see_the_berth_context_of_the_call() {
    let client = ServerClient::start();
    let res = client.0.get("/axum-app/berth/ping?wait_ms=10").header("x-request-id", "req-axum-7").send();
    assert_eq!(res.status(), StatusCode::OK, "{}", res.text());
    let pong: serde_json::Value = res.json();
    assert_eq!(pong["request_id"], "req-axum-7");
    assert_eq!(res.header("x-request-id"), Some("req-axum-7"));
    assert_eq!(pong["trigger"], "http");
}

/// `/axum-app`, `/axum-app/` and everything under it reach the app with every method; a path
/// that only starts with the same letters does not.
#[test]
fn the_prefix_routes_every_method_to_the_app() {
    let client = ServerClient::start();
    let answer = |method: &str, path: &str| client.0.request(method, path).send();
    // The app has no `/` route: axum's own 404 (empty body), not the host's.
    for path in ["/axum-app", "/axum-app/"] {
        let res = answer("GET", path);
        assert_eq!(res.status(), StatusCode::NOT_FOUND, "{path}");
        assert!(res.bytes().is_empty(), "{path}: axum's 404 has no body, got {}", res.text());
    }
    let host_404 = answer("GET", "/axum-appx/health");
    assert_eq!(host_404.status(), StatusCode::NOT_FOUND);
    assert!(!host_404.bytes().is_empty(), "the host's 404 explains itself");
    assert_eq!(answer("HEAD", "/axum-app/health").status(), StatusCode::OK);
    let res = answer("OPTIONS", "/axum-app/health");
    assert_eq!(res.status(), StatusCode::METHOD_NOT_ALLOWED, "the app's answer, not the host's");
    assert_eq!(res.header("allow"), Some("GET,HEAD"));
    let res = berth::testing::block_on(client.json("PUT", "/bookmarks/1", &serde_json::json!({})));
    assert_eq!(res.status, 405);
}

/// The group is one function, `axum`, with every method on the prefix's three routes.
#[test]
fn the_group_declares_one_function_on_every_method_of_the_prefix() {
    let group = axum_app::berth_group();
    assert_eq!(group.functions.iter().map(|f| f.name).collect::<Vec<_>>(), ["axum"]);
    let manifest = group.manifest();
    let function = &manifest.functions[0];
    assert_eq!(function.triggers.len(), 3 * 7);
    assert_eq!(axum_app::berth_axum_app().routes(), ["/axum-app", "/axum-app/", "/axum-app/{*path}"]);
}
