//! Bridges the plugin's own copy of `tracing` (and its panic hook) to the host's log.
//!
//! A plugin links its own `tracing`, with its own global dispatcher. We install one subscriber
//! that forwards every enabled event to the host, tagged with the request id of the call being
//! polled. Only the global dispatcher is used: scoped dispatchers would touch a thread-local with
//! a destructor, which keeps the library from unloading.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Once, OnceLock};

use berth_plugin_api::{log_level, HostHandle, LogRecord, RStr};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Metadata, Subscriber};

use crate::context::with_current;

static GROUP_HOST: OnceLock<HostHandle> = OnceLock::new();
static MAX_LEVEL: AtomicU8 = AtomicU8::new(log_level::INFO);
static INSTALL: Once = Once::new();

/// The host this plugin was instantiated by (for logs outside a call).
pub(crate) fn group_host() -> Option<HostHandle> {
    GROUP_HOST.get().cloned()
}

/// Installs the forwarding subscriber and panic hook, once per loaded library.
pub(crate) fn install(host: &HostHandle) {
    let _ = GROUP_HOST.set(host.clone());
    MAX_LEVEL.store(host.max_log_level(), Ordering::Relaxed);
    INSTALL.call_once(|| {
        let _ = tracing::subscriber::set_global_default(HostForwarder);
        std::panic::set_hook(Box::new(|info| {
            let location = info.location().map(|l| format!(" at {}:{}", l.file(), l.line())).unwrap_or_default();
            let message = format!("handler panicked{location}: {}", crate::__private::panic_message(info.payload()));
            emit(log_level::ERROR, "berth::panic", &message);
        }));
    });
}

fn level_number(level: &Level) -> u8 {
    match *level {
        Level::ERROR => log_level::ERROR,
        Level::WARN => log_level::WARN,
        Level::INFO => log_level::INFO,
        Level::DEBUG => log_level::DEBUG,
        Level::TRACE => log_level::TRACE,
    }
}

fn emit(level: u8, target: &str, message: &str) {
    with_current(|call| {
        let (host, request_id) = match call {
            Some(c) => (Some(c.host.clone()), c.request_id.as_str()),
            None => (GROUP_HOST.get().cloned(), ""),
        };
        if let Some(host) = host {
            host.log(LogRecord {
                level,
                target: RStr::from(target),
                request_id: RStr::from(request_id),
                message: RStr::from(message),
            });
        }
    });
}

struct HostForwarder;

struct MessageVisitor(String);

impl Visit for MessageVisitor {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.0, "{value:?}");
        } else {
            let _ = write!(self.0, "{}{}={value:?}", if self.0.is_empty() { "" } else { " " }, field.name());
        }
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.0.push_str(value);
        } else {
            let _ = write!(self.0, "{}{}={value}", if self.0.is_empty() { "" } else { " " }, field.name());
        }
    }
}

impl Subscriber for HostForwarder {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        level_number(metadata.level()) <= MAX_LEVEL.load(Ordering::Relaxed)
    }
    fn max_level_hint(&self) -> Option<tracing::level_filters::LevelFilter> {
        use tracing::level_filters::LevelFilter;
        Some(match MAX_LEVEL.load(Ordering::Relaxed) {
            0 => LevelFilter::OFF,
            log_level::ERROR => LevelFilter::ERROR,
            log_level::WARN => LevelFilter::WARN,
            log_level::INFO => LevelFilter::INFO,
            log_level::DEBUG => LevelFilter::DEBUG,
            _ => LevelFilter::TRACE,
        })
    }
    fn new_span(&self, _span: &Attributes<'_>) -> Id {
        // Spans inside a plugin are not forwarded: the host's span for the call already carries
        // the request id, group and function.
        Id::from_u64(1)
    }
    fn record(&self, _span: &Id, _values: &Record<'_>) {}
    fn record_follows_from(&self, _span: &Id, _follows: &Id) {}
    fn event(&self, event: &Event<'_>) {
        let mut visitor = MessageVisitor(String::new());
        event.record(&mut visitor);
        emit(level_number(event.metadata().level()), event.metadata().target(), &visitor.0);
    }
    fn enter(&self, _span: &Id) {}
    fn exit(&self, _span: &Id) {}
}
