//! The Lambda shim under a real, independent peer: cargo-lambda's Runtime API emulator runs the
//! packaged `bootstrap`, and every event is AWS's own sample (`sam local generate-event`).

use std::time::Duration;

use base64::Engine as _;
use serde_json::{json, Value};

use super::support::{package, Running};
use crate::peers::{sam_event, Emulator};
use crate::support::request;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// Invokes through the emulator's CLI; the answer it printed, as JSON.
fn invoke(emu: &Emulator, event: &Value) -> Value {
    let (ok, out) = tokio::task::block_in_place(|| emu.invoke(event));
    assert!(ok, "invoke failed: {out}\nemulator log:\n{}", emu.log());
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("the answer is not JSON ({e}): {out}"))
}

fn body_json(answer: &Value) -> Value {
    let body = answer["body"].as_str().unwrap_or_else(|| panic!("no body: {answer}"));
    let text = if answer["isBase64Encoded"] == true {
        String::from_utf8(B64.decode(body).unwrap()).unwrap()
    } else {
        body.to_owned()
    };
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("body is not JSON ({e}): {text}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_sample_events_reach_their_functions_and_come_back_in_their_sources_shape() {
    let pkg = package("lambda");
    let emu = tokio::task::block_in_place(Emulator::start);
    let env: Vec<(&str, String)> = emu.env.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
    let boot = Running::start(&pkg.root, "bootstrap", &env);
    boot.wait_for("polling the Lambda Runtime API", Duration::from_secs(60)).await;
    let sam =
        |service: &str, event: &str, args: &[&str]| tokio::task::block_in_place(|| sam_event(service, event, args));

    // API Gateway REST (v1).
    let mut v1 = sam("apigateway", "aws-proxy", &["--path", "hello/rest", "--method", "GET", "--body", ""]);
    v1["path"] = json!("/hello/rest");
    let answer = invoke(&emu, &v1);
    assert_eq!(answer["statusCode"], 200, "{answer}");
    assert_eq!(body_json(&answer)["message"], "Hello, rest!");
    assert_eq!(answer["multiValueHeaders"]["content-type"], json!(["application/json"]), "{answer}");

    // HTTP API (v2): cookies both ways, a base64 body in and out.
    let v2 = sam("apigateway", "http-api-proxy", &["--path", "echo", "--method", "POST", "--body", "ping"]);
    let answer = invoke(&emu, &v2);
    assert_eq!(answer["statusCode"], 200, "{answer}");
    assert_eq!(answer["cookies"], json!(["session=abc; Path=/", "theme=dark"]), "{answer}");
    assert_eq!(answer["headers"]["x-cookie"], "cookie1; cookie2", "{answer}");
    assert_eq!(answer["headers"]["x-multi"], "a, b");
    assert_eq!(answer["isBase64Encoded"], true, "an octet-stream body goes back base64: {answer}");
    assert_eq!(B64.decode(answer["body"].as_str().unwrap()).unwrap(), b"ping");

    // ALB: a binary answer, base64, with the status description ALB wants.
    let alb = sam("alb", "request", &["--path", "binary", "--method", "GET", "--body", ""]);
    let answer = invoke(&emu, &alb);
    assert_eq!(
        (answer["statusCode"].as_i64(), answer["statusDescription"].as_str()),
        (Some(200), Some("200 OK")),
        "{answer}"
    );
    assert_eq!(answer["isBase64Encoded"], true);
    assert_eq!(B64.decode(answer["body"].as_str().unwrap()).unwrap(), (0..=255u8).collect::<Vec<u8>>());
    assert!(answer["headers"].is_object() && answer.get("multiValueHeaders").is_none(), "{answer}");

    // A Function URL: a plain HTTP request turned into a v2 event by the emulator.
    assert!(emu.function_url().ends_with("/lambda-url/_/"));
    let addr: std::net::SocketAddr = ([127, 0, 0, 1], emu.port).into();
    let path = "/lambda-url/_/hello/url?x=1";
    let res = request(addr, "GET", path, &[], b"").await;
    assert_eq!(res.status, 200, "{}", res.text());
    assert_eq!(res.json()["message"], "Hello, url!");

    // EventBridge schedule → the timer function its rule is bound to.
    let schedule = sam("cloudwatch", "scheduled-event", &["--rule", "nightly"]);
    let answer = invoke(&emu, &schedule);
    assert_eq!(
        (answer["function"].as_str(), answer["type"].as_str()),
        (Some("tick"), Some("berth.timer.fired")),
        "{answer}"
    );

    // SQS: two records, one failing: only that one comes back in batchItemFailures.
    let mut sqs = sam("sqs", "receive-message", &["--queue-name", "orders", "--body", "order 1"]);
    let mut failing = sqs["Records"][0].clone();
    failing["messageId"] = json!("msg-fails");
    failing["body"] = json!("order 2: fail");
    sqs["Records"].as_array_mut().unwrap().push(failing);
    let answer = invoke(&emu, &sqs);
    assert_eq!(answer["batchItemFailures"], json!([{ "itemIdentifier": "msg-fails" }]), "{answer}");

    // S3 put → the blob function of the bucket, with the key decoded.
    let s3 = sam("s3", "put", &["--bucket", "uploads", "--key", "docs/a b.txt"]);
    let answer = invoke(&emu, &s3);
    assert_eq!(answer["delivered"], 1, "{answer}");
    let got = &answer["results"][0];
    assert_eq!(
        (got["function"].as_str(), got["type"].as_str(), got["subject"].as_str()),
        (Some("stored"), Some("berth.blob.created"), Some("docs/a b.txt")),
        "{answer}"
    );

    // Anything else → the direct-invoke function.
    let answer = invoke(&emu, &json!({"customer": 42}));
    assert_eq!(answer["function"], "direct", "{answer}");
    assert_eq!(answer["data"], "{\"customer\":42}");
    // A failing direct invoke is a function error (the CLI exits 1).
    let out = tokio::task::block_in_place(|| emu.invoke_output(&json!({"x": "fail"})));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("Berth.FunctionError") && stderr.contains("the payload asked"),
        "{stderr}"
    );
    drop(boot);
}
