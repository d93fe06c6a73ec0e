//! Queue triggers against the real brokers on this machine: Redis (`REDIS_URL`, default
//! 127.0.0.1:6379), NATS with JetStream (`NATS_URL`, 127.0.0.1:4222) and RabbitMQ (`AMQP_URL`,
//! guest@127.0.0.1:5672). Each test uses streams and queues of its own, deleted afterwards.
//!
//! The fixture `queue-worker` records each message id once (KV compare-and-swap from absent) and
//! counts duplicates. Of 10,000 messages, every 10th fails once or twice before it succeeds and
//! every 200th is poison (a 422): in the end every other message is recorded exactly once, and
//! each poison one is in the dead-letter place with its error. Then the same with the host
//! killed (SIGKILL) mid-stream and restarted: nothing lost.

use std::collections::BTreeSet;
use std::hash::{BuildHasher, Hasher};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use async_nats::jetstream;
use lapin::options::{
    BasicGetOptions, BasicPublishOptions, ConfirmSelectOptions, QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::{BasicProperties, Connection, ConnectionProperties};
use redis::streams::StreamRangeReply;

use crate::support::{self, group, metric, BerthProcess, TestHost};

const MESSAGES: usize = 10_000;
const POISON_EVERY: usize = 200;
const FLAKY_EVERY: usize = 10;
/// How many of the messages go through the host's own publisher (`ctx.queue("jobs")`).
const VIA_HOST: usize = 200;
/// Backoff steps of the test config (20 ms doubling to 200 ms), for deleting RabbitMQ retry queues.
const RETRY_STEPS_MS: [u64; 5] = [20, 40, 80, 160, 200];
const DEADLINE: Duration = Duration::from_secs(90);

fn random() -> u64 {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos());
    h.finish()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Redis,
    Nats,
    Rabbitmq,
}

/// A dead-lettered message as the broker holds it.
#[derive(Debug)]
struct DeadLetter {
    ce_id: String,
    error: String,
    attempts: String,
    original_id: String,
}

/// One test's stream (or queue) on one broker, deleted when dropped.
struct Broker {
    kind: Kind,
    url: String,
    stream: String,
}

impl Broker {
    fn new(kind: Kind) -> Broker {
        let (var, default) = match kind {
            Kind::Redis => ("REDIS_URL", "redis://127.0.0.1:6379"),
            Kind::Nats => ("NATS_URL", "nats://127.0.0.1:4222"),
            Kind::Rabbitmq => ("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2f"),
        };
        let url = std::env::var(var).unwrap_or_else(|_| default.to_owned());
        Broker { kind, url, stream: format!("berth-test-{:012x}", random() & 0xffff_ffff_ffff) }
    }

    fn dead(&self) -> String {
        format!("{}.dead", self.stream)
    }

    /// `[queues.jobs]` for this broker, plus the fixture and its KV store.
    fn config(&self, kv: &str, visibility: &str) -> String {
        let kind = match self.kind {
            Kind::Redis => "redis",
            Kind::Nats => "nats",
            Kind::Rabbitmq => "rabbitmq",
        };
        format!(
            "{}[services.seen]\nkind = \"kv\"\n{kv}\n[queues.jobs]\nkind = \"{kind}\"\nurl = \"{}\"\nstream = \"{}\"\n\
             concurrency = 32\nmax_attempts = 4\nbackoff_base = \"20ms\"\nbackoff_max = \"200ms\"\n\
             visibility_timeout = \"{visibility}\"\n",
            group("host/fixtures/queue-worker"),
            self.url,
            self.stream
        )
    }

    async fn publish(&self, messages: &[(String, Vec<u8>)]) {
        match self.kind {
            Kind::Redis => {
                let client = redis::Client::open(self.url.as_str()).unwrap();
                let mut c = client.get_multiplexed_async_connection().await.unwrap();
                for chunk in messages.chunks(500) {
                    let mut pipe = redis::pipe();
                    for (id, payload) in chunk {
                        pipe.cmd("XADD").arg(&self.stream).arg("*").arg("data").arg(payload).arg("ce-id").arg(id);
                        pipe.arg("content-type").arg("application/json").ignore();
                    }
                    pipe.query_async::<()>(&mut c).await.unwrap();
                }
            }
            Kind::Nats => {
                let js = jetstream::new(async_nats::connect(self.url.as_str()).await.unwrap());
                let config = jetstream::stream::Config {
                    name: self.stream.clone(),
                    subjects: vec![self.stream.clone()],
                    ..Default::default()
                };
                js.get_or_create_stream(config).await.unwrap();
                for chunk in messages.chunks(500) {
                    let mut acks = Vec::new();
                    for (id, payload) in chunk {
                        let mut h = async_nats::HeaderMap::new();
                        h.insert("ce-id", id.as_str());
                        h.insert("content-type", "application/json");
                        acks.push(
                            js.publish_with_headers(self.stream.clone(), h, payload.clone().into()).await.unwrap(),
                        );
                    }
                    for a in acks {
                        a.await.unwrap();
                    }
                }
            }
            Kind::Rabbitmq => {
                let conn = Connection::connect(&self.url, ConnectionProperties::default()).await.unwrap();
                let ch = conn.create_channel().await.unwrap();
                ch.confirm_select(ConfirmSelectOptions::default()).await.unwrap();
                let durable = QueueDeclareOptions { durable: true, ..Default::default() };
                ch.queue_declare(self.stream.as_str().into(), durable, FieldTable::default()).await.unwrap();
                for chunk in messages.chunks(500) {
                    let mut confirms = Vec::new();
                    for (id, payload) in chunk {
                        let mut headers = FieldTable::default();
                        headers.insert("ce-id".into(), AMQPValue::LongString(LongString::from(id.as_bytes())));
                        let props = BasicProperties::default()
                            .with_message_id(id.as_str().into())
                            .with_content_type("application/json".into())
                            .with_delivery_mode(2)
                            .with_headers(headers);
                        let sent = ch
                            .basic_publish(
                                "".into(),
                                self.stream.as_str().into(),
                                BasicPublishOptions::default(),
                                payload,
                                props,
                            )
                            .await
                            .unwrap();
                        confirms.push(sent);
                    }
                    for c in confirms {
                        assert!(c.await.unwrap().is_ack());
                    }
                }
                let _ = conn.close(200, "done".into()).await;
            }
        }
    }

    async fn dead_letters(&self) -> Vec<DeadLetter> {
        let pick = |pairs: &[(String, String)], k: &str| {
            pairs.iter().find(|(n, _)| n.eq_ignore_ascii_case(k)).map(|(_, v)| v.clone()).unwrap_or_default()
        };
        let letter = |h: Vec<(String, String)>| DeadLetter {
            ce_id: pick(&h, "ce-id"),
            error: pick(&h, "x-berth-error"),
            attempts: pick(&h, "x-berth-attempts"),
            original_id: pick(&h, "x-berth-original-id"),
        };
        match self.kind {
            Kind::Redis => {
                let client = redis::Client::open(self.url.as_str()).unwrap();
                let mut c = client.get_multiplexed_async_connection().await.unwrap();
                let r: StreamRangeReply =
                    redis::cmd("XRANGE").arg(self.dead()).arg("-").arg("+").query_async(&mut c).await.unwrap();
                r.ids
                    .into_iter()
                    .map(|e| {
                        let h = e
                            .map
                            .into_iter()
                            .filter_map(|(k, v)| redis::from_redis_value::<String>(v).ok().map(|v| (k, v)))
                            .collect();
                        letter(h)
                    })
                    .collect()
            }
            Kind::Nats => {
                let js = jetstream::new(async_nats::connect(self.url.as_str()).await.unwrap());
                let Ok(mut stream) = js.get_stream(format!("{}_dead", self.stream)).await else { return Vec::new() };
                let state = stream.info().await.unwrap().state.clone();
                let mut out = Vec::new();
                for seq in state.first_sequence..=state.last_sequence {
                    if let Ok(m) = stream.get_raw_message(seq).await {
                        let h = m
                            .headers
                            .iter()
                            .filter_map(|(k, v)| v.first().map(|v| (k.to_string(), v.as_str().to_owned())))
                            .collect();
                        out.push(letter(h));
                    }
                }
                out
            }
            Kind::Rabbitmq => {
                let conn = Connection::connect(&self.url, ConnectionProperties::default()).await.unwrap();
                let ch = conn.create_channel().await.unwrap();
                let mut out = Vec::new();
                // Taken without acknowledgement, then returned to the queue when the channel closes.
                while let Ok(Some(m)) = ch.basic_get(self.dead().as_str().into(), BasicGetOptions::default()).await {
                    let h = m
                        .delivery
                        .properties
                        .headers()
                        .iter()
                        .flat_map(|t| t.inner())
                        .filter_map(|(k, v)| match v {
                            AMQPValue::LongString(s) => Some((k.to_string(), s.to_string())),
                            _ => None,
                        })
                        .collect();
                    out.push(letter(h));
                }
                let _ = conn.close(200, "done".into()).await;
                out
            }
        }
    }

    /// Messages delivered to the fixture's consumer and not acknowledged (Redis and NATS; RabbitMQ
    /// requeues them the moment the consumer's connection drops).
    async fn unacknowledged(&self) -> Option<u64> {
        let group = "berth-queue-worker-work";
        match self.kind {
            Kind::Redis => {
                let client = redis::Client::open(self.url.as_str()).ok()?;
                let mut c = client.get_multiplexed_async_connection().await.ok()?;
                let r: redis::streams::StreamPendingReply =
                    redis::cmd("XPENDING").arg(&self.stream).arg(group).query_async(&mut c).await.ok()?;
                Some(r.count() as u64)
            }
            Kind::Nats => {
                let js = jetstream::new(async_nats::connect(self.url.as_str()).await.ok()?);
                let stream = js.get_stream(&self.stream).await.ok()?;
                let mut consumer: jetstream::consumer::PullConsumer = stream.get_consumer(group).await.ok()?;
                Some(consumer.info().await.ok()?.num_ack_pending as u64)
            }
            Kind::Rabbitmq => None,
        }
    }

    async fn cleanup(&self) {
        match self.kind {
            Kind::Redis => {
                if let Ok(client) = redis::Client::open(self.url.as_str()) {
                    if let Ok(mut c) = client.get_multiplexed_async_connection().await {
                        let _: Result<(), _> =
                            redis::cmd("DEL").arg(&self.stream).arg(self.dead()).query_async(&mut c).await;
                    }
                }
            }
            Kind::Nats => {
                if let Ok(client) = async_nats::connect(self.url.as_str()).await {
                    let js = jetstream::new(client);
                    let _ = js.delete_stream(&self.stream).await;
                    let _ = js.delete_stream(format!("{}_dead", self.stream)).await;
                }
            }
            Kind::Rabbitmq => {
                if let Ok(conn) = Connection::connect(&self.url, ConnectionProperties::default()).await {
                    if let Ok(ch) = conn.create_channel().await {
                        let mut queues = vec![self.stream.clone(), self.dead()];
                        queues.extend(RETRY_STEPS_MS.iter().map(|ms| format!("{}.retry.{ms}", self.stream)));
                        for q in queues {
                            let _ = ch.queue_delete(q.as_str().into(), QueueDeleteOptions::default()).await;
                        }
                    }
                    let _ = conn.close(200, "done".into()).await;
                }
            }
        }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let me = Broker { kind: self.kind, url: self.url.clone(), stream: self.stream.clone() };
        let cleanup = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(me.cleanup());
            std::mem::forget(me); // its own drop would clean up again
        });
        let _ = cleanup.join();
    }
}

/// The messages of one run: ids, payloads, and what should become of them.
struct Plan {
    messages: Vec<(String, Vec<u8>)>,
    handled: BTreeSet<String>,
    poison: BTreeSet<String>,
    /// Failed attempts the flaky messages make before they succeed.
    retries: u64,
}

fn plan() -> Plan {
    let run = format!("{:08x}", random() & 0xffff_ffff);
    let mut p = Plan { messages: Vec::new(), handled: BTreeSet::new(), poison: BTreeSet::new(), retries: 0 };
    for i in 0..MESSAGES {
        let id = format!("{run}-{i:05}");
        let payload = if i % POISON_EVERY == 7 {
            p.poison.insert(id.clone());
            serde_json::json!({ "n": i, "poison": true })
        } else if i % FLAKY_EVERY == 3 {
            let fail_times = 1 + (i / FLAKY_EVERY % 2) as u64;
            p.retries += fail_times;
            p.handled.insert(id.clone());
            serde_json::json!({ "n": i, "fail_times": fail_times })
        } else {
            p.handled.insert(id.clone());
            serde_json::json!({ "n": i })
        };
        p.messages.push((id, payload.to_string().into_bytes()));
    }
    p
}

/// What the fixture recorded: ids handled, and duplicates.
async fn report(addr: SocketAddr) -> Option<(BTreeSet<String>, i64)> {
    let res = support::request(addr, "GET", "/report", &[], b"").await;
    if res.status != 200 {
        return None;
    }
    let v = res.json();
    let seen = v["seen"].as_array()?.iter().filter_map(|s| s.as_str().map(str::to_owned)).collect();
    Some((seen, v["duplicates"].as_i64().unwrap_or(0)))
}

/// Waits until every message that should be handled was, and every poison one dead-lettered.
async fn settled(addr: SocketAddr, broker: &Broker, plan: &Plan) -> (BTreeSet<String>, i64, Vec<DeadLetter>) {
    let started = Instant::now();
    loop {
        let (seen, duplicates) = report(addr).await.unwrap_or_default();
        let dead = if seen.len() >= plan.handled.len() { broker.dead_letters().await } else { Vec::new() };
        let dead_ids: BTreeSet<&str> = dead.iter().map(|d| d.ce_id.as_str()).collect();
        if seen.len() >= plan.handled.len() && dead_ids.len() >= plan.poison.len() {
            return (seen, duplicates, dead);
        }
        assert!(
            started.elapsed() < DEADLINE,
            "{:?}: after {DEADLINE:?}, {} of {} handled and {} of {} dead-lettered",
            broker.kind,
            seen.len(),
            plan.handled.len(),
            dead_ids.len(),
            plan.poison.len()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

fn check_outcome(kind: Kind, plan: &Plan, seen: &BTreeSet<String>, dead: &[DeadLetter]) {
    let missing: Vec<_> = plan.handled.difference(seen).take(5).collect();
    let extra: Vec<_> = seen.difference(&plan.handled).take(5).collect();
    assert!(missing.is_empty() && extra.is_empty(), "{kind:?}: missing {missing:?}, unexpected {extra:?}");
    let dead_ids: BTreeSet<String> = dead.iter().map(|d| d.ce_id.clone()).collect();
    assert_eq!(dead_ids, plan.poison, "{kind:?}: the dead-lettered messages are exactly the poison ones");
    for d in dead {
        assert!(d.error.contains("permanent") && d.error.contains("poison"), "{kind:?}: dead letter error: {d:?}");
        assert!(!d.original_id.is_empty() && !d.attempts.is_empty(), "{kind:?}: dead letter headers: {d:?}");
    }
}

async fn every_message_once(kind: Kind) {
    let broker = Broker::new(kind);
    let plan = plan();
    let host = TestHost::start(&broker.config("", "2s")).await;
    let started = Instant::now();
    // Some through the host's publisher, the rest straight to the broker.
    for chunk in plan.messages[..VIA_HOST].chunks(VIA_HOST / 2) {
        let body: Vec<_> = chunk
            .iter()
            .map(|(id, p)| serde_json::json!({ "id": id, "payload": serde_json::from_slice::<serde_json::Value>(p).unwrap() }))
            .collect();
        let res =
            host.send("POST", "/publish", &[("content-type", "application/json")], body_of(&body).as_bytes()).await;
        assert_eq!(res.status, 200, "{kind:?}: publishing through the host: {}", res.text());
        assert_eq!(res.json().as_array().map(Vec::len), Some(chunk.len()));
    }
    broker.publish(&plan.messages[VIA_HOST..]).await;
    let (seen, duplicates, dead) = settled(host.addr, &broker, &plan).await;
    let elapsed = started.elapsed();
    check_outcome(kind, &plan, &seen, &dead);
    assert_eq!(duplicates, 0, "{kind:?}: no message handled twice without a crash");
    let metrics = host.get("/metrics").await.text();
    let count = |outcome: &str| {
        metric(&metrics, &format!("berth_queue_messages_total{{outcome=\"{outcome}\",queue=\"jobs\"}}")).unwrap_or(0.0)
            as u64
    };
    assert_eq!(count("acked"), plan.handled.len() as u64, "{kind:?}: {metrics}");
    assert_eq!(count("dead_lettered"), plan.poison.len() as u64);
    assert_eq!(count("retried"), plan.retries);
    eprintln!(
        "{kind:?}: {MESSAGES} messages in {elapsed:.1?}: {} handled once, {duplicates} duplicates, {} retries, {} dead-lettered, 0 lost",
        seen.len(),
        plan.retries,
        dead.len()
    );
    host.stop().await;
}

fn body_of(v: &[serde_json::Value]) -> String {
    serde_json::Value::Array(v.to_vec()).to_string()
}

async fn nothing_lost_across_sigkill(kind: Kind) {
    let broker = std::sync::Arc::new(Broker::new(kind));
    let plan = std::sync::Arc::new(plan());
    let kv = tempfile::tempdir().unwrap();
    let kv_path = format!("path = \"{}\"", kv.path().join("seen.db").display());
    let config = broker.config(&kv_path, "1s");
    let first = {
        let config = config.clone();
        tokio::task::spawn_blocking(move || BerthProcess::start("", &config)).await.unwrap()
    };
    // Publish in slices while the host consumes, before and after the kill.
    let publisher = {
        let (broker, plan) = (broker.clone(), plan.clone());
        tokio::spawn(async move {
            for chunk in plan.messages.chunks(500) {
                broker.publish(chunk).await;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };
    let started = Instant::now();
    let at_kill = loop {
        let seen = report(first.addr).await.map(|r| r.0.len()).unwrap_or(0);
        if seen >= 2_000 {
            break seen;
        }
        assert!(started.elapsed() < DEADLINE, "{kind:?}: the first host handled only {seen} messages");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let mut first = first;
    first.child.kill().unwrap(); // SIGKILL
    first.child.wait().unwrap();
    let in_flight =
        broker.unacknowledged().await.map(|n| format!(", {n} delivered and not acknowledged")).unwrap_or_default();
    let second = tokio::task::spawn_blocking(move || BerthProcess::start("", &config)).await.unwrap();
    publisher.await.unwrap();
    let (seen, duplicates, dead) = settled(second.addr, &broker, &plan).await;
    check_outcome(kind, &plan, &seen, &dead);
    eprintln!(
        "{kind:?}: killed with SIGKILL after {at_kill} of {} handled{in_flight}; after the restart {} handled \
         once, {duplicates} handled again (at least once), {} dead-lettered, 0 lost",
        plan.handled.len(),
        seen.len(),
        dead.len()
    );
    drop(first);
    drop(second);
}

/// `[[triggers]]` in berth.toml overrides the function's own binding without a rebuild: with
/// `max_attempts = 1`, a message that would have succeeded on its second attempt is dead-lettered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trigger_binding_in_berth_toml_overrides_the_attribute() {
    let broker = Broker::new(Kind::Redis);
    let config = broker.config("", "2s")
        + "[[triggers]]\ngroup = \"queue-worker\"\nfunction = \"work\"\nqueue = \"jobs\"\nmax_attempts = 1\n";
    let host = TestHost::start(&config).await;
    let messages: Vec<(String, Vec<u8>)> = [("ok", "{}"), ("flaky", r#"{"fail_times": 1}"#)]
        .iter()
        .map(|(id, p)| (format!("{}-{id}", broker.stream), p.as_bytes().to_vec()))
        .collect();
    broker.publish(&messages).await;
    let started = Instant::now();
    let (seen, dead) = loop {
        let seen = report(host.addr).await.map(|r| r.0).unwrap_or_default();
        let dead = broker.dead_letters().await;
        if !seen.is_empty() && !dead.is_empty() {
            break (seen, dead);
        }
        assert!(started.elapsed() < Duration::from_secs(30), "seen {seen:?}, dead-lettered {dead:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(seen.into_iter().collect::<Vec<_>>(), [messages[0].0.clone()]);
    assert_eq!(dead.len(), 1);
    assert_eq!((dead[0].ce_id.as_str(), dead[0].attempts.as_str()), (messages[1].0.as_str(), "1"));
    assert!(dead[0].error.contains("gave up after 1 attempts"), "{dead:?}");
    host.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_streams_handle_every_message_once_and_dead_letter_poison() {
    every_message_once(Kind::Redis).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nats_jetstream_handles_every_message_once_and_dead_letters_poison() {
    every_message_once(Kind::Nats).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rabbitmq_handles_every_message_once_and_dead_letters_poison() {
    every_message_once(Kind::Rabbitmq).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_streams_lose_nothing_when_the_host_is_killed() {
    nothing_lost_across_sigkill(Kind::Redis).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_jetstream_loses_nothing_when_the_host_is_killed() {
    nothing_lost_across_sigkill(Kind::Nats).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rabbitmq_loses_nothing_when_the_host_is_killed() {
    nothing_lost_across_sigkill(Kind::Rabbitmq).await;
}
