//! The Alibaba Cloud FC custom-runtime shim, driven exactly as FC 3.0's contract says: HTTP on
//! `0.0.0.0:$FC_CUSTOM_LISTEN_PORT`, `x-fc-*` headers, `POST /invoke` for events, the lifecycle
//! hooks, `x-fc-status: 404` on failures and the `FC Invoke Start/End RequestId:` lines.

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::json;

use super::support::{free_port, package, Running};
use crate::support::request;

fn fc_headers<'a>(id: &'a str, control: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("x-fc-request-id", id),
        ("x-fc-control-path", control),
        ("x-fc-function-name", "berth"),
        ("x-fc-function-handler", "index.handler"),
        ("x-fc-function-memory", "512"),
        ("x-fc-region", "cn-hangzhou"),
        ("x-fc-account-id", "1234567890"),
        ("x-fc-qualifier", "LATEST"),
    ]
}

#[tokio::test]
async fn fc_serves_http_events_and_hooks_as_its_contract_says() {
    let pkg = package("fc");
    let port = free_port();
    let mut boot = Running::start(
        &pkg.root,
        "bootstrap",
        &[
            ("FC_CUSTOM_LISTEN_PORT", port.to_string()),
            ("FC_FUNCTION_NAME", "berth".into()),
            ("FC_FUNC_CODE_PATH", pkg.root.display().to_string()),
            ("FC_REGION", "cn-hangzhou".into()),
        ],
    );
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    boot.wait_listening(addr).await;
    boot.wait_for("platform chosen", Duration::from_secs(10)).await;
    assert!(boot.output().contains("platform=fc"), "{}", boot.output());

    let res = request(addr, "POST", "/initialize", &fc_headers("init-1", "/initialize"), b"").await;
    assert_eq!((res.status, res.header("x-fc-status")), (200, Some("200")), "{}", res.text());
    boot.wait_for("FC Initialize End RequestId: init-1", Duration::from_secs(5)).await;

    // An HTTP function: the request passes through; FC's request id is the request id.
    let res = request(addr, "GET", "/hello/fc?lang=zh", &fc_headers("http-1", "/http-invoke"), b"").await;
    assert_eq!(res.status, 200, "{}", res.text());
    assert_eq!(res.header("x-fc-status"), Some("200"));
    assert_eq!(res.json()["request_id"], "http-1");
    assert_eq!(res.json()["query"], "lang=zh");
    boot.wait_for("FC Invoke End RequestId: http-1", Duration::from_secs(5)).await;
    assert!(boot.output().contains("FC Invoke Start RequestId: http-1"));

    // A failing HTTP function is marked for FC.
    let res = request(addr, "GET", "/fail", &fc_headers("http-2", "/http-invoke"), b"").await;
    assert_eq!((res.status, res.header("x-fc-status")), (500, Some("404")));

    // Event functions: a timer trigger, an OSS event, any other payload.
    let timer = json!({"triggerTime": "2026-12-01T08:00:00Z", "triggerName": "nightly", "payload": "hi"});
    let res = request(addr, "POST", "/invoke", &fc_headers("ev-1", "/invoke"), timer.to_string().as_bytes()).await;
    assert_eq!((res.status, res.header("x-fc-status")), (200, Some("200")), "{}", res.text());
    let got = res.json();
    assert_eq!((got["function"].as_str(), got["type"].as_str()), (Some("tick"), Some("berth.timer.fired")));
    assert_eq!(got["time"], "2026-12-01T08:00:00Z");

    let oss = json!({"events": [{
        "eventName": "ObjectCreated:PutObject", "eventSource": "acs:oss", "eventTime": "2026-12-01T08:00:00.000Z",
        "eventVersion": "1.0", "region": "cn-hangzhou",
        "oss": {"bucket": {"arn": "acs:oss:cn-hangzhou:123:uploads", "name": "uploads", "ownerIdentity": "123"},
                "object": {"deltaSize": 5, "eTag": "abc", "key": "docs/a.txt", "size": 5},
                "ossSchemaVersion": "1.0", "ruleId": "r"},
        "requestParameters": {"sourceIPAddress": "1.2.3.4"}, "responseElements": {"requestId": "x"},
        "userIdentity": {"principalId": "123"}}]});
    let res = request(addr, "POST", "/invoke", &fc_headers("ev-2", "/invoke"), oss.to_string().as_bytes()).await;
    assert_eq!((res.status, res.header("x-fc-status")), (200, Some("200")), "{}", res.text());
    assert_eq!(res.json()["delivered"], 1);
    let res = request(addr, "POST", "/invoke", &fc_headers("ev-3", "/invoke"), b"{\"order\": 7}").await;
    assert_eq!(res.json()["function"], "direct");
    assert_eq!(res.json()["data"], "{\"order\": 7}");
    assert_eq!(res.json()["id"], "ev-3");

    // Failures: the function's error, an unknown timer, an oversized payload — each with
    // x-fc-status: 404 and a message; the runtime keeps serving.
    let res = request(addr, "POST", "/invoke", &fc_headers("ev-4", "/invoke"), b"{\"x\": \"fail\"}").await;
    assert_eq!((res.status, res.header("x-fc-status")), (422, Some("404")), "{}", res.text());
    assert!(res.json()["errorMessage"].as_str().unwrap().contains("asked to fail"));
    let unknown = json!({"triggerTime": "2026-12-01T08:00:00Z", "triggerName": "weekly"});
    let res = request(addr, "POST", "/invoke", &fc_headers("ev-5", "/invoke"), unknown.to_string().as_bytes()).await;
    assert_eq!(res.header("x-fc-status"), Some("404"));
    assert!(res.json()["errorMessage"].as_str().unwrap().contains("weekly"), "{}", res.text());
    let huge = vec![b'a'; 33 * 1024 * 1024];
    let res = request(addr, "POST", "/invoke", &fc_headers("ev-6", "/invoke"), &huge).await;
    assert_eq!((res.status, res.header("x-fc-status")), (413, Some("404")));
    let res = request(addr, "GET", "/hello/again", &fc_headers("http-3", "/http-invoke"), b"").await;
    assert_eq!(res.status, 200, "still serving after the failures");

    let res = request(addr, "GET", "/pre-stop", &fc_headers("stop-1", "/pre-stop"), b"").await;
    assert_eq!((res.status, res.json()["drained"].as_bool()), (200, Some(true)));
    boot.terminate();
    assert!(boot.wait_exit(Duration::from_secs(30)).await.success());
}
