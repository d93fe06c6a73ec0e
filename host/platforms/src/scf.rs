//! Tencent Cloud SCF.
//!
//! - Event functions ([`run`]): the SCF runtime API loop — `POST /runtime/init/ready` once the
//!   groups are loaded, then `GET /runtime/invocation/next` (headers `request_id`,
//!   `time_limit_in_ms`, `memory_limit_in_mb`, with underscores), `POST
//!   /runtime/invocation/response` or `/runtime/invocation/error` (free text). API Gateway
//!   trigger events go through Berth's router and are answered as an integrated response; timer
//!   events reach timer functions; COS events blob functions; anything else the `[platform]
//!   invoke` function. SCF has no init-error endpoint: an init failure exits before `ready`.
//! - Web functions ([`web_handle`]): HTTP on 0.0.0.0:9000 passed through; `X-Scf-Request-Id`
//!   is the request id, and failures answer it with `X-Scf-Error-Type`.

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use berth_core::error::Body;
use bytes::Bytes;
use http::{HeaderValue, Request, Response};
use hyper::body::Incoming;
use serde_json::{json, Value};
use tokio::time::Instant;
use tracing::Instrument;

use crate::events::{self, BlobChange};
use crate::http_event::{self, encode_query, HttpCall};
use crate::lambda::LoopError;
use crate::runtime_api::{ApiError, RuntimeApi};
use crate::Shim;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// The runtime API's address from `SCF_RUNTIME_API` and `SCF_RUNTIME_API_PORT`.
pub fn runtime_api(env: &dyn Fn(&str) -> Option<String>) -> Result<RuntimeApi, ApiError> {
    let host = env("SCF_RUNTIME_API").unwrap_or_default();
    match env("SCF_RUNTIME_API_PORT").filter(|p| !p.is_empty()) {
        Some(port) if !host.contains("://") => RuntimeApi::new(&format!("{host}:{port}")),
        _ => RuntimeApi::new(&host),
    }
}

/// How an event ended.
pub enum Outcome {
    Answer(Bytes),
    Failed(String),
}

/// Tells SCF the runtime is ready.
pub async fn ready(api: &RuntimeApi) -> Result<(), ApiError> {
    let answer = api.post("/runtime/init/ready", &[], Bytes::new()).await?;
    RuntimeApi::check("POST", "/runtime/init/ready", answer).map(drop)
}

/// Serves invocations until `stop` resolves or the runtime API fails.
pub async fn run(shim: Arc<Shim>, api: RuntimeApi, stop: impl Future<Output = ()>) -> Result<(), LoopError> {
    ready(&api).await?;
    tracing::info!(runtime_api = %api.base(), "polling the SCF runtime API for invocations");
    let mut stop = std::pin::pin!(stop);
    loop {
        let answer = tokio::select! {
            a = api.get("/runtime/invocation/next") => a?,
            _ = &mut stop => return Ok(()),
        };
        if answer.status.is_server_error() {
            return Err(LoopError::Fatal(String::from_utf8_lossy(&answer.body).chars().take(300).collect()));
        }
        let answer = RuntimeApi::check("GET", "/runtime/invocation/next", answer)?;
        let header = |n: &str| answer.headers.get(n).and_then(|v| v.to_str().ok()).map(str::to_owned);
        let request_id = header("request_id").unwrap_or_else(|| shim.http.request_ids.next());
        let deadline = header("time_limit_in_ms")
            .and_then(|ms| ms.parse::<u64>().ok())
            .map(|ms| Instant::now() + Duration::from_millis(ms));
        let span = tracing::info_span!("scf", request_id = %request_id);
        let outcome = handle_event(&shim, &request_id, &answer.body, deadline).instrument(span.clone()).await;
        let (path, body) = match outcome {
            Outcome::Answer(body) => ("/runtime/invocation/response", body),
            Outcome::Failed(message) => {
                tracing::warn!(parent: &span, error = %message, "invocation failed; reporting it to the runtime API");
                ("/runtime/invocation/error", Bytes::from(message))
            }
        };
        let posted = api.post(path, &[], body).await?;
        if posted.status.is_server_error() {
            return Err(LoopError::Fatal(String::from_utf8_lossy(&posted.body).chars().take(300).collect()));
        }
        if !posted.status.is_success() {
            tracing::warn!(parent: &span, status = posted.status.as_u16(), "the runtime API refused the answer");
        }
    }
}

/// One event-function invocation: API Gateway, timer and COS events to their functions, anything
/// else to `[platform] invoke`. `payload` is outside input: anything malformed is a failure.
pub async fn handle_event(shim: &Shim, request_id: &str, payload: &[u8], deadline: Option<Instant>) -> Outcome {
    let event: Value = match serde_json::from_slice(payload) {
        Ok(v) => v,
        Err(e) => return Outcome::Failed(format!("the event is not JSON: {e}")),
    };
    let json = |v: Value| Outcome::Answer(Bytes::from(v.to_string()));
    if event["requestContext"]["serviceId"].is_string() && event["httpMethod"].is_string() {
        let call = match api_gateway_request(&event) {
            Ok(mut c) => {
                c.request_id = request_id.to_owned();
                c.deadline = deadline;
                c
            }
            Err(e) => return Outcome::Failed(e),
        };
        let answer = http_event::route(shim, call).await;
        let (body, is_base64) = if answer.is_text() {
            (String::from_utf8_lossy(&answer.body).into_owned(), false)
        } else {
            (B64.encode(&answer.body), true)
        };
        let mut headers = serde_json::Map::new();
        for (k, v) in &answer.headers {
            match headers.get_mut(k) {
                Some(Value::String(s)) => {
                    s.push_str(", ");
                    s.push_str(v);
                }
                _ => {
                    headers.insert(k.clone(), Value::from(v.as_str()));
                }
            }
        }
        return json(
            json!({ "isBase64Encoded": is_base64, "statusCode": answer.status.as_u16(), "headers": headers, "body": body }),
        );
    }
    let delivered =
        |r: Result<berth_plugin_api::Response, berth_core::DeliveryError>, target: &crate::FunctionRef| match r {
            Ok(r) => Outcome::Answer(Bytes::copy_from_slice(&r.body)),
            Err(e) => Outcome::Failed(events::failure_message(target, &e)),
        };
    if event["Type"] == "Timer" {
        let name = event["TriggerName"].as_str().unwrap_or_default();
        let target = match shim.schedule_target(name) {
            Ok(t) => t,
            Err(e) => return Outcome::Failed(e.to_string()),
        };
        let ev = events::timer_event(&target, request_id, event["Time"].as_str(), &format!("scf timer trigger {name}"));
        return delivered(shim.deliver(&target, "timer", ev, deadline).await, &target);
    }
    if event["Records"][0]["cos"].is_object() {
        let mut results = Vec::new();
        for (i, r) in event["Records"].as_array().into_iter().flatten().enumerate() {
            let cos = &r["cos"];
            let (Some(bucket), Some(key)) = (cos["cosBucket"]["name"].as_str(), cos["cosObject"]["key"].as_str())
            else {
                return Outcome::Failed(format!("COS record {i} has no `cos.cosBucket.name` or `cos.cosObject.key`"));
            };
            let Some(kind) = events::blob_kind(r["event"]["eventName"].as_str().unwrap_or_default()) else { continue };
            // COS keys are `/<appid>/<bucket>/<key>`: functions get the object's own name.
            let key = key.splitn(4, '/').nth(3).unwrap_or(key).to_owned();
            let targets = match shim.bucket_targets(bucket, kind) {
                Ok(t) => t,
                Err(e) => return Outcome::Failed(e.to_string()),
            };
            let record = json!({
                "eventSource": "qcs:cos", "eventName": r["event"]["eventName"], "eventTime": r["event"]["eventTime"],
                "s3": { "bucket": { "name": bucket }, "object": { "key": key, "size": cos["cosObject"]["size"] } },
                "cos": cos,
            });
            for target in targets {
                let ev = events::blob_event(BlobChange {
                    id: format!("{request_id}-{i}"),
                    bucket,
                    kind,
                    key: key.clone(),
                    time: None,
                    record: record.clone(),
                });
                match shim.deliver(&target, "blob", ev, deadline).await {
                    Ok(r) => results.push(events::answer_value(&r.body)),
                    Err(e) => return Outcome::Failed(events::failure_message(&target, &e)),
                }
            }
        }
        return json(json!({ "delivered": results.len(), "results": results }));
    }
    let target = match shim.invoke_target("an SCF event that is neither API Gateway, a timer nor COS") {
        Ok(t) => t,
        Err(e) => return Outcome::Failed(e.to_string()),
    };
    let ev = events::invoke_event(request_id, "qcs/scf", payload.to_vec());
    delivered(shim.deliver(&target, "invoke", ev, deadline).await, &target)
}

/// The request inside an SCF API Gateway trigger event.
fn api_gateway_request(event: &Value) -> Result<HttpCall, String> {
    let method = event["httpMethod"].as_str().unwrap_or("GET").to_owned();
    let path = event["path"].as_str().unwrap_or("/").to_owned();
    let mut headers: Vec<(String, String)> = Vec::new();
    if let Some(h) = event["headers"].as_object() {
        for (k, v) in h {
            if let Some(v) = v.as_str() {
                headers.push((k.to_ascii_lowercase(), v.to_owned()));
            }
        }
    }
    let mut query: BTreeMap<String, Vec<String>> = BTreeMap::new();
    if let Some(q) = event["queryString"].as_object() {
        for (k, v) in q {
            match v {
                Value::Array(vs) => {
                    query.entry(k.clone()).or_default().extend(vs.iter().filter_map(|v| v.as_str().map(str::to_owned)))
                }
                Value::String(s) => query.entry(k.clone()).or_default().push(s.clone()),
                Value::Null => {}
                other => query.entry(k.clone()).or_default().push(other.to_string()),
            }
        }
    }
    let body = match event["body"].as_str() {
        None => Vec::new(),
        Some(b) if event["isBase64Encoded"] == true => B64.decode(b).map_err(|e| {
            format!("malformed API Gateway event: `isBase64Encoded` is true but `body` is not base64: {e}")
        })?,
        Some(b) => b.as_bytes().to_vec(),
    };
    Ok(HttpCall {
        method,
        path,
        query: encode_query(query.iter().flat_map(|(k, vs)| vs.iter().map(move |v| (k.as_str(), v.as_str())))),
        headers,
        body,
        ..Default::default()
    })
}

/// Serves one request of an SCF web function.
pub async fn web_handle(shim: &Arc<Shim>, mut req: Request<Incoming>, peer: SocketAddr) -> Response<Body> {
    let request_id = shim.request_id(req.headers(), "x-scf-request-id");
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        req.headers_mut().insert("x-request-id", v);
    }
    let Ok(mut res) = berth_triggers::http::handle(shim.http.clone(), req, peer).await;
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        res.headers_mut().insert("x-scf-request-id", v);
    }
    if res.status().is_server_error() {
        let kind =
            if res.extensions().get::<berth_core::call::TimedOut>().is_some() { "Timeout" } else { "FunctionError" };
        res.headers_mut().insert("x-scf-error-type", HeaderValue::from_static(kind));
    }
    res
}
