use std::collections::BTreeMap;
use std::sync::Arc;

use super::*;
use berth_core::Dispatcher;

/// The queue sections of a `berth.toml`.
#[derive(serde::Deserialize)]
struct Sections {
    #[serde(default)]
    queues: BTreeMap<String, QueueConfig>,
    #[serde(default)]
    triggers: Vec<TriggerBindingConfig>,
}

fn config(extra: &str) -> Sections {
    let text = format!("[queues.orders]\nkind = \"redis\"\nurl = \"redis://127.0.0.1:6379\"\nbackoff_base = \"100ms\"\nbackoff_max = \"1s\"\n{extra}");
    toml::from_str(&text).unwrap()
}

fn binding(concurrency: Option<u32>, max_attempts: Option<u32>) -> Binding {
    let cfg = config("");
    let b = EventBinding {
        group: "shop".into(),
        function: "ship".into(),
        trigger: TriggerSpec::Queue { queue: "orders".into(), concurrency, max_attempts },
    };
    Binding::resolve(&b, "orders", &cfg.queues["orders"], concurrency, max_attempts)
}

fn failed(status: u16) -> Result<(), DeliveryError> {
    let status = http::StatusCode::from_u16(status).unwrap();
    Err(DeliveryError::Failed { status, code: "x".into(), message: "boom".into() })
}

#[test]
fn defaults_come_from_the_queue_and_the_trigger_wins() {
    let b = binding(None, None);
    assert_eq!((b.stream.as_str(), b.dead_letter.as_str()), ("orders", "orders.dead"));
    assert_eq!(b.consumer_group, "berth-shop-ship");
    assert_eq!((b.concurrency, b.max_attempts), (8, 5));
    let b = binding(Some(3), Some(2));
    assert_eq!((b.concurrency, b.max_attempts), (3, 2));
}

#[test]
fn backoff_doubles_with_jitter_up_to_the_cap() {
    let b = binding(None, None);
    for attempt in 1..=10 {
        let step = b.backoff_step(attempt);
        let d = b.backoff(attempt);
        assert!(d >= step / 2 && d <= step, "attempt {attempt}: {d:?} not within half of {step:?}");
    }
    assert_eq!(b.backoff_step(1), Duration::from_millis(100));
    assert_eq!(b.backoff_step(3), Duration::from_millis(400));
    assert_eq!(b.backoff_step(10), Duration::from_secs(1));
    assert_eq!(b.backoff_step(u32::MAX), Duration::from_secs(1));
}

#[test]
fn verdicts_retry_transient_failures_and_dead_letter_permanent_or_last_ones() {
    let b = binding(None, Some(3));
    assert_eq!(judge(&b, 1, Ok(())), Some(Verdict::Ack));
    assert!(matches!(judge(&b, 1, failed(500)), Some(Verdict::Retry { .. })));
    assert!(matches!(judge(&b, 2, failed(504)), Some(Verdict::Retry { .. })));
    assert!(matches!(judge(&b, 3, failed(500)), Some(Verdict::DeadLetter { error }) if error.contains("3 attempts")));
    assert!(matches!(judge(&b, 1, failed(422)), Some(Verdict::DeadLetter { error }) if error.contains("permanent")));
    assert!(matches!(judge(&b, 1, failed(429)), Some(Verdict::Retry { .. })));
    assert_eq!(judge(&b, 1, Err(DeliveryError::NoSuchFunction("shop".into(), "ship".into()))), None);
}

fn runner(stop: tokio::sync::watch::Receiver<bool>) -> Runner {
    Runner {
        binding: Arc::new(binding(None, None)),
        ctx: RunnerContext { dispatcher: Arc::new(Dispatcher::default()), stop },
        counts: Outcomes::of(&queue_counter(&Metrics::new()), "orders"),
    }
}

#[test]
fn a_message_becomes_a_cloudevent_with_its_headers_as_extensions() {
    let (_stop, rx) = tokio::sync::watch::channel(false);
    let runner = runner(rx);
    let msg = Received {
        backend_id: "1-0".into(),
        attempt: 2,
        payload: b"{}".to_vec(),
        headers: vec![
            ("content-type".into(), "application/json".into()),
            ("tenant".into(), "acme".into()),
            ("attempt".into(), "99".into()),
        ],
        time: None,
    };
    let ev = runner.event(&msg);
    assert_eq!(
        (ev.id.as_str(), ev.source.as_str(), ev.ty.as_str()),
        ("1-0", "berth/queue/orders", "berth.queue.message")
    );
    assert_eq!(ev.datacontenttype.as_deref(), Some("application/json"));
    assert_eq!(ev.extensions, vec![("attempt".to_owned(), "2".to_owned()), ("tenant".to_owned(), "acme".to_owned())]);
    let mut with_id = msg.clone();
    with_id.headers.push(("ce-id".into(), "order-7".into()));
    assert_eq!(runner.event(&with_id).id, "order-7");
    let dead = with_id.dead_letter_headers("boom");
    for (k, v) in [(ERROR_HEADER, "boom"), (ATTEMPTS_HEADER, "2"), (ORIGINAL_ID_HEADER, "1-0"), ("ce-id", "order-7")] {
        assert!(dead.iter().any(|(hk, hv)| hk == k && hv == v), "{k}={v} missing from {dead:?}");
    }
}

#[test]
fn config_bindings_override_the_same_queue_and_add_others() {
    let cfg = config(
        "[queues.audit]\nkind = \"nats\"\nurl = \"nats://127.0.0.1:4222\"\n\
         [[triggers]]\ngroup = \"shop\"\nfunction = \"ship\"\nqueue = \"audit\"\n\
         [[triggers]]\ngroup = \"nobody\"\nfunction = \"ship\"\nqueue = \"audit\"\n",
    );
    let extra = config_bindings(&cfg.triggers);
    assert_eq!(extra.len(), 2);
    assert!(
        matches!(&extra[0].trigger, TriggerSpec::Queue { queue, concurrency: None, max_attempts: None } if queue == "audit")
    );
}

#[test]
fn publishers_refuse_queues_that_are_not_configured() {
    let p = Publishers::new(&config("").queues, Metrics::new());
    let err = p.handle("payments").err().unwrap();
    assert!(err.contains("[queues.payments]") && err.contains("kind = \"redis\""), "{err}");
    #[cfg(feature = "redis")]
    assert!(p.handle("orders").is_ok());
    #[cfg(not(feature = "redis"))]
    {
        let err = p.handle("orders").err().unwrap();
        assert!(err.contains("built without") && err.contains("--features redis"), "{err}");
    }
}

#[tokio::test]
async fn a_message_for_a_function_that_is_not_serving_is_held_then_released_on_stop() {
    let (stop, rx) = tokio::sync::watch::channel(false);
    let runner = runner(rx);
    let msg = Received { backend_id: "1-0".into(), attempt: 1, payload: Vec::new(), headers: Vec::new(), time: None };
    let handling = tokio::spawn(async move { runner.handle(&msg).await });
    tokio::time::sleep(HOLD_RETRY * 3).await;
    assert!(!handling.is_finished(), "held while the function is not serving, never settled");
    stop.send(true).unwrap();
    assert_eq!(handling.await.unwrap(), Verdict::Release);
}

#[tokio::test]
async fn a_message_delivered_far_too_often_is_dead_lettered_without_a_call() {
    let (_stop, rx) = tokio::sync::watch::channel(false);
    let runner = runner(rx);
    let msg = Received { backend_id: "1-0".into(), attempt: 11, payload: Vec::new(), headers: Vec::new(), time: None };
    assert!(matches!(runner.handle(&msg).await, Verdict::DeadLetter { error } if error.contains("11 times")));
}
