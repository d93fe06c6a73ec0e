//! The Lambda shim against a fake of the documented Runtime API, for what the emulator does not
//! cover: malformed and unknown events, the invocation deadline, responses over the limit, a
//! 413 and a 500 from the API, init errors, and the API going away.

use std::time::Duration;

use serde_json::json;

use super::support::{package, FakeApi, FakeEvent, Running};

fn invocation(id: &str, deadline_in: Duration, body: serde_json::Value) -> FakeEvent {
    let deadline = berth_host::core::clock::now_unix_ms() + deadline_in.as_millis() as u64;
    FakeEvent {
        headers: vec![
            ("lambda-runtime-aws-request-id", id.to_owned()),
            ("lambda-runtime-deadline-ms", deadline.to_string()),
            ("lambda-runtime-invoked-function-arn", "arn:aws:lambda:us-east-1:123456789012:function:berth".into()),
            (
                "lambda-runtime-trace-id",
                format!("Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1;Lineage={id}"),
            ),
        ],
        body: body.to_string().into_bytes(),
    }
}

fn raw(id: &str, body: &[u8]) -> FakeEvent {
    FakeEvent { headers: vec![("lambda-runtime-aws-request-id", id.to_owned())], body: body.to_vec() }
}

fn apigw(method: &str, path: &str, body: Option<&str>) -> serde_json::Value {
    json!({
        "resource": "/{proxy+}", "path": path, "httpMethod": method,
        "headers": {"Content-Type": "application/octet-stream"}, "multiValueHeaders": {"Content-Type": ["application/octet-stream"]},
        "queryStringParameters": null, "multiValueQueryStringParameters": null,
        "requestContext": {"requestId": "gw-1", "stage": "prod", "identity": {"sourceIp": "10.0.0.1"}},
        "body": body, "isBase64Encoded": false
    })
}

fn start(api: &FakeApi) -> Running {
    let pkg = package("lambda");
    Running::start(
        &pkg.root,
        "bootstrap",
        &[
            ("AWS_LAMBDA_RUNTIME_API", api.addr.to_string()),
            ("AWS_LAMBDA_FUNCTION_NAME", "berth".into()),
            ("LAMBDA_TASK_ROOT", pkg.root.display().to_string()),
        ],
    )
}

#[tokio::test]
async fn events_reach_their_functions_and_failures_reach_the_error_channel() {
    let api = FakeApi::start().await;
    let mut boot = start(&api);
    let long = Duration::from_secs(30);

    api.push(invocation("req-1", long, apigw("GET", "/hello/world", None)));
    let p = api.posted().await;
    assert_eq!(p.path, "/2018-06-01/runtime/invocation/req-1/response");
    let answer = p.json();
    assert_eq!(answer["statusCode"], 200, "{answer}");
    let body: serde_json::Value = serde_json::from_str(answer["body"].as_str().unwrap()).unwrap();
    assert_eq!((body["message"].as_str(), body["request_id"].as_str()), (Some("Hello, world!"), Some("req-1")));

    // Not JSON: a clear error through the error channel, and the runtime keeps serving.
    api.push(raw("req-2", b"{not json"));
    let p = api.posted().await;
    assert_eq!(p.path, "/2018-06-01/runtime/invocation/req-2/error");
    assert_eq!(p.header("lambda-runtime-function-error-type"), Some("Berth.BadEvent"));
    assert!(p.json()["errorMessage"].as_str().unwrap().contains("not JSON"), "{:?}", p.json());

    // A schedule no timer function is bound to: the error names the fix.
    let schedule = json!({"version": "0", "id": "ev-1", "detail-type": "Scheduled Event", "source": "aws.events",
        "account": "123456789012", "time": "2026-12-01T00:00:00Z", "region": "us-east-1",
        "resources": ["arn:aws:events:us-east-1:123456789012:rule/unbound-rule"], "detail": {}});
    api.push(invocation("req-3", long, schedule));
    let p = api.posted().await;
    assert!(p.path.ends_with("/req-3/error"), "{}", p.path);
    let msg = p.json()["errorMessage"].as_str().unwrap().to_owned();
    assert!(msg.contains("unbound-rule") && msg.contains("[platform.schedules]"), "{msg}");

    // A base64-encoded API Gateway body that is not base64.
    let mut bad = apigw("POST", "/echo", Some("%%%"));
    bad["isBase64Encoded"] = json!(true);
    api.push(invocation("req-4", long, bad));
    let p = api.posted().await;
    assert!(p.path.ends_with("/req-4/error") && p.json()["errorMessage"].as_str().unwrap().contains("not base64"));

    // The deadline Lambda gives is the call's: the slow function is cut off at it (504 to the
    // client), well before its own 10 s timeout.
    let started = std::time::Instant::now();
    let mut slow = apigw("GET", "/slow", None);
    slow["multiValueQueryStringParameters"] = json!({"ms": ["5000"]});
    api.push(invocation("req-6", Duration::from_millis(500), slow));
    let p = api.posted().await;
    assert!(p.path.ends_with("/req-6/response"), "{}", p.path);
    assert_eq!(p.json()["statusCode"], 504, "{:?}", p.json());
    assert!(started.elapsed() < Duration::from_secs(4), "cut off at the Lambda deadline, not the function's 10 s");

    // A request body over the function's limit: the router's 413, in API Gateway's shape.
    let huge = "y".repeat(7 * 1024 * 1024);
    api.push(invocation("req-6b", long, apigw("POST", "/echo", Some(&huge))));
    let p = api.posted().await;
    assert!(p.path.ends_with("/req-6b/response"), "{}", p.path);
    assert_eq!(p.json()["statusCode"], 413, "{}", &p.json()["body"]);

    // A response over Lambda's 6 MB: reported as an error instead of posted.
    let big = "x".repeat(5 * 1024 * 1024);
    let mut echo = apigw("POST", "/echo", Some(&big));
    echo["headers"] = json!({"Content-Type": "application/octet-stream"});
    echo["multiValueHeaders"] = json!({"Content-Type": ["application/octet-stream"]});
    api.push(invocation("req-7", long, echo));
    let p = api.posted().await;
    assert!(p.path.ends_with("/req-7/error"), "{}", p.path);
    assert_eq!(p.header("lambda-runtime-function-error-type"), Some("Function.ResponseSizeTooLarge"));

    // The Runtime API refuses a response as too large (413): the error channel gets it.
    api.answer_status("/req-8/response", 413);
    api.push(invocation("req-8", long, apigw("GET", "/hello/big", None)));
    assert!(api.posted().await.path.ends_with("/req-8/response"));
    let p = api.posted().await;
    assert!(p.path.ends_with("/req-8/error"), "{}", p.path);
    assert_eq!(p.json()["errorType"], "Function.ResponseSizeTooLarge");

    // A 500 from the Runtime API means the runtime must exit.
    api.answer_status("/req-9/response", 500);
    api.push(invocation("req-9", long, apigw("GET", "/hello/last", None)));
    assert!(api.posted().await.path.ends_with("/req-9/response"));
    let status = boot.wait_exit(Duration::from_secs(10)).await;
    assert!(!status.success(), "exits non-zero after a 500");
    let out = boot.output();
    assert!(out.contains("500"), "{out}");
    assert!(out.contains("lambda{request_id=req-2}"), "an invocation's log lines carry its request id:\n{out}");
}

#[tokio::test]
async fn a_group_that_fails_to_load_is_an_init_error_and_the_runtime_exits() {
    let api = FakeApi::start().await;
    let pkg = package("lambda");
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("broken.toml");
    std::fs::write(&config, "[[groups]]\nfile = \"plugins/missing-group.so\"\n[platform]\nname = \"lambda\"\n")
        .unwrap();
    let mut boot = Running::start(
        &pkg.root,
        "bootstrap",
        &[("AWS_LAMBDA_RUNTIME_API", api.addr.to_string()), ("BERTH_CONFIG", config.display().to_string())],
    );
    let p = api.posted().await;
    assert_eq!(p.path, "/2018-06-01/runtime/init/error");
    assert_eq!(p.header("lambda-runtime-function-error-type"), Some("Runtime.InitError"));
    assert!(p.json()["errorMessage"].as_str().unwrap().contains("missing-group.so"), "{:?}", p.json());
    let status = boot.wait_exit(Duration::from_secs(10)).await;
    assert!(!status.success());
}

#[tokio::test]
async fn a_runtime_api_that_goes_away_ends_the_runtime_with_a_clear_error() {
    let api = FakeApi::start().await;
    let mut boot = start(&api);
    boot.wait_for("polling the Lambda Runtime API", Duration::from_secs(60)).await;
    api.vanish();
    // The open long poll breaks; the reconnects are refused.
    let status = boot.wait_exit(Duration::from_secs(30)).await;
    assert!(!status.success());
    let out = boot.output();
    assert!(out.contains("cannot be reached"), "{out}");
}
