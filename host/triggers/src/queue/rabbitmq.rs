//! RabbitMQ (AMQP 0-9-1): a durable queue per binding, publisher confirms for everything the
//! host publishes, manual acknowledgements.
//!
//! The consumer's prefetch is its concurrency. A message leaves the queue only by an
//! acknowledgement, given after one of:
//! - the function succeeded;
//! - a failure was republished, with publisher confirm, to the retry queue of its backoff step
//!   (`<queue>.retry.<ms>`: durable, `x-message-ttl` of the step, dead-lettering back to the
//!   queue), with a per-message `expiration` carrying the jitter and `x-berth-attempt` the next
//!   attempt's number;
//! - it was republished, with publisher confirm, to the dead-letter queue (`<queue>.dead`).
//!
//! Unacknowledged messages return to the queue when the consumer's channel closes (a stop, a
//! lost connection, a killed host). The event id is `ce-id`, else the `message_id` property
//! (the host's publisher always sets one), else an id made on first delivery and kept by
//! retries.

use std::collections::HashSet;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use berth_plugin_api::service_error_kind as kind;
use berth_plugin_api::ServiceError;
use futures_util::StreamExt;
use lapin::message::Delivery;
use lapin::options::{
    BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicNackOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{BasicProperties, Channel, Confirmation, Connection, ConnectionProperties};
use tokio::sync::OwnedSemaphorePermit;

use super::config::QueueConfig;
use super::{new_message_id, stopped, unavailable, Publish, PublishFuture, Received, Runner, Slots, Verdict};

/// Header carrying the number of the attempt a republished message is for.
pub const ATTEMPT_HEADER: &str = "x-berth-attempt";
/// Headers the broker adds (dead-lettering history, quorum delivery count): not the publisher's.
const BROKER_HEADERS: [&str; 3] = ["x-death", "x-first-death-", "x-last-death-"];

fn short(what: &str, s: &str) -> Result<ShortString, String> {
    ShortString::try_new(s).map_err(|e| format!("{what} `{s}`: {e}"))
}

fn check(queue: &str, cfg: &QueueConfig, stream: &str) -> Result<(), String> {
    cfg.url
        .parse::<lapin::uri::AMQPUri>()
        .map_err(|e| format!("`[queues.{queue}]`: invalid AMQP url (amqp://user:pass@host:5672/%2f): {e}"))?;
    // Room for the `.retry.<ms>` and `.dead` suffixes within AMQP's 255 bytes.
    if stream.len() > 200 {
        return Err(format!("`[queues.{queue}]`: RabbitMQ queue names are at most 200 bytes here"));
    }
    Ok(())
}

/// A connection and a channel in publisher-confirm mode.
async fn open(url: &str, timeout: Duration) -> Result<(Connection, Channel), String> {
    let connect = Connection::connect(url, ConnectionProperties::default().with_connection_name("berth".into()));
    let conn = tokio::time::timeout(timeout, connect)
        .await
        .map_err(|_| format!("RabbitMQ did not answer within {} ms", timeout.as_millis()))?
        .map_err(|e| format!("connecting to RabbitMQ: {e}"))?;
    let channel = conn.create_channel().await.map_err(|e| format!("opening a channel: {e}"))?;
    channel.confirm_select(ConfirmSelectOptions::default()).await.map_err(|e| format!("confirm mode: {e}"))?;
    Ok((conn, channel))
}

async fn declare(channel: &Channel, queue: &str, arguments: FieldTable) -> Result<(), String> {
    let options = QueueDeclareOptions { durable: true, ..Default::default() };
    channel
        .queue_declare(short("queue", queue)?, options, arguments)
        .await
        .map(drop)
        .map_err(|e| format!("declaring `{queue}`: {e}"))
}

/// Publishes to `queue` through the default exchange and waits for the broker's confirm. An
/// unroutable message (the queue is gone) comes back as an error, never silently dropped.
async fn publish_confirmed(
    channel: &Channel,
    queue: &str,
    payload: &[u8],
    props: BasicProperties,
) -> Result<(), String> {
    let options = BasicPublishOptions { mandatory: true, ..Default::default() };
    let confirm = channel
        .basic_publish(ShortString::from(""), short("queue", queue)?, options, payload, props)
        .await
        .map_err(|e| format!("publishing to `{queue}`: {e}"))?
        .await
        .map_err(|e| format!("publishing to `{queue}`: {e}"))?;
    match confirm {
        Confirmation::Ack(None) | Confirmation::NotRequested => Ok(()),
        Confirmation::Ack(Some(_)) => Err(format!("queue `{queue}` does not exist (the message was returned)")),
        Confirmation::Nack(_) => Err(format!("RabbitMQ refused the message for `{queue}`")),
    }
}

/// Message properties: persistent, with `message_id`, `content-type` and the other headers.
fn properties(id: &str, headers: &[(String, String)]) -> Result<BasicProperties, String> {
    let mut table = FieldTable::default();
    let mut props = BasicProperties::default()
        .with_message_id(short("message id", id)?)
        .with_delivery_mode(2)
        .with_timestamp(berth_core::clock::now_unix_ms() / 1000);
    for (k, v) in headers {
        if k.eq_ignore_ascii_case("content-type") {
            props = props.with_content_type(short("content type", v)?);
        } else {
            table.insert(short("header name", k)?, AMQPValue::LongString(LongString::from(v.as_bytes())));
        }
    }
    Ok(props.with_headers(table))
}

// === impl AmqpPublisher ===

pub(crate) struct AmqpPublisher {
    name: String,
    url: String,
    queue: String,
    timeout: Duration,
    /// The open connection and its channel; dropped after a failure so the next publish reconnects.
    current: tokio::sync::Mutex<Option<(Connection, Channel)>>,
}

impl AmqpPublisher {
    pub fn new(name: &str, stream: &str, cfg: &QueueConfig) -> Result<Self, String> {
        check(name, cfg, stream)?;
        Ok(AmqpPublisher {
            name: name.to_owned(),
            url: cfg.url.clone(),
            queue: stream.to_owned(),
            timeout: cfg.timeout,
            current: tokio::sync::Mutex::new(None),
        })
    }

    /// The channel, opening it (and declaring the queue, so nothing published before the first
    /// consumer starts is dropped) when there is none.
    async fn channel(&self) -> Result<Channel, String> {
        let mut current = self.current.lock().await;
        if let Some((conn, ch)) = &*current {
            if conn.status().connected() && ch.status().connected() {
                return Ok(ch.clone());
            }
        }
        let (conn, ch) = open(&self.url, self.timeout).await?;
        declare(&ch, &self.queue, FieldTable::default()).await?;
        *current = Some((conn, ch.clone()));
        Ok(ch)
    }

    async fn forget(&self) {
        *self.current.lock().await = None;
    }
}

impl Publish for AmqpPublisher {
    fn publish(&self, payload: Vec<u8>, headers: Vec<(String, String)>) -> PublishFuture<'_> {
        Box::pin(async move {
            let id = headers.iter().find(|(k, _)| k.eq_ignore_ascii_case("ce-id")).map(|(_, v)| v.clone());
            let id = id.unwrap_or_else(new_message_id);
            let props = properties(&id, &headers).map_err(|e| ServiceError::new(kind::INVALID, &self.name, e))?;
            let ch = self.channel().await.map_err(|e| unavailable(&self.name, "RabbitMQ", e))?;
            match publish_confirmed(&ch, &self.queue, &payload, props).await {
                Ok(()) => Ok(id),
                Err(e) => {
                    // A returned message (queue deleted) or a broken channel: start afresh next time.
                    self.forget().await;
                    Err(unavailable(&self.name, "RabbitMQ", e))
                }
            }
        })
    }
}

// === Consumer ===

/// Checks the binding and returns its consumer's task.
pub(crate) fn consume(runner: Runner) -> Result<impl Future<Output = ()>, String> {
    check(&runner.binding.queue, &runner.binding.config, &runner.binding.stream)?;
    Ok(async move {
        let slots = Slots::new(runner.binding.concurrency);
        runner.sessions("rabbitmq", || session(&runner, &slots)).await;
        slots.drain().await;
    })
}

/// The channel a session consumes and republishes on, and the retry queues it declared.
struct Session {
    runner: Runner,
    channel: Channel,
    retry_queues: Mutex<HashSet<u64>>,
}

/// One connection's worth of consuming: returns `Ok` when the runner stops.
async fn session(runner: &Runner, slots: &Slots) -> Result<(), String> {
    let b = &runner.binding;
    let (conn, channel) = open(&b.config.url, b.config.timeout).await?;
    let prefetch = u16::try_from(b.concurrency).unwrap_or(u16::MAX);
    channel.basic_qos(prefetch, BasicQosOptions::default()).await.map_err(|e| format!("setting prefetch: {e}"))?;
    declare(&channel, &b.stream, FieldTable::default()).await?;
    declare(&channel, &b.dead_letter, FieldTable::default()).await?;
    let tag = format!("{}-{}-{:x}", b.consumer_group, std::process::id(), super::random_u64() & 0xffff_ffff);
    let mut consumer = channel
        .basic_consume(
            short("queue", &b.stream)?,
            short("consumer tag", &tag)?,
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .map_err(|e| format!("consuming `{}`: {e}", b.stream))?;
    tracing::info!(queue = %b.queue, rabbitmq_queue = %b.stream, consumer = %tag, "consuming a RabbitMQ queue");
    let session =
        Arc::new(Session { runner: runner.clone(), channel: channel.clone(), retry_queues: Mutex::default() });
    let mut stop = runner.ctx.stop.clone();
    let outcome = loop {
        let Some(permit) = slots.one(&mut stop).await else { break Ok(()) };
        let next = tokio::select! {
            d = consumer.next() => d,
            _ = stopped(&mut stop) => break Ok(()),
        };
        match next {
            Some(Ok(delivery)) => {
                // Boxed once here rather than copied, kilobytes at a time, through the spawn.
                tokio::spawn(Box::pin(session.clone().deliver(delivery, permit)));
            }
            Some(Err(e)) => break Err(format!("consuming `{}`: {e}", b.stream)),
            None => break Err(format!("the broker cancelled the consumer of `{}`", b.stream)),
        }
    };
    // No more deliveries; let in-flight ones settle; what was prefetched and not taken returns
    // to the queue when the channel closes.
    let _ = channel.basic_cancel(short("consumer tag", &tag)?, BasicCancelOptions::default()).await;
    drop(consumer);
    slots.drain().await;
    let _ = channel.close(200, "berth consumer stopping".into()).await;
    let _ = conn.close(200, "berth consumer stopping".into()).await;
    outcome
}

fn header_text(v: &AMQPValue) -> Option<String> {
    Some(match v {
        AMQPValue::LongString(s) => String::from_utf8_lossy(s.as_bytes()).into_owned(),
        AMQPValue::ShortString(s) => s.as_str().to_owned(),
        AMQPValue::Boolean(b) => b.to_string(),
        AMQPValue::ShortShortInt(i) => i.to_string(),
        AMQPValue::ShortShortUInt(i) => i.to_string(),
        AMQPValue::ShortInt(i) => i.to_string(),
        AMQPValue::ShortUInt(i) => i.to_string(),
        AMQPValue::LongInt(i) => i.to_string(),
        AMQPValue::LongUInt(i) => i.to_string(),
        AMQPValue::LongLongInt(i) => i.to_string(),
        _ => return None,
    })
}

fn received(d: &Delivery) -> Received {
    let p = &d.properties;
    let mut headers = Vec::new();
    let mut attempt = 1u32;
    let mut broker_count = 0u32;
    for (k, v) in p.headers().iter().flat_map(|t| t.inner()) {
        let (k, Some(v)) = (k.as_str(), header_text(v)) else { continue };
        if k == ATTEMPT_HEADER {
            attempt = v.parse().unwrap_or(1);
        } else if k == "x-delivery-count" {
            // Quorum queues count redeliveries themselves.
            broker_count = v.parse().unwrap_or(0);
        } else if !BROKER_HEADERS.iter().any(|b| k.starts_with(b)) {
            headers.push((k.to_owned(), v));
        }
    }
    // A redelivery (the last consumer went away mid-call) is an attempt too.
    attempt += broker_count.max(u32::from(d.redelivered));
    if let Some(ct) = p.content_type() {
        headers.push(("content-type".into(), ct.as_str().to_owned()));
    }
    headers.sort();
    let time = p
        .timestamp()
        .and_then(|s| chrono::DateTime::<chrono::Utc>::from_timestamp(i64::try_from(s).ok()?, 0))
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
    let backend_id =
        p.message_id().as_ref().map(|m| m.as_str().to_owned()).unwrap_or_else(|| format!("amqp-{}", new_message_id()));
    Received { backend_id, attempt, payload: d.data.clone(), headers, time }
}

impl Session {
    async fn deliver(self: Arc<Self>, delivery: Delivery, permit: OwnedSemaphorePermit) {
        let msg = received(&delivery);
        let verdict = self.runner.handle(&msg).await;
        // Boxed, like the call: republishing makes this state large.
        let done = Box::pin(self.republish(&msg, &verdict)).await;
        let settled = match &done {
            Ok(()) => delivery.acker.ack(BasicAckOptions::default()).await.map(drop),
            // Released, or it could not be republished: back to the queue, as it was.
            Err(_) => delivery.acker.nack(BasicNackOptions { requeue: true, ..Default::default() }).await.map(drop),
        };
        match (done, settled) {
            (Ok(()), Ok(())) => self.runner.settled(&msg, &verdict),
            (Err(e), _) if e.is_empty() => {}
            (Err(e), _) => self.runner.settle_failed(&msg, &verdict, &e),
            (Ok(()), Err(e)) => self.runner.settle_failed(&msg, &verdict, &e),
        }
        drop(permit);
    }

    /// What has to reach the broker before `msg` is acknowledged: nothing for a success, its
    /// retry or dead-letter copy otherwise. An error (empty for a release) requeues it instead.
    async fn republish(&self, msg: &Received, verdict: &Verdict) -> Result<(), String> {
        match verdict {
            Verdict::Ack => Ok(()),
            Verdict::Release => Err(String::new()),
            Verdict::Retry { after, .. } => self.republish_for_retry(msg, *after).await,
            Verdict::DeadLetter { error } => {
                let b = &self.runner.binding;
                let props = properties(&msg.backend_id, &msg.dead_letter_headers(error))?;
                publish_confirmed(&self.channel, &b.dead_letter, &msg.payload, props).await
            }
        }
    }

    /// Republishes `msg` to the retry queue of its backoff step, to come back after `after`.
    async fn republish_for_retry(&self, msg: &Received, after: Duration) -> Result<(), String> {
        let b = &self.runner.binding;
        let step = b.backoff_step(msg.attempt).as_millis().max(1) as u64;
        let retry_queue = format!("{}.retry.{step}", b.stream);
        let fresh = self.retry_queues.lock().expect("retry queues lock").insert(step);
        if fresh {
            let mut args = FieldTable::default();
            args.insert("x-dead-letter-exchange".into(), AMQPValue::LongString("".into()));
            args.insert("x-dead-letter-routing-key".into(), AMQPValue::LongString(b.stream.as_str().into()));
            args.insert("x-message-ttl".into(), AMQPValue::LongLongInt(step as i64));
            if let Err(e) = declare(&self.channel, &retry_queue, args).await {
                self.retry_queues.lock().expect("retry queues lock").remove(&step);
                return Err(e);
            }
        }
        let mut headers: Vec<(String, String)> = msg.headers.clone();
        headers.push((ATTEMPT_HEADER.into(), (msg.attempt + 1).to_string()));
        let expiration = after.as_millis().clamp(1, u128::from(step)).to_string();
        let props = properties(&msg.backend_id, &headers)?.with_expiration(short("expiration", &expiration)?);
        publish_confirmed(&self.channel, &retry_queue, &msg.payload, props).await
    }
}
