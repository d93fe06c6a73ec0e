//! Redis Streams: publishing with `XADD`, consuming through a consumer group.
//!
//! A message is a stream entry: the payload in field `data`, every other field a header. Each
//! binding is a consumer group (created at `0`, so entries written before the first start are
//! consumed too) and each runner one consumer in it, named after the host and process.
//!
//! - Fresh entries come from `XREADGROUP ... >` on a connection of their own (the read blocks).
//! - A success is `XACK`ed. A failure stays pending: after its backoff the runner takes it back
//!   with `XCLAIM` (which counts the delivery) and calls the function again. Dead-lettering is
//!   `XADD <dead> ...` and `XACK` in one `MULTI`, so a message is never in both places or neither.
//! - Entries this runner holds (in flight, waiting for a retry, or waiting for a function that is
//!   being swapped) are kept fresh with `XCLAIM ... JUSTID` every third of the visibility
//!   timeout. Entries idle for longer belong to a consumer that is gone (a stopped or killed
//!   host): `XAUTOCLAIM` takes them over, and `XPENDING`'s delivery count is their attempt.

use std::collections::{BTreeMap, HashSet};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use berth_plugin_api::service_error_kind as kind;
use berth_plugin_api::ServiceError;
use redis::aio::MultiplexedConnection;
use redis::streams::{StreamAutoClaimReply, StreamClaimReply, StreamId, StreamPendingCountReply, StreamReadReply};
use redis::{AsyncConnectionConfig, RedisError, Value};
use tokio::sync::OwnedSemaphorePermit;

use super::config::QueueConfig;
use super::{stopped, Publish, PublishFuture, Received, Runner, Slots, Verdict};
use berth_services::redis::{LazyConnection, RedisFailure};

/// The entry field holding the payload; every other field is a header.
pub const DATA_FIELD: &str = "data";
/// How long one `XREADGROUP` blocks: also how long a stopping runner may wait for its reader.
const BLOCK: Duration = Duration::from_millis(500);
/// Ids per `XCLAIM ... JUSTID` of the keep-alive.
const KEEP_ALIVE_BATCH: usize = 500;

fn describe(e: RedisFailure) -> String {
    e.into_service_error("redis").message.into_string()
}

// === impl RedisPublisher ===

pub(crate) struct RedisPublisher {
    name: String,
    stream: String,
    max_len: u64,
    conn: LazyConnection,
}

impl RedisPublisher {
    pub fn new(name: &str, stream: &str, cfg: &QueueConfig) -> Result<Self, String> {
        let conn = LazyConnection::new(&cfg.url, cfg.timeout).map_err(|e| format!("`[queues.{name}]`: {e}"))?;
        Ok(RedisPublisher { name: name.to_owned(), stream: stream.to_owned(), max_len: cfg.max_len, conn })
    }
}

/// `XADD <stream> [MAXLEN ~ n] * data <payload> <header> <value> ...`.
fn xadd(stream: &str, max_len: u64, payload: &[u8], headers: &[(String, String)]) -> redis::Cmd {
    let mut cmd = redis::cmd("XADD");
    cmd.arg(stream);
    if max_len > 0 {
        cmd.arg("MAXLEN").arg("~").arg(max_len);
    }
    cmd.arg("*").arg(DATA_FIELD).arg(payload);
    for (k, v) in headers {
        cmd.arg(k).arg(v);
    }
    cmd
}

impl Publish for RedisPublisher {
    fn publish(&self, payload: Vec<u8>, headers: Vec<(String, String)>) -> PublishFuture<'_> {
        Box::pin(async move {
            if headers.iter().any(|(k, _)| k == DATA_FIELD) {
                let message = format!("a header cannot be named `{DATA_FIELD}`: it is the payload's field");
                return Err(ServiceError::new(kind::INVALID, &self.name, message));
            }
            let cmd = xadd(&self.stream, self.max_len, &payload, &headers);
            let id = self.conn.run(|mut c| async move { cmd.query_async::<String>(&mut c).await }).await;
            id.map_err(|e| e.into_service_error(&self.name))
        })
    }
}

// === Consumer ===

/// Checks the binding and returns its consumer's task.
pub(crate) fn consume(runner: Runner) -> Result<impl Future<Output = ()>, String> {
    let b = &runner.binding;
    let bad_url = |e: &dyn std::fmt::Display| format!("`[queues.{}]`: {e}", b.queue);
    let client = redis::Client::open(b.config.url.as_str()).map_err(|e| bad_url(&e))?;
    let conn = LazyConnection::new(&b.config.url, b.config.timeout).map_err(|e| bad_url(&e))?;
    let name = format!("{}-{}-{:x}", host_name(), std::process::id(), super::random_u64() & 0xffff_ffff);
    let slots = Slots::new(b.concurrency);
    let consumer = Consumer { runner, client, conn, name, slots, held: Mutex::new(HashSet::new()) };
    Ok(Arc::new(consumer).run())
}

fn host_name() -> String {
    std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "berth".into())
}

struct Consumer {
    runner: Runner,
    client: redis::Client,
    /// Everything but the blocking read.
    conn: LazyConnection,
    /// This consumer's name in the group.
    name: String,
    slots: Slots,
    /// Entries this consumer holds: in flight, waiting for a retry, or held for a swap.
    held: Mutex<HashSet<String>>,
}

impl Consumer {
    async fn run(self: Arc<Self>) {
        let me = self.clone();
        self.runner.sessions("redis", || me.clone().create_group()).await;
        if self.runner.is_stopping() {
            return;
        }
        let b = &self.runner.binding;
        tracing::info!(queue = %b.queue, stream = %b.stream, consumer_group = %b.consumer_group, consumer = %self.name,
            "consuming a Redis stream");
        let keep_alive = tokio::spawn(self.clone().keep_alive());
        let reclaim = tokio::spawn(self.clone().reclaim());
        self.clone().read().await;
        let _ = reclaim.await;
        self.slots.drain().await;
        keep_alive.abort();
        self.retire().await;
    }

    async fn cmd<T: redis::FromRedisValue + Send + 'static>(&self, cmd: redis::Cmd) -> Result<T, String> {
        self.conn.run(|mut c| async move { cmd.query_async::<T>(&mut c).await }).await.map_err(describe)
    }

    /// `XGROUP CREATE <stream> <group> 0 MKSTREAM`; an existing group is fine.
    async fn create_group(self: Arc<Self>) -> Result<(), String> {
        let b = &self.runner.binding;
        let mut cmd = redis::cmd("XGROUP");
        cmd.arg("CREATE").arg(&b.stream).arg(&b.consumer_group).arg("0").arg("MKSTREAM");
        match self.cmd::<()>(cmd).await {
            Err(e) if !e.contains("BUSYGROUP") => Err(e),
            _ => Ok(()),
        }
    }

    async fn reader(&self) -> Result<MultiplexedConnection, RedisError> {
        let timeout = self.runner.binding.config.timeout;
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(BLOCK + timeout));
        self.client.get_multiplexed_async_connection_with_config(&config).await
    }

    /// Reads fresh entries while there are free slots, until the runner stops.
    async fn read(self: Arc<Self>) {
        let b = self.runner.binding.clone();
        let mut stop = self.runner.ctx.stop.clone();
        let mut reader: Option<MultiplexedConnection> = None;
        let mut failures = 0u32;
        while let Some(first) = self.slots.one(&mut stop).await {
            let permits = self.slots.more(first, b.concurrency as usize);
            let result = async {
                let conn = match &mut reader {
                    Some(c) => c,
                    None => reader.insert(self.reader().await?),
                };
                redis::cmd("XREADGROUP")
                    .arg("GROUP")
                    .arg(&b.consumer_group)
                    .arg(&self.name)
                    .arg("COUNT")
                    .arg(permits.len())
                    .arg("BLOCK")
                    .arg(BLOCK.as_millis() as u64)
                    .arg("STREAMS")
                    .arg(&b.stream)
                    .arg(">")
                    .query_async::<Option<StreamReadReply>>(conn)
                    .await
            }
            .await;
            match result {
                Ok(reply) => {
                    failures = 0;
                    let entries = reply.into_iter().flat_map(|r| r.keys).flat_map(|k| k.ids);
                    for (entry, permit) in entries.zip(permits) {
                        self.clone().deliver(entry, 1, permit);
                    }
                }
                Err(e) => {
                    drop(permits);
                    reader = None;
                    failures += 1;
                    if e.code() == Some("NOGROUP") {
                        // The stream or the group was deleted under us: make them again.
                        let _ = self.clone().create_group().await;
                    }
                    let delay = Duration::from_millis(100u64 << failures.min(8)).min(Duration::from_secs(20));
                    tracing::warn!(queue = %b.queue, error = %e, retry_in_ms = delay.as_millis() as u64,
                        "reading the Redis stream failed");
                    tokio::select! {
                        _ = tokio::time::sleep(delay) => {}
                        _ = stopped(&mut stop) => {}
                    }
                }
            }
        }
    }

    /// Takes over entries idle for longer than the visibility timeout (their consumer is gone).
    async fn reclaim(self: Arc<Self>) {
        let b = self.runner.binding.clone();
        let mut stop = self.runner.ctx.stop.clone();
        let idle = b.config.visibility_timeout;
        let every = (idle / 4).clamp(Duration::from_millis(100), Duration::from_secs(5));
        let mut cursor = "0-0".to_owned();
        loop {
            if cursor == "0-0" {
                tokio::select! {
                    _ = tokio::time::sleep(every) => {}
                    _ = stopped(&mut stop) => return,
                }
            }
            let Some(first) = self.slots.one(&mut stop).await else { return };
            let permits = self.slots.more(first, b.concurrency as usize);
            let mut cmd = redis::cmd("XAUTOCLAIM");
            cmd.arg(&b.stream).arg(&b.consumer_group).arg(&self.name).arg(idle.as_millis() as u64).arg(&cursor);
            cmd.arg("COUNT").arg(permits.len());
            let reply = match self.cmd::<StreamAutoClaimReply>(cmd).await {
                Ok(r) => r,
                Err(e) => {
                    tracing::warn!(queue = %b.queue, error = %e, "reclaiming idle Redis entries failed");
                    cursor = "0-0".into();
                    continue;
                }
            };
            cursor = reply.next_stream_id;
            let claimed: Vec<StreamId> = {
                let held = self.held.lock().expect("held lock");
                reply.claimed.into_iter().filter(|e| !held.contains(&e.id)).collect()
            };
            if claimed.is_empty() {
                continue;
            }
            let counts = self.delivery_counts(&claimed).await;
            tracing::info!(queue = %b.queue, entries = claimed.len(), "took over entries a stopped consumer left");
            for (entry, permit) in claimed.into_iter().zip(permits) {
                let attempt = counts.get(&entry.id).copied().unwrap_or(1).max(1);
                self.clone().deliver(entry, attempt, permit);
            }
        }
    }

    /// How many times each entry was delivered (`XPENDING` of this consumer over their range).
    async fn delivery_counts(&self, entries: &[StreamId]) -> BTreeMap<String, u32> {
        let b = &self.runner.binding;
        let (Some(first), Some(last)) = (entries.first(), entries.last()) else { return BTreeMap::new() };
        let mut cmd = redis::cmd("XPENDING");
        cmd.arg(&b.stream).arg(&b.consumer_group).arg(&first.id).arg(&last.id).arg(entries.len() * 2 + 16);
        cmd.arg(&self.name);
        match self.cmd::<StreamPendingCountReply>(cmd).await {
            Ok(r) => r.ids.into_iter().map(|p| (p.id, p.times_delivered as u32)).collect(),
            Err(_) => BTreeMap::new(),
        }
    }

    /// Resets the idle time of every held entry, so no other consumer takes them over.
    async fn keep_alive(self: Arc<Self>) {
        let b = self.runner.binding.clone();
        let every = (b.config.visibility_timeout / 3).max(Duration::from_millis(50));
        loop {
            tokio::time::sleep(every).await;
            let ids: Vec<String> = self.held.lock().expect("held lock").iter().cloned().collect();
            for chunk in ids.chunks(KEEP_ALIVE_BATCH) {
                let mut cmd = redis::cmd("XCLAIM");
                cmd.arg(&b.stream).arg(&b.consumer_group).arg(&self.name).arg(0).arg(chunk).arg("JUSTID");
                if let Err(e) = self.cmd::<Value>(cmd).await {
                    tracing::warn!(queue = %b.queue, error = %e, "keeping Redis entries claimed failed");
                }
            }
        }
    }

    /// Leaves the group when this consumer holds nothing (a consumer with pending entries stays,
    /// so that they can be taken over).
    async fn retire(&self) {
        let b = &self.runner.binding;
        let mut cmd = redis::cmd("XPENDING");
        cmd.arg(&b.stream).arg(&b.consumer_group).arg("-").arg("+").arg(1).arg(&self.name);
        if let Ok(r) = self.cmd::<StreamPendingCountReply>(cmd).await {
            if r.ids.is_empty() {
                let mut cmd = redis::cmd("XGROUP");
                cmd.arg("DELCONSUMER").arg(&b.stream).arg(&b.consumer_group).arg(&self.name);
                let _ = self.cmd::<Value>(cmd).await;
            }
        }
    }

    /// Calls the function with `entry` and settles it, in a task of its own.
    fn deliver(self: Arc<Self>, entry: StreamId, attempt: u32, permit: OwnedSemaphorePermit) {
        self.held.lock().expect("held lock").insert(entry.id.clone());
        // Boxed once here rather than copied, kilobytes at a time, through the spawn.
        tokio::spawn(Box::pin(async move {
            let msg = received(entry, attempt);
            let verdict = self.runner.handle(&msg).await;
            Box::pin(self.clone().settle(msg, verdict)).await;
            drop(permit);
        }));
    }

    async fn settle(self: Arc<Self>, msg: Received, verdict: Verdict) {
        let b = self.runner.binding.clone();
        let done = match &verdict {
            Verdict::Ack => {
                let mut cmd = redis::cmd("XACK");
                cmd.arg(&b.stream).arg(&b.consumer_group).arg(&msg.backend_id);
                self.cmd::<i64>(cmd).await.map(drop)
            }
            Verdict::DeadLetter { error } => {
                let headers = msg.dead_letter_headers(error);
                let mut pipe = redis::pipe();
                pipe.atomic();
                pipe.add_command(xadd(&b.dead_letter, 0, &msg.payload, &headers)).ignore();
                pipe.cmd("XACK").arg(&b.stream).arg(&b.consumer_group).arg(&msg.backend_id).ignore();
                self.conn.run(|mut c| async move { pipe.query_async::<()>(&mut c).await }).await.map_err(describe)
            }
            Verdict::Retry { after, .. } => {
                self.clone().retry_later(msg.backend_id.clone(), msg.attempt, *after);
                Ok(())
            }
            Verdict::Release => Ok(()),
        };
        match done {
            Ok(()) => self.runner.settled(&msg, &verdict),
            Err(e) => self.runner.settle_failed(&msg, &verdict, &e),
        }
        if !matches!(verdict, Verdict::Retry { .. }) {
            // Settled, or left pending for a reclaim once it idles past the visibility timeout.
            self.held.lock().expect("held lock").remove(&msg.backend_id);
        }
    }

    /// After `after`, claims entry `id` back (counting the delivery) and delivers it again.
    fn retry_later(self: Arc<Self>, id: String, attempt: u32, after: Duration) {
        tokio::spawn(Box::pin(async move {
            let b = self.runner.binding.clone();
            let mut stop = self.runner.ctx.stop.clone();
            let slept = tokio::select! {
                _ = tokio::time::sleep(after) => true,
                _ = stopped(&mut stop) => false,
            };
            let permit = if slept { self.slots.one(&mut stop).await } else { None };
            let claimed = match permit {
                None => Ok(None),
                Some(permit) => {
                    let mut cmd = redis::cmd("XCLAIM");
                    cmd.arg(&b.stream).arg(&b.consumer_group).arg(&self.name).arg(0).arg(&id);
                    self.cmd::<StreamClaimReply>(cmd).await.map(|r| r.ids.into_iter().next().map(|e| (e, permit)))
                }
            };
            match claimed {
                Ok(Some((entry, permit))) => {
                    let msg = received(entry, attempt + 1);
                    let verdict = self.runner.handle(&msg).await;
                    Box::pin(self.clone().settle(msg, verdict)).await;
                    drop(permit);
                }
                // Stopping, or the entry is gone (acknowledged or deleted elsewhere): it stays
                // pending for whoever reclaims it, if anyone.
                Ok(None) => {
                    self.held.lock().expect("held lock").remove(&id);
                }
                Err(e) => {
                    tracing::warn!(queue = %b.queue, request_id = %id, error = %e,
                        "claiming a Redis entry for its retry failed; it will be reclaimed");
                    self.held.lock().expect("held lock").remove(&id);
                }
            }
        }));
    }
}

/// A stream entry as a message: `data` is the payload, other UTF-8 fields are headers.
pub fn received(entry: StreamId, attempt: u32) -> Received {
    let mut payload = Vec::new();
    let mut headers = Vec::new();
    for (k, v) in entry.map {
        let bytes = match v {
            Value::BulkString(b) => b,
            Value::SimpleString(s) => s.into_bytes(),
            Value::Int(i) => i.to_string().into_bytes(),
            _ => continue,
        };
        if k == DATA_FIELD {
            payload = bytes;
        } else if let Ok(v) = String::from_utf8(bytes) {
            headers.push((k, v));
        }
    }
    headers.sort();
    let time = entry
        .id
        .split('-')
        .next()
        .and_then(|ms| ms.parse::<i64>().ok())
        .and_then(chrono::DateTime::<chrono::Utc>::from_timestamp_millis)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true));
    Received { backend_id: entry.id, attempt, payload, headers, time }
}
