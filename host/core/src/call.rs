//! Calling a function: the one path every trigger goes through (deadline, cancellation, panics,
//! metrics).

use std::future::Future;
use std::pin::Pin;
use std::task::Poll;

use berth_plugin_api::{describe_error, CallContext, Input, Input_NE, PluginError, RResult, RStr, Response};
use http::StatusCode;
use tokio::time::Instant as TokioInstant;

use crate::clock::now_unix_ms;
use crate::error::HttpError;
use crate::group::{FunctionEntry, GroupCode};
use crate::isolation::WorkerCallHead;

/// When a call of `entry` that arrived at `started` is cancelled: after the function's timeout,
/// or earlier when the platform gives the call less time (`cap`: Lambda's
/// `Lambda-Runtime-Deadline-Ms`, a request's [`Deadline`]).
pub fn deadline(entry: &FunctionEntry, started: TokioInstant, cap: Option<TokioInstant>) -> TokioInstant {
    let own = started + entry.timeout;
    cap.map_or(own, |cap| cap.min(own))
}

/// How far past its timeout an in-process call may finish before it counts as a runaway.
const RUNAWAY_SLACK: std::time::Duration = std::time::Duration::from_millis(100);

/// A response extension the HTTP trigger sets when the call timed out (kubeless answers 408 for
/// it, SCF marks it `X-Scf-Error-Type: Timeout`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimedOut;

/// A deadline a platform sets on one call, carried as a request extension: the HTTP trigger
/// cancels the call by then if the function's own timeout is later.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deadline(pub TokioInstant);

/// Why a call did not produce a response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallError {
    /// The handler returned an error (a status the plugin sent that is not a valid HTTP status
    /// becomes 500).
    Handler { status: StatusCode, code: String, message: String },
    /// The deadline passed; the handler's future was dropped.
    Timeout { after_ms: u64 },
    /// The handler panicked (caught inside the plugin).
    Panicked { message: String },
    /// The plugin reported something else (unknown function, unsupported input, newer error kind).
    Plugin { message: String },
    /// The worker process of an isolated group died (or was killed) during the call.
    WorkerCrashed { group: String, detail: String },
    /// The isolated group cannot take calls now (its worker keeps crashing: the circuit is
    /// open, or it is stopping); `retry_after_s` is when to try again.
    Unavailable { group: String, detail: String, retry_after_s: u64 },
}

impl HttpError for CallError {
    fn status(&self) -> StatusCode {
        match self {
            CallError::Handler { status, .. } => *status,
            CallError::Timeout { .. } => StatusCode::GATEWAY_TIMEOUT,
            CallError::Panicked { .. } | CallError::Plugin { .. } => StatusCode::INTERNAL_SERVER_ERROR,
            CallError::WorkerCrashed { .. } => StatusCode::BAD_GATEWAY,
            CallError::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    fn code(&self) -> &str {
        match self {
            CallError::Handler { code, .. } => code,
            CallError::Timeout { .. } => "timeout",
            CallError::Panicked { .. } => "panic",
            CallError::Plugin { .. } => "internal",
            CallError::WorkerCrashed { .. } => "worker_crashed",
            CallError::Unavailable { .. } => "group_unavailable",
        }
    }

    /// Panic details stay in the log.
    fn public_message(&self) -> String {
        match self {
            CallError::Handler { message, .. } => message.clone(),
            CallError::Timeout { after_ms } => {
                format!("the function did not finish within {after_ms} ms")
            }
            CallError::Panicked { .. } => {
                "the function panicked; the host log has the details under this request id".into()
            }
            CallError::Plugin { .. } => {
                "the function failed inside the host; see the host log for this request id".into()
            }
            CallError::WorkerCrashed { group, detail } => {
                format!("group `{group}`: its worker process {detail} during this call; it is being restarted")
            }
            CallError::Unavailable { group, detail, retry_after_s } => {
                format!("group `{group}` is unavailable: {detail}; retry in {retry_after_s} s")
            }
        }
    }
}

/// Calls `entry` with `input`, cancelling it at `deadline` (see [`deadline`]); `started` is when
/// the request or event arrived.
pub async fn call(
    entry: &FunctionEntry,
    trigger: &'static str,
    request_id: &str,
    input: Input,
    started: TokioInstant,
    deadline: TokioInstant,
) -> Result<Response, CallError> {
    let remaining = deadline.saturating_duration_since(TokioInstant::now());
    let ctx = CallContext {
        request_id: request_id.into(),
        deadline_unix_ms: now_unix_ms() + remaining.as_millis() as u64,
        host: entry.group.host.clone(),
        trigger: RStr::from_str(trigger),
        caller: berth_plugin_api::ROption::RNone,
    };
    // Counted until the call's future is dropped (a swap waits for the old version's calls).
    let _inflight = entry.group.calls.enter();
    let group_box = match &entry.group.code {
        GroupCode::Library(p) => &p.group,
        GroupCode::Linked(l) => &l.group,
        GroupCode::Worker(w) => {
            let head = WorkerCallHead {
                function: entry.index,
                function_name: entry.name.clone(),
                request_id: request_id.to_owned(),
                deadline_unix_ms: ctx.deadline_unix_ms,
                trigger,
            };
            let outcome = match tokio::time::timeout_at(deadline, w.call(head, input)).await {
                Err(_) => {
                    entry.metrics.timeouts.inc();
                    Err(CallError::Timeout { after_ms: deadline.saturating_duration_since(started).as_millis() as u64 })
                }
                Ok(out) => out,
            };
            return finish(entry, started, outcome);
        }
    };
    let mut fut = group_box.call(entry.index, ctx, Input_NE::new(input));
    // Most calls finish in their first poll: only a call that has to wait arms a timer (making
    // and dropping one takes the timer driver's lock). `timeout_at` polls the call before it
    // looks at the clock too, so a call past its deadline still gets that one poll either way.
    let first = std::future::poll_fn(|cx| Poll::Ready(Pin::new(&mut fut).poll(cx))).await;
    let finished = match first {
        Poll::Ready(out) => Ok(out),
        Poll::Pending => tokio::time::timeout_at(deadline, fut).await,
    };
    let outcome = match finished {
        Err(_) => {
            entry.metrics.timeouts.inc();
            Err(CallError::Timeout { after_ms: deadline.saturating_duration_since(started).as_millis() as u64 })
        }
        Ok(RResult::ROk(response)) => Ok(response),
        Ok(RResult::RErr(e)) => Err(match e.as_enum() {
            Ok(PluginError::Handler { status, code, message }) => CallError::Handler {
                status: StatusCode::from_u16(*status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                code: code.to_string(),
                message: message.to_string(),
            },
            Ok(PluginError::Panicked { message }) => {
                entry.metrics.panics.inc();
                tracing::error!(panic = %message, "function panicked; answering 500");
                CallError::Panicked { message: message.to_string() }
            }
            _ => CallError::Plugin { message: describe_error(&e) },
        }),
    };
    finish(entry, started, outcome)
}

/// Counts a call's outcome in its function's metrics.
fn finish(
    entry: &FunctionEntry,
    started: TokioInstant,
    outcome: Result<Response, CallError>,
) -> Result<Response, CallError> {
    if let Err(CallError::Panicked { message }) = &outcome {
        if entry.group.worker().is_some() {
            entry.metrics.panics.inc();
            tracing::error!(panic = %message, "function panicked; answering 500");
        }
    }
    let status = match &outcome {
        Ok(r) => r.status,
        Err(e) => e.status().as_u16(),
    };
    if status >= 500 && matches!(outcome, Ok(_) | Err(CallError::Handler { .. })) {
        entry.metrics.handler_errors.inc();
    }
    entry.metrics.count(status);
    let took = started.elapsed();
    entry.metrics.duration.observe(took.as_secs_f64());
    if took > entry.timeout + RUNAWAY_SLACK && entry.group.worker().is_none() {
        // In the host's process a timeout can only fire at an await: this call held a host
        // thread past its deadline (a loop that never yields, blocking I/O).
        entry.metrics.runaways.inc();
        tracing::error!(
            timeout_ms = entry.timeout.as_millis() as u64,
            took_ms = took.as_millis() as u64,
            "the function ran past its timeout without yielding and held a host thread; \
             run its group with isolation = \"process\" to have such calls cut off at their deadline"
        );
    }
    outcome
}
