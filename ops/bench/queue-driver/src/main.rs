//! Driver of `ops/bench/queue.sh`: the publisher that fills a stream, the raw-client consumer
//! berth is compared with, and the watcher that times berth from its metrics.
//!
//! ```text
//! queue-bench fill    <redis|nats|rabbitmq> <url> <stream> <count> [payload bytes]
//! queue-bench consume <redis|nats|rabbitmq> <url> <stream> <count> <concurrency>
//! queue-bench watch   <metrics url> <queue> <count> <berth pid> [timeout s]
//! queue-bench cleanup <redis|nats|rabbitmq> <url> <stream>
//! ```
//!
//! The raw consumer does per message what berth's queue trigger does around the function call,
//! with the same client library: Redis `XREADGROUP` (as many as there are free slots) and `XACK`
//! from a task per message; a JetStream durable pull consumer and an ack; a RabbitMQ consumer
//! with prefetch = concurrency and an ack. `consume` and `watch` end with
//! `RESULT rate=<messages/s> cpu_us=<µs of CPU per message>`, timed from the first message taken
//! to the last acknowledged.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream;
use futures_util::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions, ConfirmSelectOptions,
    QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Connection, ConnectionProperties};
use redis::streams::StreamReadReply;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{Notify, Semaphore};

type Error = Box<dyn std::error::Error + Send + Sync>;

fn main() -> Result<(), Error> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg =
        |i: usize| args.get(i).cloned().ok_or_else(|| format!("missing argument {i}; see the usage in the source"));
    // One worker, like the berth host it is compared with (`server.workers = 1`).
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build()?;
    rt.block_on(async {
        match arg(0)?.as_str() {
            "fill" => {
                let size = args.get(5).map(|s| s.parse()).transpose()?.unwrap_or(64);
                fill(&arg(1)?, &arg(2)?, &arg(3)?, arg(4)?.parse()?, size).await
            }
            "consume" => consume(&arg(1)?, &arg(2)?, &arg(3)?, arg(4)?.parse()?, arg(5)?.parse()?).await,
            "watch" => {
                let timeout = args.get(5).map(|s| s.parse()).transpose()?.unwrap_or(120);
                watch(&arg(1)?, &arg(2)?, arg(3)?.parse()?, arg(4)?.parse()?, Duration::from_secs(timeout)).await
            }
            "cleanup" => cleanup(&arg(1)?, &arg(2)?, &arg(3)?).await,
            other => Err(format!("unknown command `{other}`").into()),
        }
    })
}

/// utime + stime of a process, in microseconds.
fn cpu_us(pid: &str) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat.rsplit(')').next().unwrap_or("").split_whitespace().collect();
    let ticks: u64 = fields.get(11..13).map(|f| f.iter().filter_map(|t| t.parse::<u64>().ok()).sum()).unwrap_or(0);
    ticks * 10_000 // CLK_TCK is 100 on Linux
}

fn result(count: u64, elapsed: Duration, cpu: u64) {
    let rate = count as f64 / elapsed.as_secs_f64();
    println!("RESULT rate={rate:.0} cpu_us={:.2}", cpu as f64 / count as f64);
}

// === fill ===

async fn fill(kind: &str, url: &str, stream: &str, count: u64, size: usize) -> Result<(), Error> {
    let payload = vec![b'x'; size];
    match kind {
        "redis" => {
            let mut c = redis::Client::open(url)?.get_multiplexed_async_connection().await?;
            for start in (0..count).step_by(1000) {
                let mut pipe = redis::pipe();
                for i in start..(start + 1000).min(count) {
                    pipe.cmd("XADD").arg(stream).arg("*").arg("data").arg(&payload[..]).arg("n").arg(i).ignore();
                }
                pipe.query_async::<()>(&mut c).await?;
            }
        }
        "nats" => {
            let js = jetstream::new(async_nats::connect(url).await?);
            let config =
                jetstream::stream::Config { name: stream.into(), subjects: vec![stream.into()], ..Default::default() };
            js.get_or_create_stream(config).await?;
            for start in (0..count).step_by(1000) {
                let mut acks = Vec::new();
                for _ in start..(start + 1000).min(count) {
                    acks.push(js.publish(stream.to_owned(), payload.clone().into()).await?);
                }
                for a in acks {
                    a.await?;
                }
            }
        }
        "rabbitmq" => {
            let conn = Connection::connect(url, ConnectionProperties::default()).await?;
            let ch = conn.create_channel().await?;
            ch.confirm_select(ConfirmSelectOptions::default()).await?;
            let durable = QueueDeclareOptions { durable: true, ..Default::default() };
            ch.queue_declare(stream.into(), durable, FieldTable::default()).await?;
            for start in (0..count).step_by(1000) {
                let mut confirms = Vec::new();
                for i in start..(start + 1000).min(count) {
                    let props = BasicProperties::default().with_delivery_mode(2).with_message_id(i.to_string().into());
                    confirms.push(
                        ch.basic_publish("".into(), stream.into(), BasicPublishOptions::default(), &payload, props)
                            .await?,
                    );
                }
                for c in confirms {
                    c.await?;
                }
            }
            conn.close(200, "filled".into()).await?;
        }
        other => return Err(format!("unknown backend `{other}`").into()),
    }
    Ok(())
}

// === consume ===

/// Counts acknowledgements and marks the first message and the last acknowledgement.
struct Progress {
    count: u64,
    acked: AtomicU64,
    done: Notify,
    started: std::sync::OnceLock<(Instant, u64)>,
}

impl Progress {
    fn new(count: u64) -> Arc<Self> {
        Arc::new(Progress { count, acked: AtomicU64::new(0), done: Notify::new(), started: Default::default() })
    }
    fn taken(&self) {
        self.started.get_or_init(|| (Instant::now(), cpu_us("self")));
    }
    fn acked(&self) {
        if self.acked.fetch_add(1, Ordering::Relaxed) + 1 == self.count {
            self.done.notify_one();
        }
    }
    async fn finish(&self) {
        let notified = self.done.notified();
        if self.acked.load(Ordering::Relaxed) < self.count {
            notified.await;
        }
        let (t0, cpu0) = *self.started.get().expect("a message was taken");
        result(self.count, t0.elapsed(), cpu_us("self") - cpu0);
    }
}

async fn consume(kind: &str, url: &str, stream: &str, count: u64, concurrency: usize) -> Result<(), Error> {
    let progress = Progress::new(count);
    let slots = Arc::new(Semaphore::new(concurrency));
    let consumer = format!("raw-{}", std::process::id());
    match kind {
        "redis" => {
            let client = redis::Client::open(url)?;
            let mut reader = client.get_multiplexed_async_connection().await?;
            let acker = client.get_multiplexed_async_connection().await?;
            let created: Result<(), _> = redis::cmd("XGROUP")
                .arg("CREATE")
                .arg(stream)
                .arg("raw")
                .arg("0")
                .arg("MKSTREAM")
                .query_async(&mut reader)
                .await;
            drop(created);
            let p = progress.clone();
            let stream = stream.to_owned();
            tokio::spawn(async move {
                loop {
                    let first = slots.clone().acquire_owned().await.expect("open semaphore");
                    let mut permits = vec![first];
                    while permits.len() < concurrency {
                        match slots.clone().try_acquire_owned() {
                            Ok(x) => permits.push(x),
                            Err(_) => break,
                        }
                    }
                    let reply: Option<StreamReadReply> = redis::cmd("XREADGROUP")
                        .arg("GROUP")
                        .arg("raw")
                        .arg(&consumer)
                        .arg("COUNT")
                        .arg(permits.len())
                        .arg("BLOCK")
                        .arg(200)
                        .arg("STREAMS")
                        .arg(&stream)
                        .arg(">")
                        .query_async(&mut reader)
                        .await
                        .expect("XREADGROUP");
                    for (entry, permit) in reply.into_iter().flat_map(|r| r.keys).flat_map(|k| k.ids).zip(permits) {
                        p.taken();
                        let (p, mut acker, stream) = (p.clone(), acker.clone(), stream.clone());
                        tokio::spawn(async move {
                            let _: i64 = redis::cmd("XACK")
                                .arg(&stream)
                                .arg("raw")
                                .arg(&entry.id)
                                .query_async(&mut acker)
                                .await
                                .expect("XACK");
                            p.acked();
                            drop(permit);
                        });
                    }
                }
            });
        }
        "nats" => {
            let js = jetstream::new(async_nats::connect(url).await?);
            let s = js.get_stream(stream).await?;
            let config = jetstream::consumer::pull::Config {
                durable_name: Some(consumer.clone()),
                ack_policy: jetstream::consumer::AckPolicy::Explicit,
                max_deliver: -1,
                ..Default::default()
            };
            let c: jetstream::consumer::PullConsumer = s.get_or_create_consumer(&consumer, config).await?;
            let mut messages =
                c.stream().max_messages_per_batch(concurrency).heartbeat(Duration::from_secs(5)).messages().await?;
            let p = progress.clone();
            tokio::spawn(async move {
                loop {
                    let permit = slots.clone().acquire_owned().await.expect("open semaphore");
                    let Some(Ok(m)) = messages.next().await else { break };
                    p.taken();
                    let p = p.clone();
                    tokio::spawn(async move {
                        m.ack().await.expect("ack");
                        p.acked();
                        drop(permit);
                    });
                }
            });
        }
        "rabbitmq" => {
            let conn = Connection::connect(url, ConnectionProperties::default()).await?;
            let ch = conn.create_channel().await?;
            ch.basic_qos(u16::try_from(concurrency)?, BasicQosOptions::default()).await?;
            let mut deliveries = ch
                .basic_consume(
                    stream.into(),
                    consumer.as_str().into(),
                    BasicConsumeOptions::default(),
                    FieldTable::default(),
                )
                .await?;
            let p = progress.clone();
            tokio::spawn(async move {
                let _conn = conn;
                loop {
                    let permit = slots.clone().acquire_owned().await.expect("open semaphore");
                    let Some(Ok(d)) = deliveries.next().await else { break };
                    p.taken();
                    let p = p.clone();
                    tokio::spawn(async move {
                        d.ack(BasicAckOptions::default()).await.expect("ack");
                        p.acked();
                        drop(permit);
                    });
                }
            });
        }
        other => return Err(format!("unknown backend `{other}`").into()),
    }
    progress.finish().await;
    Ok(())
}

// === watch ===

/// `berth_queue_messages_total{queue,outcome="acked"}` from berth's `/metrics`.
async fn acked(metrics: &str, queue: &str) -> Result<u64, Error> {
    let rest = metrics.strip_prefix("http://").ok_or("the metrics url starts with http://")?;
    let (host, path) = rest.split_once('/').map(|(h, p)| (h, format!("/{p}"))).unwrap_or((rest, "/metrics".into()));
    let mut s = tokio::net::TcpStream::connect(host).await?;
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").as_bytes()).await?;
    let mut body = String::new();
    s.read_to_string(&mut body).await?;
    let want = format!("berth_queue_messages_total{{outcome=\"acked\",queue=\"{queue}\"}} ");
    Ok(body.lines().find_map(|l| l.strip_prefix(&want)).and_then(|v| v.trim().parse().ok()).unwrap_or(0))
}

async fn watch(metrics: &str, queue: &str, count: u64, pid: u32, timeout: Duration) -> Result<(), Error> {
    let pid = pid.to_string();
    let deadline = Instant::now() + timeout;
    let mut start: Option<(Instant, u64, u64)> = None;
    loop {
        let n = acked(metrics, queue).await.unwrap_or(0);
        if n > 0 && start.is_none() {
            start = Some((Instant::now(), n, cpu_us(&pid)));
        }
        if n >= count {
            let (t0, n0, cpu0) = start.expect("started");
            result(count - n0, t0.elapsed(), cpu_us(&pid) - cpu0);
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!("berth acknowledged {n} of {count} messages within {timeout:?}").into());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

// === cleanup ===

async fn cleanup(kind: &str, url: &str, stream: &str) -> Result<(), Error> {
    match kind {
        "redis" => {
            let mut c = redis::Client::open(url)?.get_multiplexed_async_connection().await?;
            redis::cmd("DEL").arg(stream).arg(format!("{stream}.dead")).query_async::<()>(&mut c).await?;
        }
        "nats" => {
            let js = jetstream::new(async_nats::connect(url).await?);
            let _ = js.delete_stream(stream).await;
            let _ = js.delete_stream(format!("{stream}_dead")).await;
        }
        "rabbitmq" => {
            let conn = Connection::connect(url, ConnectionProperties::default()).await?;
            let ch = conn.create_channel().await?;
            for q in [stream.to_owned(), format!("{stream}.dead")] {
                ch.queue_delete(q.as_str().into(), QueueDeleteOptions::default()).await?;
            }
            conn.close(200, "cleaned".into()).await?;
        }
        other => return Err(format!("unknown backend `{other}`").into()),
    }
    Ok(())
}
