//! The dispatcher: every serving function by group and name. The HTTP trigger routes by method
//! and path; every other trigger (timer, queue, blob, direct invoke) names a function by group
//! and name and delivers a CloudEvents event through [`Dispatcher::deliver`]. Each delivery looks
//! the function up anew, so a trigger keeps working across a hot swap and reaches the new version.

use std::collections::BTreeMap;
use std::sync::Arc;

use arc_swap::ArcSwap;
use berth_plugin_api::{Event, Input, RString, RVec, Response, Tuple2};

use berth_loader::TriggerSpec;
use http::StatusCode;

use crate::call::CallError;
use crate::error::HttpError;
use crate::group::FunctionEntry;

/// (group, function)
pub type FunctionKey = (String, String);

/// Every serving function, swapped atomically per group.
#[derive(Default)]
pub struct Dispatcher {
    functions: ArcSwap<BTreeMap<FunctionKey, Arc<FunctionEntry>>>,
    /// Bindings from `berth.toml` (`[[triggers]]`), applied to functions that exist.
    extra: ArcSwap<Vec<EventBinding>>,
}

/// One event trigger of one function.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventBinding {
    pub group: String,
    pub function: String,
    pub trigger: TriggerSpec,
}

/// A CloudEvents event as triggers build it.
#[derive(Debug, Clone, Default)]
pub struct EventData {
    pub id: String,
    pub source: String,
    pub ty: String,
    pub subject: Option<String>,
    pub time: Option<String>,
    pub datacontenttype: Option<String>,
    pub data: Vec<u8>,
    pub extensions: Vec<(String, String)>,
}

impl EventData {
    pub fn into_input(self) -> Input {
        let opt = |v: Option<String>| v.map(RString::from).into();
        Input::Event(Event {
            id: self.id.into(),
            source: self.source.into(),
            ty: self.ty.into(),
            subject: opt(self.subject),
            time: opt(self.time),
            datacontenttype: opt(self.datacontenttype),
            data: RVec::from(self.data),
            extensions: self.extensions.into_iter().map(|(k, v)| Tuple2(RString::from(k), RString::from(v))).collect(),
        })
    }
}

/// Why a delivery did not reach a function.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeliveryError {
    #[error("no function `{1}` in group `{0}` is serving")]
    NoSuchFunction(String, String),
    #[error("function failed: {code}: {message} (status {})", status.as_u16())]
    Failed { status: StatusCode, code: String, message: String },
}

impl Dispatcher {
    /// The serving entry of `group`/`function`.
    pub fn get(&self, group: &str, function: &str) -> Option<Arc<FunctionEntry>> {
        self.functions.load().get(&(group.to_owned(), function.to_owned())).cloned()
    }

    /// Replaces every function of `group` (a load or a swap).
    pub fn replace_group(&self, group: &str, entries: Vec<Arc<FunctionEntry>>) {
        self.functions.rcu(|current| {
            let mut next: BTreeMap<_, _> =
                current.iter().filter(|((g, _), _)| g != group).map(|(k, v)| (k.clone(), v.clone())).collect();
            for e in &entries {
                next.insert((group.to_owned(), e.name.to_string()), e.clone());
            }
            next
        });
    }

    /// Removes every function of `group`.
    pub fn remove_group(&self, group: &str) {
        self.replace_group(group, Vec::new());
    }

    /// Sets the bindings `berth.toml` adds (`[[triggers]]`). A queue binding replaces the
    /// function's own binding to the same queue (settings it leaves at 0 keep the function's
    /// own); anything else is added.
    pub fn set_extra_bindings(&self, bindings: Vec<EventBinding>) {
        self.extra.store(Arc::new(bindings));
    }

    /// Every event trigger of every serving function (not HTTP routes), with the extra bindings
    /// of functions that exist merged in.
    pub fn bindings(&self) -> Vec<EventBinding> {
        let table = self.functions.load();
        let mut out = Vec::new();
        for ((group, function), entry) in table.iter() {
            for t in &entry.triggers {
                if !matches!(t, TriggerSpec::Http { .. }) {
                    out.push(EventBinding { group: group.clone(), function: function.clone(), trigger: t.clone() });
                }
            }
        }
        for b in self.extra.load().iter() {
            if !table.contains_key(&(b.group.clone(), b.function.clone())) {
                continue;
            }
            let same_queue = |o: &EventBinding| {
                o.group == b.group
                    && o.function == b.function
                    && matches!((&o.trigger, &b.trigger),
                        (TriggerSpec::Queue { queue: x, .. }, TriggerSpec::Queue { queue: y, .. }) if x == y)
            };
            let mut merged = b.clone();
            // Settings the override leaves at 0 keep the function's own.
            if let (Some(own), TriggerSpec::Queue { concurrency, max_attempts, .. }) =
                (out.iter().find(|o| same_queue(o)), &mut merged.trigger)
            {
                if let TriggerSpec::Queue { concurrency: c, max_attempts: m, .. } = &own.trigger {
                    *concurrency = concurrency.or(*c);
                    *max_attempts = max_attempts.or(*m);
                }
            }
            out.retain(|o| !same_queue(o));
            out.push(merged);
        }
        out
    }

    /// Delivers `event` to `group`/`function` through trigger `trigger`, within the function's
    /// timeout. The event id is the request id. A response status ≥ 400 is a failure.
    pub async fn deliver(
        &self,
        group: &str,
        function: &str,
        trigger: &'static str,
        event: EventData,
    ) -> Result<Response, DeliveryError> {
        self.deliver_until(group, function, trigger, event, None).await
    }

    /// [`Dispatcher::deliver`], cancelled at `cap` if that comes before the function's timeout
    /// (a platform's deadline for the invocation).
    pub async fn deliver_until(
        &self,
        group: &str,
        function: &str,
        trigger: &'static str,
        event: EventData,
        cap: Option<tokio::time::Instant>,
    ) -> Result<Response, DeliveryError> {
        let entry =
            self.get(group, function).ok_or_else(|| DeliveryError::NoSuchFunction(group.into(), function.into()))?;
        let request_id = event.id.clone();
        let span = tracing::info_span!(
            "invoke",
            request_id = %request_id,
            group = %entry.group.name,
            function = %entry.name,
            trigger,
            event.ty = %event.ty,
        );
        let started = tokio::time::Instant::now();
        let outcome = tracing::Instrument::instrument(
            crate::call::call(
                &entry,
                trigger,
                &request_id,
                event.into_input(),
                started,
                crate::call::deadline(&entry, started, cap),
            ),
            span,
        )
        .await;
        match outcome {
            Ok(r) if r.status < 400 => Ok(r),
            Ok(r) => Err(DeliveryError::Failed {
                status: StatusCode::from_u16(r.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                code: "status".into(),
                message: String::from_utf8_lossy(&r.body).chars().take(500).collect(),
            }),
            Err(e) => Err(match e {
                CallError::Handler { status, code, message } => DeliveryError::Failed { status, code, message },
                other => DeliveryError::Failed {
                    status: other.status(),
                    code: other.code().to_owned(),
                    message: match &other {
                        CallError::Panicked { message } | CallError::Plugin { message } => message.clone(),
                        _ => other.public_message(),
                    },
                },
            }),
        }
    }
}
