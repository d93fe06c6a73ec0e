//! The kubeless runtime contract, driven as the kubeless controller and its triggers drive a
//! runtime: `FUNC_*` variables, `/healthz`, event headers, `FUNC_TIMEOUT` → 408, its metrics.

use std::net::SocketAddr;
use std::time::Duration;

use super::support::{free_port, package, Running};
use crate::support::{metric, request};

#[tokio::test]
async fn kubeless_functions_get_events_timeouts_and_metrics_as_the_contract_says() {
    let pkg = package("kubeless");
    let dockerfile = std::fs::read_to_string(pkg.root.join("Dockerfile")).unwrap();
    assert!(dockerfile.contains("FROM debian:") && dockerfile.contains("USER 65532:65532"), "{dockerfile}");
    let port = free_port();
    let mut boot = Running::start(
        &pkg.root,
        "berth",
        &[
            ("FUNC_PORT", port.to_string()),
            ("MOD_NAME", "platform-events".into()),
            ("FUNC_HANDLER", "direct".into()),
            ("FUNC_TIMEOUT", "1".into()),
            ("FUNC_RUNTIME", "berth".into()),
            ("FUNC_MEMORY_LIMIT", "134217728".into()),
            ("BERTH_CONFIG", pkg.root.join("berth.toml").display().to_string()),
        ],
    );
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    boot.wait_listening(addr).await;
    let res = request(addr, "GET", "/healthz", &[], b"").await;
    assert_eq!(res.status, 200);

    // Routed paths reach their HTTP functions.
    let res = request(addr, "GET", "/hello/kube", &[], b"").await;
    assert_eq!((res.status, res.json()["message"].as_str()), (200, Some("Hello, kube!")));

    // Anything else goes to FUNC_HANDLER, with the event headers as the event's attributes
    // (here as the CronJobTrigger sends them).
    let headers = [
        ("Event-Id", "cron-1"),
        ("Event-Time", "2026-12-01T00:00:00Z"),
        ("Event-Namespace", "cronjobtrigger.kubeless.io"),
        ("Event-Type", "application/json"),
        ("Content-Type", "application/json"),
    ];
    let res = request(addr, "POST", "/", &headers, b"{\"n\": 1}").await;
    assert_eq!(res.status, 200, "{}", res.text());
    let got = res.json();
    assert_eq!(
        (
            got["function"].as_str(),
            got["id"].as_str(),
            got["source"].as_str(),
            got["type"].as_str(),
            got["time"].as_str()
        ),
        (
            Some("direct"),
            Some("cron-1"),
            Some("cronjobtrigger.kubeless.io"),
            Some("application/json"),
            Some("2026-12-01T00:00:00Z")
        )
    );
    assert_eq!(got["data"], "{\"n\": 1}");

    // FUNC_TIMEOUT (1 s) cuts every call off, with 408 as kubeless runtimes answer.
    let started = std::time::Instant::now();
    let res = request(addr, "GET", "/slow?ms=3000", &[], b"").await;
    assert_eq!(res.status, 408, "{}", res.text());
    assert!(started.elapsed() < Duration::from_millis(2500));
    let res = request(addr, "POST", "/", &[("Content-Type", "application/json")], b"{\"x\": \"fail\"}").await;
    assert_eq!(res.status, 422);

    let metrics = request(addr, "GET", "/metrics", &[], b"").await.text();
    assert!(metric(&metrics, "function_calls_total{method=\"POST\"}").unwrap_or(0.0) >= 2.0, "{metrics}");
    assert!(
        metric(&metrics, "function_failures_total{method=\"GET\"}").unwrap_or(0.0) >= 1.0,
        "the 408 counts:\n{metrics}"
    );
    assert!(metrics.contains("function_duration_seconds_bucket{method=\"GET\""), "{metrics}");
    assert!(metrics.contains("berth_"), "Berth's own metrics are there too");
    assert!(boot.output().contains("request served"), "each request is logged:\n{}", boot.output());
}
