//! Alibaba Cloud Function Compute 3.0, custom runtime: HTTP on `0.0.0.0:$FC_CUSTOM_LISTEN_PORT`.
//!
//! - HTTP functions: the client's request passed through to Berth's router.
//! - Event functions: `POST /invoke` with the payload; timer events reach timer functions, OSS
//!   events blob functions, anything else the `[platform] invoke` function.
//! - Lifecycle hooks: `POST /initialize`, `GET /pre-freeze`, `GET /pre-stop` (drains).
//! - `x-fc-request-id` is the request id; failures carry `x-fc-status: 404` (without it FC
//!   counts the call as a success); `FC Invoke Start/End RequestId:` lines frame each call.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use berth_core::error::{json_response, Body};
use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use serde_json::{json, Value};

use crate::events::{self, BlobChange};
use crate::Shim;

/// FC's limit on a synchronous payload.
pub const MAX_PAYLOAD_BYTES: usize = 32 * 1024 * 1024;
/// How long `/pre-stop` waits for calls in flight.
const PRE_STOP_WAIT: Duration = Duration::from_secs(10);

/// The answer to a failed call: `x-fc-status: 404` and an error body.
fn failure(status: StatusCode, error_type: &str, message: &str, request_id: &str) -> Response<Body> {
    let mut res =
        json_response(status, &json!({ "errorMessage": message, "errorType": error_type, "requestId": request_id }));
    res.headers_mut().insert("x-fc-status", HeaderValue::from_static("404"));
    res
}

fn success(mut res: Response<Body>) -> Response<Body> {
    res.headers_mut().insert("x-fc-status", HeaderValue::from_static("200"));
    res
}

/// Serves one request from FC.
pub async fn handle(shim: &Arc<Shim>, req: Request<Incoming>, peer: SocketAddr) -> Response<Body> {
    let request_id = shim.request_id(req.headers(), "x-fc-request-id");
    let control = req.headers().get("x-fc-control-path").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let hook = match (control.as_deref(), req.method(), req.uri().path()) {
        (Some("/initialize"), ..) | (None, &Method::POST, "/initialize") => Some("initialize"),
        (Some("/pre-stop"), ..) | (None, &Method::GET, "/pre-stop") => Some("pre-stop"),
        (Some("/pre-freeze"), ..) | (None, &Method::GET, "/pre-freeze") => Some("pre-freeze"),
        (Some("/invoke"), ..) | (None, &Method::POST, "/invoke") => Some("invoke"),
        _ => None,
    };
    match hook {
        Some("initialize") => {
            println!("FC Initialize Start RequestId: {request_id}");
            let ready = shim.serving.readiness();
            let res = if ready.ready {
                success(json_response(StatusCode::OK, &json!({ "initialized": true, "groups": ready.groups })))
            } else {
                failure(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "InitializationError",
                    &ready.problems.join("; "),
                    &request_id,
                )
            };
            println!("FC Initialize End RequestId: {request_id}");
            res
        }
        Some("pre-stop") => {
            println!("FC PreStop Start RequestId: {request_id}");
            let waited = drain(shim).await;
            println!("FC PreStop End RequestId: {request_id}");
            success(json_response(StatusCode::OK, &json!({ "drained": waited })))
        }
        Some("pre-freeze") => success(json_response(StatusCode::OK, &json!({}))),
        Some(_) => {
            println!("FC Invoke Start RequestId: {request_id}");
            let res = invoke(shim, req, &request_id).await;
            println!("FC Invoke End RequestId: {request_id}");
            res
        }
        None => {
            println!("FC Invoke Start RequestId: {request_id}");
            let mut req = req;
            if let Ok(v) = HeaderValue::from_str(&request_id) {
                req.headers_mut().insert("x-request-id", v);
            }
            let Ok(res) = berth_triggers::http::handle(shim.http.clone(), req, peer).await;
            println!("FC Invoke End RequestId: {request_id}");
            if res.status().is_server_error() {
                let mut res = res;
                res.headers_mut().insert("x-fc-status", HeaderValue::from_static("404"));
                res
            } else {
                success(res)
            }
        }
    }
}

/// Waits (bounded) until no call is in flight; whether it got there.
async fn drain(shim: &Shim) -> bool {
    let until = tokio::time::Instant::now() + PRE_STOP_WAIT;
    while shim.metrics.inflight.get() > 0 {
        if tokio::time::Instant::now() >= until {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    true
}

/// An event function call: `POST /invoke` with the payload.
async fn invoke(shim: &Arc<Shim>, req: Request<Incoming>, request_id: &str) -> Response<Body> {
    let payload = match Limited::new(req.into_body(), MAX_PAYLOAD_BYTES).collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) if e.downcast_ref::<http_body_util::LengthLimitError>().is_some() => {
            let message = format!("the payload is larger than FC's {MAX_PAYLOAD_BYTES} byte limit");
            return failure(StatusCode::PAYLOAD_TOO_LARGE, "PayloadTooLarge", &message, request_id);
        }
        Err(e) => {
            return failure(
                StatusCode::BAD_REQUEST,
                "BadRequest",
                &format!("could not read the payload: {e}"),
                request_id,
            )
        }
    };
    match event_call(shim, &payload, request_id).await {
        Ok((status, content_type, body)) => {
            let mut res = Response::new(Full::new(body));
            *res.status_mut() = status;
            if let Ok(v) = HeaderValue::from_str(&content_type) {
                res.headers_mut().insert(http::header::CONTENT_TYPE, v);
            }
            success(res)
        }
        Err((status, error_type, message)) => {
            tracing::warn!(request_id, error_type, error = %message, "FC event failed");
            failure(status, error_type, &message, request_id)
        }
    }
}

pub type EventAnswer = Result<(StatusCode, String, Bytes), (StatusCode, &'static str, String)>;

/// Routes an event payload: FC timer → timer function, OSS → blob functions, else invoke.
/// `payload` is outside input: anything malformed is an error answer.
pub async fn event_call(shim: &Shim, payload: &Bytes, request_id: &str) -> EventAnswer {
    let parsed: Option<Value> = serde_json::from_slice(payload).ok();
    let unknown = |e: events::TargetError| (StatusCode::NOT_FOUND, "UnknownEvent", e.to_string());
    let failed = |target: &crate::FunctionRef, e: berth_core::DeliveryError| {
        let status = match &e {
            berth_core::DeliveryError::Failed { status, .. } => *status,
            berth_core::DeliveryError::NoSuchFunction(..) => StatusCode::NOT_FOUND,
        };
        (status, "FunctionError", events::failure_message(target, &e))
    };
    let answer = |r: berth_plugin_api::Response| {
        let ct = r.headers.iter().find(|(k, _)| *k == "content-type").map(|(_, v)| v.to_owned());
        let status = StatusCode::from_u16(r.status).unwrap_or(StatusCode::OK);
        (status, ct.unwrap_or_else(|| "application/octet-stream".into()), Bytes::copy_from_slice(&r.body))
    };
    match parsed {
        Some(v) if v["triggerTime"].is_string() && v["triggerName"].is_string() => {
            let name = v["triggerName"].as_str().unwrap_or_default();
            let target = shim.schedule_target(name).map_err(unknown)?;
            let ev = events::timer_event(
                &target,
                request_id,
                v["triggerTime"].as_str(),
                &format!("fc timer trigger {name}"),
            );
            shim.deliver(&target, "timer", ev, None).await.map(answer).map_err(|e| failed(&target, e))
        }
        Some(v) if v["events"][0]["eventSource"] == "acs:oss" => {
            let mut results = Vec::new();
            for (i, e) in v["events"].as_array().into_iter().flatten().enumerate() {
                let (Some(bucket), Some(key)) =
                    (e["oss"]["bucket"]["name"].as_str(), e["oss"]["object"]["key"].as_str())
                else {
                    return Err((
                        StatusCode::BAD_REQUEST,
                        "BadEvent",
                        format!("OSS event {i} has no `oss.bucket.name` or `oss.object.key`"),
                    ));
                };
                let Some(kind) = events::blob_kind(e["eventName"].as_str().unwrap_or_default()) else { continue };
                let record = json!({
                    "eventVersion": e["eventVersion"], "eventSource": "acs:oss", "eventTime": e["eventTime"],
                    "eventName": e["eventName"], "awsRegion": e["region"],
                    "s3": { "s3SchemaVersion": "1.0", "bucket": { "name": bucket, "arn": e["oss"]["bucket"]["arn"] },
                            "object": { "key": key, "size": e["oss"]["object"]["size"], "eTag": e["oss"]["object"]["eTag"] } },
                    "oss": e["oss"],
                });
                for target in shim.bucket_targets(bucket, kind).map_err(unknown)? {
                    let ev = events::blob_event(BlobChange {
                        id: format!("{request_id}-{i}"),
                        bucket,
                        kind,
                        key: key.to_owned(),
                        time: e["eventTime"].as_str().map(str::to_owned),
                        record: record.clone(),
                    });
                    let r = shim.deliver(&target, "blob", ev, None).await.map_err(|e| failed(&target, e))?;
                    results.push(events::answer_value(&r.body));
                }
            }
            let body = json!({ "delivered": results.len(), "results": results });
            Ok((StatusCode::OK, "application/json".into(), Bytes::from(body.to_string())))
        }
        _ => {
            let target = shim.invoke_target("an FC event that is neither a timer nor an OSS event").map_err(unknown)?;
            let ev = events::invoke_event(request_id, "acs/fc", payload.to_vec());
            shim.deliver(&target, "invoke", ev, None).await.map(answer).map_err(|e| failed(&target, e))
        }
    }
}
