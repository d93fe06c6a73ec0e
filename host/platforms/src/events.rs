//! Where a platform's non-HTTP events go, and the events they become. A function sees the same
//! event it would get from Berth's own trigger (type, source, data shape), whichever platform
//! delivered it: `berth.timer.fired`, `berth.queue.message`, `berth.blob.created`/`deleted`
//! (with S3-shaped `Records` as data), or the raw payload for direct invoke.

use berth_core::dispatcher::{DeliveryError, EventData};
use berth_core::loader::TriggerSpec;
use berth_plugin_api::Response;
use tokio::time::Instant;

use crate::config::FunctionRef;
use crate::Shim;

/// Why an event has nowhere to go.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    #[error("no timer function is bound to schedule `{rule}`: add `[platform.schedules] \"{rule}\" = \"group/function\"` to berth.toml (timer functions: {known})")]
    Schedule { rule: String, known: String },
    #[error("no function consumes queue `{queue}`: give a function `#[berth::queue(\"{queue}\")]` or add `[platform.queues] \"{queue}\" = \"group/function\"` to berth.toml")]
    Queue { queue: String },
    #[error("no function is bound to bucket `{bucket}`: give a function `#[berth::blob(bucket = \"{bucket}\")]` or add `[platform.buckets] \"{bucket}\" = \"group/function\"` to berth.toml")]
    Bucket { bucket: String },
    #[error("{what} is not an event Berth knows, and no function takes direct invokes: set `[platform] invoke = \"group/function\"` in berth.toml")]
    Invoke { what: String },
}

impl Shim {
    /// The timer function of a platform schedule.
    pub fn schedule_target(&self, rule: &str) -> Result<FunctionRef, TargetError> {
        if let Some(f) = self.config.schedules.get(rule) {
            return Ok(f.clone());
        }
        let timers: Vec<FunctionRef> = self
            .dispatcher
            .bindings()
            .into_iter()
            .filter(|b| matches!(b.trigger, TriggerSpec::Timer { .. }))
            .map(|b| FunctionRef { group: b.group, function: b.function })
            .collect();
        let named = |f: &&FunctionRef| rule == f.function || rule == format!("{}-{}", f.group, f.function);
        match timers.iter().find(named) {
            Some(f) => Ok(f.clone()),
            None => Err(TargetError::Schedule {
                rule: rule.to_owned(),
                known: if timers.is_empty() {
                    "none".into()
                } else {
                    timers.iter().map(|f| f.to_string()).collect::<Vec<_>>().join(", ")
                },
            }),
        }
    }

    /// The functions consuming a platform queue (and the queue binding they know it by).
    pub fn queue_targets(&self, queue: &str) -> Result<Vec<(FunctionRef, String)>, TargetError> {
        if let Some(f) = self.config.queues.get(queue) {
            return Ok(vec![(f.clone(), queue.to_owned())]);
        }
        let found: Vec<_> = self
            .dispatcher
            .bindings()
            .into_iter()
            .filter_map(|b| match &b.trigger {
                TriggerSpec::Queue { queue: q, .. } if q == queue => {
                    Some((FunctionRef { group: b.group, function: b.function }, q.clone()))
                }
                _ => None,
            })
            .collect();
        if found.is_empty() {
            return Err(TargetError::Queue { queue: queue.to_owned() });
        }
        Ok(found)
    }

    /// The functions bound to a platform bucket for events of `kind` (`created`, `deleted`).
    pub fn bucket_targets(&self, bucket: &str, kind: &str) -> Result<Vec<FunctionRef>, TargetError> {
        if let Some(f) = self.config.buckets.get(bucket) {
            return Ok(vec![f.clone()]);
        }
        let bound: Vec<_> = self
            .dispatcher
            .bindings()
            .into_iter()
            .filter_map(|b| match &b.trigger {
                TriggerSpec::Blob { bucket: name, events } if name == bucket => {
                    Some((FunctionRef { group: b.group, function: b.function }, events.iter().any(|e| e == kind)))
                }
                _ => None,
            })
            .collect();
        if bound.is_empty() {
            return Err(TargetError::Bucket { bucket: bucket.to_owned() });
        }
        Ok(bound.into_iter().filter(|(_, wanted)| *wanted).map(|(f, _)| f).collect())
    }

    /// The direct-invoke function, for an event described as `what`.
    pub fn invoke_target(&self, what: &str) -> Result<FunctionRef, TargetError> {
        self.config.invoke.clone().ok_or_else(|| TargetError::Invoke { what: what.to_owned() })
    }

    /// Delivers `event` to `target` through trigger `trigger`, cancelled at `deadline`.
    pub async fn deliver(
        &self,
        target: &FunctionRef,
        trigger: &'static str,
        event: EventData,
        deadline: Option<Instant>,
    ) -> Result<Response, DeliveryError> {
        self.dispatcher.deliver_until(&target.group, &target.function, trigger, event, deadline).await
    }
}

/// The event a timer function gets for a platform schedule firing at `time` (RFC 3339).
pub fn timer_event(target: &FunctionRef, id: &str, time: Option<&str>, schedule: &str) -> EventData {
    let scheduled = time.map(str::to_owned).unwrap_or_else(now_rfc3339);
    EventData {
        id: id.to_owned(),
        source: format!("berth/timer/{}/{}", target.group, target.function),
        ty: "berth.timer.fired".into(),
        time: Some(scheduled.clone()),
        datacontenttype: Some("application/json".into()),
        data: serde_json::json!({ "scheduled": scheduled, "schedule": schedule }).to_string().into_bytes(),
        ..Default::default()
    }
}

/// One queue message as a queue function gets it.
pub struct QueueMessage<'a> {
    pub queue: &'a str,
    pub id: &'a str,
    pub body: Vec<u8>,
    pub attempt: u32,
    pub time: Option<String>,
    /// The message's own attributes, as extensions (names lower-cased, `[a-z0-9]` only).
    pub attributes: Vec<(String, String)>,
}

/// The event a queue function gets for `msg`.
pub fn queue_event(msg: QueueMessage<'_>) -> EventData {
    let mut extensions = vec![("attempt".to_owned(), msg.attempt.to_string())];
    extensions.extend(msg.attributes);
    EventData {
        id: msg.id.to_owned(),
        source: format!("berth/queue/{}", msg.queue),
        ty: "berth.queue.message".into(),
        time: msg.time,
        data: msg.body,
        extensions,
        ..Default::default()
    }
}

/// One object event in the S3 shape Berth's blob trigger delivers (`{"Records": [record]}`).
pub struct BlobChange<'a> {
    pub id: String,
    pub bucket: &'a str,
    /// `created` or `deleted`.
    pub kind: &'static str,
    pub key: String,
    pub time: Option<String>,
    /// The record as the platform sent it, S3-shaped (`eventName`, `s3.bucket`, `s3.object`).
    pub record: serde_json::Value,
}

/// The event a blob function gets for `change`.
pub fn blob_event(change: BlobChange<'_>) -> EventData {
    EventData {
        id: change.id,
        source: format!("berth/blob/{}", change.bucket),
        ty: format!("berth.blob.{}", change.kind),
        subject: Some(change.key),
        time: change.time,
        datacontenttype: Some("application/json".into()),
        data: serde_json::json!({ "Records": [change.record] }).to_string().into_bytes(),
        extensions: vec![("attempt".into(), "1".into())],
    }
}

/// `created` for `ObjectCreated:*` (S3, OSS, `cos:ObjectCreated:*`), `deleted` for removals.
pub fn blob_kind(event_name: &str) -> Option<&'static str> {
    let name = event_name.strip_prefix("cos:").unwrap_or(event_name);
    if name.starts_with("ObjectCreated") {
        Some("created")
    } else if name.starts_with("ObjectRemoved") {
        Some("deleted")
    } else {
        None
    }
}

/// The event a direct-invoke function gets for a platform payload.
pub fn invoke_event(id: &str, source: &str, payload: Vec<u8>) -> EventData {
    EventData {
        id: id.to_owned(),
        source: source.to_owned(),
        ty: "berth.invoke".into(),
        time: Some(now_rfc3339()),
        datacontenttype: Some("application/json".into()),
        data: payload,
        ..Default::default()
    }
}

/// A delivery failure as one line for a platform's error channel.
pub fn failure_message(target: &FunctionRef, e: &DeliveryError) -> String {
    format!("{target}: {e}")
}

/// Now, RFC 3339 with milliseconds, UTC.
pub fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Unix milliseconds as RFC 3339 (SQS's `SentTimestamp`).
pub fn unix_ms_rfc3339(ms: i64) -> Option<String> {
    chrono::DateTime::<chrono::Utc>::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
}

/// A function's answer in a JSON summary: its JSON, or its text.
pub fn answer_value(body: &[u8]) -> serde_json::Value {
    serde_json::from_slice(body).unwrap_or_else(|_| serde_json::Value::from(String::from_utf8_lossy(body)))
}
