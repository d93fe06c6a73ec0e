//! Event factories: the events the host's triggers deliver, built the way those triggers build
//! them (type, source, id, subject, time, content type, extensions), for
//! [`TestGroup::event`](super::TestGroup::event).

use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::Event;

/// A counter shared by the factories, so that every event gets an id of its own.
static NEXT: AtomicU64 = AtomicU64::new(1);
/// The last scheduled time handed to a timer tick, in Unix milliseconds.
static LAST_TICK_MS: AtomicU64 = AtomicU64::new(0);

/// The event a timer delivers for one run of `group`'s `function`, as
/// `host/triggers/src/timer.rs` builds it:
///
/// - `ty` `berth.timer.fired`, `source` `berth/timer/<group>/<function>`;
/// - `id` `<group>.<function>.<scheduled time in Unix ms>`, `time` that scheduled time (RFC 3339
///   in UTC with milliseconds, `2024-05-01T12:00:00.000Z`), set to now;
/// - `datacontenttype` `application/json`, `data` `{"scheduled": <time>, "schedule": ""}`. The
///   host puts the function's schedule (`0 */5 * * * *`, `@every 30s`) in `schedule`; this
///   factory does not know it and leaves it empty.
///
/// Each call is a later tick: the scheduled time moves on by at least a millisecond, so ids are
/// unique, as the host's are for distinct runs.
pub fn timer_tick(group: &str, function: &str) -> Event {
    let ms = next_tick_ms();
    let scheduled = rfc3339(Duration::from_millis(ms), Fraction::Millis);
    Event {
        id: format!("{group}.{function}.{ms}"),
        source: format!("berth/timer/{group}/{function}"),
        ty: "berth.timer.fired".into(),
        subject: None,
        time: Some(scheduled.clone()),
        datacontenttype: Some("application/json".into()),
        data: serde_json::json!({ "scheduled": scheduled, "schedule": "" }).to_string().into_bytes(),
        extensions: Vec::new(),
    }
}

/// A message of the queue binding `queue` on its `attempt`-th delivery (1 for the first), as the
/// queue trigger turns a message without headers into an event (`Runner::event` in
/// `host/triggers/src/queue/mod.rs`):
///
/// - `ty` `berth.queue.message`, `source` `berth/queue/<queue>` (the defaults
///   `host/triggers/src/queue/sink.rs` publishes with too);
/// - `id` the broker's id, here Redis-shaped (`<Unix ms>-<n>`), and `time` when the broker got
///   it: now, RFC 3339 in UTC with milliseconds;
/// - no `datacontenttype` (the host sets one only from the publisher's `content-type` header;
///   [`Queue::publish_json`](crate::Queue::publish_json) sends `application/json`);
/// - one extension, `attempt`.
///
/// A dead-letter consumer sees the same shape, with the publisher's headers as extensions
/// (`x-berth-error`, `x-berth-attempts`, `x-berth-original-id`): push them onto
/// [`Event::extensions`] to test one.
pub fn queue_message(queue: &str, data: impl Into<Vec<u8>>, attempt: u32) -> Event {
    let ms = now_ms();
    Event {
        id: format!("{ms}-{}", next()),
        source: format!("berth/queue/{queue}"),
        ty: "berth.queue.message".into(),
        subject: None,
        time: Some(rfc3339(Duration::from_millis(ms), Fraction::Millis)),
        datacontenttype: None,
        data: data.into(),
        extensions: vec![("attempt".into(), attempt.to_string())],
    }
}

/// An object of `size` bytes written to the bucket `store`, as the blob trigger delivers it on
/// the first attempt (`host/triggers/src/blob.rs`): `ty` `berth.blob.created`, `source`
/// `berth/blob/<store>`, `subject` the object name, `datacontenttype` `application/json`,
/// extension `attempt` = `1`, and an S3-shaped notification as data:
///
/// ```json
/// {"Records": [{"eventVersion": "2.1", "eventSource": "berth:blob", "eventTime": "<time>",
///   "eventName": "ObjectCreated:Put", "s3": {"s3SchemaVersion": "1.0",
///   "bucket": {"name": "<store>"}, "object": {"key": "<object>", "size": <size>}}}]}
/// ```
pub fn blob_created(store: &str, object: &str, size: u64) -> Event {
    blob_event(store, object, "created", "ObjectCreated:Put", size)
}

/// An object deleted from the bucket `store`: the event of [`blob_created`] with `ty`
/// `berth.blob.deleted` and `eventName` `ObjectRemoved:Delete`. The host reports the size the
/// object had; this factory does not know it and says `0`.
pub fn blob_deleted(store: &str, object: &str) -> Event {
    blob_event(store, object, "deleted", "ObjectRemoved:Delete", 0)
}

/// A direct invoke (`POST /invoke/<group>/<function>` with `data` as the body and no `ce-*`
/// headers), as `read_event` in `host/triggers/src/http/invoke.rs` builds it: `ty`
/// `berth.invoke`, `source` `berth/invoke`, `id` a host-style request id
/// (`pppppppp-nnnnnnnnnnnn`), `time` now (chrono's `to_rfc3339`:
/// `2024-05-01T12:00:00.123456789+00:00`), `datacontenttype` `application/json` (the host's
/// default when the request has no `content-type`), no subject, no extensions.
pub fn invoke(data: impl Into<Vec<u8>>) -> Event {
    Event {
        id: request_id(),
        source: "berth/invoke".into(),
        ty: "berth.invoke".into(),
        subject: None,
        time: Some(rfc3339(now(), Fraction::AutoSi)),
        datacontenttype: Some("application/json".into()),
        data: data.into(),
        extensions: Vec::new(),
    }
}

/// A CloudEvent of type `ty` from `source`, as the Knative shim delivers a binary-mode event
/// (`binary_event` in `host/platforms/src/knative.rs`): a unique `id`, `time` now (RFC 3339 in
/// UTC with milliseconds), `datacontenttype` `application/json` when `data` parses as JSON and
/// none otherwise, no subject, no extensions.
pub fn cloud_event(ty: &str, source: &str, data: impl Into<Vec<u8>>) -> Event {
    let data = data.into();
    let json = serde_json::from_slice::<serde::de::IgnoredAny>(&data).is_ok();
    Event {
        id: request_id(),
        source: source.into(),
        ty: ty.into(),
        subject: None,
        time: Some(rfc3339(now(), Fraction::Millis)),
        datacontenttype: json.then(|| "application/json".into()),
        data,
        extensions: Vec::new(),
    }
}

/// The trigger the host names in a call's context ([`Context::trigger`](crate::Context::trigger))
/// for an event of this shape: `timer`, `queue`, `blob`, `invoke`, or `event` (how the Knative
/// shim delivers any other CloudEvent).
pub(crate) fn trigger_of(event: &Event) -> &'static str {
    let ty = event.ty.as_str();
    let source = event.source.as_str();
    if ty == "berth.timer.fired" || source.starts_with("berth/timer/") {
        "timer"
    } else if ty == "berth.queue.message" || source.starts_with("berth/queue/") {
        "queue"
    } else if ty.starts_with("berth.blob.") || source.starts_with("berth/blob/") {
        "blob"
    } else if ty == "berth.invoke" || source == "berth/invoke" {
        "invoke"
    } else {
        "event"
    }
}

fn blob_event(store: &str, object: &str, kind: &str, name: &str, size: u64) -> Event {
    let ms = now_ms();
    let time = rfc3339(Duration::from_millis(ms), Fraction::Millis);
    let body = serde_json::json!({
        "Records": [{
            "eventVersion": "2.1",
            "eventSource": "berth:blob",
            "eventTime": time,
            "eventName": name,
            "s3": {
                "s3SchemaVersion": "1.0",
                "bucket": { "name": store },
                "object": { "key": object, "size": size },
            }
        }]
    });
    Event {
        id: format!("{store}-{ms}-{}-{}", std::process::id(), next()),
        source: format!("berth/blob/{store}"),
        ty: format!("berth.blob.{kind}"),
        subject: Some(object.into()),
        time: Some(time),
        datacontenttype: Some("application/json".into()),
        data: body.to_string().into_bytes(),
        extensions: vec![("attempt".into(), "1".into())],
    }
}

fn next() -> u64 {
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// Now since the Unix epoch (the epoch itself if the clock is set before it).
fn now() -> Duration {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default()
}

/// Now in Unix milliseconds.
fn now_ms() -> u64 {
    u64::try_from(now().as_millis()).unwrap_or(u64::MAX)
}

/// Now in Unix ms, or one past the last tick handed out if that is later.
fn next_tick_ms() -> u64 {
    let now = now_ms();
    let mut last = LAST_TICK_MS.load(Ordering::Relaxed);
    loop {
        let ms = now.max(last.saturating_add(1));
        match LAST_TICK_MS.compare_exchange_weak(last, ms, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => return ms,
            Err(seen) => last = seen,
        }
    }
}

/// A request id as the host's HTTP listener makes them (`RequestIds::next` in
/// `host/triggers/src/http/mod.rs`): a per-process prefix and a counter, in lower-case hex.
fn request_id() -> String {
    static PREFIX: OnceLock<u32> = OnceLock::new();
    let prefix = *PREFIX.get_or_init(|| {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u32(std::process::id());
        h.finish() as u32
    });
    format!("{prefix:08x}-{:012x}", next() & 0xffff_ffff_ffff)
}

/// How many digits of a second [`rfc3339`] writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fraction {
    /// Always three, and `Z` for UTC: chrono's `to_rfc3339_opts(SecondsFormat::Millis, true)`.
    Millis,
    /// None, three, six or nine, the fewest that hold the time exactly, and `+00:00` for UTC:
    /// chrono's `to_rfc3339()`.
    AutoSi,
}

/// `since_epoch` as an RFC 3339 UTC timestamp: `YYYY-MM-DDTHH:MM:SS`, then the fraction and
/// the offset that `fraction` says.
fn rfc3339(since_epoch: Duration, fraction: Fraction) -> String {
    let secs = since_epoch.as_secs();
    let nanos = since_epoch.subsec_nanos();
    let days = i64::try_from(secs / 86_400).unwrap_or(i64::MAX / 2);
    let rem = secs % 86_400;
    let (year, month, day) = civil_from_days(days);
    let (hour, minute, second) = (rem / 3600, rem % 3600 / 60, rem % 60);
    let mut out = format!("{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}");
    match fraction {
        Fraction::Millis => {
            out.push_str(&format!(".{:03}Z", nanos / 1_000_000));
        }
        Fraction::AutoSi => {
            let digits = match nanos {
                0 => String::new(),
                n if n % 1_000_000 == 0 => format!(".{:03}", n / 1_000_000),
                n if n % 1_000 == 0 => format!(".{:06}", n / 1_000),
                n => format!(".{n:09}"),
            };
            out.push_str(&digits);
            out.push_str("+00:00");
        }
    }
    out
}

/// The proleptic Gregorian date of a day count since 1970-01-01 (Howard Hinnant's
/// `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = (if mp < 10 { mp + 3 } else { mp - 9 }) as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64, nanos: u32) -> Duration {
        Duration::new(secs, nanos)
    }

    #[test]
    fn rfc3339_formats_known_timestamps_in_utc() {
        // Checked against `date -u -d @<secs>`.
        assert_eq!(rfc3339(at(0, 0), Fraction::Millis), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(at(951_782_400, 0), Fraction::Millis), "2000-02-29T00:00:00.000Z");
        assert_eq!(rfc3339(at(1_700_000_000, 123_456_789), Fraction::Millis), "2023-11-14T22:13:20.123Z");
        assert_eq!(rfc3339(at(1_709_164_799, 999_000_000), Fraction::Millis), "2024-02-28T23:59:59.999Z");
        assert_eq!(rfc3339(at(4_102_444_800, 0), Fraction::Millis), "2100-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(at(253_402_300_799, 0), Fraction::Millis), "9999-12-31T23:59:59.000Z");
    }

    #[test]
    fn rfc3339_auto_si_writes_the_fewest_digits_like_chrono() {
        assert_eq!(rfc3339(at(1_700_000_000, 0), Fraction::AutoSi), "2023-11-14T22:13:20+00:00");
        assert_eq!(rfc3339(at(1_700_000_000, 120_000_000), Fraction::AutoSi), "2023-11-14T22:13:20.120+00:00");
        assert_eq!(rfc3339(at(1_700_000_000, 123_456_000), Fraction::AutoSi), "2023-11-14T22:13:20.123456+00:00");
        assert_eq!(rfc3339(at(1_700_000_000, 123_456_789), Fraction::AutoSi), "2023-11-14T22:13:20.123456789+00:00");
    }

    #[test]
    fn timer_ticks_have_unique_ids_and_match_their_time() {
        let a = timer_tick("g", "f");
        let b = timer_tick("g", "f");
        assert_ne!(a.id, b.id);
        let ms: u64 = a.id.strip_prefix("g.f.").and_then(|ms| ms.parse().ok()).unwrap_or_default();
        assert_eq!(a.time.as_deref(), Some(rfc3339(Duration::from_millis(ms), Fraction::Millis).as_str()));
    }

    #[test]
    fn request_ids_have_the_host_shape() {
        let id = invoke("{}").id;
        let (prefix, n) = id.split_once('-').unwrap_or_default();
        assert_eq!((prefix.len(), n.len()), (8, 12), "{id}");
        assert!(id.bytes().all(|b| b == b'-' || b.is_ascii_digit() || (b'a'..=b'f').contains(&b)), "{id}");
    }

    #[test]
    fn triggers_are_named_as_the_host_names_them() {
        assert_eq!(trigger_of(&timer_tick("g", "f")), "timer");
        assert_eq!(trigger_of(&queue_message("q", "", 1)), "queue");
        assert_eq!(trigger_of(&blob_created("b", "o", 1)), "blob");
        assert_eq!(trigger_of(&blob_deleted("b", "o")), "blob");
        assert_eq!(trigger_of(&invoke("")), "invoke");
        assert_eq!(trigger_of(&cloud_event("com.example.x", "/x", "")), "event");
    }
}
