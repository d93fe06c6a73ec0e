//! The HTTP trigger: one hyper listener serving every group's routes plus `/healthz`, `/readyz`,
//! `/metrics` and the direct-invoke API under `/invoke/`.
//!
//! - [`routes`]: the immutable routing table (method and path → function), rebuilt and checked
//!   for conflicts whenever the set of groups changes.
//! - [`server`]: the accept loop with graceful drain, shared with the admin listener.
//! - [`invoke`]: direct invoke over HTTP, under `/invoke/`.

pub mod head_watch;
pub mod invoke;
pub mod middleware;
pub mod openapi;
pub mod routes;
pub mod server;
pub mod static_files;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use arc_swap::ArcSwap;
use berth_core::call::{self, CallError};
use berth_core::error::{error_response, json_error, json_response, with_content_type, Body};
use berth_core::metrics::{Metrics, Rejection};
use berth_core::serving::ServingGroups;
use berth_plugin_api::{HttpRequestBuilder, Input, RVec};
use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Body as HttpBody;
use tokio::time::Instant;
use tracing::Instrument;

use invoke::InvokeApi;
use routes::{Lookup, RouteTable};

/// What the HTTP listener serves from: the routing table (swapped whole on every change), the
/// serving groups (for `/readyz`), the concurrency limit and the direct-invoke API.
pub struct HttpTrigger {
    pub routes: ArcSwap<RouteTable>,
    pub serving: Arc<ServingGroups>,
    pub metrics: Metrics,
    /// Requests in flight at once, across all functions; more get 503 at once (no queue).
    pub limiter: Limiter,
    pub request_ids: RequestIds,
    pub invoke: InvokeApi,
    /// `[[static]]` mounts, asked when no route matches.
    pub statics: ArcSwap<static_files::StaticFiles>,
    /// `[middleware]` and `[groups.middleware]` layers around the routes.
    pub layers: ArcSwap<middleware::Layers>,
    /// `[openapi]`: where the document is served (set once, at start; unset: not served).
    pub openapi: std::sync::OnceLock<openapi::OpenApiConfig>,
    /// The last document served, with the group instances it describes (weakly: a cached
    /// document never keeps a swapped-out version loaded). Rebuilt when they change.
    openapi_cache: std::sync::Mutex<Option<(Vec<std::sync::Weak<berth_core::group::GroupInstance>>, Bytes)>>,
}

impl HttpTrigger {
    pub fn new(serving: Arc<ServingGroups>, metrics: Metrics, max_concurrency: usize, invoke: InvokeApi) -> Self {
        HttpTrigger {
            routes: ArcSwap::from_pointee(RouteTable::new()),
            serving,
            metrics,
            limiter: Limiter::new(max_concurrency),
            request_ids: RequestIds::default(),
            invoke,
            statics: ArcSwap::from_pointee(static_files::StaticFiles::default()),
            layers: ArcSwap::from_pointee(middleware::Layers::default()),
            openapi: std::sync::OnceLock::new(),
            openapi_cache: std::sync::Mutex::new(None),
        }
    }

    /// The OpenAPI document of the serving groups, built once per set of group versions.
    fn openapi_document(&self) -> Bytes {
        let groups = self.serving.all();
        let mut cache = self.openapi_cache.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        // A weak pointer keeps its allocation, so an equal pointer is the same instance.
        let fresh = cache.as_ref().is_some_and(|(of, _)| {
            of.len() == groups.len() && of.iter().zip(&groups).all(|(w, g)| std::ptr::eq(w.as_ptr(), Arc::as_ptr(g)))
        });
        if !fresh {
            let manifests: Vec<_> = groups.iter().map(|g| g.manifest()).collect();
            let config = self.openapi.get().cloned().unwrap_or_default();
            let body = Bytes::from(serde_json::to_vec(&openapi::document(&manifests, &config)).unwrap_or_default());
            *cache = Some((groups.iter().map(Arc::downgrade).collect(), body));
        }
        cache.as_ref().map(|(_, body)| body.clone()).unwrap_or_default()
    }
}

/// The request id header: taken from the caller when sane, always answered.
pub static X_REQUEST_ID: header::HeaderName = header::HeaderName::from_static("x-request-id");

/// Request ids: a per-process random prefix and a counter; or the caller's `x-request-id`.
pub struct RequestIds {
    prefix: u32,
    next: AtomicU64,
}

impl Default for RequestIds {
    fn default() -> Self {
        use std::hash::{BuildHasher, Hasher};
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u32(std::process::id());
        RequestIds { prefix: h.finish() as u32, next: AtomicU64::new(1) }
    }
}

impl RequestIds {
    /// `pppppppp-nnnnnnnnnnnn`: the prefix and the counter in lower-case hex.
    pub fn next(&self) -> String {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let mut id = String::with_capacity(21);
        let prefix = u64::from(self.prefix);
        id.extend((0..8).rev().map(|i| char::from(HEX[((prefix >> (i * 4)) & 0xf) as usize])));
        id.push('-');
        id.extend((0..12).rev().map(|i| char::from(HEX[((n >> (i * 4)) & 0xf) as usize])));
        id
    }

    /// The caller's id when it is a sane token (≤ 128 visible characters), else a fresh one.
    pub fn for_request<B>(&self, req: &Request<B>) -> String {
        match req.headers().get(&X_REQUEST_ID).and_then(|v| v.to_str().ok()) {
            Some(id)
                if !id.is_empty()
                    && id.len() <= 128
                    && id.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b)) =>
            {
                id.to_owned()
            }
            _ => self.next(),
        }
    }
}

/// A limit on requests in flight that never queues: a request either takes a slot at once or is
/// refused. (tokio's `Semaphore` would do, but it takes its waiters' lock on every release.)
pub struct Limiter {
    available: AtomicUsize,
}

/// A slot of a [`Limiter`], given back when dropped.
pub struct Slot<'a>(&'a Limiter);

impl Limiter {
    pub fn new(slots: usize) -> Self {
        Limiter { available: AtomicUsize::new(slots) }
    }

    /// A slot, or `None` when all are taken.
    pub fn try_acquire(&self) -> Option<Slot<'_>> {
        self.available.fetch_update(Ordering::Acquire, Ordering::Relaxed, |n| n.checked_sub(1)).ok().map(|_| Slot(self))
    }

    /// Slots free now.
    pub fn available(&self) -> usize {
        self.available.load(Ordering::Relaxed)
    }
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        self.0.available.fetch_add(1, Ordering::Release);
    }
}

/// An error answered with the request's id.
fn reject(status: StatusCode, code: &str, message: &str, request_id: &str) -> Response<Body> {
    json_error(status, code, message, Some(request_id))
}

/// What a request body must be to be served: hyper's `Incoming` on the listener, a
/// `Full<Bytes>` a platform shim built from an event.
pub trait RequestBody: HttpBody<Data = Bytes, Error: Into<BoxError>> + Send + 'static {}
impl<B: HttpBody<Data = Bytes, Error: Into<BoxError>> + Send + 'static> RequestBody for B {}

/// A body's error, boxed.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Serves one request: `/healthz`, `/readyz`, `/metrics`, `/invoke/...`, else the routes. A
/// [`call::Deadline`] extension cancels the call earlier than the function's timeout.
pub async fn handle<B: RequestBody>(
    state: Arc<HttpTrigger>,
    req: Request<B>,
    peer: SocketAddr,
) -> Result<Response<Body>, Infallible> {
    let res = match (req.method(), req.uri().path()) {
        (&Method::GET, "/healthz") => with_content_type(StatusCode::OK, "text/plain", Bytes::from_static(b"ok\n")),
        (&Method::GET, "/readyz") => readyz(&state),
        (&Method::GET, "/metrics") => {
            with_content_type(StatusCode::OK, "text/plain; version=0.0.4", Bytes::from(state.metrics.render()))
        }
        (&Method::GET, path) if state.openapi.get().is_some_and(|c| c.enabled && c.path == path) => {
            with_content_type(StatusCode::OK, "application/json", state.openapi_document())
        }
        (_, path) if path.starts_with("/invoke/") => {
            let request_id = state.request_ids.for_request(&req);
            let res = state.invoke.handle(req, peer, &request_id).await;
            with_request_id(res, request_id)
        }
        _ => {
            let request_id = state.request_ids.for_request(&req);
            let res = route(&state, req, Some(peer.ip()), &request_id).await;
            with_request_id(res, request_id)
        }
    };
    Ok(res)
}

/// Answers the request id in `x-request-id` (the id's buffer becomes the header value as it is).
fn with_request_id(mut res: Response<Body>, request_id: String) -> Response<Body> {
    if let Ok(v) = HeaderValue::from_maybe_shared(Bytes::from(request_id)) {
        res.headers_mut().insert(X_REQUEST_ID.clone(), v);
    }
    res
}

fn readyz(state: &HttpTrigger) -> Response<Body> {
    let report = state.serving.readiness();
    let status = if report.ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    json_response(status, &report)
}

/// Serves `req` from the routing table only (no `/healthz`, `/metrics` or `/invoke/`): what a
/// platform shim calls for an HTTP event, with the platform's request id. There is no TCP peer
/// (the platform delivered the event), so `[middleware.auth]` failures are not limited per client.
pub async fn route_only<B: RequestBody>(state: &Arc<HttpTrigger>, req: Request<B>, request_id: &str) -> Response<Body> {
    let res = route(state, req, None, request_id).await;
    with_request_id(res, request_id.to_owned())
}

/// `peer`: the TCP peer's address, where a listener has one (auth failures are limited per client).
async fn route<B: RequestBody>(
    state: &Arc<HttpTrigger>,
    req: Request<B>,
    peer: Option<std::net::IpAddr>,
    request_id: &str,
) -> Response<Body> {
    let (parts, body) = req.into_parts();
    let cap = parts.extensions.get::<call::Deadline>().map(|d| d.0);
    let table = state.routes.load();
    let (entry, input) = match table.lookup(&parts.method, parts.uri.path()) {
        Lookup::Found { entry, params } => (entry.clone(), request_head(&parts, &params)),
        Lookup::MethodNotAllowed { allow } => {
            // A CORS preflight for a route: answered by the layers of the group it would reach.
            if parts.method == Method::OPTIONS {
                if let Some(res) = preflight(state, &table, &parts) {
                    return res;
                }
            }
            state.metrics.reject(Rejection::MethodNotAllowed);
            let msg = format!("{} is not allowed on {}; allowed: {allow}", parts.method, parts.uri.path());
            let mut res = reject(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", &msg, request_id);
            if let Ok(v) = HeaderValue::from_str(&allow) {
                res.headers_mut().insert(header::ALLOW, v);
            }
            return res;
        }
        Lookup::NotFound => {
            let statics = state.statics.load();
            if !statics.is_empty() {
                if let Some(res) = statics.serve(&parts, request_id).await {
                    return res;
                }
            }
            if !state.serving.is_ready() {
                state.metrics.reject(Rejection::NotReady);
                return reject(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "not_ready",
                    "function groups are still loading",
                    request_id,
                );
            }
            state.metrics.reject(Rejection::NotFound);
            let msg = format!("no function serves {} {}", parts.method, parts.uri.path());
            return reject(StatusCode::NOT_FOUND, "not_found", &msg, request_id);
        }
    };
    drop(table);

    let layers = state.layers.load();
    let Some(set) = layers.for_group(&entry.group.name).cloned() else {
        return invoke_route(state, &parts, body, entry, input, request_id, cap).await;
    };
    drop(layers);
    let started = std::time::Instant::now();
    let res = match set.before(&parts, peer, request_id) {
        Some(res) => res,
        None => invoke_route(state, &parts, body, entry.clone(), input, request_id, cap).await,
    };
    set.after(&parts, res, started, (&entry.group.name, &entry.name), request_id)
}

/// The preflight answer for `OPTIONS` on a path whose route takes the method the browser asks
/// about, when that route's group has CORS.
fn preflight(state: &HttpTrigger, table: &RouteTable, parts: &http::request::Parts) -> Option<Response<Body>> {
    let asked = parts.headers.get(header::ACCESS_CONTROL_REQUEST_METHOD)?;
    let method = Method::from_bytes(asked.as_bytes()).ok()?;
    let Lookup::Found { entry, .. } = table.lookup(&method, parts.uri.path()) else { return None };
    let layers = state.layers.load();
    layers.for_group(&entry.group.name)?.preflight_answer(parts)
}

/// Calls the function behind a matched route: the concurrency limit, the body (its limit and
/// deadline), the call, and its answer.
async fn invoke_route<B: RequestBody>(
    state: &Arc<HttpTrigger>,
    parts: &http::request::Parts,
    body: B,
    entry: Arc<berth_core::FunctionEntry>,
    input: HttpRequestBuilder,
    request_id: &str,
    cap: Option<Instant>,
) -> Response<Body> {
    // No queue: when every slot is taken, answer 503 at once.
    let Some(_slot) = state.limiter.try_acquire() else {
        state.metrics.reject(Rejection::Overloaded);
        return reject(
            StatusCode::SERVICE_UNAVAILABLE,
            "overloaded",
            "the host is at its concurrency limit; retry shortly",
            request_id,
        );
    };

    let limit = entry.body_limit;
    let too_large = || {
        state.metrics.reject(Rejection::BodyTooLarge);
        reject(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            &format!("the request body is larger than this function's limit of {limit} bytes"),
            request_id,
        )
    };
    // What the body is known to hold at least: its `content-length` as hyper read it (hyper
    // refuses a malformed one), or the whole body a platform shim delivered.
    if body.size_hint().lower() > limit {
        return too_large();
    }

    let span = tracing::info_span!(
        "invoke",
        request_id,
        group = %entry.group.name,
        function = %entry.name,
        http.request.method = %parts.method,
        url.path = %parts.uri.path(),
    );
    let inflight = InflightGuard::new(state);
    async move {
        let started = Instant::now();
        let deadline = call::deadline(&entry, started, cap);
        // A request without a body (most GETs) skips the collect and its timer.
        let body = if body.is_end_stream() {
            Bytes::new()
        } else {
            match tokio::time::timeout_at(deadline, Limited::new(body, limit as usize).collect()).await {
                Err(_) => {
                    return reject(
                        StatusCode::REQUEST_TIMEOUT,
                        "body_timeout",
                        "the request body did not arrive in time",
                        request_id,
                    )
                }
                Ok(Err(e)) if e.downcast_ref::<http_body_util::LengthLimitError>().is_some() => return too_large(),
                Ok(Err(e)) => {
                    return reject(
                        StatusCode::BAD_REQUEST,
                        "bad_body",
                        &format!("could not read the request body: {e}"),
                        request_id,
                    )
                }
                Ok(Ok(collected)) => collected.to_bytes(),
            }
        };
        let input = Input::Http(input.finish(RVec::from(&body[..])));
        let res = match call::call(&entry, "http", request_id, input, started, deadline).await {
            Ok(r) => into_http(r, request_id),
            Err(e) => {
                if matches!(e, CallError::Timeout { .. }) {
                    tracing::warn!(
                        timeout_ms = deadline.saturating_duration_since(started).as_millis() as u64,
                        "function timed out; its future was dropped"
                    );
                }
                let mut res = error_response(&e, Some(request_id));
                if let CallError::Unavailable { retry_after_s, .. } = &e {
                    res.headers_mut().insert(http::header::RETRY_AFTER, http::HeaderValue::from(*retry_after_s));
                }
                if matches!(e, CallError::Timeout { .. }) {
                    res.extensions_mut().insert(call::TimedOut);
                }
                res
            }
        };
        drop(inflight);
        tracing::debug!(status = res.status().as_u16(), "request finished");
        res
    }
    .instrument(span)
    .await
}

/// The request head as a function receives it, in one buffer: method, path, query, the headers
/// (those whose value is not visible ASCII are left out) and the percent-decoded route
/// parameters. The body is added once it has arrived. Public for the fuzz targets
/// (`host/fuzzing`): the request head is outside input.
pub fn request_head(parts: &http::request::Parts, params: &matchit::Params<'_, '_>) -> HttpRequestBuilder {
    // Parameter values are pieces of the path (decoding only shortens them); names are short.
    let text = parts.headers.iter().map(|(k, v)| k.as_str().len() + v.len()).sum::<usize>()
        + parts.uri.path().len()
        + 16 * params.len();
    let (path, query) = (parts.uri.path(), parts.uri.query().unwrap_or(""));
    let mut r = HttpRequestBuilder::new(parts.method.as_str(), path, query, text, parts.headers.len(), params.len());
    for (k, v) in &parts.headers {
        if let Ok(v) = v.to_str() {
            r.header(k.as_str(), v);
        }
    }
    for (k, v) in params.iter() {
        if v.contains('%') {
            r.param(k, &percent_encoding::percent_decode_str(v).decode_utf8_lossy());
        } else {
            r.param(k, v);
        }
    }
    r
}

/// How many headers a function may answer (an `http::HeaderMap` holds at most 32,768 and panics
/// beyond; no real response comes near this).
const MAX_RESPONSE_HEADERS: usize = 1024;

/// Copies a plugin response into a hyper response (nothing of the plugin's memory outlives this).
pub fn into_http(r: berth_plugin_api::Response, request_id: &str) -> Response<Body> {
    let Ok(status) = StatusCode::from_u16(r.status) else {
        tracing::error!(status = r.status, "function answered an invalid HTTP status");
        return reject(
            StatusCode::INTERNAL_SERVER_ERROR,
            "bad_response",
            "the function answered an invalid status",
            request_id,
        );
    };
    let count = r.headers.fields.len();
    if count > MAX_RESPONSE_HEADERS {
        tracing::error!(headers = count, "function answered more headers than allowed");
        let msg = format!("the function answered {count} headers; at most {MAX_RESPONSE_HEADERS} are allowed");
        return reject(StatusCode::INTERNAL_SERVER_ERROR, "bad_response", &msg, request_id);
    }
    let mut res = Response::new(Full::new(Bytes::copy_from_slice(&r.body)));
    *res.status_mut() = status;
    // Room for the function's headers and `x-request-id`, allocated once.
    *res.headers_mut() = http::HeaderMap::with_capacity(count + 1);
    let headers = res.headers_mut();
    for (k, v) in r.headers.iter() {
        let name = match k {
            "content-type" => Ok(header::CONTENT_TYPE),
            _ => header::HeaderName::from_bytes(k.as_bytes()),
        };
        match (name, header_value(v)) {
            (Ok(k), Ok(v)) => {
                headers.append(k, v);
            }
            _ => tracing::warn!(header = %k, "function answered an invalid header; dropped"),
        }
    }
    res
}

/// A header value; the common content types without an allocation.
fn header_value(v: &str) -> Result<HeaderValue, header::InvalidHeaderValue> {
    const COMMON: &[&str] = &[
        "application/json",
        "text/plain; charset=utf-8",
        "text/html; charset=utf-8",
        "application/octet-stream",
        "text/plain",
    ];
    match COMMON.iter().find(|c| **c == v) {
        Some(c) => Ok(HeaderValue::from_static(c)),
        None => HeaderValue::from_str(v),
    }
}

struct InflightGuard<'a>(&'a HttpTrigger);

impl<'a> InflightGuard<'a> {
    fn new(state: &'a HttpTrigger) -> Self {
        state.metrics.inflight.inc();
        InflightGuard(state)
    }
}

impl Drop for InflightGuard<'_> {
    fn drop(&mut self) {
        self.0.metrics.inflight.dec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_plugin_api::HeadBuilder;

    fn answer(status: u16, headers: &[(&str, &str)], body: &[u8]) -> berth_plugin_api::Response {
        let mut head = HeadBuilder::default();
        for (k, v) in headers {
            head.push(k, v, true);
        }
        berth_plugin_api::Response { status, headers: head.finish(), body: RVec::from(body) }
    }

    async fn body_text(res: Response<Body>) -> String {
        let bytes = res.into_body().collect().await.expect("a full body").to_bytes();
        String::from_utf8(bytes.to_vec()).expect("utf-8 body")
    }

    #[test]
    fn the_limiter_refuses_past_its_slots_and_takes_back_what_is_dropped() {
        let limiter = Limiter::new(2);
        let (a, b) = (limiter.try_acquire(), limiter.try_acquire());
        assert!(a.is_some() && b.is_some());
        assert!(limiter.try_acquire().is_none(), "a third request got a slot of two");
        drop(a);
        assert_eq!(limiter.available(), 1);
        assert!(limiter.try_acquire().is_some(), "a slot given back could not be taken again");
        assert!(Limiter::new(0).try_acquire().is_none());
    }

    #[test]
    fn request_ids_are_the_prefix_and_a_counter_in_hex() {
        let ids = RequestIds { prefix: 0xdead_beef, next: AtomicU64::new(0xabc) };
        assert_eq!(ids.next(), "deadbeef-000000000abc");
        assert_eq!(ids.next(), "deadbeef-000000000abd");
    }

    #[tokio::test]
    async fn a_function_answer_becomes_the_http_response() {
        let res =
            into_http(answer(201, &[("Content-Type", "application/json"), ("x-a", "1"), ("x-a", "2")], b"{}"), "rid");
        assert_eq!(res.status(), StatusCode::CREATED);
        assert_eq!(res.headers()[header::CONTENT_TYPE], "application/json");
        let repeated: Vec<_> = res.headers().get_all("x-a").iter().map(|v| v.to_str().unwrap()).collect();
        assert_eq!(repeated, ["1", "2"]);
        assert_eq!(body_text(res).await, "{}");
    }

    #[tokio::test]
    async fn invalid_headers_are_dropped_and_the_rest_kept() {
        let res = into_http(answer(200, &[("bad name", "x"), ("x-ok", "bad\nvalue"), ("x-fine", "yes")], b""), "r");
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(res.headers().len(), 1, "{:?}", res.headers());
        assert_eq!(res.headers()["x-fine"], "yes");
    }

    #[tokio::test]
    async fn too_many_headers_is_a_clear_500_not_a_panic() {
        let names: Vec<String> = (0..MAX_RESPONSE_HEADERS + 1).map(|i| format!("x-h{i}")).collect();
        let headers: Vec<(&str, &str)> = names.iter().map(|n| (n.as_str(), "v")).collect();
        let res = into_http(answer(200, &headers, b"ok"), "req-7");
        assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let body = body_text(res).await;
        assert!(body.contains("1025 headers; at most 1024"), "{body}");
        assert!(body.contains("req-7"), "{body}");

        let names: Vec<String> = (0..MAX_RESPONSE_HEADERS).map(|i| format!("x-h{i}")).collect();
        let headers: Vec<(&str, &str)> = names.iter().map(|n| (n.as_str(), "v")).collect();
        let res = into_http(answer(200, &headers, b"ok"), "req-8");
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(res.headers().len(), MAX_RESPONSE_HEADERS);
    }

    #[tokio::test]
    async fn an_invalid_status_is_a_500() {
        let res = into_http(answer(1000, &[], b""), "r");
        assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert!(body_text(res).await.contains("invalid status"));
    }
}
