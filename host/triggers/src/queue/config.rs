//! The `[queues.<name>]` and `[[triggers]]` sections of `berth.toml`.

use std::time::Duration;

use serde::Deserialize;

/// `[queues.<name>]`: a queue binding. Queue triggers consume it, `ctx.queue("<name>")` publishes
/// to it. Delivery is at least once: a message is acknowledged only after its function succeeded.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueueConfig {
    /// The broker: `redis` (Streams, consumer groups), `nats` (JetStream) or `rabbitmq`; or
    /// `sink`, publish-only: CloudEvents over HTTP to a sink (Knative's `K_SINK`).
    pub kind: QueueKind,
    /// `redis://127.0.0.1:6379`, `nats://127.0.0.1:4222` or `amqp://guest:guest@127.0.0.1:5672/%2f`;
    /// for `sink`, the sink's `http://` address (default: `$K_SINK`, as a SinkBinding sets it).
    #[serde(default)]
    pub url: String,
    /// The Redis stream, JetStream stream or RabbitMQ queue. Default: the binding's name.
    pub stream: Option<String>,
    /// NATS only: the subject published to and consumed from. Default: the stream's name.
    pub subject: Option<String>,
    /// The Redis consumer group, NATS durable consumer or RabbitMQ consumer tag prefix.
    /// Default: `berth-<group>-<function>` (every function gets every message).
    pub consumer_group: Option<String>,
    /// Messages one function handles at once, unless its trigger sets `concurrency`.
    #[serde(default = "default_queue_concurrency")]
    pub concurrency: u32,
    /// Attempts before a message is dead-lettered, unless its trigger sets `max_attempts`.
    #[serde(default = "default_max_attempts")]
    pub max_attempts: u32,
    /// Delay before the first retry; it doubles per attempt (with jitter) up to `backoff_max`.
    #[serde(default = "default_backoff_base", with = "humantime_serde")]
    pub backoff_base: Duration,
    #[serde(default = "default_backoff_max", with = "humantime_serde")]
    pub backoff_max: Duration,
    /// Where a message goes after its last attempt or a permanent (4xx) failure. Default:
    /// `<stream>.dead` (for NATS a subject, captured by a stream of the same name with `_`).
    pub dead_letter: Option<String>,
    /// How long a delivered, unacknowledged message stays with its consumer before another one
    /// may take it (Redis: idle time before a reclaim; NATS: ack wait). Longer calls are kept
    /// alive by the host while they run. RabbitMQ returns unacknowledged messages when the
    /// consumer's connection closes and ignores it.
    #[serde(default = "default_visibility_timeout", with = "humantime_serde")]
    pub visibility_timeout: Duration,
    /// Timeout of one broker operation (connect, publish, acknowledge).
    #[serde(default = "default_acquire_timeout", with = "humantime_serde")]
    pub timeout: Duration,
    /// Redis only: trim the stream to about this many entries on publish (0: never trim).
    #[serde(default)]
    pub max_len: u64,
}

/// The broker behind a queue binding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum QueueKind {
    Redis,
    Nats,
    Rabbitmq,
    Sink,
}

impl QueueKind {
    /// Whether this build has the broker (its cargo feature).
    pub fn compiled_in(self) -> bool {
        match self {
            QueueKind::Redis => cfg!(feature = "redis"),
            QueueKind::Nats => cfg!(feature = "nats"),
            QueueKind::Rabbitmq => cfg!(feature = "rabbitmq"),
            QueueKind::Sink => true,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            QueueKind::Redis => "redis",
            QueueKind::Nats => "nats",
            QueueKind::Rabbitmq => "rabbitmq",
            QueueKind::Sink => "sink",
        }
    }
}

/// `[[triggers]]`: binds a function to a queue from `berth.toml`. A binding to a queue the
/// function's own attribute names overrides its settings; any other queue is added.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TriggerBindingConfig {
    pub group: String,
    pub function: String,
    /// The `[queues.<name>]` to consume.
    pub queue: String,
    /// Default: the function's own setting for this queue, else the queue's.
    #[serde(default)]
    pub concurrency: Option<u32>,
    /// Default: the function's own setting for this queue, else the queue's.
    #[serde(default)]
    pub max_attempts: Option<u32>,
}

fn default_acquire_timeout() -> Duration {
    Duration::from_secs(5)
}
fn default_queue_concurrency() -> u32 {
    8
}
fn default_max_attempts() -> u32 {
    5
}
fn default_backoff_base() -> Duration {
    Duration::from_millis(500)
}
fn default_backoff_max() -> Duration {
    Duration::from_secs(60)
}
fn default_visibility_timeout() -> Duration {
    Duration::from_secs(30)
}
