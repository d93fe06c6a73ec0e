//! A small group with timer, queue, blob and invoked functions, driven through the event
//! factories and [`TestGroup::event`]: what each handler sees is what the host would hand it.

use serde::Deserialize;
use serde_json::{json, Value};

use crate::testing::{self, TestGroup};
use crate::{Context, Error, Event, Json, Result, StatusCode};

/// The attributes of `event` as the handler saw them, with the call's context.
fn seen(ctx: &Context, event: &Event) -> Value {
    json!({
        "id": event.id,
        "source": event.source,
        "ty": event.ty,
        "subject": event.subject,
        "time": event.time,
        "datacontenttype": event.datacontenttype,
        "data": String::from_utf8_lossy(&event.data),
        "extensions": event.extensions,
        "request_id": ctx.request_id(),
        "trigger": ctx.trigger(),
    })
}

/// Answers what it saw of the tick and the schedule time in the data.
#[crate::timer(every = "30s")]
async fn tick(ctx: Context, event: Event) -> Result<Json<Value>> {
    let data: Value = event.json()?;
    let mut out = seen(&ctx, &event);
    out["scheduled"] = data["scheduled"].clone();
    Ok(Json(out))
}

#[derive(Deserialize)]
struct Order {
    order: u64,
    #[serde(default)]
    fail_times: u32,
}

/// Fails (500, to be retried) on its first `fail_times` attempts, like `host/fixtures/queue-worker`.
#[crate::queue(stream = "orders", max_attempts = 5)]
async fn ship(ctx: Context, event: Event) -> Result<Json<Value>> {
    let order: Order = event.json()?;
    let attempt: u32 = event
        .extension("attempt")
        .and_then(|a| a.parse().ok())
        .ok_or_else(|| Error::bad_request("no `attempt` extension"))?;
    if attempt <= order.fail_times {
        return Err(Error::internal(format!("order {} fails on attempt {attempt}", order.order)));
    }
    let mut out = seen(&ctx, &event);
    out["order"] = order.order.into();
    out["attempt"] = attempt.into();
    Ok(Json(out))
}

#[derive(Deserialize)]
struct Notification {
    #[serde(rename = "Records")]
    records: Vec<Record>,
}

#[derive(Deserialize)]
struct Record {
    #[serde(rename = "eventName")]
    event_name: String,
    #[serde(rename = "eventTime")]
    event_time: String,
    s3: S3,
}

#[derive(Deserialize)]
struct S3 {
    bucket: Bucket,
    object: Object,
}

#[derive(Deserialize)]
struct Bucket {
    name: String,
}

#[derive(Deserialize)]
struct Object {
    key: String,
    size: u64,
}

/// Reads the S3-shaped notification, as `examples/unzip` does; refuses (422) non-PNG objects.
#[crate::blob(bucket = "uploads", events = ["created", "deleted"])]
async fn thumbnail(ctx: Context, event: Event) -> Result<Json<Value>> {
    let note: Notification = event.json()?;
    let record = note.records.first().ok_or_else(|| Error::bad_request("no record"))?;
    if !record.s3.object.key.ends_with(".png") {
        return Err(Error::unprocessable(format!("`{}` is not a PNG", record.s3.object.key)));
    }
    let mut out = seen(&ctx, &event);
    out["event_name"] = record.event_name.clone().into();
    out["event_time"] = record.event_time.clone().into();
    out["bucket"] = record.s3.bucket.name.clone().into();
    out["key"] = record.s3.object.key.clone().into();
    out["size"] = record.s3.object.size.into();
    Ok(Json(out))
}

#[derive(Deserialize)]
struct Say {
    say: String,
}

/// An HTTP function that is also called by direct invoke: the body comes as JSON either way.
#[crate::http(POST, "/echo")]
async fn echo(ctx: Context, Json(say): Json<Say>, req: crate::Request) -> Json<Value> {
    Json(json!({
        "said": say.say,
        "content_type": req.header("content-type"),
        "trigger": ctx.trigger(),
        "request_id": ctx.request_id(),
    }))
}

/// Answers the whole event as it arrived.
#[crate::http(POST, "/inspect")]
async fn inspect(ctx: Context, event: Event) -> Json<Value> {
    Json(seen(&ctx, &event))
}

crate::group! {
    name: "events",
    functions: [tick, ship, thumbnail, echo, inspect],
}

fn group() -> TestGroup {
    match TestGroup::start(berth_group()) {
        Ok(g) => g,
        Err(e) => panic!("the group starts: {e}"),
    }
}

/// The JSON a call answered; panics with the error otherwise.
fn answer(res: Result<crate::Response>) -> Value {
    match res {
        Ok(r) => {
            assert_eq!(r.status, StatusCode::OK, "{}", String::from_utf8_lossy(&r.body));
            match serde_json::from_slice(&r.body) {
                Ok(v) => v,
                Err(e) => panic!("not JSON ({e}): {}", String::from_utf8_lossy(&r.body)),
            }
        }
        Err(e) => panic!("the call failed: {e}"),
    }
}

/// An RFC 3339 UTC time with milliseconds and `Z`, as chrono's `to_rfc3339_opts(Millis, true)`.
fn is_rfc3339_millis_z(t: &str) -> bool {
    let b = t.as_bytes();
    let digits = |r: std::ops::Range<usize>| b[r].iter().all(u8::is_ascii_digit);
    b.len() == 24
        && digits(0..4)
        && b[4] == b'-'
        && digits(5..7)
        && b[7] == b'-'
        && digits(8..10)
        && b[10] == b'T'
        && digits(11..13)
        && b[13] == b':'
        && digits(14..16)
        && b[16] == b':'
        && digits(17..19)
        && b[19] == b'.'
        && digits(20..23)
        && b[23] == b'Z'
}

/// Whether `t` starts with a year within one of now's (days since the epoch / 365.2425: enough
/// to catch a wrong date; the formatting is checked exactly in `events::tests`).
fn is_this_year(t: &str) -> bool {
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let year = 1970 + (secs as f64 / (365.2425 * 86_400.0)) as i64;
    t.get(..4).and_then(|y| y.parse::<i64>().ok()).is_some_and(|y| (y - year).abs() <= 1)
}

#[test]
fn a_timer_tick_reaches_the_timer_function_as_the_timer_trigger_builds_it() {
    let g = group();
    let first = answer(g.event("tick", testing::timer_tick("events", "tick")));
    let second = answer(g.event("tick", testing::timer_tick("events", "tick")));

    assert_eq!(first["ty"], "berth.timer.fired");
    assert_eq!(first["source"], "berth/timer/events/tick");
    assert_eq!(first["trigger"], "timer");
    assert_eq!(first["datacontenttype"], "application/json");
    assert_eq!(first["request_id"], first["id"], "the event id is the request id");
    let id = first["id"].as_str().unwrap_or_default();
    let ms: u64 = id.strip_prefix("events.tick.").and_then(|ms| ms.parse().ok()).unwrap_or(0);
    assert!(ms > 1_600_000_000_000, "id `{id}` is <group>.<function>.<scheduled ms>");
    let time = first["time"].as_str().unwrap_or_default();
    assert!(is_rfc3339_millis_z(time), "time `{time}`");
    assert!(is_this_year(time), "time `{time}` is now");
    assert_eq!(first["scheduled"], first["time"], "the data's `scheduled` is the event time");
    assert_ne!(first["id"], second["id"], "each tick has its own id");
}

#[test]
fn a_queue_message_carries_its_attempt_and_a_failure_is_an_error_to_retry() {
    let g = group();
    let data = r#"{"order": 7, "fail_times": 2}"#;

    let Err(e) = g.event("ship", testing::queue_message("orders", data, 2)) else {
        panic!("the second attempt of a message that fails twice fails");
    };
    assert_eq!(e.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(e.message(), "order 7 fails on attempt 2");

    let shipped = answer(g.event("ship", testing::queue_message("orders", data, 3)));
    assert_eq!(shipped["order"], 7);
    assert_eq!(shipped["attempt"], 3);
    assert_eq!(shipped["ty"], "berth.queue.message");
    assert_eq!(shipped["source"], "berth/queue/orders");
    assert_eq!(shipped["trigger"], "queue");
    assert_eq!(shipped["extensions"], json!([["attempt", "3"]]));
    assert_eq!(shipped["datacontenttype"], Value::Null, "no content type without a publisher's header");
    assert_eq!(shipped["data"], data);
    let time = shipped["time"].as_str().unwrap_or_default();
    assert!(is_rfc3339_millis_z(time), "time `{time}`");
}

#[test]
fn blob_events_name_the_object_in_subject_and_notification() {
    let g = group();
    let created = answer(g.event("thumbnail", testing::blob_created("uploads", "cats/tom.png", 2048)));
    assert_eq!(created["ty"], "berth.blob.created");
    assert_eq!(created["source"], "berth/blob/uploads");
    assert_eq!(created["subject"], "cats/tom.png");
    assert_eq!(created["key"], "cats/tom.png");
    assert_eq!(created["size"], 2048);
    assert_eq!(created["bucket"], "uploads");
    assert_eq!(created["event_name"], "ObjectCreated:Put");
    assert_eq!(created["event_time"], created["time"]);
    assert_eq!(created["datacontenttype"], "application/json");
    assert_eq!(created["extensions"], json!([["attempt", "1"]]));
    assert_eq!(created["trigger"], "blob");

    let deleted = answer(g.event("thumbnail", testing::blob_deleted("uploads", "cats/tom.png")));
    assert_eq!(deleted["ty"], "berth.blob.deleted");
    assert_eq!(deleted["subject"], "cats/tom.png");
    assert_eq!(deleted["key"], "cats/tom.png");
    assert_eq!(deleted["event_name"], "ObjectRemoved:Delete");
    assert_ne!(created["id"], deleted["id"]);

    let Err(e) = g.event("thumbnail", testing::blob_created("uploads", "notes.txt", 5)) else {
        panic!("a non-PNG object is refused");
    };
    assert_eq!((e.status(), e.message()), (StatusCode::UNPROCESSABLE_ENTITY, "`notes.txt` is not a PNG"));
}

#[test]
fn a_direct_invoke_delivers_its_body_as_json() {
    let g = group();
    let res = answer(g.event("echo", testing::invoke(r#"{"say": "hi"}"#)));
    assert_eq!(res["said"], "hi");
    assert_eq!(res["content_type"], "application/json");
    assert_eq!(res["trigger"], "invoke");

    let ev = answer(g.event("inspect", testing::invoke("{}")));
    assert_eq!(ev["ty"], "berth.invoke");
    assert_eq!(ev["source"], "berth/invoke");
    assert_eq!(ev["subject"], Value::Null);
    assert_eq!(ev["extensions"], json!([]));
    let time = ev["time"].as_str().unwrap_or_default();
    assert!(time.ends_with("+00:00") && is_this_year(time), "time `{time}`");
}

#[test]
fn a_cloud_event_is_json_only_when_its_data_is() {
    let g = group();
    let json_event = answer(g.event("inspect", testing::cloud_event("com.example.placed", "/shop", r#"{"id": 7}"#)));
    assert_eq!(json_event["ty"], "com.example.placed");
    assert_eq!(json_event["source"], "/shop");
    assert_eq!(json_event["datacontenttype"], "application/json");
    assert_eq!(json_event["data"], r#"{"id": 7}"#);
    assert_eq!(json_event["trigger"], "event");

    let text_event = answer(g.event("inspect", testing::cloud_event("com.example.note", "/shop", "not json")));
    assert_eq!(text_event["datacontenttype"], Value::Null);
    assert_ne!(json_event["id"], text_event["id"]);
}

#[test]
fn every_factory_event_arrives_unchanged() {
    let g = group();
    let mut with_extensions = testing::queue_message("orders.dead", "{}", 5);
    with_extensions.extensions.push(("x-berth-error".into(), "gave up after 5 attempts".into()));
    for event in [
        testing::timer_tick("events", "tick"),
        testing::queue_message("orders", "{}", 1),
        with_extensions,
        testing::blob_created("uploads", "a.png", 1),
        testing::blob_deleted("uploads", "a.png"),
        testing::invoke("{}"),
        testing::cloud_event("t", "s", "x"),
    ] {
        let got = answer(g.event("inspect", event.clone()));
        let ctx = Context::new(event.id.clone(), 0, testing::test_host(json!({})), "");
        let mut want = seen(&ctx, &event);
        want["trigger"] = got["trigger"].clone();
        assert_eq!(got, want, "{event:?}");
    }
}

#[test]
fn an_unknown_function_is_named_with_the_ones_there_are() {
    let g = group();
    let Err(e) = g.event("nope", testing::timer_tick("events", "nope")) else {
        panic!("there is no function `nope`");
    };
    assert_eq!(e.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        e.message(),
        "group `events` has no function `nope`; its functions are `tick`, `ship`, `thumbnail`, `echo`, `inspect`"
    );
}
