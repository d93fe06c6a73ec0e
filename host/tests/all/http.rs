//! Routing, parameters, JSON and the host's own endpoints.

use crate::support::{group, metric, TestHost};

/// hello, and todo with the services it needs (SQLite, the embedded store, the users group).
async fn examples() -> TestHost {
    let services =
        "[services.db]\nkind = \"sqlite\"\n[services.cache]\nkind = \"kv\"\n[services.userstore]\nkind = \"kv\"\n";
    TestHost::start(&format!(
        "{services}{}{}{}",
        group("examples/hello"),
        group("plugins/users"),
        group("examples/todo")
    ))
    .await
}

#[tokio::test]
async fn hello_returns_json_and_metrics_count_the_call() {
    let h = examples().await;
    assert!(h.readiness().ready, "{:?}", h.readiness());
    let res = h.get("/hello/world").await;
    assert_eq!(res.status, 200, "{}", res.text());
    assert_eq!(res.header("content-type"), Some("application/json"));
    assert_eq!(res.json(), serde_json::json!({"message": "Hello, world!"}));
    assert!(res.header("x-request-id").is_some_and(|id| !id.is_empty()));

    let metrics = h.get("/metrics").await.text();
    let calls =
        metric(&metrics, r#"berth_function_invocations_total{function="hello",group="hello",status_class="2xx"}"#);
    assert_eq!(calls, Some(1.0), "{metrics}");
    assert_eq!(metric(&metrics, "berth_plugin_groups_loaded"), Some(3.0));
    assert!(
        metrics.contains(r#"berth_function_duration_seconds_count{function="hello",group="hello"} 1"#),
        "{metrics}"
    );
    h.stop().await;
}

#[tokio::test]
async fn path_params_are_percent_decoded_and_query_params_typed() {
    let h = examples().await;
    let res = h.get("/hello/w%C3%B6rld%20x").await;
    assert_eq!(res.json()["message"], "Hello, wörld x!");
    let res = h.get("/divide?a=17&b=5").await;
    assert_eq!(res.status, 200);
    assert_eq!(res.json(), serde_json::json!({"quotient": 3, "remainder": 2}));
    let res = h.get("/divide?a=1&b=zero").await;
    assert_eq!(res.status, 400, "{}", res.text());
    assert!(res.json()["message"].as_str().unwrap().contains("query"));
    h.stop().await;
}

#[tokio::test]
async fn json_round_trip_keeps_the_callers_request_id() {
    let h = examples().await;
    let body = br#"{"message":"hi","times":3}"#;
    let res =
        h.send("POST", "/echo", &[("content-type", "application/json"), ("x-request-id", "trace-42")], body).await;
    assert_eq!(res.status, 201, "{}", res.text());
    assert_eq!(res.header("x-request-id"), Some("trace-42"));
    assert_eq!(res.json(), serde_json::json!({"echoed": ["hi", "hi", "hi"], "request_id": "trace-42"}));
    h.stop().await;
}

#[tokio::test]
async fn malformed_json_and_handler_errors_map_to_statuses_with_request_ids() {
    let h = examples().await;
    let res = h.send("POST", "/echo", &[], b"{not json").await;
    assert_eq!(res.status, 400);
    let err = res.json();
    assert_eq!(err["error"], "bad_request");
    assert_eq!(err["request_id"].as_str(), res.header("x-request-id"));
    let res = h.send("POST", "/echo", &[], br#"{"message":"x","times":1000}"#).await;
    assert_eq!(res.status, 422);
    assert_eq!(res.json()["error"], "unprocessable");
    let res = h.get("/divide?a=1&b=0").await;
    assert_eq!(res.status, 400);
    assert!(res.json()["message"].as_str().unwrap().contains("divide by zero"));
    h.stop().await;
}

#[tokio::test]
async fn unknown_paths_are_404_and_wrong_methods_405_with_allow() {
    let h = examples().await;
    let res = h.get("/nowhere").await;
    assert_eq!(res.status, 404);
    assert_eq!(res.json()["error"], "not_found");
    let res = h.send("DELETE", "/hello/world", &[], b"").await;
    assert_eq!(res.status, 405);
    assert_eq!(res.header("allow"), Some("GET"));
    let res = h.send("PATCH", "/todos", &[], b"").await;
    assert_eq!(res.status, 405);
    assert_eq!(res.header("allow"), Some("GET, POST"));
    h.stop().await;
}

#[tokio::test]
async fn health_and_readiness() {
    let h = examples().await;
    assert_eq!(h.get("/healthz").await.status, 200);
    let ready = h.get("/readyz").await;
    assert_eq!(ready.status, 200);
    let groups = ready.json()["groups"].clone();
    assert_eq!(groups, serde_json::json!(["hello@1.0.0", "users@1.0.0", "todo@1.0.0"]));
    h.stop().await;
}
