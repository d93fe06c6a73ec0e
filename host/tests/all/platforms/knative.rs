//! The Knative shim with CloudEvents made and read by a real, independent peer: the PyPI
//! `cloudevents` SDK sends binary- and structured-mode events and parses the reply event.

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::json;

use super::support::{free_port, package, FakeApi, Running};
use crate::peers::cloudevents_send;
use crate::support::{metric, request};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cloudevents_from_the_sdk_reach_the_bound_function_and_its_reply_parses_back() {
    let pkg = package("knative");
    // The sink a SinkBinding would point K_SINK at.
    let sink = FakeApi::start().await;
    let port = free_port();
    let mut boot = Running::start(
        &pkg.root,
        "berth",
        &[
            ("PORT", port.to_string()),
            ("K_SERVICE", "shop".into()),
            ("K_REVISION", "shop-00001".into()),
            ("K_CONFIGURATION", "shop".into()),
            ("K_SINK", format!("http://{}/", sink.addr)),
            ("K_CE_OVERRIDES", r#"{"extensions":{"cluster":"test"}}"#.into()),
            ("BERTH_CONFIG", pkg.root.join("berth.toml").display().to_string()),
        ],
    );
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    boot.wait_listening(addr).await;
    let url = format!("http://127.0.0.1:{port}/");
    let send = |args: &[&str]| tokio::task::block_in_place(|| cloudevents_send(args));

    for (mode, id) in [("binary", "order-1"), ("structured", "order-2")] {
        let data = json!({ "id": id }).to_string();
        let out = send(&[
            "--url",
            &url,
            "--mode",
            mode,
            "--type",
            "com.example.order.created",
            "--source",
            "/shop/web",
            "--id",
            id,
            "--subject",
            "new order",
            "--datacontenttype",
            "application/json",
            "--data",
            &data,
        ]);
        assert_eq!(out["status"], 200, "{mode}: {out}");
        let reply = &out["reply"];
        assert_eq!(reply["type"], "com.example.order.accepted", "{mode}: {out}");
        assert_eq!(reply["source"], "berth/platform-events/order_created");
        assert_eq!(reply["subject"], id, "{mode}: {out}");
        assert_eq!(reply["data"], json!({ "order": id, "accepted": true }), "{mode}: {out}");
        assert_eq!(reply["id"], format!("{id}.reply"));
    }

    // A duplicate delivery (same source and id) gets the first answer; the function runs once.
    let data = json!({ "id": "order-1" }).to_string();
    let out = send(&[
        "--url",
        &url,
        "--mode",
        "binary",
        "--type",
        "com.example.order.created",
        "--source",
        "/shop/web",
        "--id",
        "order-1",
        "--datacontenttype",
        "application/json",
        "--data",
        &data,
    ]);
    assert_eq!((out["status"].as_i64(), out["reply"]["data"]["order"].as_str()), (Some(200), Some("order-1")), "{out}");
    let metrics = request(addr, "GET", "/metrics", &[], b"").await.text();
    let calls = metric(
        &metrics,
        "berth_function_invocations_total{function=\"order_created\",group=\"platform-events\",status_class=\"2xx\"}",
    );
    assert_eq!(calls, Some(2.0), "{metrics}");
    assert!(
        metrics.contains("berth_platform_info{platform=\"knative\",revision=\"shop-00001\",service=\"shop\"} 1"),
        "{metrics}"
    );

    // An event the function fails on: its status, so Eventing retries or not as it should.
    let out = send(&[
        "--url",
        &url,
        "--mode",
        "binary",
        "--type",
        "com.example.order.created",
        "--source",
        "/shop/web",
        "--id",
        "order-3",
        "--data",
        "{\"no_id\": true}",
    ]);
    assert_eq!(out["status"], 400, "{out}");
    // A type no function is bound to goes to the invoke function.
    let out = send(&[
        "--url",
        &url,
        "--mode",
        "structured",
        "--type",
        "com.example.other",
        "--source",
        "/x",
        "--id",
        "o-9",
        "--data",
        "{\"a\": 1}",
    ]);
    assert_eq!((out["status"].as_i64(), out["reply"].is_null()), (Some(202), true), "{out}");

    // Batched mode is refused clearly; a binary event without its id is a 400 that says so.
    let batch = request(addr, "POST", "/", &[("content-type", "application/cloudevents-batch+json")], b"[]").await;
    assert_eq!(batch.status, 400);
    assert!(batch.text().contains("batched mode is not supported"), "{}", batch.text());
    let res =
        request(addr, "POST", "/", &[("ce-specversion", "1.0"), ("ce-type", "t"), ("ce-source", "/s")], b"{}").await;
    assert_eq!(res.status, 400);
    assert!(res.text().contains("ce-id"), "{}", res.text());

    // Plain HTTP is still served by the router.
    let res = request(addr, "GET", "/hello/knative", &[], b"").await;
    assert_eq!(res.json()["message"], "Hello, knative!");
    assert!(
        boot.output().contains("k_service=shop") && boot.output().contains("k_revision=shop-00001"),
        "{}",
        boot.output()
    );

    // A function publishing through K_SINK: a binary-mode CloudEvent with the overrides.
    let res = request(addr, "POST", "/emit", &[("content-type", "application/json")], b"{\"n\":1}").await;
    assert_eq!(res.status, 200, "{}", res.text());
    let sent = sink.posted().await;
    assert_eq!(sent.header("ce-specversion"), Some("1.0"));
    assert_eq!(sent.header("ce-type"), Some("com.example.emitted"));
    assert_eq!(sent.header("ce-source"), Some("berth/queue/events"));
    assert_eq!(
        (sent.header("ce-origin"), sent.header("ce-cluster")),
        (Some("fixture"), Some("test")),
        "{:?}",
        sent.headers
    );
    assert_eq!(sent.header("ce-id"), res.json()["published"].as_str());
    assert_eq!(sent.body, b"{\"n\":1}");

    // SIGTERM: drain and exit 0.
    boot.terminate();
    assert!(boot.wait_exit(Duration::from_secs(30)).await.success(), "{}", boot.output());
}
