//! A group under test behind the host's own HTTP listener on a free port of 127.0.0.1, and a real
//! HTTP client for it: see [`TestServer`].

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use berth_core::loader::GroupManifest;
use berth_core::serving::ServingGroups;
use berth_core::{Dispatcher, FunctionEntry, FunctionLimits, GroupCode, GroupInstance, LinkedGroup};
use berth_triggers::http::invoke::InvokeApi;
use berth_triggers::http::routes::Route;
use berth_triggers::http::HttpTrigger;
use http::header::{HeaderMap, HeaderName, HeaderValue};
use http_body_util::{BodyExt as _, Full};

use super::services::StartError;
use super::TestGroup;
use crate::StatusCode;

/// How long a dropped server lets open connections finish.
const DRAIN: Duration = Duration::from_millis(200);

/// How a [`TestServer`] serves, where it differs from the host's defaults.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    max_concurrency: usize,
    limits: Vec<(String, FunctionLimits)>,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions { max_concurrency: 1024, limits: Vec::new() }
    }
}

impl ServeOptions {
    /// Requests served at once across all functions (`server.max_concurrency`; default 1024):
    /// more are answered 503 at once.
    pub fn max_concurrency(mut self, n: usize) -> Self {
        self.max_concurrency = n.max(1);
        self
    }

    /// `[groups.functions.<function>] timeout`: overrides the function's own.
    pub fn timeout(mut self, function: &str, timeout: Duration) -> Self {
        self.limit(function).timeout = Some(timeout);
        self
    }

    /// `[groups.functions.<function>] body_limit` in bytes: overrides the function's own.
    pub fn body_limit(mut self, function: &str, bytes: u64) -> Self {
        self.limit(function).body_limit = Some(bytes);
        self
    }

    fn limit(&mut self, function: &str) -> &mut FunctionLimits {
        let at = match self.limits.iter().position(|(f, _)| f == function) {
            Some(at) => at,
            None => {
                self.limits.push((function.to_owned(), FunctionLimits::default()));
                self.limits.len() - 1
            }
        };
        &mut self.limits[at].1
    }
}

/// A group under test served over real HTTP by the host's own listener (routing, request ids,
/// body limits, timeouts, the concurrency limit, error bodies, `/healthz`, `/readyz`,
/// `/metrics`, `/invoke/`), on a free port of 127.0.0.1. For tests of what a caller sees;
/// [`TestGroup::request`] calls a function without the network.
///
/// ```ignore
/// use berth::testing::TestGroup;
///
/// let server = TestGroup::start(my_group::berth_group()).unwrap().serve().unwrap();
/// let res = server.post("/todos").json(&serde_json::json!({ "title": "milk" })).send();
/// assert_eq!(res.status(), berth::StatusCode::CREATED);
/// assert!(res.header("x-request-id").is_some());
/// assert!(server.metrics().contains("berth_requests_total"));
/// ```
///
/// Requests are blocking (a `#[test]`, or inside a `#[tokio::test]`, where they run on a thread
/// of their own). [`TestServer::url`] gives the address for any other client. The server stops
/// (draining open connections briefly) when it drops; the group's services go with it.
pub struct TestServer {
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    served: Option<tokio::task::JoinHandle<()>>,
    /// Dropped last: its runtime runs the listener.
    group: TestGroup,
}

impl std::fmt::Debug for TestServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestServer").field("group", &self.group.def.name).field("addr", &self.addr).finish()
    }
}

impl TestGroup {
    /// Serves this group over HTTP with the host's defaults: see [`TestServer`].
    pub fn serve(self) -> Result<TestServer, StartError> {
        self.serve_with(ServeOptions::default())
    }

    /// Serves this group over HTTP with `options`.
    pub fn serve_with(self, options: ServeOptions) -> Result<TestServer, StartError> {
        TestServer::start(self, options)
    }
}

impl TestServer {
    fn start(group: TestGroup, options: ServeOptions) -> Result<TestServer, StartError> {
        let def = &group.def;
        let manifest = GroupManifest::from_abi(&origin(def.name), def.manifest())
            .map_err(|e| StartError::Serve { group: def.name.to_owned(), message: e.to_string() })?;
        let instance = Arc::new(GroupInstance {
            name: def.name.into(),
            version: def.version.into(),
            host: group.host.clone(),
            code: GroupCode::Linked(LinkedGroup {
                group: crate::export::group_box(Arc::new(def.clone()), group.host.clone()),
                manifest,
                origin: origin(def.name),
            }),
            calls: Default::default(),
        });
        let metrics = group.env.metrics.clone();
        let limits = |name: &str| options.limits.iter().find(|(f, _)| f == name).map(|(_, l)| *l).unwrap_or_default();
        let functions = FunctionEntry::all_of(&instance, FunctionLimits::default(), limits, &metrics);
        if let Some((unknown, _)) = options.limits.iter().find(|(f, _)| !functions.iter().any(|e| *e.name == **f)) {
            let names: Vec<&str> = functions.iter().map(|e| &*e.name).collect();
            return Err(StartError::Serve {
                group: def.name.to_owned(),
                message: format!(
                    "a limit is set for function `{unknown}`, which it does not have ({})",
                    names.join(", ")
                ),
            });
        }
        let dispatcher = Arc::new(Dispatcher::default());
        let serving = Arc::new(ServingGroups::default());
        // Direct invoke is open to loopback callers, which a test's client is.
        let invoke = InvokeApi::new(dispatcher.clone(), None);
        let http = Arc::new(HttpTrigger::new(serving.clone(), metrics, options.max_concurrency, invoke));
        let table = http
            .routes
            .load()
            .with_group(def.name, Route::of(&functions))
            .map_err(|e| StartError::Serve { group: def.name.to_owned(), message: e.to_string() })?;
        http.routes.store(Arc::new(table));
        dispatcher.replace_group(def.name, functions);
        serving.replace(def.name, Some(instance));
        serving.set_ready();

        let listener = group
            .env
            .block_on(tokio::net::TcpListener::bind(("127.0.0.1", 0)))
            .map_err(|e| StartError::Serve { group: def.name.to_owned(), message: format!("cannot listen: {e}") })?;
        let addr = listener.local_addr().map_err(|e| StartError::Serve {
            group: def.name.to_owned(),
            message: format!("cannot read the listening address: {e}"),
        })?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let state = http;
        let handler = move |req, peer| berth_triggers::http::handle(state.clone(), req, peer);
        let served = group.env.spawn(berth_triggers::http::server::serve(
            "http",
            listener,
            handler,
            berth_triggers::http::server::Timeouts::with_grace(DRAIN),
            async {
                let _ = stopped.await;
            },
        ));
        Ok(TestServer { addr, stop: Some(stop), served: Some(served), group })
    }

    /// The address the server listens on (127.0.0.1 and a free port).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:<port><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The group under test: [`TestGroup::published`], [`TestGroup::block_on`], its services.
    pub fn group(&self) -> &TestGroup {
        &self.group
    }

    /// A request with any method (`"OPTIONS"`, `"PATCH"`, ...).
    pub fn request(&self, method: &str, path: &str) -> TestRequest<'_> {
        TestRequest {
            server: self,
            method: method.to_owned(),
            path: path.to_owned(),
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    pub fn get(&self, path: &str) -> TestRequest<'_> {
        self.request("GET", path)
    }

    pub fn post(&self, path: &str) -> TestRequest<'_> {
        self.request("POST", path)
    }

    pub fn put(&self, path: &str) -> TestRequest<'_> {
        self.request("PUT", path)
    }

    pub fn patch(&self, path: &str) -> TestRequest<'_> {
        self.request("PATCH", path)
    }

    pub fn delete(&self, path: &str) -> TestRequest<'_> {
        self.request("DELETE", path)
    }

    /// What `GET /metrics` answers (the Prometheus text format).
    pub fn metrics(&self) -> String {
        self.get("/metrics").send().text()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(served) = self.served.take() {
            let _ = self.group.env.block_on(served);
        }
    }
}

fn origin(group: &str) -> PathBuf {
    PathBuf::from(format!("<berth::testing group `{group}`>"))
}

/// A request to a [`TestServer`], sent with [`TestRequest::send`].
#[must_use = "a request does nothing until it is sent"]
pub struct TestRequest<'s> {
    server: &'s TestServer,
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl TestRequest<'_> {
    /// Adds a header (sent as given; several with one name are all sent).
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// The body, sent as it is.
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }

    /// `value` as JSON, with `content-type: application/json`.
    pub fn json<T: serde::Serialize + ?Sized>(self, value: &T) -> Self {
        let body = serde_json::to_vec(value).expect("the request's JSON body serializes");
        self.header("content-type", "application/json").body(body)
    }

    /// Sends the request on a connection of its own and reads the whole answer.
    ///
    /// # Panics
    /// When the request cannot be made or the connection fails (a test failure either way),
    /// with what went wrong.
    pub fn send(self) -> TestResponse {
        let TestRequest { server, method, path, headers, body } = self;
        let what = format!("{method} {path}");
        let mut req = http::Request::builder().method(method.as_str()).uri(path.as_str());
        req = req.header(http::header::HOST, server.addr.to_string());
        for (name, value) in &headers {
            req = req.header(name.as_str(), value.as_str());
        }
        let req = req
            .body(Full::new(bytes::Bytes::from(body)))
            .unwrap_or_else(|e| panic!("berth::testing: cannot make the request `{what}`: {e}"));
        let addr = server.addr;
        let sent = server.group.env.block_on(async move {
            let stream = tokio::net::TcpStream::connect(addr).await.map_err(|e| format!("cannot connect: {e}"))?;
            let (mut sender, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                .await
                .map_err(|e| format!("handshake: {e}"))?;
            let conn = tokio::spawn(conn);
            let res = sender.send_request(req).await.map_err(|e| format!("sending: {e}"))?;
            let (parts, body) = res.into_parts();
            let body = body.collect().await.map_err(|e| format!("reading the body: {e}"))?.to_bytes();
            drop(sender);
            let _ = conn.await;
            Ok::<_, String>((parts.status, parts.headers, body.to_vec()))
        });
        match sent {
            Ok((status, headers, body)) => TestResponse { status, headers, body },
            Err(e) => panic!("berth::testing: `{what}` to {addr} failed: {e}"),
        }
    }
}

/// What a [`TestServer`] answered.
#[derive(Debug, Clone)]
pub struct TestResponse {
    status: StatusCode,
    headers: HeaderMap,
    body: Vec<u8>,
}

impl TestResponse {
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The first header named `name` (any case), when it is text.
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = HeaderName::from_bytes(name.as_bytes()).ok()?;
        self.headers.get(name).and_then(|v: &HeaderValue| v.to_str().ok())
    }

    pub fn headers(&self) -> &HeaderMap {
        &self.headers
    }

    pub fn bytes(&self) -> &[u8] {
        &self.body
    }

    /// The body as text (invalid UTF-8 replaced).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body decoded from JSON.
    ///
    /// # Panics
    /// When it is not JSON of that shape, showing the status and the body.
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> T {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!("berth::testing: the answer ({}) is not the JSON expected ({e}): {}", self.status, self.text())
        })
    }
}
