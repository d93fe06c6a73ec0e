//! Serve an existing [axum](https://docs.rs/axum) app as a Berth group (cargo feature `axum`).
//!
//! An app moves in by wrapping its router: every method on the prefix (`/bookmarks`,
//! `/bookmarks/` and `/bookmarks/{*path}`) goes to the router, which keeps its state, extractors,
//! error types and tests.
//!
//! ```ignore
//! // src/lib.rs of the group: the app's own modules, unchanged, plus these lines.
//! mod app;
//!
//! berth::axum::group! {
//!     prefix: "/bookmarks",     // where the host routes every method to the app
//!     router: app::router(),    // built once, on the first request
//! }
//! ```
//!
//! with `berth = { ..., features = ["axum"] }` and the app's own `axum` dependency with
//! `default-features = false` and the extractor features it uses (`json`, `query`, `form`, ...):
//! a plugin never needs axum's server features (`tokio`, `http1`, `http2`); the host owns the
//! listener.
//!
//! After `prefix` and `router`, [`group!`] takes anything [`berth::group!`](crate::group) takes
//! (`name`, `functions` for more berth functions such as timers, `init`, `stop`, `services`,
//! `middleware`, `exports`); `functions`, if given, comes first of those.
//!
//! # The path the app sees
//!
//! Like [`axum::Router::nest`](::axum::Router::nest), the prefix is **stripped**: the app mounted
//! at `/bookmarks` sees `GET /bookmarks/items/7?full=1` as `GET /items/7?full=1`, and both
//! `/bookmarks` and `/bookmarks/` as `/`. Its routes stay as they were when it owned a whole
//! server, so its tests keep their paths. The full request URI is in the
//! [`OriginalUri`] extension: build links and `Location` headers
//! from it so they carry the prefix. An app whose routes already start with the prefix (every
//! route of it under `/bookmarks/...`) keeps it with `keep_prefix: true` right after `prefix`.
//!
//! # Reaching Berth from a handler
//!
//! Each request carries the call's [`Context`] as an extension: take
//! `Extension(ctx): Extension<berth::Context>` for the request id, the deadline, host timers
//! (`ctx.sleep`) and the group's services (`ctx.kv("...")`, `ctx.sql("...")`, ...).
//!
//! # State
//!
//! The router, with whatever `with_state` gave it, is built on the first request and lives as
//! long as this version of the plugin: a hot swap (or a restart) starts with a fresh one, and
//! several host processes each have their own. In-memory state (an `Arc<Mutex<..>>` in the app's
//! state) is therefore a cache at most; durable state belongs in Berth's services. In tests,
//! every `TestGroup` of one test binary shares the router, as every request of one plugin
//! version does.
//!
//! # What cannot cross: tokio
//!
//! A plugin has no tokio runtime. Its copy of tokio cannot see the host's (see the ABI notes),
//! so `tokio::time::sleep`, `timeout` and `interval`, `tokio::spawn`, `spawn_blocking`,
//! `block_in_place`, `tokio::fs` and `tokio::net` panic inside a plugin with "there is no
//! reactor running, must be called from the context of a Tokio 1.x runtime". The adapter
//! catches that panic and answers a 500 `no_tokio_runtime` naming the request and the fix, at
//! once (it never hangs): wait with [`berth::sleep`](crate::sleep) or [`Context::sleep`] (host
//! timers), do spawned work inside the handler, reach the network through Berth's services.
//! Runtime-free parts of tokio work: `tokio::sync` (`Mutex`, `RwLock`, channels, `Notify`) and
//! `tokio::task::yield_now`. Any other panic of the app is a panic of the function, answered with
//! a 500 carrying the request id, as for any handler. (A plugin version that touched tokio's
//! runtime has registered tokio's thread-locals, which can keep its library from unloading after
//! a hot swap; the host reports what stayed mapped.)
//!
//! In-process tests (`TestGroup`, `TestServer`) link the app with the test's own tokio, so there
//! tokio calls *work*; [`App::call_as_plugin`] runs a request the way a loaded plugin is polled,
//! with no runtime, and shows what the host will answer.
//!
//! Host limits apply before the app: the function's timeout (504) and body limit (413), set under
//! `[groups.functions.axum]`; axum's own `DefaultBodyLimit` (2 MB) still applies inside it.
//!
//! Also not crossing: responses are collected whole before they are answered (no streaming
//! bodies, server-sent events or WebSockets; a body that never ends runs into the function's
//! timeout), and a blocking call (`std::thread::sleep`, blocking I/O) blocks a host worker.

use std::future::Future;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};

use ::axum::body::Body;
use ::axum::extract::OriginalUri;
use ::axum::Router;
use http::header::{HeaderName, HeaderValue, CONNECTION, CONTENT_LENGTH, TRANSFER_ENCODING};
use tower::ServiceExt as _;

use crate::__private::{CallFuture, FunctionDef, HandlerFuture, TriggerDef};
use crate::{Context, Error, Request, Response, Result, StatusCode};

/// Serves an axum app as this crate's Berth group: every method under `prefix` goes to `router`.
/// See the [module docs](self).
///
/// ```ignore
/// berth::axum::group! {
///     prefix: "/bookmarks",
///     keep_prefix: false,            // optional; `true` passes the path unchanged
///     router: app::router(),         // an `axum::Router`, or `berth::axum::service(svc)`
///     functions: [nightly_cleanup],  // optional, then any other `berth::group!` key
///     init: setup,
/// }
/// ```
///
/// It defines `berth_group()` (through [`berth::group!`](crate::group)), and
/// `berth_axum_app() -> &'static berth::axum::App`: the app as the group serves it, for tests
/// ([`App::call_as_plugin`]). The function is named `axum` (`[groups.functions.axum]` in
/// `berth.toml` sets its timeout and body limit; `berth invoke <group>/axum --path ...`).
pub use crate::__berth_axum_group as group;

/// The name of the function that serves the app.
pub const FUNCTION: &str = "axum";

/// The error code of the 500 answered when the app needs a tokio runtime.
pub const NO_TOKIO_RUNTIME: &str = "no_tokio_runtime";

/// A prefix [`App::new`] cannot serve under.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot serve an axum app under the prefix `{prefix}`: {problem}")]
pub struct PrefixError {
    prefix: String,
    problem: &'static str,
}

/// What is wrong with `prefix` as a route prefix, if anything. `const` so that [`group!`]
/// refuses a bad prefix at compile time.
#[doc(hidden)]
pub const fn __prefix_problem(prefix: &str) -> Option<&'static str> {
    let b = prefix.as_bytes();
    if b.is_empty() || b[0] != b'/' {
        return Some("a prefix starts with `/`, like \"/bookmarks\"");
    }
    if b.len() == 1 {
        return Some("the prefix cannot be `/` (the whole host is shared with other groups): use a segment such as \"/bookmarks\"");
    }
    if b[b.len() - 1] == b'/' {
        return Some("a prefix does not end with `/`: write it like \"/bookmarks\"");
    }
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'{' | b'}' | b'*' => {
                return Some("a prefix is literal: route parameters (`{..}`, `{*..}`) belong to the app's own routes")
            }
            b'?' | b'#' | b' ' => return Some("a prefix is a path: no `?`, `#` or spaces"),
            b'/' if i + 1 < b.len() && b[i + 1] == b'/' => return Some("a prefix has no empty segment (`//`)"),
            _ => {}
        }
        i += 1;
    }
    None
}

/// The methods the host routes to the app (every one `#[berth::http]` knows).
const METHODS: [&str; 7] = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"];

/// Wraps any tower service (`Request<Body>` in, anything [`IntoResponse`](::axum::response::IntoResponse)
/// out, `Infallible` errors) as a router, for [`group!`]'s `router:`.
pub fn service<S>(svc: S) -> Router
where
    S: tower::Service<http::Request<Body>, Error = std::convert::Infallible> + Clone + Send + Sync + 'static,
    S::Response: ::axum::response::IntoResponse,
    S::Future: Send + 'static,
{
    Router::new().fallback_service(svc)
}

/// An axum router mounted under a route prefix: turns Berth requests into axum's and back.
/// [`group!`] makes one per plugin; build one yourself to call it in tests or from your own
/// `#[berth::http]` function.
#[derive(Debug, Clone)]
pub struct App {
    prefix: &'static str,
    keep_prefix: bool,
    router: Router,
}

impl App {
    /// `router` under `prefix` (`/bookmarks`), which is stripped from the path the app sees.
    pub fn new(prefix: &'static str, router: Router) -> std::result::Result<Self, PrefixError> {
        match __prefix_problem(prefix) {
            Some(problem) => Err(PrefixError { prefix: prefix.to_owned(), problem }),
            None => Ok(App { prefix, keep_prefix: false, router }),
        }
    }

    /// The app sees the path unchanged, prefix included (its routes start with the prefix).
    pub fn keep_prefix(mut self) -> Self {
        self.keep_prefix = true;
        self
    }

    /// The prefix the app is mounted under.
    pub fn prefix(&self) -> &'static str {
        self.prefix
    }

    /// The routes the host sends to the app (each with every method): the prefix, the prefix
    /// with a trailing `/`, and everything under it.
    pub fn routes(&self) -> [String; 3] {
        let p = self.prefix;
        [p.to_owned(), format!("{p}/"), format!("{p}/{{*path}}")]
    }

    /// Answers `request` with the router. Errors are Berth errors: 404 for a path outside the
    /// prefix, 400 for a request axum's types refuse, 500 `no_tokio_runtime` when the app needs
    /// tokio's runtime (see the [module docs](self)). The app's own answers, error statuses
    /// included, come back as they are.
    pub fn serve(&self, ctx: Context, request: Request) -> impl Future<Output = Result<Response>> + Send + 'static {
        let what = format!("{} {}", request.method(), request.path());
        let prepared = self.to_http(ctx, request);
        let router = self.router.clone();
        async move {
            let request = prepared?;
            let answered = async move {
                let Ok(response) = router.oneshot(request).await;
                from_http(response).await
            };
            NoRuntime { fut: answered, what }.await
        }
    }

    /// The axum request for `request`: method, path (prefix stripped unless kept) and query,
    /// headers, body, and the `Context` and `OriginalUri` extensions.
    fn to_http(&self, ctx: Context, mut request: Request) -> Result<http::Request<Body>> {
        let path = request.path();
        let inner = if self.keep_prefix {
            path
        } else {
            match path.strip_prefix(self.prefix) {
                Some("") | Some("/") => "/",
                Some(rest) if rest.starts_with('/') => rest,
                _ => {
                    return Err(Error::not_found(format!(
                        "`{path}` is outside the axum app, which is mounted under `{}`",
                        self.prefix
                    )))
                }
            }
        };
        let with_query = |p: &str| match request.raw_query() {
            "" => p.to_owned(),
            q => format!("{p}?{q}"),
        };
        let uri = |p: &str| {
            http::Uri::try_from(with_query(p)).map_err(|e| {
                Error::bad_request(format!("the request target `{}` is not a valid URI: {e}", with_query(p)))
            })
        };
        let (inner_uri, original_uri) = (uri(inner)?, uri(path)?);
        let method = http::Method::from_bytes(request.method().as_bytes())
            .map_err(|_| Error::bad_request(format!("`{}` is not an HTTP method", request.method())))?;
        let mut builder = http::Request::builder().method(method).uri(inner_uri);
        let headers = builder.headers_mut().expect("a request builder with a valid method and URI has headers");
        for (name, value) in request.headers() {
            let name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| Error::bad_request(format!("`{name}` is not a valid header name")))?;
            let value = HeaderValue::from_str(value)
                .map_err(|_| Error::bad_request(format!("the value of header `{name}` is not a valid header value")))?;
            headers.append(name, value);
        }
        let mut http_request = builder
            .body(Body::from(request.take_body()))
            .map_err(|e| Error::bad_request(format!("building the axum request: {e}")))?;
        http_request.extensions_mut().insert(OriginalUri(original_uri));
        http_request.extensions_mut().insert(ctx);
        Ok(http_request)
    }

    /// Calls `request` as a loaded plugin is polled: on a thread of its own where no tokio
    /// runtime is entered, with the harness's host (its timers work: `berth::sleep`,
    /// `ctx.sleep`; it provides no services). In-process tests otherwise link the app with the
    /// test's tokio, where tokio calls work that fail in the host.
    ///
    /// ```ignore
    /// let res = my_group::berth_axum_app().call_as_plugin(Request::new("GET", "/bookmarks/export"));
    /// assert_eq!(res.unwrap_err().code(), berth::axum::NO_TOKIO_RUNTIME);
    /// ```
    #[cfg(feature = "testing")]
    pub fn call_as_plugin(&self, request: Request) -> Result<Response> {
        let ctx = Context::new("test-axum".to_owned(), 0, crate::testing::test_host(serde_json::json!({})), "test");
        let state = ctx.state.clone();
        let fut = self.serve(ctx, request);
        std::thread::scope(|s| {
            s.spawn(move || {
                let _current = crate::context::CurrentGuard::enter(&state);
                crate::testing::block_on(fut)
            })
            .join()
            .unwrap_or_else(|panic| resume_unwind(panic))
        })
    }
}

/// The Berth response for the app's: status, headers (but those of the framing, which the host
/// sets for the collected body), the body collected whole.
async fn from_http(response: http::Response<Body>) -> Result<Response> {
    let (parts, body) = response.into_parts();
    let body = ::axum::body::to_bytes(body, usize::MAX)
        .await
        .map_err(|e| Error::internal(format!("reading the axum app's response body: {e}")))?;
    let mut out = Response::new(parts.status);
    for (name, value) in &parts.headers {
        if name == CONTENT_LENGTH || name == TRANSFER_ENCODING || name == CONNECTION {
            continue;
        }
        match std::str::from_utf8(value.as_bytes()) {
            Ok(value) => out = out.with_header(name.as_str(), value),
            Err(_) => tracing::warn!(header = %name, "dropped a response header of the axum app that is not UTF-8"),
        }
    }
    Ok(out.with_body(Vec::from(body)))
}

pin_project_lite::pin_project! {
    /// Polls the app with panics caught: tokio's "no runtime" panic becomes the 500
    /// `no_tokio_runtime`; any other panic goes on (the call's guard answers it as a panic).
    struct NoRuntime<F> {
        #[pin]
        fut: F,
        what: String,
    }
}

impl<F: Future<Output = Result<Response>>> Future for NoRuntime<F> {
    type Output = Result<Response>;
    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let mut fut = this.fut;
        match catch_unwind(AssertUnwindSafe(|| fut.as_mut().poll(cx))) {
            Ok(poll) => poll,
            Err(payload) => {
                let message = crate::__private::panic_message(&*payload);
                if !needs_tokio_runtime(&message) {
                    resume_unwind(payload);
                }
                tracing::error!(request = %this.what, tokio = %message, "the axum app needs a tokio runtime, which a plugin does not have");
                Poll::Ready(Err(no_tokio_runtime(this.what, &message)))
            }
        }
    }
}

/// Whether a panic message is tokio's for a missing runtime (or one of its drivers).
fn needs_tokio_runtime(message: &str) -> bool {
    message.contains("Tokio 1.x")
        || message.contains("no reactor running")
        || message.contains("can call blocking only when running on the multi-threaded runtime")
        || (message.contains("spawn_local") && message.contains("LocalSet"))
}

/// The 500 answered when the app needed tokio's runtime while answering `what`.
fn no_tokio_runtime(what: &str, tokio_said: &str) -> Error {
    Error::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        NO_TOKIO_RUNTIME,
        format!(
            "the axum app needed a tokio runtime while answering `{what}` (tokio: \"{tokio_said}\"), but a Berth \
             plugin has none: its copy of tokio cannot use the host's. Wait with `berth::sleep` or `ctx.sleep` \
             (host timers; take `Extension<berth::Context>`) instead of `tokio::time::sleep`/`timeout`/`interval`, \
             do the work in the handler instead of `tokio::spawn`/`spawn_blocking`, and reach the network and \
             files through Berth's services"
        ),
    )
}

/// The `FunctionDef` [`group!`] declares: every method on each of `routes`.
#[doc(hidden)]
pub fn __function_def(
    routes: [&'static str; 3],
    handler: fn(Context, Request) -> HandlerFuture,
    call: fn(Context, Request) -> CallFuture,
) -> FunctionDef {
    FunctionDef {
        name: FUNCTION,
        triggers: routes
            .into_iter()
            .flat_map(|route| METHODS.into_iter().map(move |method| TriggerDef::Http { method, route }))
            .collect(),
        timeout_ms: 0,
        body_limit: 0,
        handler,
        call,
        describe: None,
    }
}

/// Builds the app for [`group!`] (the prefix was checked at compile time).
#[doc(hidden)]
pub fn __app(prefix: &'static str, keep_prefix: bool, router: Router) -> App {
    let app = App::new(prefix, router).unwrap_or_else(|e| panic!("{e}"));
    if keep_prefix {
        app.keep_prefix()
    } else {
        app
    }
}

#[doc(hidden)]
#[macro_export]
macro_rules! __berth_axum_group {
    (prefix: $prefix:literal, $(keep_prefix: $keep:literal,)? router: $router:expr,
     functions: [$($function:ident),* $(,)?] $(, $($rest:tt)*)?) => {
        $crate::__berth_axum_group!(@app $prefix, [$($keep)?], $router);
        $crate::group! { functions: [berth_axum $(, $function)*] $(, $($rest)*)? }
    };
    (prefix: $prefix:literal, $(keep_prefix: $keep:literal,)? router: $router:expr $(, $($rest:tt)*)?) => {
        $crate::__berth_axum_group!(@app $prefix, [$($keep)?], $router);
        $crate::group! { functions: [berth_axum] $(, $($rest)*)? }
    };
    (@app $prefix:literal, [$($keep:literal)?], $router:expr) => {
        const _: () = if let ::std::option::Option::Some(problem) = $crate::axum::__prefix_problem($prefix) {
            ::std::panic!("{}", problem)
        };

        /// The axum app this group serves, built on first use and kept as long as this version
        /// of the plugin (`berth::axum::group!`).
        pub fn berth_axum_app() -> &'static $crate::axum::App {
            static APP: ::std::sync::OnceLock<$crate::axum::App> = ::std::sync::OnceLock::new();
            APP.get_or_init(|| $crate::axum::__app($prefix, false $(|| $keep)?, $router))
        }

        #[doc(hidden)]
        pub fn __berth_fn_berth_axum() -> $crate::__private::FunctionDef {
            fn run(
                ctx: $crate::Context,
                req: $crate::Request,
            ) -> impl ::std::future::Future<Output = $crate::Result<$crate::Response>> + ::std::marker::Send + 'static {
                berth_axum_app().serve(ctx, req)
            }
            fn handler(ctx: $crate::Context, req: $crate::Request) -> $crate::__private::HandlerFuture {
                ::std::boxed::Box::pin(run(ctx, req))
            }
            fn call(ctx: $crate::Context, req: $crate::Request) -> $crate::__private::CallFuture {
                $crate::__private::call(ctx, req, run)
            }
            $crate::axum::__function_def(
                [$prefix, ::std::concat!($prefix, "/"), ::std::concat!($prefix, "/{*path}")],
                handler,
                call,
            )
        }
    };
}
