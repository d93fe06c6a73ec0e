//! The blob trigger: functions bound to a bucket get `created` / `deleted` events for objects
//! written through Berth's blob service. The event body is shaped like an S3 notification.
//!
//! Delivery: a transient failure (5xx, timeout, panic, the group being swapped) is retried with
//! exponential backoff up to [`MAX_ATTEMPTS`]; a permanent one (4xx: the function refused the
//! object) or the last failed attempt dead-letters the event: its JSON, the error and the number
//! of attempts are written to `<data_dir>/dead-letter/blob/<group>/<function>/<event id>.json`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use prometheus::IntCounterVec;
use tokio::sync::{broadcast, Semaphore};
use tokio::task::JoinHandle;

use berth_core::dispatcher::{DeliveryError, EventBinding, EventData};
use berth_core::loader::TriggerSpec;
use berth_core::trigger::{RunnerContext, Trigger};
use berth_services::blob::{BlobEvent, BlobEventKind};
use berth_services::ServiceRegistry;

/// Attempts before an event is dead-lettered.
pub const MAX_ATTEMPTS: u32 = 5;
/// Events of one binding handled at once.
const CONCURRENCY: usize = 16;

pub struct BlobTrigger {
    registry: Arc<ServiceRegistry>,
    outcomes: IntCounterVec,
}

impl BlobTrigger {
    pub fn new(registry: Arc<ServiceRegistry>, metrics: &berth_core::metrics::Metrics) -> Self {
        let outcomes = metrics.register_once(|| {
            IntCounterVec::new(
                prometheus::Opts::new("berth_blob_events_total", "Blob events delivered, by outcome"),
                &["bucket", "outcome"],
            )
            .expect("valid metric")
        });
        BlobTrigger { registry, outcomes }
    }
}

/// The notification body, shaped like S3's (and close to OSS's).
pub fn notification(ev: &BlobEvent) -> serde_json::Value {
    let time = chrono::DateTime::<chrono::Utc>::from_timestamp_millis(ev.time_unix_ms as i64)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let name = match ev.kind {
        BlobEventKind::Created => "ObjectCreated:Put",
        BlobEventKind::Deleted => "ObjectRemoved:Delete",
    };
    serde_json::json!({
        "Records": [{
            "eventVersion": "2.1",
            "eventSource": "berth:blob",
            "eventTime": time,
            "eventName": name,
            "s3": {
                "s3SchemaVersion": "1.0",
                "bucket": { "name": &*ev.bucket },
                "object": { "key": ev.name, "size": ev.size },
            }
        }]
    })
}

impl Trigger for BlobTrigger {
    fn kind(&self) -> &'static str {
        "blob"
    }

    fn start(&self, binding: &EventBinding, ctx: RunnerContext) -> Result<JoinHandle<()>, String> {
        let TriggerSpec::Blob { bucket, events } = &binding.trigger else {
            return Err("not a blob binding".into());
        };
        let bucket_handle = self.registry.bucket(bucket)?;
        let rx = bucket_handle.subscribe();
        let runner = BlobRunner {
            binding: binding.clone(),
            events: events.clone(),
            dead_letter_dir: self
                .registry
                .data_dir()
                .join("dead-letter/blob")
                .join(&binding.group)
                .join(&binding.function),
            outcomes: self.outcomes.clone(),
        };
        Ok(tokio::spawn(runner.run(rx, ctx)))
    }
}

struct BlobRunner {
    binding: EventBinding,
    events: Vec<String>,
    dead_letter_dir: PathBuf,
    outcomes: IntCounterVec,
}

impl BlobRunner {
    async fn run(self, mut rx: broadcast::Receiver<BlobEvent>, mut ctx: RunnerContext) {
        let me = Arc::new(self);
        let slots = Arc::new(Semaphore::new(CONCURRENCY));
        let mut seq: u64 = 0;
        loop {
            let ev = tokio::select! {
                ev = rx.recv() => ev,
                _ = ctx.stop.changed() => break,
            };
            let ev = match ev {
                Ok(ev) => ev,
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    me.outcomes.with_label_values(&[&me.bucket(), "lost"]).inc_by(n);
                    tracing::error!(group = %me.binding.group, function = %me.binding.function, missed = n,
                        "blob trigger fell behind and missed events");
                    continue;
                }
                Err(broadcast::error::RecvError::Closed) => break,
            };
            if !me.events.iter().any(|e| e == ev.kind.as_str()) {
                continue;
            }
            seq += 1;
            let Ok(permit) = slots.clone().acquire_owned().await else { break };
            let (me2, dispatcher) = (me.clone(), ctx.dispatcher.clone());
            let id = format!("{}-{}-{}-{seq}", ev.bucket, ev.time_unix_ms, std::process::id());
            tokio::spawn(async move {
                me2.handle(&dispatcher, id, ev).await;
                drop(permit);
            });
        }
        // Wait for in-flight deliveries.
        let _ = slots.acquire_many(CONCURRENCY as u32).await;
    }

    fn bucket(&self) -> String {
        match &self.binding.trigger {
            TriggerSpec::Blob { bucket, .. } => bucket.clone(),
            _ => String::new(),
        }
    }

    async fn handle(&self, dispatcher: &berth_core::Dispatcher, id: String, ev: BlobEvent) {
        let body = notification(&ev);
        let mut attempt = 1;
        loop {
            let event = EventData {
                id: id.clone(),
                source: format!("berth/blob/{}", ev.bucket),
                ty: format!("berth.blob.{}", ev.kind.as_str()),
                subject: Some(ev.name.clone()),
                time: body["Records"][0]["eventTime"].as_str().map(str::to_owned),
                datacontenttype: Some("application/json".into()),
                data: body.to_string().into_bytes(),
                extensions: vec![("attempt".into(), attempt.to_string())],
            };
            let outcome = dispatcher.deliver(&self.binding.group, &self.binding.function, "blob", event).await;
            let error = match outcome {
                Ok(_) => {
                    self.outcomes.with_label_values(&[&self.bucket(), "ok"]).inc();
                    return;
                }
                Err(e) => e,
            };
            let permanent = matches!(&error, DeliveryError::Failed { status, .. } if status.is_client_error());
            if permanent || attempt >= MAX_ATTEMPTS {
                self.dead_letter(&id, &body, &error, attempt).await;
                return;
            }
            let backoff = Duration::from_millis(200 * 2u64.pow(attempt - 1)).min(Duration::from_secs(10));
            tracing::warn!(group = %self.binding.group, function = %self.binding.function, request_id = %id, attempt,
                error = %error, retry_in_ms = backoff.as_millis() as u64, "blob event failed; retrying");
            tokio::time::sleep(backoff).await;
            attempt += 1;
        }
    }

    async fn dead_letter(&self, id: &str, body: &serde_json::Value, error: &DeliveryError, attempts: u32) {
        self.outcomes.with_label_values(&[&self.bucket(), "dead_lettered"]).inc();
        let record = serde_json::json!({
            "id": id,
            "group": self.binding.group,
            "function": self.binding.function,
            "attempts": attempts,
            "error": error.to_string(),
            "event": body,
        });
        let path = self.dead_letter_dir.join(format!("{id}.json"));
        let written = async {
            tokio::fs::create_dir_all(&self.dead_letter_dir).await?;
            tokio::fs::write(&path, serde_json::to_vec_pretty(&record).unwrap_or_default()).await
        };
        match written.await {
            Ok(()) => tracing::error!(group = %self.binding.group, function = %self.binding.function, request_id = %id,
                attempts, error = %error, dead_letter = %path.display(), "blob event dead-lettered"),
            Err(e) => tracing::error!(request_id = %id, error = %error, write_error = %e,
                "blob event dead-lettered, but the dead-letter file could not be written"),
        }
    }
}
