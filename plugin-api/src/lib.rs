//! The Berth plugin ABI: everything that crosses the boundary between the `berth` host and a
//! function-group plugin (a `cdylib`), and nothing else.
//!
//! A plugin exports two symbols:
//! - [`ABI_VERSION_SYMBOL`]: an `extern "C" fn() -> u32` returning the [`ABI_VERSION`] it was built
//!   for. The host reads it *before* abi_stable's own layout checks so that a plugin built for
//!   another contract is refused with a message naming both versions.
//! - abi_stable's root-module header, whose root module is [`PluginModuleRef`].
//!
//! Every type here is `#[repr(C)]` + [`StableAbi`]; abi_stable checks their layout when a plugin is
//! loaded. Growth rules, so that a newer host keeps loading older plugins:
//! - [`PluginModule`] is a prefix type: new entry points go after its `last_prefix_field`.
//! - [`Trigger`], [`Input`] and [`PluginError`] are `NonExhaustive` enums: new variants may be added;
//!   a side that does not know a variant sees an error, never undefined behaviour.
//! - [`Host`] and [`FunctionGroup`] are `sabi_trait`s: new methods go after `last_prefix_field`.
//!
//! Plugins never run async code themselves: every future that crosses is an [`FfiFuture`] polled
//! by the host's tokio runtime, and every await point inside a plugin (sleep, services) is a future
//! the host made. A plugin's own copy of tokio has no runtime.
//!
//! ```
//! use berth_plugin_api::{Trigger, Trigger_NE, RString};
//! let t = Trigger_NE::new(Trigger::Http { method: RString::from("GET"), route: RString::from("/x") });
//! assert!(matches!(t.as_enum(), Ok(Trigger::Http { .. })));
//! ```
// The `sabi_trait` and `StableAbi` derives expand to items that trip these lints.
#![allow(non_local_definitions, reason = "abi_stable's sabi_trait expansion on rustc >= 1.80")]
#![allow(unsafe_code, reason = "abi_stable derives expand to unsafe impls; no hand-written unsafe here")]
#![allow(non_camel_case_types, reason = "abi_stable names generated types `Foo_NE`, `Foo_TO`")]

mod services;

pub use abi_stable;
pub use abi_stable::std_types::{RArc, ROption};
pub use abi_stable::std_types::{RBox, RResult, RStr, RString, RVec, Tuple2};
pub use async_ffi::{self, FfiFuture};
pub use services::*;

use abi_stable::{
    declare_root_module_statics, library::RootModule, package_version_strings, sabi_trait, sabi_types::VersionStrings,
    StableAbi,
};

/// The contract version. Bump it on any change a compiled plugin cannot survive; purely additive
/// changes (a new prefix field, a new enum variant, a new trailing trait method) do not need it.
pub const ABI_VERSION: u32 = 2;

/// Name of the `extern "C" fn() -> u32` every plugin exports, nul-terminated for `dlsym`.
pub const ABI_VERSION_SYMBOL: &[u8] = b"berth_plugin_abi_version\0";

/// A header or parameter: name and value.
pub type Pair = Tuple2<RString, RString>;

// === Manifest ===

/// What a plugin is: its name, version and functions. Plain data, produced without side effects.
#[repr(C)]
#[derive(StableAbi, Debug, Clone)]
pub struct Manifest {
    /// Group name, unique within one host (`hello`, `todo`).
    pub name: RString,
    /// Semver version of the group (the crate version by default).
    pub version: RString,
    /// Version of the `berth` SDK the plugin was built with, for diagnostics.
    pub sdk_version: RString,
    pub functions: RVec<FunctionSpec>,
    /// Services the group needs; the host resolves them all before the group loads.
    pub services: RVec<ServiceRequirement>,
    /// Services the group provides to other groups.
    pub exports: RVec<ExportSpec>,
}

/// A service a group provides to other groups, defined by an interface crate both depend on.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq)]
pub struct ExportSpec {
    /// The name consumers ask for (`users`).
    pub name: RString,
    /// The interface it implements (the interface crate's name, `users-api`).
    pub interface: RString,
    /// The interface crate's semver version it was built with.
    pub version: RString,
}

/// One function of a group. Its index in [`Manifest::functions`] is its id for [`FunctionGroup::call`].
#[repr(C)]
#[derive(StableAbi, Debug, Clone)]
pub struct FunctionSpec {
    pub name: RString,
    pub triggers: RVec<Trigger_NE>,
    /// Per-call timeout in milliseconds; 0 means the host default.
    pub timeout_ms: u64,
    /// Request body limit in bytes; 0 means the host default.
    pub body_limit: u64,
    /// Services this function needs, resolved by the host when the group loads.
    pub services: RVec<ServiceRequirement>,
}

/// A service a group declares: its kind (`sql`, `kv`, `redis`, `blob`, `http`, `secret`,
/// `queue`, `service`) and the name it is bound under in `berth.toml`.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq)]
pub struct ServiceRequirement {
    pub kind: RString,
    pub name: RString,
    /// For `service`: the interface crate's name and the version the consumer was built with
    /// (`users-api`, `1.2.0`); a provider must export the same interface, same major version,
    /// at least this version. Empty for other kinds.
    pub interface: RString,
    pub version: RString,
}

/// What can call a function. New trigger kinds are added as new variants.
#[repr(u8)]
#[derive(StableAbi, Debug, Clone, PartialEq)]
#[sabi(kind(WithNonExhaustive(size = [usize; 16], traits(Debug, Clone, PartialEq))))]
#[non_exhaustive]
pub enum Trigger {
    /// An HTTP route: `method` is upper-case (`GET`), `route` uses `{param}` and `{*rest}` segments.
    Http { method: RString, route: RString },
    /// A timer: a cron expression with seconds (`0 */5 * * * *`) or `@every 30s`, in `timezone`
    /// (IANA name; empty = UTC). Overlapping runs are skipped unless `allow_overlap`.
    Timer { schedule: RString, timezone: RString, allow_overlap: bool },
    /// Messages from a queue binding of `berth.toml`. `concurrency` 0 and `max_attempts` 0 mean
    /// the binding's defaults.
    Queue { queue: RString, concurrency: u32, max_attempts: u32 },
    /// Object events (`created`, `deleted`) of a blob bucket.
    Blob { bucket: RString, events: RVec<RString> },
}

// === Calls ===

/// A piece of a [`Head`]'s text: `len` bytes from `start`.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Span {
    pub start: u32,
    pub len: u32,
}

/// A name and value in a [`Head`] (a header, a route parameter).
#[repr(C)]
#[derive(StableAbi, Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Field {
    pub name: Span,
    pub value: Span,
}

/// Strings stored back to back in one buffer, and the fields pointing into it: a request's or a
/// response's head crosses the boundary in two allocations, however many headers it has.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, Default, PartialEq, Eq)]
pub struct Head {
    pub text: RString,
    pub fields: RVec<Field>,
}

/// The text of `span` in `text`; empty when the span does not fit (a malformed head).
fn span_of(text: &str, span: Span) -> &str {
    let start = span.start as usize;
    start.checked_add(span.len as usize).and_then(|end| text.get(start..end)).unwrap_or("")
}

impl Head {
    /// Appends `s` to the text (not as a field).
    pub fn push_str(&mut self, s: &str) -> Span {
        let start = self.text.len();
        self.text.push_str(s);
        Span { start: start as u32, len: s.len() as u32 }
    }

    /// Appends a field. (To build a head from scratch, [`HeadBuilder`] is cheaper.)
    pub fn push(&mut self, name: &str, value: &str) {
        let (name, value) = (self.push_str(name), self.push_str(value));
        self.fields.push(Field { name, value });
    }

    /// The text of `span`; empty when the span does not fit the text (a malformed head).
    pub fn get(&self, span: Span) -> &str {
        span_of(&self.text, span)
    }

    /// Every field as (name, value).
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> + '_ {
        self.fields.iter().map(|f| (self.get(f.name), self.get(f.value)))
    }

    /// The value of the first field named `name` (ASCII case-insensitive).
    pub fn find(&self, name: &str) -> Option<&str> {
        self.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v)
    }
}

/// Builds a [`Head`] in this side's own `String` and `Vec` (plain Rust growth, no calls through
/// abi_stable's vtables), handed over without a copy by [`HeadBuilder::finish`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeadBuilder {
    text: String,
    fields: Vec<Field>,
}

impl HeadBuilder {
    /// Room for `text` bytes and `fields` fields.
    pub fn with_capacity(text: usize, fields: usize) -> Self {
        HeadBuilder { text: String::with_capacity(text), fields: Vec::with_capacity(fields) }
    }

    /// Makes room for `text` more bytes and `fields` more fields.
    pub fn reserve(&mut self, text: usize, fields: usize) {
        self.text.reserve(text);
        self.fields.reserve(fields);
    }

    /// Appends `s` to the text (not as a field).
    pub fn push_str(&mut self, s: &str) -> Span {
        let start = self.text.len();
        self.text.push_str(s);
        Span { start: start as u32, len: s.len() as u32 }
    }

    /// Appends a field; with `lower_name`, the name is stored ASCII lower-case.
    pub fn push(&mut self, name: &str, value: &str, lower_name: bool) {
        let name = self.push_str(name);
        if lower_name {
            self.text[name.start as usize..].make_ascii_lowercase();
        }
        let value = self.push_str(value);
        self.fields.push(Field { name, value });
    }

    /// The text of `span` (empty when it does not fit).
    pub fn get(&self, span: Span) -> &str {
        span_of(&self.text, span)
    }

    /// Every field as (name, value).
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> + '_ {
        self.fields.iter().map(|f| (self.get(f.name), self.get(f.value)))
    }

    /// The FFI-safe head (no copy).
    pub fn finish(self) -> Head {
        Head { text: self.text.into(), fields: self.fields.into() }
    }
}

/// An HTTP request as the function sees it. The host has already routed it and enforced limits.
/// Method, path, query and route parameters are spans of `headers.text`.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, Default)]
pub struct HttpRequest {
    pub method: Span,
    pub path: Span,
    /// Raw query string, without the `?`.
    pub query: Span,
    /// Header names are lower-case; repeated headers appear repeatedly.
    pub headers: Head,
    /// Route parameters, percent-decoded; their text is in `headers.text`.
    pub params: RVec<Field>,
    pub body: RVec<u8>,
}

impl HttpRequest {
    /// A request with no headers, parameters or body (add them with `headers.push`,
    /// [`HttpRequest::push_param`] and `body`; [`HttpRequestBuilder`] is cheaper for many).
    pub fn new(method: &str, path: &str, query: &str) -> Self {
        HttpRequestBuilder::new(method, path, query, 0, 0, 0).finish(RVec::new())
    }
    pub fn method(&self) -> &str {
        self.headers.get(self.method)
    }
    pub fn path(&self) -> &str {
        self.headers.get(self.path)
    }
    pub fn query(&self) -> &str {
        self.headers.get(self.query)
    }
    /// Appends a route parameter.
    pub fn push_param(&mut self, name: &str, value: &str) {
        let (name, value) = (self.headers.push_str(name), self.headers.push_str(value));
        self.params.push(Field { name, value });
    }
    /// Every route parameter as (name, value).
    pub fn params(&self) -> impl Iterator<Item = (&str, &str)> + '_ {
        self.params.iter().map(|f| (self.headers.get(f.name), self.headers.get(f.value)))
    }
}

/// Builds an [`HttpRequest`] in plain Rust buffers: the request line, then headers and route
/// parameters in any order, then [`HttpRequestBuilder::finish`] with the body.
#[derive(Debug, Clone)]
pub struct HttpRequestBuilder {
    head: HeadBuilder,
    params: Vec<Field>,
    line: [Span; 3],
}

impl HttpRequestBuilder {
    /// `text`, `headers` and `params` size the buffers for what follows the request line.
    pub fn new(method: &str, path: &str, query: &str, text: usize, headers: usize, params: usize) -> Self {
        let mut head = HeadBuilder::with_capacity(method.len() + path.len() + query.len() + text, headers);
        let line = [head.push_str(method), head.push_str(path), head.push_str(query)];
        HttpRequestBuilder { head, params: Vec::with_capacity(params), line }
    }
    /// Appends a header; the name must already be lower-case.
    pub fn header(&mut self, name: &str, value: &str) {
        self.head.push(name, value, false);
    }
    /// Appends a route parameter.
    pub fn param(&mut self, name: &str, value: &str) {
        let (name, value) = (self.head.push_str(name), self.head.push_str(value));
        self.params.push(Field { name, value });
    }
    pub fn finish(self, body: RVec<u8>) -> HttpRequest {
        let [method, path, query] = self.line;
        HttpRequest { method, path, query, headers: self.head.finish(), params: self.params.into(), body }
    }
}

/// A CloudEvents 1.0 event (for triggers other than HTTP).
#[repr(C)]
#[derive(StableAbi, Debug, Clone, Default)]
pub struct Event {
    pub id: RString,
    pub source: RString,
    pub ty: RString,
    pub subject: ROption<RString>,
    /// RFC 3339 timestamp.
    pub time: ROption<RString>,
    pub datacontenttype: ROption<RString>,
    pub data: RVec<u8>,
    pub extensions: RVec<Pair>,
}

/// What a function is called with.
#[repr(u8)]
#[derive(StableAbi, Debug, Clone)]
#[sabi(kind(WithNonExhaustive(size = [usize; 48], traits(Debug, Clone))))]
#[non_exhaustive]
pub enum Input {
    Http(HttpRequest),
    Event(Event),
}

/// What a function answers (and what the outbound HTTP client receives). For event triggers
/// `status` < 400 means success.
#[repr(C)]
#[derive(StableAbi, Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: Head,
    pub body: RVec<u8>,
}

/// Per-call context: made by the host for every invocation.
#[repr(C)]
#[derive(StableAbi, Clone)]
pub struct CallContext {
    /// The request id: on every log line and error of this call.
    pub request_id: RString,
    /// Absolute deadline in Unix milliseconds; 0 when the call has none.
    pub deadline_unix_ms: u64,
    /// The host, for logging, timers and services.
    pub host: HostHandle,
    /// Which trigger called (`http`, `timer`, `queue`, `blob`, `invoke`, `service`): a static
    /// string of the host, which outlives every plugin it loads.
    pub trigger: RStr<'static>,
    /// Who called, when the trigger knows (a consumer group for `service`, a token subject).
    pub caller: ROption<RString>,
}

/// Why a call or a load failed, as the plugin reports it.
#[repr(u8)]
#[derive(StableAbi, Debug, Clone, PartialEq)]
#[sabi(kind(WithNonExhaustive(size = [usize; 12], traits(Debug, Clone, PartialEq))))]
#[non_exhaustive]
pub enum PluginError {
    /// The handler returned an error; `status` is the HTTP status it maps to, `code` a short
    /// machine-readable word (`not_found`), `message` a sentence for the caller.
    Handler { status: u16, code: RString, message: RString },
    /// The handler (or the group's init hook) panicked; the panic was caught in the plugin.
    Panicked { message: RString },
    /// The group's init hook failed.
    Init { message: RString },
    /// The host asked for a function id the plugin does not have.
    UnknownFunction { id: u32 },
    /// The host sent an input kind this plugin does not understand.
    UnsupportedInput { message: RString },
}

// === Traits ===

/// Log levels as they cross the boundary (the same order as `tracing::Level`).
pub mod log_level {
    pub const ERROR: u8 = 1;
    pub const WARN: u8 = 2;
    pub const INFO: u8 = 3;
    pub const DEBUG: u8 = 4;
    pub const TRACE: u8 = 5;
}

/// One log line from a plugin.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, Copy)]
pub struct LogRecord<'a> {
    /// One of [`log_level`].
    pub level: u8,
    /// The plugin's `tracing` target (its module path).
    pub target: RStr<'a>,
    /// The request id of the call that logged, empty outside a call.
    pub request_id: RStr<'a>,
    /// The formatted message and fields.
    pub message: RStr<'a>,
}

/// What the host offers a plugin. Implemented by the host; plugins only call it.
#[sabi_trait]
pub trait Host: Send + Sync + Clone {
    /// The most verbose [`log_level`] the host records; plugins skip formatting anything above it.
    fn max_log_level(&self) -> u8;

    /// Emits one log line into the host's log, inside the current call's span.
    fn log(&self, record: LogRecord<'_>);

    /// A timer on the host's runtime.
    fn sleep(&self, millis: u64) -> FfiFuture<()>;

    /// Wall-clock time in Unix milliseconds, as the host sees it.
    fn now_unix_ms(&self) -> u64;

    /// The group's `[groups.config]` table, with environment overrides, as a JSON object.
    fn config_json(&self) -> RString;

    /// A secret declared by the group (`secret` service): from the environment or a file. Never
    /// logged by the host.
    fn secret(&self, name: RStr<'_>) -> RResult<RString, ServiceError>;

    fn sql(&self, name: RStr<'_>) -> RResult<SqlHandle, ServiceError>;
    fn kv(&self, name: RStr<'_>) -> RResult<KvHandle, ServiceError>;
    fn redis(&self, name: RStr<'_>) -> RResult<RedisHandle, ServiceError>;
    fn blob(&self, name: RStr<'_>) -> RResult<BlobHandle, ServiceError>;
    fn http_client(&self) -> RResult<HttpClientHandle, ServiceError>;
    fn queue(&self, name: RStr<'_>) -> RResult<QueueHandle, ServiceError>;

    /// A service another group exports, by the name this group declared it under.
    #[sabi(last_prefix_field)]
    fn service(&self, name: RStr<'_>) -> RResult<ServiceClientHandle, ServiceError>;
}

/// The host handle a plugin holds: reference-counted, cheap to clone.
pub type HostHandle = Host_TO<'static, RArc<()>>;

/// Arguments of [`PluginModule::instantiate`].
#[repr(C)]
#[derive(StableAbi)]
pub struct InstantiateArgs {
    /// The group's host: its log, timers, configuration and resolved services.
    pub host: HostHandle,
}

/// A loaded, instantiated function group. Implemented by the plugin (the SDK does it).
#[sabi_trait]
pub trait FunctionGroup: Send + Sync {
    /// Calls function `function` (its index in the manifest). The future is `Send + 'static` and
    /// owns everything it needs; dropping it cancels the call.
    fn call(&self, function: u32, ctx: CallContext, input: Input_NE) -> FfiFuture<RResult<Response, PluginError_NE>>;

    /// Calls `method` of the service this group exports as `service`.
    fn call_export(
        &self,
        service: RString,
        method: RString,
        payload: RVec<u8>,
        ctx: CallContext,
    ) -> ServiceResult<RVec<u8>>;

    /// Runs the group's stop hook. Called once, after the last call has finished.
    #[sabi(last_prefix_field)]
    fn shutdown(&self) -> FfiFuture<()>;
}

/// An instantiated group as the host owns it.
pub type GroupBox = FunctionGroup_TO<'static, RBox<()>>;

// === Root module ===

/// The root module every plugin exports. A prefix type: append fields after the last prefix field.
#[repr(C)]
#[derive(StableAbi)]
#[sabi(kind(Prefix(prefix_ref = PluginModuleRef)))]
#[sabi(missing_field(panic))]
pub struct PluginModule {
    /// The [`ABI_VERSION`] the plugin was built for (also exported as [`ABI_VERSION_SYMBOL`]).
    pub abi_version: extern "C" fn() -> u32,
    /// The plugin's manifest.
    pub manifest: extern "C" fn() -> RResult<Manifest, PluginError_NE>,
    /// Creates the group, running its init hook.
    #[sabi(last_prefix_field)]
    pub instantiate: extern "C" fn(InstantiateArgs) -> FfiFuture<RResult<GroupBox, PluginError_NE>>,
    /// The group's HTTP API as JSON (what its functions' signatures say: parameters, bodies,
    /// answers, schemas), for the host's OpenAPI document. Absent from plugins built before it.
    #[sabi(missing_field(option))]
    pub describe: extern "C" fn() -> RString,
}

impl RootModule for PluginModuleRef {
    declare_root_module_statics! {PluginModuleRef}
    const BASE_NAME: &'static str = "berth_plugin";
    const NAME: &'static str = "berth_plugin";
    const VERSION_STRINGS: VersionStrings = package_version_strings!();
}

// === Helpers shared by both sides ===

impl PluginError {
    /// A short, caller-safe description.
    pub fn describe(&self) -> String {
        match self {
            PluginError::Handler { code, message, .. } => format!("{code}: {message}"),
            PluginError::Panicked { message } => format!("panicked: {message}"),
            PluginError::Init { message } => format!("init hook failed: {message}"),
            PluginError::UnknownFunction { id } => format!("no function with id {id}"),
            PluginError::UnsupportedInput { message } => format!("unsupported input: {message}"),
        }
    }
}

/// Describes a possibly-unknown [`PluginError_NE`].
pub fn describe_error(err: &PluginError_NE) -> String {
    match err.as_enum() {
        Ok(e) => e.describe(),
        Err(_) => "an error of a kind this host does not know (plugin built with a newer berth)".into(),
    }
}

/// Builds an `RVec<Pair>` from string pairs.
pub fn pairs<'a, I: IntoIterator<Item = (&'a str, &'a str)>>(it: I) -> RVec<Pair> {
    it.into_iter().map(|(k, v)| Tuple2(RString::from(k), RString::from(v))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_head_lends_out_what_was_pushed() {
        let mut b = HttpRequestBuilder::new("GET", "/todos/7", "a=1", 32, 2, 1);
        b.header("host", "example.com");
        b.param("id", "7");
        b.header("accept", "*/*");
        let r = b.finish(RVec::from(&b"body"[..]));
        assert_eq!((r.method(), r.path(), r.query()), ("GET", "/todos/7", "a=1"));
        assert_eq!(r.headers.iter().collect::<Vec<_>>(), [("host", "example.com"), ("accept", "*/*")]);
        assert_eq!(r.params().collect::<Vec<_>>(), [("id", "7")]);
        assert_eq!(r.headers.find("HOST"), Some("example.com"));
        assert_eq!(&r.body[..], b"body");
    }

    #[test]
    fn a_head_builder_lowercases_names_on_request_and_hands_over_without_copying() {
        let mut b = HeadBuilder::with_capacity(0, 0);
        b.push("Content-Type", "Text/Plain", true);
        b.push("X-Keep", "V", false);
        let text_ptr = b.text.as_ptr();
        let head = b.finish();
        assert_eq!(head.iter().collect::<Vec<_>>(), [("content-type", "Text/Plain"), ("X-Keep", "V")]);
        assert_eq!(head.text.as_ptr(), text_ptr, "finish moved the buffer, it did not copy it");
    }

    #[test]
    fn a_span_outside_the_text_reads_as_empty_not_as_a_crash() {
        let mut head = Head::default();
        head.push("a", "b");
        assert_eq!(head.get(Span { start: 1, len: 100 }), "");
        assert_eq!(head.get(Span { start: u32::MAX, len: u32::MAX }), "");
        let mut multibyte = Head::default();
        multibyte.push("k", "é");
        // Splitting the two bytes of `é` is not a char boundary.
        assert_eq!(multibyte.get(Span { start: 1, len: 1 }), "");
    }
}
