//! A test harness: call a group's functions in-process, without building a plugin or starting a
//! host. Routing, extractors, errors, panics and the init hook behave as under the host.
//!
//! ```ignore
//! let group = berth::testing::TestGroup::start(my_group::berth_group()).unwrap();
//! let res = group.request(berth::Request::new("GET", "/hello/world")).unwrap();
//! assert_eq!(res.status, berth::StatusCode::OK);
//! ```
//!
//! Event functions (timer, queue, blob, or any function called by direct invoke) take the events
//! the host's triggers deliver; the factories here build them in the same shape (type, source,
//! id, subject, time, content type, extensions), and [`TestGroup::event`] delivers one to a
//! function in the same request form the host's call takes:
//!
//! ```ignore
//! use berth::testing::{self, TestGroup};
//!
//! let group = TestGroup::start(my_group::berth_group()).unwrap();
//!
//! // `#[berth::timer(...)] async fn cleanup(event: Event)`: `berth.timer.fired`.
//! group.event("cleanup", testing::timer_tick("my-group", "cleanup")).unwrap();
//!
//! // `#[berth::queue(stream = "orders")]`: `berth.queue.message`, the `attempt` extension says
//! // which delivery this is (here the third, after two failures).
//! let event = testing::queue_message("orders", r#"{"order": 7}"#, 3);
//! group.event("ship", event).unwrap();
//!
//! // `#[berth::blob(bucket = "uploads")]`: `berth.blob.created` / `berth.blob.deleted`, the
//! // object name as subject and an S3-shaped notification as data.
//! group.event("thumbnail", testing::blob_created("uploads", "cats/tom.png", 2048)).unwrap();
//! group.event("forget", testing::blob_deleted("uploads", "cats/tom.png")).unwrap();
//!
//! // `POST /invoke/my-group/echo` with a body: `berth.invoke`, JSON by default.
//! let res = group.event("echo", testing::invoke(r#"{"say": "hi"}"#)).unwrap();
//!
//! // Any other CloudEvent (what the Knative shim delivers).
//! let event = testing::cloud_event("com.example.order.placed", "/shop", r#"{"id": 7}"#);
//! group.event("on_order", event).unwrap();
//! ```
//!
//! A function that fails answers `Err` (or an error status), which the host would retry or
//! dead-letter.

mod events;
#[cfg(feature = "testing")]
mod server;
#[cfg(feature = "testing")]
mod services;
#[cfg(test)]
mod tests_events;

#[cfg(feature = "testing")]
pub use server::{ServeOptions, TestRequest, TestResponse, TestServer};
#[cfg(feature = "testing")]
pub use services::{Published, StartError, TestGroupBuilder};

pub use events::{blob_created, blob_deleted, cloud_event, invoke, queue_message, timer_tick};

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll, Wake, Waker};
use std::thread::{self, Thread};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use berth_plugin_api::abi_stable::sabi_trait::TD_Opaque;
use berth_plugin_api::abi_stable::std_types::RArc;
use berth_plugin_api::async_ffi::FutureExt as _;
use berth_plugin_api::{
    service_error_kind, BlobHandle, FfiFuture, Host, HostHandle, Host_TO, HttpClientHandle, KvHandle, LogRecord,
    QueueHandle, RResult, RStr, RString, RedisHandle, ServiceClientHandle, ServiceError, SqlHandle,
};

use crate::__private::{FunctionDef, GroupDef, TriggerDef};
use crate::{Context, Error, Event, Request, Response, Result, StatusCode};

/// A host for in-process calls: `config` as the group configuration, no services.
#[cfg_attr(all(feature = "testing", not(test)), allow(dead_code, reason = "the `testing` harness has real services"))]
pub(crate) fn test_host(config: serde_json::Value) -> HostHandle {
    Host_TO::from_ptr(RArc::new(TestHost { config: Arc::new(config) }), TD_Opaque)
}

/// A group under test. With the `testing` feature its declared services are provisioned (see
/// [`TestGroup::builder`]); without it, calls to services fail naming the feature.
pub struct TestGroup {
    def: GroupDef,
    host: HostHandle,
    /// Runtime, temporary directory and backends; dropped after `host`.
    #[cfg(feature = "testing")]
    env: services::Env,
}

impl std::fmt::Debug for TestGroup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestGroup").field("name", &self.def.name).finish()
    }
}

impl TestGroup {
    /// Runs the group's init hook (with an empty config) and returns the group ready for calls.
    pub fn start(def: GroupDef) -> Result<Self> {
        Self::start_with_config(def, serde_json::json!({}))
    }

    /// Like [`TestGroup::start`], with a group configuration (what `[groups.config]` gives).
    pub fn start_with_config(def: GroupDef, config: serde_json::Value) -> Result<Self> {
        #[cfg(feature = "testing")]
        return Self::builder(def).config(config).start().map_err(StartError::into_error);
        #[cfg(not(feature = "testing"))]
        {
            let host = test_host(config);
            if let Some(init) = def.init {
                block_on(init(crate::GroupContext { host: host.clone() }))?;
            }
            Ok(TestGroup { def, host })
        }
    }

    /// Calls a function by name, bypassing routing.
    pub fn call(&self, function: &str, request: Request) -> Result<Response> {
        let f = self.function(function)?;
        self.run(f, request, format!("test-{}", f.name), "test")
    }

    /// Delivers `event` to `function` as the host's triggers do: in the CloudEvents binary-mode
    /// request form a plugin makes of the host's event (the data as the body, the attributes as
    /// `ce-*` headers, `datacontenttype` as `content-type`), with the event id as the request id
    /// and, as [`Context::trigger`], the trigger that delivers events of this shape (`timer`,
    /// `queue`, `blob`, `invoke`, or `event` for other CloudEvents). Build `event` with
    /// [`timer_tick`], [`queue_message`], [`blob_created`], [`blob_deleted`], [`invoke`] or
    /// [`cloud_event`], or by hand.
    ///
    /// Like a direct invoke, this reaches any function, whatever its triggers. An unknown
    /// function is a `not_found` error that names the group and the function and lists the
    /// functions the group has.
    pub fn event(&self, function: &str, event: Event) -> Result<Response> {
        let f = self.function(function)?;
        let trigger = events::trigger_of(&event);
        let request_id = event.id.clone();
        self.run(f, event.into_request(), request_id, trigger)
    }

    /// The function named `function`, or an error listing the ones there are.
    fn function(&self, function: &str) -> Result<&FunctionDef> {
        self.def.functions.iter().find(|f| f.name == function).ok_or_else(|| {
            let names: Vec<String> = self.def.functions.iter().map(|f| format!("`{}`", f.name)).collect();
            let there = if names.is_empty() {
                "it has no functions".to_owned()
            } else {
                format!("its functions are {}", names.join(", "))
            };
            Error::not_found(format!("group `{}` has no function `{function}`; {there}", self.def.name))
        })
    }

    /// Routes a request by method and path (filling route parameters) and calls the function.
    /// An unmatched request answers 404 or 405 as the host would.
    pub fn request(&self, mut request: Request) -> Result<Response> {
        let mut path_matched = false;
        for f in &self.def.functions {
            for t in &f.triggers {
                let TriggerDef::Http { method, route } = t else { continue };
                if let Some(params) = match_route(route, request.path()) {
                    path_matched = true;
                    if method.eq_ignore_ascii_case(request.method()) {
                        request.set_params(params);
                        return self.run(f, request, format!("test-{}", f.name), "test");
                    }
                }
            }
        }
        let status = if path_matched { StatusCode::METHOD_NOT_ALLOWED } else { StatusCode::NOT_FOUND };
        Ok(Response::new(status))
    }

    fn run(&self, f: &FunctionDef, request: Request, request_id: String, trigger: &'static str) -> Result<Response> {
        let ctx = Context::new(request_id, 0, self.host.clone(), trigger);
        let chain = &self.def.middleware;
        let fut = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            if chain.is_empty() {
                (f.handler)(ctx, request)
            } else {
                crate::middleware::run(chain, f, ctx, request)
            }
        }))
        .map_err(|p| Error::internal(format!("handler panicked: {}", crate::__private::panic_message(&*p))))?;
        #[cfg(feature = "testing")]
        return self.env.block_on(fut);
        #[cfg(not(feature = "testing"))]
        block_on(fut)
    }
}

/// Matches `/a/{x}/{*rest}`-style routes; returns the parameters.
fn match_route(route: &str, path: &str) -> Option<Vec<(String, String)>> {
    let mut params = Vec::new();
    let mut segs = path.trim_start_matches('/').split('/');
    for pat in route.trim_start_matches('/').split('/') {
        if let Some(name) = pat.strip_prefix("{*").and_then(|p| p.strip_suffix('}')) {
            let rest: Vec<&str> = segs.by_ref().collect();
            params.push((name.to_owned(), rest.join("/")));
            return Some(params);
        }
        let seg = segs.next()?;
        if let Some(name) = pat.strip_prefix('{').and_then(|p| p.strip_suffix('}')) {
            params.push((name.to_owned(), seg.to_owned()));
        } else if pat != seg {
            return None;
        }
    }
    segs.next().is_none().then_some(params)
}

struct ThreadWaker(Thread);

impl Wake for ThreadWaker {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
}

/// Drives a future to completion on the current thread (host futures are thread-based here).
pub fn block_on<F: Future>(fut: F) -> F::Output {
    let mut fut = pin!(fut);
    let waker = Waker::from(Arc::new(ThreadWaker(thread::current())));
    let mut cx = TaskContext::from_waker(&waker);
    loop {
        if let Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
            return v;
        }
        thread::park();
    }
}

/// The host of the test harness: logs to stderr, timers on a thread, the given config. It has no
/// backends: services answer `not_declared` (test those through a real host).
#[derive(Clone)]
struct TestHost {
    config: Arc<serde_json::Value>,
}

fn no_service<T>(kind: &str, name: &str) -> RResult<T, ServiceError> {
    RResult::RErr(ServiceError::new(
        service_error_kind::NOT_DECLARED,
        name,
        format!(
            "the test harness provides {kind} services with berth's `testing` feature: \
             `berth = {{ ..., features = [\"testing\"] }}` under [dev-dependencies]"
        ),
    ))
}

impl Host for TestHost {
    fn max_log_level(&self) -> u8 {
        berth_plugin_api::log_level::DEBUG
    }
    fn log(&self, record: LogRecord<'_>) {
        eprintln!("[{}] {} {}: {}", record.request_id, record.level, record.target, record.message);
    }
    fn sleep(&self, millis: u64) -> FfiFuture<()> {
        Sleep { until: std::time::Instant::now() + Duration::from_millis(millis), armed: false }.into_ffi()
    }
    fn now_unix_ms(&self) -> u64 {
        SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
    }
    fn config_json(&self) -> RString {
        self.config.to_string().into()
    }
    fn secret(&self, name: RStr<'_>) -> RResult<RString, ServiceError> {
        no_service("secret", name.as_str())
    }
    fn sql(&self, name: RStr<'_>) -> RResult<SqlHandle, ServiceError> {
        no_service("sql", name.as_str())
    }
    fn kv(&self, name: RStr<'_>) -> RResult<KvHandle, ServiceError> {
        no_service("kv", name.as_str())
    }
    fn redis(&self, name: RStr<'_>) -> RResult<RedisHandle, ServiceError> {
        no_service("redis", name.as_str())
    }
    fn blob(&self, name: RStr<'_>) -> RResult<BlobHandle, ServiceError> {
        no_service("blob", name.as_str())
    }
    fn http_client(&self) -> RResult<HttpClientHandle, ServiceError> {
        no_service("http", "http")
    }
    fn queue(&self, name: RStr<'_>) -> RResult<QueueHandle, ServiceError> {
        no_service("queue", name.as_str())
    }
    fn service(&self, name: RStr<'_>) -> RResult<ServiceClientHandle, ServiceError> {
        no_service("exported-service", name.as_str())
    }
}

struct Sleep {
    until: std::time::Instant,
    armed: bool,
}

impl Future for Sleep {
    type Output = ();
    fn poll(mut self: std::pin::Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<()> {
        let now = std::time::Instant::now();
        if now >= self.until {
            return Poll::Ready(());
        }
        if !self.armed {
            self.armed = true;
            let waker = cx.waker().clone();
            let wait = self.until - now;
            thread::spawn(move || {
                thread::sleep(wait);
                waker.wake();
            });
        }
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::match_route;

    #[test]
    fn routes_match_params_and_catch_all() {
        assert_eq!(match_route("/hello/{name}", "/hello/world"), Some(vec![("name".into(), "world".into())]));
        assert_eq!(match_route("/hello/{name}", "/hello"), None);
        assert_eq!(match_route("/hello/{name}", "/hello/a/b"), None);
        assert_eq!(match_route("/files/{*path}", "/files/a/b"), Some(vec![("path".into(), "a/b".into())]));
        assert_eq!(match_route("/todos", "/todos"), Some(vec![]));
    }

    #[test]
    fn root_module_symbol_name_matches_abi_stable() {
        assert_eq!(
            berth_plugin_api::abi_stable::library::ROOT_MODULE_LOADER_NAME,
            "_1as_0lib_1header_0root_bmodule_bloader"
        );
    }
}
