//! The per-call context: request id, deadline, and the host's timers and log.

use std::cell::Cell;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use berth_plugin_api::{HostHandle, RStr, RString};

/// What the host told us about one call. Shared by the handler's [`Context`] and the log bridge.
/// The strings stay as the host sent them (nothing is copied per call).
pub(crate) struct CallState {
    pub(crate) request_id: RString,
    pub(crate) deadline_unix_ms: u64,
    pub(crate) host: HostHandle,
    pub(crate) trigger: RStr<'static>,
    pub(crate) caller: Option<RString>,
}

impl CallState {
    /// The state of work outside any call (init and stop hooks).
    pub(crate) fn background(host: HostHandle) -> Self {
        CallState { request_id: RString::new(), deadline_unix_ms: 0, host, trigger: RStr::from_str(""), caller: None }
    }
}

/// The context of one invocation. Cheap to clone; take it as a handler argument.
#[derive(Clone)]
pub struct Context {
    pub(crate) state: Arc<CallState>,
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("request_id", &self.state.request_id)
            .field("deadline_unix_ms", &self.state.deadline_unix_ms)
            .finish()
    }
}

impl Context {
    pub(crate) fn new(request_id: String, deadline_unix_ms: u64, host: HostHandle, trigger: &'static str) -> Self {
        Context {
            state: Arc::new(CallState {
                request_id: request_id.into(),
                deadline_unix_ms,
                host,
                trigger: RStr::from_str(trigger),
                caller: None,
            }),
        }
    }

    pub(crate) fn from_abi(ctx: berth_plugin_api::CallContext) -> Self {
        Context {
            state: Arc::new(CallState {
                request_id: ctx.request_id,
                deadline_unix_ms: ctx.deadline_unix_ms,
                host: ctx.host,
                trigger: ctx.trigger,
                caller: ctx.caller.into_option(),
            }),
        }
    }

    /// Which trigger called: `http`, `timer`, `queue`, `blob`, `invoke` or `service`.
    pub fn trigger(&self) -> &str {
        self.state.trigger.as_str()
    }

    /// Who called, when the trigger knows (the consumer group of a service call, ...).
    pub fn caller(&self) -> Option<&str> {
        self.state.caller.as_deref()
    }

    /// The request id the host assigned (or took from `x-request-id`).
    pub fn request_id(&self) -> &str {
        &self.state.request_id
    }

    /// Time left before the host cancels this call, if it has a deadline.
    pub fn remaining(&self) -> Option<Duration> {
        if self.state.deadline_unix_ms == 0 {
            return None;
        }
        let now = self.state.host.now_unix_ms();
        Some(Duration::from_millis(self.state.deadline_unix_ms.saturating_sub(now)))
    }

    /// Sleeps on the host's runtime. (A plugin has no runtime of its own: `tokio::time::sleep`
    /// inside a plugin panics.)
    pub fn sleep(&self, duration: Duration) -> impl Future<Output = ()> + Send + 'static {
        let millis = u64::try_from(duration.as_millis()).unwrap_or(u64::MAX);
        self.state.host.sleep(millis)
    }
}

// === The call being polled on this thread ===
//
// A plain pointer in a const-initialised `Cell`: it has no destructor, so touching it does not
// register a thread-local destructor that would keep the plugin library from unloading.

thread_local! {
    static CURRENT: Cell<*const CallState> = const { Cell::new(std::ptr::null()) };
}

/// Marks `state` as the current call on this thread until dropped.
pub(crate) struct CurrentGuard {
    previous: *const CallState,
}

impl CurrentGuard {
    pub(crate) fn enter(state: &Arc<CallState>) -> Self {
        let previous = CURRENT.with(|c| c.replace(Arc::as_ptr(state)));
        CurrentGuard { previous }
    }
}

impl Drop for CurrentGuard {
    fn drop(&mut self) {
        CURRENT.with(|c| c.set(self.previous));
    }
}

/// Runs `f` with the call being polled on this thread, if any.
#[allow(unsafe_code)]
pub(crate) fn with_current<R>(f: impl FnOnce(Option<&CallState>) -> R) -> R {
    let ptr = CURRENT.with(Cell::get);
    // SAFETY: the pointer is set only by a live `CurrentGuard`, created from an `Arc<CallState>`
    // that the guarded future owns for longer than the guard, and reset when the guard drops
    // (guards nest, LIFO, on one thread). So a non-null value points to a live `CallState`, and
    // the reference does not escape `f`.
    let state = if ptr.is_null() { None } else { Some(unsafe { &*ptr }) };
    f(state)
}

/// Sleeps on the host's runtime, using the current call's host. Must be awaited inside a handler.
///
/// # Panics
/// Outside a Berth call (there is no host to ask).
pub fn sleep(duration: Duration) -> impl Future<Output = ()> + Send + 'static {
    let millis = u64::try_from(duration.as_millis()).unwrap_or(u64::MAX);
    let host = with_current(|s| s.map(|s| s.host.clone()))
        .or_else(crate::log::group_host)
        .expect("berth::sleep called outside a Berth call");
    host.sleep(millis)
}

crate::services::service_accessors!(Context, |s| &s.state.host);
