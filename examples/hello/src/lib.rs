//! The `hello` example group: one function per thing a handler can do.
//!
//! Serve it with `berth up` from the repository root, then `curl 127.0.0.1:8080/hello/world`.

use std::time::Duration;

use berth::{Context, Error, Json, Path, Query, Request, Result, StatusCode};
use serde::{Deserialize, Serialize};

#[derive(Debug, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct Greeting {
    pub message: String,
}

/// `GET /hello/{name}`: JSON out, a path parameter in.
#[berth::http(GET, "/hello/{name}")]
pub async fn hello(Path(name): Path<String>) -> Result<Json<Greeting>> {
    tracing::debug!(%name, "greeting");
    Ok(Json(Greeting { message: format!("Hello, {name}!") }))
}

/// `GET /text`: plain text.
#[berth::http(GET, "/text")]
pub async fn text() -> &'static str {
    "Hello from a Berth function group\n"
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct EchoIn {
    pub message: String,
    #[serde(default = "one")]
    pub times: u32,
}

fn one() -> u32 {
    1
}

#[derive(Debug, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct EchoOut {
    pub echoed: Vec<String>,
    pub request_id: String,
}

/// `POST /echo`: typed JSON in and out; a body that does not parse is a 400.
#[berth::http(POST, "/echo")]
pub async fn echo(ctx: Context, Json(input): Json<EchoIn>) -> Result<(StatusCode, Json<EchoOut>)> {
    if input.times > 100 {
        return Err(Error::unprocessable("`times` must be at most 100"));
    }
    tracing::info!(times = input.times, "echoing");
    let echoed = std::iter::repeat_n(input.message, input.times as usize).collect();
    Ok((StatusCode::CREATED, Json(EchoOut { echoed, request_id: ctx.request_id().to_owned() })))
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct DivideQuery {
    pub a: i64,
    pub b: i64,
}

/// `GET /divide?a=7&b=2`: query parameters; dividing by zero is the error path (400).
#[berth::http(GET, "/divide")]
pub async fn divide(Query(q): Query<DivideQuery>) -> Result<Json<serde_json::Value>> {
    if q.b == 0 {
        return Err(Error::bad_request("cannot divide by zero (b = 0)"));
    }
    Ok(Json(serde_json::json!({ "quotient": q.a / q.b, "remainder": q.a % q.b })))
}

/// `GET /panic`: panics on purpose. The host answers 500 with the request id and keeps serving.
#[berth::http(GET, "/panic")]
pub async fn panic(req: Request) -> Result<String> {
    panic!("deliberate panic for {}", req.path());
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct SlowQuery {
    #[serde(default)]
    pub ms: u64,
}

/// `GET /slow?ms=250`: sleeps on the host's timer, then answers; for timeouts and limits.
#[berth::http(GET, "/slow", timeout = "5s")]
pub async fn slow(ctx: Context, Query(q): Query<SlowQuery>) -> Result<Json<serde_json::Value>> {
    ctx.sleep(Duration::from_millis(q.ms)).await;
    Ok(Json(serde_json::json!({ "slept_ms": q.ms })))
}

/// `POST /upload`: accepts at most 1 KiB and reports the size.
#[berth::http(POST, "/upload", body_limit = "1KiB")]
pub async fn upload(body: berth::Bytes) -> Json<serde_json::Value> {
    Json(serde_json::json!({ "bytes": body.0.len() }))
}

berth::group!(hello, text, echo, divide, panic, slow, upload);

#[cfg(test)]
mod tests {
    use super::*;
    use berth::testing::TestGroup;

    #[test]
    fn greets_by_name_through_the_harness() {
        let g = TestGroup::start(berth_group()).unwrap();
        let res = g.request(Request::new("GET", "/hello/world")).unwrap();
        assert_eq!(res.status, StatusCode::OK);
        assert_eq!(res.json_body::<Greeting>().unwrap(), Greeting { message: "Hello, world!".into() });
    }

    #[test]
    fn divide_by_zero_is_a_bad_request() {
        let g = TestGroup::start(berth_group()).unwrap();
        let err = g.request(Request::new("GET", "/divide?a=1&b=0")).unwrap_err();
        assert_eq!(err.status(), StatusCode::BAD_REQUEST);
        let ok = g.request(Request::new("GET", "/divide?a=7&b=2")).unwrap();
        assert_eq!(ok.json_body::<serde_json::Value>().unwrap()["quotient"], 3);
    }

    #[test]
    fn slow_sleeps_on_the_host_timer() {
        let g = TestGroup::start(berth_group()).unwrap();
        let started = std::time::Instant::now();
        let res = g.request(Request::new("GET", "/slow?ms=30")).unwrap();
        assert!(started.elapsed() >= Duration::from_millis(30));
        assert_eq!(res.json_body::<serde_json::Value>().unwrap()["slept_ms"], 30);
    }

    #[test]
    fn unknown_method_is_405_and_unknown_path_404() {
        let g = TestGroup::start(berth_group()).unwrap();
        assert_eq!(g.request(Request::new("DELETE", "/text")).unwrap().status, StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(g.request(Request::new("GET", "/nope")).unwrap().status, StatusCode::NOT_FOUND);
    }
}
