//! The kubeless runtime contract: HTTP on `$FUNC_PORT`, `GET /healthz`, `/metrics` with
//! kubeless's metric names next to Berth's, `FUNC_TIMEOUT` as the default timeout (408 on
//! expiry, as kubeless runtimes answer), and `FUNC_HANDLER` (with `MOD_NAME`) naming the
//! function that receives calls no route serves, with the `event-id`, `event-type`,
//! `event-time` and `event-namespace` headers as the event's attributes.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use berth_core::dispatcher::EventData;
use berth_core::error::{json_error, Body};
use berth_core::Metrics;
use berth_triggers::http::invoke::read_event_body;
use berth_triggers::http::routes::Lookup;
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, Opts};

use crate::config::FunctionRef;
use crate::Shim;

/// kubeless's metrics: `function_calls_total`, `function_failures_total`,
/// `function_duration_seconds`, each by `method`.
#[derive(Clone)]
pub struct KubelessMetrics {
    calls: IntCounterVec,
    failures: IntCounterVec,
    duration: HistogramVec,
}

impl KubelessMetrics {
    pub fn register(metrics: &Metrics) -> Self {
        let calls =
            IntCounterVec::new(Opts::new("function_calls_total", "Number of calls to user function"), &["method"])
                .expect("valid metric");
        let failures = IntCounterVec::new(
            Opts::new("function_failures_total", "Number of exceptions in user function"),
            &["method"],
        )
        .expect("valid metric");
        let duration = HistogramVec::new(
            HistogramOpts::new("function_duration_seconds", "Duration of user function in seconds"),
            &["method"],
        )
        .expect("valid metric");
        metrics.register(Box::new(calls.clone()));
        metrics.register(Box::new(failures.clone()));
        metrics.register(Box::new(duration.clone()));
        KubelessMetrics { calls, failures, duration }
    }
}

/// The handler function from `MOD_NAME` and `FUNC_HANDLER` (kubeless's `spec.handler`
/// `file.function`), or `FUNC_HANDLER` alone as `group/function` or `group.function`.
pub fn handler(env: &dyn Fn(&str) -> Option<String>) -> Option<FunctionRef> {
    let handler = env("FUNC_HANDLER").filter(|h| !h.is_empty())?;
    if let Ok(f) = FunctionRef::try_from(handler.clone()) {
        return Some(f);
    }
    let group = env("MOD_NAME").filter(|m| !m.is_empty())?;
    Some(FunctionRef { group, function: handler })
}

/// `FUNC_TIMEOUT` (seconds; kubeless's default is 180).
pub fn func_timeout(env: &dyn Fn(&str) -> Option<String>) -> Option<std::time::Duration> {
    let secs = env("FUNC_TIMEOUT").and_then(|t| t.trim().parse::<u64>().ok()).unwrap_or(180);
    (secs > 0).then(|| std::time::Duration::from_secs(secs))
}

/// Serves one request.
pub async fn handle(shim: &Arc<Shim>, mut req: Request<Incoming>, peer: SocketAddr) -> Response<Body> {
    let (method, label) = (req.method().clone(), method_label(req.method()));
    let path = req.uri().path().to_owned();
    if path == "/healthz" || path == "/metrics" || path == "/readyz" {
        let Ok(res) = berth_triggers::http::handle(shim.http.clone(), req, peer).await;
        return res;
    }
    let started = Instant::now();
    let deadline = shim.func_timeout.map(|t| tokio::time::Instant::now() + t);
    if let Some(d) = deadline {
        req.extensions_mut().insert(berth_core::call::Deadline(d));
    }
    let routed =
        !matches!(shim.http.routes.load().lookup(req.method(), &path), Lookup::NotFound) || shim.handler.is_none();
    let mut res = if routed {
        let Ok(res) = berth_triggers::http::handle(shim.http.clone(), req, peer).await;
        res
    } else {
        call_handler(shim, req, deadline).await
    };
    if res.extensions().get::<berth_core::call::TimedOut>().is_some() {
        let request_id = res.headers().get("x-request-id").and_then(|v| v.to_str().ok()).map(str::to_owned);
        res = json_error(
            StatusCode::REQUEST_TIMEOUT,
            "timeout",
            "the function did not finish within FUNC_TIMEOUT",
            request_id.as_deref(),
        );
    }
    if let Some(m) = &shim.kubeless_metrics {
        m.calls.with_label_values(&[label]).inc();
        if res.status().is_server_error() || res.status() == StatusCode::REQUEST_TIMEOUT {
            m.failures.with_label_values(&[label]).inc();
        }
        m.duration.with_label_values(&[label]).observe(started.elapsed().as_secs_f64());
    }
    tracing::info!(%method, %path, status = res.status().as_u16(), "request served");
    res
}

/// The `method` label: the standard methods by name, any other as `other`, so that callers
/// cannot create a metric series per made-up method.
fn method_label(method: &http::Method) -> &'static str {
    const KNOWN: [&str; 9] = ["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "CONNECT", "TRACE"];
    KNOWN.into_iter().find(|m| *m == method.as_str()).unwrap_or("other")
}

/// A call no route serves: the event goes to `FUNC_HANDLER`.
async fn call_handler(shim: &Shim, req: Request<Incoming>, deadline: Option<tokio::time::Instant>) -> Response<Body> {
    let request_id = shim.http.request_ids.for_request(&req);
    let Some(target) = shim.handler.clone() else {
        return json_error(
            StatusCode::NOT_FOUND,
            "not_found",
            "no route serves this path and FUNC_HANDLER is not set",
            Some(&request_id),
        );
    };
    let header = |n: &str| req.headers().get(n).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let mut event = EventData {
        id: header("event-id").unwrap_or_else(|| request_id.clone()),
        ty: header("event-type").unwrap_or_else(|| "berth.invoke".into()),
        source: header("event-namespace").unwrap_or_else(|| "kubeless".into()),
        time: header("event-time"),
        datacontenttype: header("content-type"),
        ..Default::default()
    };
    event.extensions.push(("method".into(), req.method().as_str().to_owned()));
    if let Some(topic) = header("event-topic") {
        event.extensions.push(("topic".into(), topic));
    }
    event.data = match read_event_body(req.into_body(), &request_id).await {
        Ok(b) => b,
        Err(res) => return res,
    };
    match shim.deliver(&target, "invoke", event, deadline).await {
        Ok(r) => berth_triggers::http::into_http(r, &request_id),
        Err(berth_core::DeliveryError::Failed { code, .. }) if code == "timeout" => {
            let mut res = Response::new(Full::new(Bytes::new()));
            res.extensions_mut().insert(berth_core::call::TimedOut);
            res
        }
        Err(berth_core::DeliveryError::Failed { status, code, message }) => {
            json_error(status, &code, &message, Some(&request_id))
        }
        Err(e) => {
            json_error(StatusCode::NOT_FOUND, "not_found", &format!("FUNC_HANDLER {target}: {e}"), Some(&request_id))
        }
    }
}
