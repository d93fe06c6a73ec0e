//! The Tencent SCF shims, driven as SCF's contract says: the event function's runtime API
//! (`init/ready`, `invocation/next` with underscore headers, `invocation/response` and
//! `/error`), and the web function (HTTP on its port, `X-Scf-Request-Id`).

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::json;

use super::support::{free_port, package, FakeApi, FakeEvent, Running};
use crate::support::request;

fn next(id: &str, body: serde_json::Value) -> FakeEvent {
    FakeEvent {
        headers: vec![
            ("request_id", id.to_owned()),
            ("memory_limit_in_mb", "128".into()),
            ("time_limit_in_ms", "3000".into()),
        ],
        body: body.to_string().into_bytes(),
    }
}

#[tokio::test]
async fn scf_event_functions_follow_the_runtime_api() {
    let api = FakeApi::start().await;
    let pkg = package("scf");
    let mut boot = Running::start(
        &pkg.root,
        "bootstrap",
        &[
            ("SCF_RUNTIME_API", "127.0.0.1".into()),
            ("SCF_RUNTIME_API_PORT", api.addr.port().to_string()),
            ("SCF_FUNCTIONNAME", "berth".into()),
            ("SCF_NAMESPACE", "default".into()),
            ("_HANDLER", "index.main".into()),
        ],
    );
    assert_eq!(api.posted().await.path, "/runtime/init/ready");

    let apigw = json!({
        "requestContext": {"serviceId": "service-abc", "path": "/hello", "httpMethod": "GET", "requestId": "gw-1",
                           "identity": {}, "sourceIp": "10.0.0.1", "stage": "release"},
        "headers": {"Accept": "application/json", "X-Demo": "1"},
        "body": null, "pathParameters": {}, "queryStringParameters": {}, "headerParameters": {},
        "path": "/hello/scf", "queryString": {"a": "1", "b": ["x", "y"]}, "httpMethod": "GET"
    });
    api.push(next("scf-1", apigw));
    let p = api.posted().await;
    assert_eq!(p.path, "/runtime/invocation/response");
    let answer = p.json();
    assert_eq!(
        (answer["statusCode"].as_i64(), answer["isBase64Encoded"].as_bool()),
        (Some(200), Some(false)),
        "{answer}"
    );
    let body: serde_json::Value = serde_json::from_str(answer["body"].as_str().unwrap()).unwrap();
    assert_eq!(body["message"], "Hello, scf!");
    assert_eq!(body["request_id"], "scf-1", "the underscore request_id header is the request id");
    assert_eq!(body["query"], "a=1&b=x&b=y");

    let binary = json!({"requestContext": {"serviceId": "s", "httpMethod": "GET"}, "headers": {}, "path": "/binary",
                        "queryString": {}, "httpMethod": "GET"});
    api.push(next("scf-2", binary));
    let answer = api.posted().await.json();
    assert_eq!(answer["isBase64Encoded"], true);

    let timer = json!({"Type": "Timer", "TriggerName": "nightly", "Time": "2026-12-01T00:00:00Z", "Message": "m"});
    api.push(next("scf-3", timer));
    let p = api.posted().await;
    assert_eq!(p.path, "/runtime/invocation/response");
    assert_eq!(p.json()["function"], "tick");

    api.push(FakeEvent { headers: vec![("request_id", "scf-4".into())], body: b"<xml/>".to_vec() });
    let p = api.posted().await;
    assert_eq!(p.path, "/runtime/invocation/error");
    assert!(
        String::from_utf8_lossy(&p.body).contains("not JSON"),
        "free-text error: {:?}",
        String::from_utf8_lossy(&p.body)
    );

    api.push(next("scf-5", json!({"order": 1, "x": "fail"})));
    let p = api.posted().await;
    assert_eq!(p.path, "/runtime/invocation/error");
    assert!(String::from_utf8_lossy(&p.body).contains("asked to fail"));

    api.push(next("scf-6", json!({"order": 2})));
    let p = api.posted().await;
    assert_eq!((p.path.as_str(), p.json()["function"].as_str()), ("/runtime/invocation/response", Some("direct")));

    api.vanish();
    assert!(!boot.wait_exit(Duration::from_secs(30)).await.success());
}

#[tokio::test]
async fn an_scf_event_function_that_cannot_load_exits_before_ready() {
    let api = FakeApi::start().await;
    let pkg = package("scf");
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("broken.toml");
    std::fs::write(&config, "[[groups]]\nfile = \"plugins/missing-group.so\"\n[platform]\nname = \"scf\"\n").unwrap();
    let mut boot = Running::start(
        &pkg.root,
        "bootstrap",
        &[
            ("SCF_RUNTIME_API", "127.0.0.1".into()),
            ("SCF_RUNTIME_API_PORT", api.addr.port().to_string()),
            ("BERTH_CONFIG", config.display().to_string()),
        ],
    );
    assert!(!boot.wait_exit(Duration::from_secs(30)).await.success());
    assert!(boot.output().contains("missing-group.so"), "{}", boot.output());
    api.push(next("never", json!({})));
    assert!(tokio::time::timeout(Duration::from_millis(300), api.posted()).await.is_err(), "no init/ready was posted");
}

#[tokio::test]
async fn scf_web_functions_pass_http_through_with_the_scf_request_id() {
    let pkg = package("scf-web");
    assert!(pkg.root.join("scf_bootstrap").is_file());
    let port = free_port();
    // SCF web functions listen on 9000; the test moves it (the environment wins over the
    // platform's address) so it can run next to others.
    let mut boot = Running::start(
        &pkg.root,
        "scf_bootstrap",
        &[("BERTH_SERVER__LISTEN", format!("0.0.0.0:{port}")), ("SCF_FUNCTIONNAME", "berth".into())],
    );
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    boot.wait_listening(addr).await;
    let res =
        request(addr, "GET", "/hello/web", &[("X-Scf-Request-Id", "web-1"), ("X-Scf-Timeout", "3000")], b"").await;
    assert_eq!(res.status, 200);
    assert_eq!((res.header("x-scf-request-id"), res.json()["request_id"].as_str()), (Some("web-1"), Some("web-1")));
    let res = request(addr, "GET", "/fail", &[("X-Scf-Request-Id", "web-2")], b"").await;
    assert_eq!(res.status, 500);
    assert_eq!(
        (res.header("x-scf-request-id"), res.header("x-scf-error-type")),
        (Some("web-2"), Some("FunctionError"))
    );
    assert!(boot.output().contains("platform=scf-web"), "{}", boot.output());
}
