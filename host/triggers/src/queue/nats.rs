//! NATS JetStream: publishing to a subject captured by a stream, consuming through a durable
//! pull consumer per binding.
//!
//! The stream (`stream`, with `.`, `*`, `>` and spaces made `_`) captures one subject (`subject`,
//! default: the stream's name as written). The consumer acknowledges explicitly, with an ack wait
//! of the visibility timeout (kept alive with `+WPI` while a call runs) and no delivery limit of
//! its own: the runner counts attempts from the server's delivery count. A failure is `-NAK`ed
//! with its backoff as delay; dead-lettering publishes to the dead-letter subject (captured by a
//! stream of its own), waits for JetStream's acknowledgement, then acknowledges the original.

use std::future::Future;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::consumer::{pull, AckPolicy, PullConsumer};
use async_nats::jetstream::context::PublishErrorKind;
use async_nats::jetstream::message::Acker;
use async_nats::jetstream::{self, stream, AckKind, Context};
use async_nats::{HeaderMap, HeaderName, ServerAddr};
use berth_plugin_api::service_error_kind as kind;
use berth_plugin_api::ServiceError;
use futures_util::StreamExt;
use tokio::sync::{OnceCell, OwnedSemaphorePermit};

use super::config::QueueConfig;
use super::{stopped, unavailable, Publish, PublishFuture, Received, Runner, Slots, Verdict};

/// The header JetStream de-duplicates publishes by; set from `ce-id`.
const MSG_ID: &str = "Nats-Msg-Id";
/// Idle heartbeat the server sends a waiting pull request.
const HEARTBEAT: Duration = Duration::from_secs(5);

/// A JetStream stream name for `s` (names cannot hold `.`, `*`, `>`, separators or spaces).
pub fn stream_name(s: &str) -> String {
    s.chars().map(|c| if matches!(c, '.' | '*' | '>' | '/' | '\\') || c.is_whitespace() { '_' } else { c }).collect()
}

fn check_url(queue: &str, url: &str) -> Result<(), String> {
    ServerAddr::from_str(url).map(drop).map_err(|e| format!("`[queues.{queue}]`: invalid NATS url `{url}`: {e}"))
}

async fn connect(url: &str, timeout: Duration) -> Result<Context, String> {
    let client = async_nats::ConnectOptions::new()
        .connection_timeout(timeout)
        .connect(url)
        .await
        .map_err(|e| format!("connecting to NATS at {url}: {e}"))?;
    let mut js = jetstream::new(client);
    js.set_timeout(timeout);
    Ok(js)
}

/// Creates the stream capturing `subject` unless it exists.
async fn ensure_stream(js: &Context, stream: &str, subject: &str) -> Result<stream::Stream, String> {
    let config = stream::Config { name: stream_name(stream), subjects: vec![subject.to_owned()], ..Default::default() };
    js.get_or_create_stream(config).await.map_err(|e| format!("JetStream stream `{}`: {e}", stream_name(stream)))
}

/// Headers as NATS carries them; names must be valid and values single-line.
fn header_map(queue: &str, headers: &[(String, String)]) -> Result<HeaderMap, ServiceError> {
    let mut map = HeaderMap::new();
    for (k, v) in headers {
        let name = HeaderName::from_str(k)
            .map_err(|e| ServiceError::new(kind::INVALID, queue, format!("header name `{k}`: {e}")))?;
        map.insert(name, v.replace(['\r', '\n'], " ").as_str());
    }
    if let Some((_, id)) = headers.iter().find(|(k, _)| k.eq_ignore_ascii_case("ce-id")) {
        map.insert(MSG_ID, id.as_str());
    }
    Ok(map)
}

// === impl NatsPublisher ===

pub(crate) struct NatsPublisher {
    name: String,
    url: String,
    stream: String,
    subject: String,
    timeout: Duration,
    js: OnceCell<Context>,
}

impl NatsPublisher {
    pub fn new(name: &str, stream: &str, cfg: &QueueConfig) -> Result<Self, String> {
        check_url(name, &cfg.url)?;
        Ok(NatsPublisher {
            name: name.to_owned(),
            url: cfg.url.clone(),
            stream: stream.to_owned(),
            subject: cfg.subject.clone().unwrap_or_else(|| stream.to_owned()),
            timeout: cfg.timeout,
            js: OnceCell::new(),
        })
    }

    async fn context(&self) -> Result<&Context, ServiceError> {
        self.js
            .get_or_try_init(|| async {
                let js = connect(&self.url, self.timeout).await?;
                ensure_stream(&js, &self.stream, &self.subject).await?;
                Ok::<_, String>(js)
            })
            .await
            .map_err(|e| unavailable(&self.name, "NATS", e))
    }
}

impl Publish for NatsPublisher {
    fn publish(&self, payload: Vec<u8>, headers: Vec<(String, String)>) -> PublishFuture<'_> {
        Box::pin(async move {
            let js = self.context().await?;
            let headers = header_map(&self.name, &headers)?;
            let mut recreated = false;
            loop {
                let sent = js.publish_with_headers(self.subject.clone(), headers.clone(), payload.clone().into()).await;
                let acked = match sent {
                    Ok(ack) => ack.await,
                    Err(e) => Err(e),
                };
                match acked {
                    Ok(ack) => return Ok(ack.sequence.to_string()),
                    // Someone deleted the stream: make it again, once.
                    Err(e) if e.kind() == PublishErrorKind::StreamNotFound && !recreated => {
                        recreated = true;
                        ensure_stream(js, &self.stream, &self.subject)
                            .await
                            .map_err(|e| unavailable(&self.name, "NATS", e))?;
                    }
                    Err(e) => return Err(unavailable(&self.name, "publishing to JetStream", e)),
                }
            }
        })
    }
}

// === Consumer ===

/// Checks the binding and returns its consumer's task.
pub(crate) fn consume(runner: Runner) -> Result<impl Future<Output = ()>, String> {
    check_url(&runner.binding.queue, &runner.binding.config.url)?;
    Ok(async move {
        let slots = Slots::new(runner.binding.concurrency);
        runner.sessions("nats", || session(&runner, &slots)).await;
        slots.drain().await;
    })
}

fn subject(runner: &Runner) -> String {
    runner.binding.config.subject.clone().unwrap_or_else(|| runner.binding.stream.clone())
}

/// One connection's worth of consuming: returns `Ok` when the runner stops.
async fn session(runner: &Runner, slots: &Slots) -> Result<(), String> {
    let b = &runner.binding;
    // Shared by the deliveries (for dead-lettering) without a clone of the context each.
    let js = Arc::new(connect(&b.config.url, b.config.timeout).await?);
    let subject = subject(runner);
    let stream = ensure_stream(&js, &b.stream, &subject).await?;
    ensure_stream(&js, &b.dead_letter, &b.dead_letter).await?;
    let durable = stream_name(&b.consumer_group);
    let config = pull::Config {
        durable_name: Some(durable.clone()),
        ack_policy: AckPolicy::Explicit,
        ack_wait: b.config.visibility_timeout,
        max_deliver: -1,
        filter_subject: subject,
        ..Default::default()
    };
    let consumer: PullConsumer = stream
        .get_or_create_consumer(&durable, config)
        .await
        .map_err(|e| format!("JetStream consumer `{durable}`: {e}"))?;
    let mut messages = consumer
        .stream()
        .max_messages_per_batch(b.concurrency as usize)
        .heartbeat(HEARTBEAT)
        .messages()
        .await
        .map_err(|e| format!("pulling from `{durable}`: {e}"))?;
    tracing::info!(queue = %b.queue, stream = %stream_name(&b.stream), consumer = %durable, "consuming a JetStream stream");
    let mut stop = runner.ctx.stop.clone();
    let outcome = loop {
        let Some(permit) = slots.one(&mut stop).await else { break Ok(()) };
        let next = tokio::select! {
            m = messages.next() => m,
            _ = stopped(&mut stop) => break Ok(()),
        };
        match next {
            Some(Ok(m)) => {
                // Boxed once here rather than copied, kilobytes at a time, through the spawn.
                tokio::spawn(Box::pin(deliver(runner.clone(), js.clone(), m, permit)));
            }
            Some(Err(e)) => break Err(format!("pulling from `{durable}`: {e}")),
            None => break Err(format!("the pull subscription of `{durable}` ended")),
        }
    };
    drop(messages);
    slots.drain().await;
    // Acknowledgements are buffered by the client: send them before going.
    let _ = js.client().flush().await;
    outcome
}

fn received(m: &jetstream::Message) -> Result<Received, String> {
    let info = m.info().map_err(|e| format!("a JetStream message without delivery info: {e}"))?;
    let mut headers = Vec::new();
    if let Some(h) = &m.headers {
        for (name, values) in h.iter() {
            let name = name.to_string();
            if name.starts_with("Nats-") {
                continue;
            }
            if let Some(v) = values.first() {
                headers.push((name, v.as_str().to_owned()));
            }
        }
    }
    headers.sort();
    let nanos = i64::try_from(info.published.unix_timestamp_nanos()).unwrap_or_default();
    let time = chrono::DateTime::from_timestamp_nanos(nanos).to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    Ok(Received {
        backend_id: info.stream_sequence.to_string(),
        attempt: u32::try_from(info.delivered).unwrap_or(1).max(1),
        payload: m.payload.to_vec(),
        headers,
        time: Some(time),
    })
}

async fn deliver(runner: Runner, js: Arc<Context>, m: jetstream::Message, permit: OwnedSemaphorePermit) {
    let b = runner.binding.clone();
    let msg = match received(&m) {
        Ok(msg) => msg,
        Err(e) => {
            tracing::error!(queue = %b.queue, error = %e, "skipping a message JetStream delivered without its info");
            return;
        }
    };
    let (_, acker) = m.split();
    let every = (b.config.visibility_timeout / 3).max(Duration::from_millis(100));
    let keep_alive = async {
        loop {
            tokio::time::sleep(every).await;
            let _ = acker.ack_with(AckKind::Progress).await;
        }
    };
    let verdict = tokio::select! {
        v = runner.handle(&msg) => v,
        never = keep_alive => never,
    };
    // Boxed, like the call: the dead-letter publish makes this state large.
    let done = Box::pin(settle(&runner, &js, &acker, &msg, &verdict)).await;
    match done {
        Ok(()) => runner.settled(&msg, &verdict),
        Err(e) => runner.settle_failed(&msg, &verdict, &e),
    }
    drop(permit);
}

/// Tells JetStream what became of `msg`.
async fn settle(runner: &Runner, js: &Context, acker: &Acker, msg: &Received, verdict: &Verdict) -> Result<(), String> {
    let b = &runner.binding;
    match verdict {
        Verdict::Ack => acker.ack().await.map_err(|e| e.to_string()),
        Verdict::Retry { after, .. } => acker.ack_with(AckKind::Nak(Some(*after))).await.map_err(|e| e.to_string()),
        Verdict::Release => acker.ack_with(AckKind::Nak(None)).await.map_err(|e| e.to_string()),
        Verdict::DeadLetter { error } => {
            let mut headers =
                header_map(&b.queue, &msg.dead_letter_headers(error)).map_err(|e| e.message.to_string())?;
            // A redelivered original is dead-lettered once: JetStream drops the second copy.
            headers.insert(MSG_ID, format!("dead:{}:{}", stream_name(&b.stream), msg.backend_id).as_str());
            let ack = js.publish_with_headers(b.dead_letter.clone(), headers, msg.payload.clone().into()).await;
            ack.map_err(|e| e.to_string())?.await.map_err(|e| e.to_string())?;
            acker.ack().await.map_err(|e| e.to_string())
        }
    }
}
