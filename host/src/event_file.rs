//! `berth invoke --event FILE`: the events a file describes, as the function's own trigger
//! would deliver them (the builders of `berth_platforms::events`, so a timer, queue, blob or
//! invoke function sees here exactly what it sees under `berth up` or on a cloud).
//!
//! A file is one of:
//! - a CloudEvent in structured mode (`{"specversion": "1.0", "type": ..., "data": ...}`): the
//!   event as it is (`berth.timer.fired`, `berth.queue.message`, `berth.blob.created`, or any);
//! - an S3 notification (`{"Records": [{"eventSource": "aws:s3", ...}]}`, as `sam local
//!   generate-event s3 put` writes, or Berth's own `berth:blob` records): one blob event per
//!   record;
//! - an SQS batch (`"eventSource": "aws:sqs"`): one queue message per record;
//! - an EventBridge schedule (`"detail-type": "Scheduled Event"`): a timer tick;
//! - any other JSON: a direct-invoke payload.

use std::path::{Path, PathBuf};

use berth_core::dispatcher::EventData;
use berth_platforms::config::FunctionRef;
use berth_platforms::events;
use berth_platforms::lambda::{self, Kind, S3Record, SqsRecord};
use serde_json::Value;

/// The largest event file read (a payload is bounded by the host's body limit long before).
const MAX_FILE: u64 = 64 << 20;

#[derive(Debug, thiserror::Error)]
pub enum EventFileError {
    #[error("cannot read event file `{path}`: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("event file `{path}` is {size} bytes; the limit is {MAX_FILE}")]
    TooLarge { path: PathBuf, size: u64 },
    #[error("event file `{path}` is not JSON: {source}")]
    NotJson { path: PathBuf, source: serde_json::Error },
    #[error("event file `{path}`: {reason}")]
    Bad { path: PathBuf, reason: String },
}

/// One event of a file and the trigger it comes through.
#[derive(Debug)]
pub struct FileEvent {
    pub trigger: &'static str,
    pub event: EventData,
}

/// Reads `path` into the events it describes, for `target`.
pub fn read(path: &Path, target: &FunctionRef) -> Result<Vec<FileEvent>, EventFileError> {
    let size = std::fs::metadata(path).map_err(|source| EventFileError::Read { path: path.to_owned(), source })?.len();
    if size > MAX_FILE {
        return Err(EventFileError::TooLarge { path: path.to_owned(), size });
    }
    let bytes = std::fs::read(path).map_err(|source| EventFileError::Read { path: path.to_owned(), source })?;
    parse(&bytes, target).map_err(|e| match e {
        Parse::NotJson(source) => EventFileError::NotJson { path: path.to_owned(), source },
        Parse::Bad(reason) => EventFileError::Bad { path: path.to_owned(), reason },
    })
}

#[derive(Debug)]
enum Parse {
    NotJson(serde_json::Error),
    Bad(String),
}

fn parse(bytes: &[u8], target: &FunctionRef) -> Result<Vec<FileEvent>, Parse> {
    let value: Value = serde_json::from_slice(bytes).map_err(Parse::NotJson)?;
    let id = || format!("invoke-{}", std::process::id());
    if value.get("specversion").is_some() {
        let event = berth_platforms::knative::structured_event(bytes).map_err(|r| Parse::Bad(r.0))?;
        return Ok(vec![FileEvent { trigger: trigger_of(&event.ty), event }]);
    }
    if value["Records"][0]["eventSource"] == "berth:blob" {
        return blob_records(&value);
    }
    Ok(match lambda::classify(&value) {
        Kind::Http(_) => {
            return Err(Parse::Bad(
                "an HTTP event (API Gateway or ALB): call an HTTP function with --path, --data and --header".into(),
            ))
        }
        Kind::Schedule => {
            let id = value["id"].as_str().map(str::to_owned).unwrap_or_else(id);
            let rule = value["resources"][0].as_str().unwrap_or("the event file");
            let event = events::timer_event(target, &id, value["time"].as_str(), &format!("eventbridge rule {rule}"));
            vec![FileEvent { trigger: "timer", event }]
        }
        Kind::Sqs => sqs_records(&value)?,
        Kind::S3 => blob_records(&value)?,
        Kind::Other => {
            vec![FileEvent { trigger: "invoke", event: events::invoke_event(&id(), "berth/invoke", bytes.to_vec()) }]
        }
    })
}

/// The trigger a CloudEvent of type `ty` would come through.
fn trigger_of(ty: &str) -> &'static str {
    match ty {
        "berth.timer.fired" => "timer",
        "berth.queue.message" => "queue",
        t if t.starts_with("berth.blob.") => "blob",
        _ => "invoke",
    }
}

fn records(value: &Value) -> Result<&Vec<Value>, Parse> {
    match value["Records"].as_array() {
        Some(r) if !r.is_empty() => Ok(r),
        _ => Err(Parse::Bad("`Records` is empty".into())),
    }
}

fn blob_records(value: &Value) -> Result<Vec<FileEvent>, Parse> {
    let mut out = Vec::new();
    for (i, r) in records(value)?.iter().enumerate() {
        let record = S3Record::parse(i, r).map_err(Parse::Bad)?;
        let kind = record.kind.ok_or_else(|| {
            Parse::Bad(format!(
                "S3 record {i}: `eventName` {:?} is neither ObjectCreated:* nor ObjectRemoved:*",
                r["eventName"].as_str().unwrap_or_default()
            ))
        })?;
        out.push(FileEvent {
            trigger: "blob",
            event: record.event(format!("invoke-{}-{i}", std::process::id()), kind),
        });
    }
    Ok(out)
}

fn sqs_records(value: &Value) -> Result<Vec<FileEvent>, Parse> {
    let mut out = Vec::new();
    for (i, r) in records(value)?.iter().enumerate() {
        let record = SqsRecord::parse(i, r).map_err(Parse::Bad)?;
        out.push(FileEvent { trigger: "queue", event: record.event(&record.queue) });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target() -> FunctionRef {
        FunctionRef { group: "g".into(), function: "f".into() }
    }

    fn one(json: &str) -> FileEvent {
        let mut all = parse(json.as_bytes(), &target()).unwrap();
        assert_eq!(all.len(), 1);
        all.remove(0)
    }

    #[test]
    fn a_cloud_event_is_delivered_as_it_is_through_its_trigger() {
        let e = one(
            r#"{"specversion":"1.0","id":"m-1","source":"berth/queue/jobs","type":"berth.queue.message","attempt":"2","data":{"id":"j1"}}"#,
        );
        assert_eq!(e.trigger, "queue");
        assert_eq!(e.event.id, "m-1");
        assert_eq!(serde_json::from_slice::<Value>(&e.event.data).unwrap()["id"], "j1");
        assert!(e.event.extensions.contains(&("attempt".into(), "2".into())), "{:?}", e.event.extensions);
        assert_eq!(one(r#"{"specversion":"1.0","id":"1","source":"s","type":"berth.blob.deleted"}"#).trigger, "blob");
        assert_eq!(one(r#"{"specversion":"1.0","id":"1","source":"s","type":"com.example.x"}"#).trigger, "invoke");
    }

    #[test]
    fn an_s3_put_becomes_a_blob_event_with_the_decoded_key() {
        let e = one(
            r#"{"Records":[{"eventSource":"aws:s3","eventName":"ObjectCreated:Put","eventTime":"1970-01-01T00:00:00.000Z",
                "s3":{"bucket":{"name":"uploads"},"object":{"key":"my+docs%2Fa.zip","size":1024}}}]}"#,
        );
        assert_eq!((e.trigger, e.event.ty.as_str()), ("blob", "berth.blob.created"));
        assert_eq!(e.event.subject.as_deref(), Some("my docs/a.zip"));
        assert_eq!(e.event.source, "berth/blob/uploads");
        let data: Value = serde_json::from_slice(&e.event.data).unwrap();
        assert_eq!(data["Records"][0]["s3"]["object"]["key"], "my docs/a.zip");
    }

    #[test]
    fn an_sqs_batch_becomes_one_queue_message_per_record() {
        let all = parse(
            br#"{"Records":[
                {"eventSource":"aws:sqs","messageId":"a","eventSourceARN":"arn:aws:sqs:us-east-1:1:jobs","body":"{\"n\":1}","attributes":{"ApproximateReceiveCount":"3"}},
                {"eventSource":"aws:sqs","messageId":"b","eventSourceARN":"arn:aws:sqs:us-east-1:1:jobs","body":"{\"n\":2}","attributes":{}}]}"#,
            &target(),
        )
        .unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(
            (all[0].trigger, all[0].event.ty.as_str(), all[0].event.id.as_str()),
            ("queue", "berth.queue.message", "a")
        );
        assert!(all[0].event.extensions.contains(&("attempt".into(), "3".into())));
        assert_eq!(all[1].event.data, br#"{"n":2}"#);
    }

    #[test]
    fn a_schedule_is_a_timer_tick_and_anything_else_an_invoke_payload() {
        let e = one(
            r#"{"source":"aws.events","detail-type":"Scheduled Event","id":"t1","time":"2026-01-01T00:00:00Z","resources":["arn:aws:events:x:1:rule/nightly"]}"#,
        );
        assert_eq!((e.trigger, e.event.ty.as_str(), e.event.id.as_str()), ("timer", "berth.timer.fired", "t1"));
        assert_eq!(e.event.source, "berth/timer/g/f");
        let e = one(r#"{"order": 7}"#);
        assert_eq!((e.trigger, e.event.ty.as_str()), ("invoke", "berth.invoke"));
        assert_eq!(e.event.data, br#"{"order": 7}"#);
    }

    #[test]
    fn bad_files_say_what_is_wrong() {
        assert!(matches!(parse(b"{nope", &target()), Err(Parse::NotJson(_))));
        let bad = |j: &str| match parse(j.as_bytes(), &target()) {
            Err(Parse::Bad(r)) => r,
            other => panic!("{other:?}"),
        };
        assert!(bad(r#"{"Records":[{"eventSource":"aws:s3","eventName":"ObjectCreated:Put","s3":{}}]}"#)
            .contains("s3.bucket.name"));
        assert!(bad(r#"{"Records":[{"eventSource":"aws:s3","eventName":"Nope","s3":{"bucket":{"name":"b"},"object":{"key":"k"}}}]}"#).contains("Nope"));
        assert!(bad(r#"{"version":"2.0","requestContext":{"http":{"method":"GET"}}}"#).contains("--path"));
        assert!(
            bad(r#"{"specversion":"0.3","id":"1","source":"s","type":"t"}"#).contains("1.0"),
            "{}",
            bad(r#"{"specversion":"0.3","id":"1","source":"s","type":"t"}"#)
        );
        let dir = tempfile::tempdir().unwrap();
        let err = read(&dir.path().join("missing.json"), &target()).unwrap_err().to_string();
        assert!(err.contains("missing.json"), "{err}");
    }
}
