//! Direct invoke over HTTP: `POST /invoke/{group}/{function}` with an event body.
//!
//! - Synchronous (default): the function's answer comes back as the response.
//! - Asynchronous (`?async=true` or `Prefer: respond-async`): 202 with an id at once; the
//!   outcome is at `GET /invoke/results/{id}` (kept for the last [`RESULTS_KEPT`] calls).
//!
//! CloudEvents binary-mode headers (`ce-id`, `ce-type`, `ce-source`, `ce-subject`) are honoured;
//! otherwise the event gets the request id, type `berth.invoke` and source `berth/invoke`.
//!
//! Who may call is an [`InvokeAccess`]: off (404 to everyone), or on with a bearer token
//! (`server.invoke_token`) required from every caller except, where loopback is trusted,
//! loopback peers. Wrong or missing tokens are counted per client by the host's
//! [`AuthLimiter`]; past its limit a client gets 429 `too_many_attempts` unchecked.

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use berth_core::auth_limit::{AuthLimiter, Surface};
use berth_core::dispatcher::{DeliveryError, Dispatcher, EventData};
use berth_core::error::{bearer_token, json_error, json_response, same_secret, Body};
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};

use super::RequestBody;
use serde::Serialize;

/// How many asynchronous outcomes are kept for `GET /invoke/results/{id}`.
pub const RESULTS_KEPT: usize = 10_000;
/// Largest event body accepted.
const MAX_EVENT_BYTES: usize = 6 * 1024 * 1024;

/// The outcome of an asynchronous call.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum AsyncOutcome {
    Pending,
    Succeeded { response_status: u16, body: String },
    Failed { error: String },
}

/// Outcomes of asynchronous calls, oldest dropped first.
#[derive(Default)]
pub struct AsyncResults {
    inner: Mutex<(BTreeMap<String, AsyncOutcome>, VecDeque<String>)>,
}

impl AsyncResults {
    fn set(&self, id: &str, outcome: AsyncOutcome) {
        let mut g = self.inner.lock().expect("results lock");
        let (map, order) = &mut *g;
        if map.insert(id.to_owned(), outcome).is_none() {
            order.push_back(id.to_owned());
            while order.len() > RESULTS_KEPT {
                if let Some(old) = order.pop_front() {
                    map.remove(&old);
                }
            }
        }
    }
    fn get(&self, id: &str) -> Option<AsyncOutcome> {
        self.inner.lock().expect("results lock").0.get(id).cloned()
    }
}

fn error(status: StatusCode, code: &str, message: &str, request_id: &str) -> Response<Body> {
    json_error(status, code, message, Some(request_id))
}

/// A token a caller must present; its `Debug` never shows it.
#[derive(Clone)]
pub struct InvokeToken(pub String);

impl std::fmt::Debug for InvokeToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("InvokeToken(<redacted>)")
    }
}

/// Who may call `/invoke/...`.
#[derive(Debug, Clone)]
pub enum InvokeAccess {
    /// `/invoke/` answers 404 to everyone; `why` says how to turn it on.
    Off { why: &'static str },
    /// On: callers need `token`, except loopback peers when `loopback_exempt` (without a token,
    /// only those may call).
    On { token: Option<InvokeToken>, loopback_exempt: bool },
}

/// Why a caller may not invoke: the answer to send.
fn refused(status: StatusCode, code: &str, message: &str, request_id: &str) -> Response<Body> {
    let mut res = error(status, code, message, request_id);
    if status == StatusCode::UNAUTHORIZED {
        res.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    res
}

/// The answer refusing the caller, or `None` when it may invoke.
fn refusal<B>(
    req: &Request<B>,
    peer: SocketAddr,
    access: &InvokeAccess,
    limiter: Option<&AuthLimiter>,
    request_id: &str,
) -> Option<Response<Body>> {
    let (token, loopback_exempt) = match access {
        InvokeAccess::Off { why } => return Some(error(StatusCode::NOT_FOUND, "not_found", why, request_id)),
        InvokeAccess::On { token, loopback_exempt } => (token.as_ref(), *loopback_exempt),
    };
    if loopback_exempt && peer.ip().is_loopback() {
        return None;
    }
    let Some(token) = token else {
        return Some(refused(
            StatusCode::FORBIDDEN,
            "unauthorized",
            "direct invoke from a non-loopback address needs `server.invoke_token` to be configured",
            request_id,
        ));
    };
    if let Some(limiter) = limiter {
        if let Err(throttled) = limiter.check(Surface::Invoke, peer.ip()) {
            return Some(throttled.response(Surface::Invoke, Some(request_id)));
        }
    }
    match bearer_token(req.headers()) {
        Some(given) if same_secret(given.as_bytes(), token.0.as_bytes()) => None,
        _ => {
            if let Some(limiter) = limiter {
                limiter.failed(Surface::Invoke, peer.ip());
            }
            Some(refused(StatusCode::UNAUTHORIZED, "unauthorized", "missing or wrong bearer token", request_id))
        }
    }
}

/// The direct-invoke API the HTTP listener serves under `/invoke/`.
pub struct InvokeApi {
    pub dispatcher: Arc<Dispatcher>,
    pub results: Arc<AsyncResults>,
    pub access: InvokeAccess,
    /// Counts wrong tokens per client (none: unlimited, as in the SDK's test server).
    pub limiter: Option<Arc<AuthLimiter>>,
}

impl InvokeApi {
    /// On, with `token` needed from non-loopback callers, and no failure limit.
    pub fn new(dispatcher: Arc<Dispatcher>, token: Option<InvokeToken>) -> Self {
        Self::with_access(dispatcher, InvokeAccess::On { token, loopback_exempt: true }, None)
    }

    /// With `access` deciding who may call, and `limiter` counting wrong tokens.
    pub fn with_access(dispatcher: Arc<Dispatcher>, access: InvokeAccess, limiter: Option<Arc<AuthLimiter>>) -> Self {
        InvokeApi { dispatcher, results: Arc::default(), access, limiter }
    }

    /// Serves `/invoke/...`.
    pub async fn handle<B: RequestBody>(&self, req: Request<B>, peer: SocketAddr, request_id: &str) -> Response<Body> {
        if let Some(res) = refusal(&req, peer, &self.access, self.limiter.as_deref(), request_id) {
            return res;
        }
        handle(&self.dispatcher, &self.results, req, request_id).await
    }
}

async fn handle<B: RequestBody>(
    dispatcher: &Arc<Dispatcher>,
    results: &Arc<AsyncResults>,
    req: Request<B>,
    request_id: &str,
) -> Response<Body> {
    let path = req.uri().path().trim_start_matches("/invoke/").to_owned();
    let segments: Vec<&str> = path.split('/').collect();
    match (req.method(), segments.as_slice()) {
        (&Method::GET, ["results", id]) => match results.get(id) {
            Some(outcome) => json_response(StatusCode::OK, &serde_json::json!({ "id": id, "outcome": outcome })),
            None => error(
                StatusCode::NOT_FOUND,
                "not_found",
                &format!("no asynchronous call `{id}` (kept: the last {RESULTS_KEPT})"),
                request_id,
            ),
        },
        (&Method::POST, [group, function]) => {
            let (group, function) = (group.to_string(), function.to_string());
            if dispatcher.get(&group, &function).is_none() {
                return error(
                    StatusCode::NOT_FOUND,
                    "not_found",
                    &format!("no function `{function}` in group `{group}` is serving"),
                    request_id,
                );
            }
            let run_async =
                req.uri().query().is_some_and(|q| q.split('&').any(|p| p == "async=true" || p == "async=1"))
                    || req
                        .headers()
                        .get("prefer")
                        .and_then(|v| v.to_str().ok())
                        .is_some_and(|v| v.contains("respond-async"));
            let event = match read_event(req, request_id).await {
                Ok(e) => e,
                Err(res) => return res,
            };
            if run_async {
                let id = event.id.clone();
                results.set(&id, AsyncOutcome::Pending);
                let (dispatcher, results, task_id) = (dispatcher.clone(), results.clone(), id.clone());
                tokio::spawn(async move {
                    let outcome = match dispatcher.deliver(&group, &function, "invoke", event).await {
                        Ok(r) => AsyncOutcome::Succeeded {
                            response_status: r.status,
                            body: String::from_utf8_lossy(&r.body).into_owned(),
                        },
                        Err(e) => AsyncOutcome::Failed { error: e.to_string() },
                    };
                    results.set(&task_id, outcome);
                });
                let mut res = json_response(
                    StatusCode::ACCEPTED,
                    &serde_json::json!({ "id": id, "status_url": format!("/invoke/results/{id}") }),
                );
                if let Ok(v) = HeaderValue::from_str(&format!("/invoke/results/{id}")) {
                    res.headers_mut().insert(header::LOCATION, v);
                }
                return res;
            }
            match dispatcher.deliver(&group, &function, "invoke", event).await {
                Ok(r) => super::into_http(r, request_id),
                Err(DeliveryError::Failed { status, code, message }) => {
                    let message =
                        if code == "panic" { "the function panicked; see the host log".to_owned() } else { message };
                    error(status, &code, &message, request_id)
                }
                Err(e @ DeliveryError::NoSuchFunction(..)) => {
                    error(StatusCode::NOT_FOUND, "not_found", &e.to_string(), request_id)
                }
            }
        }
        _ => error(
            StatusCode::NOT_FOUND,
            "not_found",
            "expected POST /invoke/{group}/{function} or GET /invoke/results/{id}",
            request_id,
        ),
    }
}

async fn read_event<B: RequestBody>(req: Request<B>, request_id: &str) -> Result<EventData, Response<Body>> {
    let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let mut event = EventData {
        id: header("ce-id").unwrap_or_else(|| request_id.to_owned()),
        source: header("ce-source").unwrap_or_else(|| "berth/invoke".into()),
        ty: header("ce-type").unwrap_or_else(|| "berth.invoke".into()),
        subject: header("ce-subject"),
        time: header("ce-time").or_else(|| Some(chrono::Utc::now().to_rfc3339())),
        datacontenttype: header("content-type").or_else(|| Some("application/json".into())),
        ..Default::default()
    };
    for (k, v) in req.headers() {
        if let Some(ext) = k.as_str().strip_prefix("ce-") {
            if !matches!(ext, "id" | "source" | "type" | "subject" | "time" | "specversion") {
                if let Ok(v) = v.to_str() {
                    event.extensions.push((ext.to_owned(), v.to_owned()));
                }
            }
        }
    }
    event.data = read_event_body(req.into_body(), request_id).await?;
    Ok(event)
}

/// An event's body, at most 6 MiB: 413 past it, 400 when it cannot be read (both the JSON error
/// body, with `request_id`). Direct invoke and the platform shims that take events over HTTP
/// (kubeless, Knative) read events with it.
pub async fn read_event_body<B: RequestBody>(body: B, request_id: &str) -> Result<Vec<u8>, Response<Body>> {
    match Limited::new(body, MAX_EVENT_BYTES).collect().await {
        Ok(b) => Ok(b.to_bytes().to_vec()),
        Err(e) if e.downcast_ref::<http_body_util::LengthLimitError>().is_some() => {
            Err(error(StatusCode::PAYLOAD_TOO_LARGE, "body_too_large", "events are limited to 6 MiB", request_id))
        }
        Err(e) => Err(error(StatusCode::BAD_REQUEST, "bad_body", &format!("could not read the body: {e}"), request_id)),
    }
}
