//! The queue trigger and queue publishing, over Redis Streams, NATS JetStream and RabbitMQ.
//!
//! A `[queues.<name>]` section names a broker and a stream (or queue). A function bound to it
//! (`#[berth::queue(stream = "orders")]`, or `[[triggers]]` in `berth.toml`) gets every message
//! as a CloudEvents event, at least once:
//!
//! - a message is acknowledged only after the function succeeded;
//! - a failure is retried after an exponential backoff with jitter; after `max_attempts`, or at
//!   once for a permanent failure (a 4xx answer), the message is published to the dead-letter
//!   stream with the error (`x-berth-error`, `x-berth-attempts`, `x-berth-original-id`), and only
//!   then acknowledged;
//! - while the function is not serving (its group is being swapped), a message is held and
//!   offered again; it is never acknowledged unhandled;
//! - a stopping runner takes no more messages and lets in-flight ones finish; anything not
//!   acknowledged stays with the broker (consumer groups, durable consumers, durable queues) and
//!   is delivered again, after a restart or a `SIGKILL` too.
//!
//! Each backend (one file each) implements consuming and publishing; this module holds what they
//! share: the binding's resolved settings, the event a message becomes, and the verdict.

pub mod config;
#[cfg(feature = "nats")]
mod nats;
mod publish;
#[cfg(feature = "rabbitmq")]
mod rabbitmq;
#[cfg(feature = "redis")]
mod redis;
mod sink;

#[cfg(any(feature = "nats", feature = "rabbitmq"))]
pub(crate) use publish::unavailable;
pub use publish::Publishers;
pub(crate) use publish::{Publish, PublishFuture};
/// A Redis stream entry as a message (public for the fuzz targets: entries are outside input).
#[cfg(feature = "redis")]
pub use redis::received as redis_entry;

use std::collections::BTreeMap;
use std::future::Future;
use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;
use std::time::Duration;

use http::StatusCode;
use prometheus::{IntCounter, IntCounterVec};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;

use berth_core::dispatcher::{DeliveryError, EventBinding, EventData};
use berth_core::loader::TriggerSpec;
use berth_core::metrics::Metrics;
use berth_core::trigger::{RunnerContext, Trigger};
use config::{QueueConfig, QueueKind, TriggerBindingConfig};

/// Header (or field) a dead-lettered message carries: the last error.
pub const ERROR_HEADER: &str = "x-berth-error";
/// Header a dead-lettered message carries: the attempts made.
pub const ATTEMPTS_HEADER: &str = "x-berth-attempts";
/// Header a dead-lettered message carries: the backend's id of the original message.
pub const ORIGINAL_ID_HEADER: &str = "x-berth-original-id";
/// How often a message whose function is not serving is offered again.
const HOLD_RETRY: Duration = Duration::from_millis(250);

/// The bindings `[[triggers]]` in `berth.toml` adds, for [`berth_core::Dispatcher::set_extra_bindings`].
pub fn config_bindings(triggers: &[TriggerBindingConfig]) -> Vec<EventBinding> {
    triggers
        .iter()
        .map(|t| EventBinding {
            group: t.group.clone(),
            function: t.function.clone(),
            trigger: TriggerSpec::Queue {
                queue: t.queue.clone(),
                concurrency: t.concurrency,
                max_attempts: t.max_attempts,
            },
        })
        .collect()
}

// === QueueTrigger ===

/// The `queue` trigger kind: one consumer per binding.
pub struct QueueTrigger {
    queues: BTreeMap<String, QueueConfig>,
    messages: IntCounterVec,
}

impl QueueTrigger {
    pub fn new(queues: &BTreeMap<String, QueueConfig>, metrics: &Metrics) -> Self {
        QueueTrigger { queues: queues.clone(), messages: queue_counter(metrics) }
    }
}

/// `berth_queue_messages_total{queue,outcome}`: `acked`, `retried`, `dead_lettered`.
fn queue_counter(metrics: &Metrics) -> IntCounterVec {
    metrics.register_once(|| {
        IntCounterVec::new(
            prometheus::Opts::new("berth_queue_messages_total", "Queue messages settled, by queue and outcome"),
            &["queue", "outcome"],
        )
        .expect("valid metric")
    })
}

/// The message for a queue whose broker this build left out.
fn compiled_out(queue: &str, kind: QueueKind) -> String {
    format!(
        "`[queues.{queue}]` is kind = \"{0}\", which this berth was built without; rebuild it with \
         `--features {0}` (or `--features full`)",
        kind.as_str()
    )
}

/// Checks every `[queues.*]` against the brokers this build has (before the host binds a port).
pub fn check_queues(queues: &BTreeMap<String, QueueConfig>) -> Result<(), String> {
    for (name, q) in queues {
        if !q.kind.compiled_in() {
            return Err(compiled_out(name, q.kind));
        }
    }
    Ok(())
}

fn not_configured(name: &str) -> String {
    format!(
        "queue `{name}` is not configured: add `[queues.{name}]` with kind = \"redis\" (or \"nats\", \"rabbitmq\") \
         and a url to berth.toml"
    )
}

impl Trigger for QueueTrigger {
    fn kind(&self) -> &'static str {
        "queue"
    }

    fn start(&self, binding: &EventBinding, ctx: RunnerContext) -> Result<JoinHandle<()>, String> {
        let TriggerSpec::Queue { queue, concurrency, max_attempts } = &binding.trigger else {
            return Err("not a queue binding".into());
        };
        let cfg = self.queues.get(queue).ok_or_else(|| not_configured(queue))?;
        let settings = Binding::resolve(binding, queue, cfg, *concurrency, *max_attempts);
        let counts = Outcomes::of(&self.messages, queue);
        let runner = Runner { binding: Arc::new(settings), ctx, counts };
        Ok(match cfg.kind {
            #[cfg(feature = "redis")]
            QueueKind::Redis => tokio::spawn(redis::consume(runner)?),
            #[cfg(feature = "nats")]
            QueueKind::Nats => tokio::spawn(nats::consume(runner)?),
            #[cfg(feature = "rabbitmq")]
            QueueKind::Rabbitmq => tokio::spawn(rabbitmq::consume(runner)?),
            QueueKind::Sink => {
                return Err(format!(
                    "`[queues.{queue}]` is kind = \"sink\": functions publish to a sink, nothing consumes one \
                     (on Knative, events arrive over HTTP: bind their type in `[platform.events]`)"
                ))
            }
            #[allow(unreachable_patterns, reason = "reachable when a broker's feature is off")]
            kind => return Err(compiled_out(queue, kind)),
        })
    }
}

// === Binding ===

/// One function's binding to a queue, with every default applied.
#[derive(Debug, Clone)]
pub(crate) struct Binding {
    pub group: String,
    pub function: String,
    /// The `[queues.<name>]` name.
    pub queue: String,
    pub config: QueueConfig,
    /// Stream, JetStream stream or RabbitMQ queue.
    pub stream: String,
    /// Consumer group, durable consumer or consumer tag prefix.
    pub consumer_group: String,
    pub dead_letter: String,
    pub concurrency: u32,
    pub max_attempts: u32,
}

impl Binding {
    fn resolve(
        b: &EventBinding,
        queue: &str,
        cfg: &QueueConfig,
        concurrency: Option<u32>,
        max_attempts: Option<u32>,
    ) -> Binding {
        let stream = cfg.stream.clone().unwrap_or_else(|| queue.to_owned());
        Binding {
            group: b.group.clone(),
            function: b.function.clone(),
            queue: queue.to_owned(),
            consumer_group: cfg.consumer_group.clone().unwrap_or_else(|| format!("berth-{}-{}", b.group, b.function)),
            dead_letter: cfg.dead_letter.clone().unwrap_or_else(|| format!("{stream}.dead")),
            stream,
            concurrency: concurrency.unwrap_or(cfg.concurrency),
            max_attempts: max_attempts.unwrap_or(cfg.max_attempts),
            config: cfg.clone(),
        }
    }

    /// The backoff step after attempt `attempt`: `backoff_base * 2^(attempt-1)`, at most
    /// `backoff_max`.
    pub fn backoff_step(&self, attempt: u32) -> Duration {
        let exp = attempt.saturating_sub(1).min(30);
        self.config.backoff_base.saturating_mul(1 << exp).min(self.config.backoff_max)
    }

    /// The delay before attempt `attempt + 1`: its [`Binding::backoff_step`] with "equal
    /// jitter" (between half and all of it), so that failures at once do not retry at once.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let full = self.backoff_step(attempt);
        let half = full / 2;
        let jitter = half.as_millis() as u64;
        half + Duration::from_millis(if jitter == 0 { 0 } else { random_u64() % (jitter + 1) })
    }
}

// === Messages and verdicts ===

/// A message as a backend received it.
#[derive(Debug, Clone)]
pub struct Received {
    /// The backend's id: Redis entry id, JetStream stream sequence, AMQP message id.
    pub backend_id: String,
    /// 1 for the first delivery.
    pub attempt: u32,
    pub payload: Vec<u8>,
    /// The publisher's headers (backend-internal ones removed).
    pub headers: Vec<(String, String)>,
    /// When the broker got it (RFC 3339), where it says.
    pub time: Option<String>,
}

impl Received {
    /// The event id: the publisher's `ce-id`, else the backend's id.
    pub fn id(&self) -> &str {
        self.header("ce-id").unwrap_or(&self.backend_id)
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// The headers a dead-lettered copy carries: the publisher's, the error, the attempts made
    /// and the original id.
    pub fn dead_letter_headers(&self, error: &str) -> Vec<(String, String)> {
        let mut h: Vec<(String, String)> =
            self.headers.iter().filter(|(k, _)| !k.starts_with("x-berth-")).cloned().collect();
        h.push((ERROR_HEADER.into(), error.chars().take(2000).collect()));
        h.push((ATTEMPTS_HEADER.into(), self.attempt.to_string()));
        h.push((ORIGINAL_ID_HEADER.into(), self.backend_id.clone()));
        h
    }
}

/// What to do with a message once its function has been called.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// It succeeded: acknowledge.
    Ack,
    /// It failed transiently: deliver again after `after`.
    Retry { after: Duration, error: String },
    /// Its last attempt failed, or it failed permanently: dead-letter, then acknowledge.
    DeadLetter { error: String },
    /// The runner is stopping while the function is not serving: leave it with the broker.
    Release,
}

/// What the shared delivery logic decides for one call's outcome.
pub(crate) fn judge(binding: &Binding, attempt: u32, outcome: Result<(), DeliveryError>) -> Option<Verdict> {
    match outcome {
        Ok(()) => Some(Verdict::Ack),
        // 408 and 429 say "not now", not "never".
        Err(e @ DeliveryError::Failed { status, .. })
            if status.is_client_error()
                && status != StatusCode::REQUEST_TIMEOUT
                && status != StatusCode::TOO_MANY_REQUESTS =>
        {
            Some(Verdict::DeadLetter { error: format!("permanent failure: {e}") })
        }
        Err(e @ DeliveryError::Failed { .. }) if attempt >= binding.max_attempts => {
            Some(Verdict::DeadLetter { error: format!("gave up after {attempt} attempts: {e}") })
        }
        Err(e @ DeliveryError::Failed { .. }) => {
            Some(Verdict::Retry { after: binding.backoff(attempt), error: e.to_string() })
        }
        Err(DeliveryError::NoSuchFunction(..)) => None,
    }
}

// === Runner ===

/// What every backend's consumer runs with.
#[derive(Clone)]
pub(crate) struct Runner {
    pub binding: Arc<Binding>,
    pub ctx: RunnerContext,
    counts: Outcomes,
}

/// The `berth_queue_messages_total` counters of one queue, resolved once per runner.
#[derive(Clone)]
struct Outcomes {
    acked: IntCounter,
    retried: IntCounter,
    dead_lettered: IntCounter,
}

impl Outcomes {
    fn of(family: &IntCounterVec, queue: &str) -> Self {
        let count = |outcome| family.with_label_values(&[queue, outcome]);
        Outcomes { acked: count("acked"), retried: count("retried"), dead_lettered: count("dead_lettered") }
    }
}

/// The event a message on `queue` becomes. CloudEvents binary-mode headers (`ce-type`,
/// `ce-source`, `ce-subject`, `ce-time`, `content-type`) set by the publisher win over the
/// defaults; every other header becomes an extension, next to `attempt`. The headers are outside
/// input (any publisher's).
pub fn message_event(queue: &str, msg: &Received) -> EventData {
    let mut ev = EventData {
        id: msg.id().to_owned(),
        source: format!("berth/queue/{queue}"),
        ty: "berth.queue.message".into(),
        time: msg.time.clone(),
        data: msg.payload.clone(),
        extensions: vec![("attempt".into(), msg.attempt.to_string())],
        ..EventData::default()
    };
    for (k, v) in &msg.headers {
        let k = k.to_ascii_lowercase();
        match k.as_str() {
            "ce-id" | "ce-specversion" | "attempt" | "ce-attempt" => {}
            "ce-source" => ev.source = v.clone(),
            "ce-type" => ev.ty = v.clone(),
            "ce-subject" => ev.subject = Some(v.clone()),
            "ce-time" => ev.time = Some(v.clone()),
            "content-type" | "ce-datacontenttype" => ev.datacontenttype = Some(v.clone()),
            other => ev.extensions.push((other.strip_prefix("ce-").unwrap_or(other).to_owned(), v.clone())),
        }
    }
    ev
}

impl Runner {
    /// The event `msg` becomes on this runner's queue ([`message_event`]).
    pub fn event(&self, msg: &Received) -> EventData {
        message_event(&self.binding.queue, msg)
    }

    /// Calls the function with `msg` and decides what becomes of it. While the function is not
    /// serving (its group is being swapped or unloaded), the message is offered again every
    /// [`HOLD_RETRY`] until it is, or until the runner stops ([`Verdict::Release`]).
    pub async fn handle(&self, msg: &Received) -> Verdict {
        let b = &self.binding;
        if msg.attempt > b.max_attempts.saturating_mul(2) {
            // Only deliveries that were never settled count this high: a host that stopped or
            // crashed while handling it, again and again. Do not let it take the host down again.
            let error =
                format!("delivered {} times without being settled; the host may have crashed on it", msg.attempt);
            return Verdict::DeadLetter { error };
        }
        let mut stop = self.ctx.stop.clone();
        let mut held = false;
        loop {
            // Boxed: the call's future is large, and a task per message would copy it around.
            let call = Box::pin(self.ctx.dispatcher.deliver(&b.group, &b.function, "queue", self.event(msg)));
            let outcome = call.await;
            if let Some(v) = judge(b, msg.attempt, outcome.map(|_| ())) {
                return v;
            }
            if !held {
                held = true;
                tracing::warn!(queue = %b.queue, group = %b.group, function = %b.function, request_id = %msg.id(),
                    "function is not serving; holding the message until it is");
            }
            tokio::select! {
                _ = tokio::time::sleep(HOLD_RETRY) => {}
                _ = stopped(&mut stop) => return Verdict::Release,
            }
        }
    }

    /// Counts and logs a verdict once the broker has it.
    pub fn settled(&self, msg: &Received, verdict: &Verdict) {
        let b = &self.binding;
        match verdict {
            Verdict::Ack => self.counts.acked.inc(),
            Verdict::Retry { .. } => self.counts.retried.inc(),
            Verdict::DeadLetter { .. } => self.counts.dead_lettered.inc(),
            Verdict::Release => {}
        }
        match verdict {
            Verdict::Ack | Verdict::Release => {}
            Verdict::Retry { after, error } => tracing::warn!(queue = %b.queue, group = %b.group,
                function = %b.function, request_id = %msg.id(), attempt = msg.attempt, %error,
                retry_in_ms = after.as_millis() as u64, "queue message failed; retrying"),
            Verdict::DeadLetter { error } => tracing::error!(queue = %b.queue, group = %b.group,
                function = %b.function, request_id = %msg.id(), attempts = msg.attempt, %error,
                dead_letter = %b.dead_letter, "queue message dead-lettered"),
        }
    }

    /// Logs a broker failure while settling; the message stays unacknowledged and comes back.
    pub fn settle_failed(&self, msg: &Received, verdict: &Verdict, error: &dyn std::fmt::Display) {
        let b = &self.binding;
        tracing::error!(queue = %b.queue, group = %b.group, function = %b.function, request_id = %msg.id(),
            ?verdict, %error, "could not settle a queue message with the broker; it will be delivered again");
    }

    pub fn is_stopping(&self) -> bool {
        *self.ctx.stop.borrow()
    }

    /// Runs `session` until it returns `Ok` (for a consumer: when the runner stops); one that
    /// fails (connection lost, broker restarting) is started again after a backoff.
    pub async fn sessions<F, Fut>(&self, what: &str, mut session: F)
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<(), String>>,
    {
        let b = &self.binding;
        let mut stop = self.ctx.stop.clone();
        let mut failures = 0u32;
        while !self.is_stopping() {
            let started = tokio::time::Instant::now();
            let Err(error) = session().await else { return };
            if started.elapsed() > Duration::from_secs(60) {
                failures = 0;
            }
            failures += 1;
            let delay = Duration::from_millis(250u64 << failures.min(7)).min(Duration::from_secs(30));
            tracing::warn!(queue = %b.queue, group = %b.group, function = %b.function, kind = what, %error,
                retry_in_ms = delay.as_millis() as u64, "queue consumer lost its broker; reconnecting");
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = stopped(&mut stop) => return,
            }
        }
    }
}

/// Resolves once `stop` is true (or its sender is gone).
pub(crate) async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

// === Slots ===

/// The in-flight limit of one consumer: a message is taken only with a slot, and a stopping
/// consumer waits for every slot to come back.
pub(crate) struct Slots {
    sem: Arc<Semaphore>,
    size: u32,
}

impl Slots {
    pub fn new(size: u32) -> Self {
        Slots { sem: Arc::new(Semaphore::new(size as usize)), size }
    }

    /// One slot, or `None` once `stop` flips.
    pub async fn one(&self, stop: &mut watch::Receiver<bool>) -> Option<OwnedSemaphorePermit> {
        if *stop.borrow() {
            return None;
        }
        tokio::select! {
            p = self.sem.clone().acquire_owned() => p.ok(),
            _ = stopped(stop) => None,
        }
    }

    /// `first` and as many more free slots as there are, up to `max` in all.
    pub fn more(&self, first: OwnedSemaphorePermit, max: usize) -> Vec<OwnedSemaphorePermit> {
        let mut out = vec![first];
        while out.len() < max {
            match self.sem.clone().try_acquire_owned() {
                Ok(p) => out.push(p),
                Err(_) => break,
            }
        }
        out
    }

    /// Waits until every in-flight message is settled.
    pub async fn drain(&self) {
        let _ = self.sem.acquire_many(self.size).await;
    }
}

/// A random number for jitter and generated ids (not for secrets).
pub(crate) fn random_u64() -> u64 {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos());
    h.finish()
}

/// A unique id for a message whose publisher gave none (`<ms since epoch hex>-<random hex>`).
#[cfg(feature = "rabbitmq")]
pub(crate) fn new_message_id() -> String {
    format!("{:x}-{:016x}", berth_core::clock::now_unix_ms(), random_u64())
}

#[cfg(test)]
mod tests;
