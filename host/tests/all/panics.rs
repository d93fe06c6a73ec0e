//! A panicking handler answers 500 with the request id; the host keeps serving, without growing.

use crate::support::{group, metric, request, BerthProcess, TestHost};

#[tokio::test]
async fn a_panic_gives_500_with_the_request_id_and_the_next_request_succeeds() {
    let h = TestHost::start(&group("examples/hello")).await;
    let res = h.send("GET", "/panic", &[("x-request-id", "boom-1")], b"").await;
    assert_eq!(res.status, 500, "{}", res.text());
    let body = res.json();
    assert_eq!(body["error"], "panic");
    assert_eq!(body["request_id"], "boom-1");
    // The panic message stays in the log; the caller gets no internals.
    assert!(!res.text().contains("deliberate"), "{}", res.text());
    assert_eq!(h.get("/hello/after").await.json()["message"], "Hello, after!");
    let metrics = h.get("/metrics").await.text();
    assert_eq!(
        metric(&metrics, r#"berth_function_errors_total{function="panic",group="hello",kind="panic"}"#),
        Some(1.0)
    );
    h.stop().await;
}

#[tokio::test]
async fn a_thousand_panics_leave_the_host_serving_with_stable_memory() {
    let berth = BerthProcess::start("", &group("examples/hello"));
    let addr = berth.addr;
    // Warm up allocator arenas and lazy statics first, then measure.
    for _ in 0..200 {
        assert_eq!(request(addr, "GET", "/panic", &[], b"").await.status, 500);
    }
    let before = berth.rss_kib();
    for _ in 0..1000 {
        assert_eq!(request(addr, "GET", "/panic", &[], b"").await.status, 500);
    }
    let after = berth.rss_kib();
    assert_eq!(request(addr, "GET", "/hello/survivor", &[], b"").await.status, 200);
    let growth = after.saturating_sub(before);
    assert!(growth < 2048, "RSS grew {growth} KiB over 1000 panics ({before} -> {after} KiB)");
}
