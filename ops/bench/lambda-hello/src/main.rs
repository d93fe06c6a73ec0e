//! `GET /hello/{name}` as an AWS Lambda function on the official Rust runtime (`lambda_runtime`):
//! takes an API Gateway HTTP API (v2) event as plain JSON, answers what Berth's packaged
//! `examples/hello` answers for the same event, byte for byte (Berth writes the keys sorted):
//! `{"body":"{\"message\":\"Hello, <name>!\"}","cookies":[],
//! "headers":{"content-type":"application/json"},"isBase64Encoded":false,"statusCode":200}`.

use lambda_runtime::{service_fn, Error, LambdaEvent};
use serde::Serialize;
use serde_json::{json, Value};

/// An HTTP API (v2) answer, fields in the order Berth writes them.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Answer {
    body: String,
    cookies: [&'static str; 0],
    headers: Headers,
    is_base64_encoded: bool,
    status_code: u16,
}

#[derive(Serialize)]
struct Headers {
    #[serde(rename = "content-type")]
    content_type: &'static str,
}

async fn hello(event: LambdaEvent<Value>) -> Result<Answer, Error> {
    let path = event.payload.get("rawPath").and_then(Value::as_str).unwrap_or("/");
    let name = path.rsplit('/').next().unwrap_or_default();
    Ok(Answer {
        body: serde_json::to_string(&json!({ "message": format!("Hello, {name}!") }))?,
        cookies: [],
        headers: Headers { content_type: "application/json" },
        is_base64_encoded: false,
        status_code: 200,
    })
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::run(service_fn(hello)).await
}
