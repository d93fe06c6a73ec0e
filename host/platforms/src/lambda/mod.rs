//! AWS Lambda custom runtime (`provided.al2023`): the Runtime API loop.
//!
//! `next` → the event is classified ([`classify`]) → HTTP events go through Berth's router and
//! are answered in their source's shape ([`http`]); EventBridge schedules reach timer functions,
//! SQS batches queue functions (with `batchItemFailures`), S3 notifications blob functions, and
//! anything else the `[platform] invoke` function → `response`, or `error` when the event could
//! not be handled. A failure before the first `next` goes to `init/error` ([`init_error`]) and
//! the process exits. The call's deadline is `Lambda-Runtime-Deadline-Ms`; each invocation's
//! trace id is `_X_AMZN_TRACE_ID`; every log line of an invocation carries its request id.

pub mod http;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde_json::{json, Value};
use tokio::time::Instant;
use tracing::Instrument;

use crate::events::{self, BlobChange, QueueMessage};
use crate::http_event;
use crate::runtime_api::{ApiError, RuntimeApi};
use crate::Shim;
use http::Source;

/// The Runtime API's version segment.
const VERSION: &str = "/2018-06-01";
/// Lambda's limit on a synchronous response.
pub const MAX_RESPONSE_BYTES: usize = 6 * 1024 * 1024;
/// Time kept back from Lambda's deadline so the answer (a timeout error) is posted before
/// Lambda stops the instance.
const DEADLINE_MARGIN: Duration = Duration::from_millis(50);
/// Deadlines below this (2001-09-09 as Unix ms) are durations, not times.
const ABSOLUTE_AFTER_MS: u64 = 1_000_000_000_000;
/// How often `next` is tried again when the Runtime API cannot be reached.
const NEXT_ATTEMPTS: u32 = 5;

/// What an event is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Http(Source),
    Schedule,
    Sqs,
    S3,
    Other,
}

/// Tells an event's source from its shape. HTTP API v2 first: its events (Function URLs under
/// some emulators) may also carry an `httpMethod`.
pub fn classify(event: &Value) -> Kind {
    let ctx = &event["requestContext"];
    if event["version"] == "2.0" && ctx["http"].is_object() {
        return Kind::Http(Source::HttpApiV2);
    }
    if ctx["elb"].is_object() {
        let multi_value = event["multiValueHeaders"].is_object();
        return Kind::Http(Source::Alb { multi_value });
    }
    if event["httpMethod"].is_string() && ctx.is_object() {
        return Kind::Http(Source::ApiGatewayV1);
    }
    match event["Records"][0]["eventSource"].as_str() {
        Some("aws:sqs") => return Kind::Sqs,
        Some("aws:s3") => return Kind::S3,
        _ => {}
    }
    if event["source"] == "aws.events" && event["detail-type"] == "Scheduled Event" {
        return Kind::Schedule;
    }
    Kind::Other
}

/// How an invocation ended: the answer for `response`, or the error for `error`.
#[derive(Debug, PartialEq)]
pub enum Outcome {
    Answer(Bytes),
    Failed { error_type: &'static str, message: String },
}

impl Outcome {
    fn failed(error_type: &'static str, message: impl Into<String>) -> Self {
        Outcome::Failed { error_type, message: message.into() }
    }

    fn json(value: &Value) -> Self {
        Outcome::Answer(Bytes::from(value.to_string()))
    }
}

/// One invocation as `next` handed it out.
#[derive(Debug)]
pub struct Invocation {
    pub request_id: String,
    /// `Lambda-Runtime-Deadline-Ms`: when Lambda stops the invocation (Unix ms).
    pub deadline_ms: Option<u64>,
    pub trace_id: Option<String>,
    pub event: Bytes,
}

impl Invocation {
    /// The deadline as a timer instant, less a margin to answer in. Lambda sends an absolute
    /// Unix time in ms; a value that cannot be one (cargo-lambda's emulator always sends
    /// `600000`) is taken as the milliseconds left.
    fn deadline(&self) -> Option<Instant> {
        let ms = self.deadline_ms?;
        let now = berth_core::clock::now_unix_ms();
        let left = if ms < ABSOLUTE_AFTER_MS { ms } else { ms.saturating_sub(now) };
        Some(Instant::now() + Duration::from_millis(left).saturating_sub(DEADLINE_MARGIN))
    }
}

/// Handles one event; also says its source, as metrics label it (`malformed` when it is not
/// JSON). HTTP events (the hot path) are told apart by a probe that skips what it does not need
/// and are then read straight into their typed shape; the others go through a JSON value.
pub async fn handle(shim: &Arc<Shim>, inv: &Invocation) -> (&'static str, Outcome) {
    let not_json =
        |e: serde_json::Error| ("malformed", Outcome::failed("Berth.BadEvent", format!("the event is not JSON: {e}")));
    // A probe that does not fit (not an object, a `version` that is a number) leaves the event
    // to `classify`.
    if let Some(source) = serde_json::from_slice::<Probe<'_>>(&inv.event).ok().and_then(|p| p.http_source()) {
        let kind = Kind::Http(source);
        return (kind_label(kind), handle_http(shim, inv, source).await);
    }
    let event: Value = match serde_json::from_slice(&inv.event) {
        Ok(v) => v,
        Err(e) => return not_json(e),
    };
    let kind = classify(&event);
    (kind_label(kind), handle_event(shim, inv, kind, event).await)
}

/// Just enough of an event to tell an HTTP source (see [`classify`], which it agrees with).
#[derive(serde::Deserialize, Default)]
#[serde(default)]
struct Probe<'a> {
    #[serde(borrow)]
    version: Option<std::borrow::Cow<'a, str>>,
    #[serde(rename = "requestContext")]
    request_context: Option<ProbeContext>,
    #[serde(rename = "httpMethod")]
    http_method: Option<serde::de::IgnoredAny>,
    #[serde(rename = "multiValueHeaders")]
    multi_value_headers: Option<serde::de::IgnoredAny>,
}

#[derive(serde::Deserialize, Default)]
#[serde(default)]
struct ProbeContext {
    http: Option<serde::de::IgnoredAny>,
    elb: Option<serde::de::IgnoredAny>,
}

impl Probe<'_> {
    fn http_source(&self) -> Option<Source> {
        let ctx = self.request_context.as_ref()?;
        if self.version.as_deref() == Some("2.0") && ctx.http.is_some() {
            Some(Source::HttpApiV2)
        } else if ctx.elb.is_some() {
            Some(Source::Alb { multi_value: self.multi_value_headers.is_some() })
        } else if self.http_method.is_some() {
            Some(Source::ApiGatewayV1)
        } else {
            None
        }
    }
}

async fn handle_http(shim: &Arc<Shim>, inv: &Invocation, source: Source) -> Outcome {
    let mut call = match http::request(source, &inv.event) {
        Ok(c) => c,
        Err(e) => return Outcome::failed("Berth.BadEvent", e.to_string()),
    };
    call.request_id = inv.request_id.clone();
    call.deadline = inv.deadline();
    if let Some(trace) = &inv.trace_id {
        call.headers.push(("x-amzn-trace-id".into(), trace.clone()));
    }
    let answer = http_event::route(shim, call).await;
    Outcome::json(&http::response(source, &answer))
}

async fn handle_event(shim: &Arc<Shim>, inv: &Invocation, kind: Kind, event: Value) -> Outcome {
    let deadline = inv.deadline();
    match kind {
        Kind::Http(source) => handle_http(shim, inv, source).await,
        Kind::Schedule => schedule(shim, inv, &event, deadline).await,
        Kind::Sqs => sqs(shim, &event, deadline).await,
        Kind::S3 => s3(shim, inv, &event, deadline).await,
        Kind::Other => {
            let keys: Vec<&str> =
                event.as_object().map(|o| o.keys().map(String::as_str).take(8).collect()).unwrap_or_default();
            let what = format!("an event with keys [{}]", keys.join(", "));
            let target = match shim.invoke_target(&what) {
                Ok(t) => t,
                Err(e) => return Outcome::failed("Berth.UnknownEvent", e.to_string()),
            };
            let ev = events::invoke_event(&inv.request_id, "aws/lambda", inv.event.to_vec());
            match shim.deliver(&target, "invoke", ev, deadline).await {
                Ok(r) => Outcome::Answer(as_json_payload(&r.body)),
                Err(e) => Outcome::failed("Berth.FunctionError", events::failure_message(&target, &e)),
            }
        }
    }
}

/// A function's answer as a Lambda payload: JSON as it is, anything else as a JSON string.
fn as_json_payload(body: &[u8]) -> Bytes {
    if serde_json::from_slice::<serde::de::IgnoredAny>(body).is_ok() {
        Bytes::copy_from_slice(body)
    } else {
        Bytes::from(Value::from(String::from_utf8_lossy(body)).to_string())
    }
}

async fn schedule(shim: &Shim, inv: &Invocation, event: &Value, deadline: Option<Instant>) -> Outcome {
    let arn = event["resources"][0].as_str().unwrap_or_default();
    let rule = arn.rsplit_once(":rule/").map(|(_, r)| r).unwrap_or(arn);
    let rule = rule.rsplit('/').next().unwrap_or(rule);
    let target = match shim.schedule_target(rule) {
        Ok(t) => t,
        Err(e) => return Outcome::failed("Berth.UnknownEvent", e.to_string()),
    };
    let id = event["id"].as_str().unwrap_or(&inv.request_id);
    let ev = events::timer_event(&target, id, event["time"].as_str(), &format!("eventbridge rule {rule}"));
    match shim.deliver(&target, "timer", ev, deadline).await {
        Ok(r) => Outcome::Answer(as_json_payload(&r.body)),
        Err(e) => Outcome::failed("Berth.FunctionError", events::failure_message(&target, &e)),
    }
}

/// An SQS batch: every record to the queue's function(s); the records that failed are answered
/// in `batchItemFailures` (the event source mapping needs `ReportBatchItemFailures`). A FIFO
/// queue's records run in order and the first failure fails the rest, as SQS requires.
async fn sqs(shim: &Arc<Shim>, event: &Value, deadline: Option<Instant>) -> Outcome {
    let Some(records) = event["Records"].as_array() else {
        return Outcome::failed("Berth.BadEvent", "an SQS event without `Records`");
    };
    let mut batch = Vec::with_capacity(records.len());
    for (i, r) in records.iter().enumerate() {
        let record = match SqsRecord::parse(i, r) {
            Ok(m) => m,
            Err(e) => return Outcome::failed("Berth.BadEvent", e),
        };
        let targets = match shim.queue_targets(&record.queue) {
            Ok(t) => t,
            Err(e) => return Outcome::failed("Berth.UnknownEvent", e.to_string()),
        };
        batch.push(Message { record, targets });
    }
    let mut failed: Vec<String> = Vec::new();
    if batch.iter().any(|m| m.record.fifo) {
        for m in batch {
            if !failed.is_empty() || !m.deliver(shim, deadline).await {
                failed.push(m.record.id);
            }
        }
    } else {
        let mut running = tokio::task::JoinSet::new();
        for m in batch {
            let shim = shim.clone();
            running.spawn(async move { (m.deliver(&shim, deadline).await, m.record.id) }.in_current_span());
        }
        while let Some(done) = running.join_next().await {
            match done {
                Ok((true, _)) => {}
                Ok((false, id)) => failed.push(id),
                Err(e) => tracing::error!(error = %e, "an SQS record's delivery task failed"),
            }
        }
    }
    let failures: Vec<Value> = failed.iter().map(|id| json!({ "itemIdentifier": id })).collect();
    Outcome::json(&json!({ "batchItemFailures": failures }))
}

/// One SQS record, read as the queue message a queue function gets (`sqs` here, and
/// `berth invoke --event`).
#[derive(Debug, Clone)]
pub struct SqsRecord {
    pub id: String,
    /// The queue's name (the last part of its ARN).
    pub queue: String,
    pub fifo: bool,
    pub body: Vec<u8>,
    pub attempt: u32,
    pub time: Option<String>,
    pub attributes: Vec<(String, String)>,
}

impl SqsRecord {
    /// Record `i` of an SQS batch; why not, naming it.
    pub fn parse(i: usize, r: &Value) -> Result<Self, String> {
        let (Some(id), Some(arn)) = (r["messageId"].as_str(), r["eventSourceARN"].as_str()) else {
            return Err(format!("SQS record {i} has no `messageId` or `eventSourceARN`"));
        };
        let attributes = r["messageAttributes"]
            .as_object()
            .map(|attrs| {
                attrs
                    .iter()
                    .filter_map(|(k, v)| Some((extension_name(k)?, v["stringValue"].as_str()?.to_owned())))
                    .collect()
            })
            .unwrap_or_default();
        Ok(SqsRecord {
            id: id.to_owned(),
            queue: arn.rsplit(':').next().unwrap_or(arn).to_owned(),
            fifo: arn.ends_with(".fifo"),
            body: r["body"].as_str().unwrap_or_default().as_bytes().to_vec(),
            attempt: r["attributes"]["ApproximateReceiveCount"].as_str().and_then(|n| n.parse().ok()).unwrap_or(1),
            time: r["attributes"]["SentTimestamp"]
                .as_str()
                .and_then(|t| t.parse().ok())
                .and_then(events::unix_ms_rfc3339),
            attributes,
        })
    }

    /// The event of binding `queue` for this record.
    pub fn event(&self, queue: &str) -> berth_core::dispatcher::EventData {
        events::queue_event(QueueMessage {
            queue,
            id: &self.id,
            body: self.body.clone(),
            attempt: self.attempt,
            time: self.time.clone(),
            attributes: self.attributes.clone(),
        })
    }
}

/// One S3 notification record, its key decoded (S3 URL-encodes keys, spaces as `+`; functions
/// get the real name).
#[derive(Debug, Clone)]
pub struct S3Record {
    pub bucket: String,
    pub key: String,
    /// `created` or `deleted`; `None` for a kind blob functions do not take.
    pub kind: Option<&'static str>,
    /// The record as sent, with the decoded key.
    pub record: Value,
}

impl S3Record {
    /// Record `i` of an S3 notification; why not, naming it.
    pub fn parse(i: usize, r: &Value) -> Result<Self, String> {
        let (Some(bucket), Some(raw_key)) = (r["s3"]["bucket"]["name"].as_str(), r["s3"]["object"]["key"].as_str())
        else {
            return Err(format!("S3 record {i} has no `s3.bucket.name` or `s3.object.key`"));
        };
        let key = percent_encoding::percent_decode_str(&raw_key.replace('+', " ")).decode_utf8_lossy().into_owned();
        let mut record = r.clone();
        record["s3"]["object"]["key"] = Value::from(key.clone());
        Ok(S3Record {
            bucket: bucket.to_owned(),
            kind: events::blob_kind(r["eventName"].as_str().unwrap_or_default()),
            key,
            record,
        })
    }

    /// The blob event of this record, with `id`.
    pub fn event(&self, id: String, kind: &'static str) -> berth_core::dispatcher::EventData {
        events::blob_event(BlobChange {
            id,
            bucket: &self.bucket,
            kind,
            key: self.key.clone(),
            time: self.record["eventTime"].as_str().map(str::to_owned),
            record: self.record.clone(),
        })
    }
}

struct Message {
    record: SqsRecord,
    targets: Vec<(crate::FunctionRef, String)>,
}

impl Message {
    /// Delivers the message to each of its functions; whether all took it.
    async fn deliver(&self, shim: &Shim, deadline: Option<Instant>) -> bool {
        let mut ok = true;
        for (target, binding) in &self.targets {
            if let Err(e) = shim.deliver(target, "queue", self.record.event(binding), deadline).await {
                tracing::warn!(queue = %self.record.queue, message = %self.record.id, error = %e, "SQS record failed; reported in batchItemFailures");
                ok = false;
            }
        }
        ok
    }
}

/// An extension name from an attribute name: CloudEvents allows `[a-z0-9]` only.
fn extension_name(name: &str) -> Option<String> {
    let n: String = name.chars().filter(char::is_ascii_alphanumeric).map(|c| c.to_ascii_lowercase()).collect();
    (!n.is_empty() && n != "attempt").then_some(n)
}

/// S3 notifications: each record to the blob functions of its bucket; any failure fails the
/// invocation (Lambda retries asynchronous invocations).
async fn s3(shim: &Shim, inv: &Invocation, event: &Value, deadline: Option<Instant>) -> Outcome {
    let records = event["Records"].as_array().cloned().unwrap_or_default();
    let mut results = Vec::new();
    for (i, r) in records.iter().enumerate() {
        let record = match S3Record::parse(i, r) {
            Ok(rec) => rec,
            Err(e) => return Outcome::failed("Berth.BadEvent", e),
        };
        let Some(kind) = record.kind else {
            tracing::info!(event = %r["eventName"], "S3 event of a kind blob functions do not take; skipped");
            continue;
        };
        let targets = match shim.bucket_targets(&record.bucket, kind) {
            Ok(t) => t,
            Err(e) => return Outcome::failed("Berth.UnknownEvent", e.to_string()),
        };
        let id = r["s3"]["object"]["sequencer"]
            .as_str()
            .map_or_else(|| format!("{}-{i}", inv.request_id), |s| format!("{}-{s}", record.bucket));
        for target in targets {
            let ev = record.event(id.clone(), kind);
            match shim.deliver(&target, "blob", ev, deadline).await {
                Ok(r) => results.push(events::answer_value(&r.body)),
                Err(e) => return Outcome::failed("Berth.FunctionError", events::failure_message(&target, &e)),
            }
        }
    }
    Outcome::json(&json!({ "delivered": results.len(), "results": results }))
}

/// Why the loop stopped.
#[derive(Debug, thiserror::Error)]
pub enum LoopError {
    #[error(transparent)]
    Api(#[from] ApiError),
    #[error("the Runtime API answered 500 (it wants the runtime to exit): {0}")]
    Fatal(String),
}

/// The error body `error` and `init/error` take.
fn error_body(error_type: &str, message: &str) -> Bytes {
    Bytes::from(json!({ "errorMessage": message, "errorType": error_type, "stackTrace": [] }).to_string())
}

/// Reports a failure before the first invocation. The caller exits afterwards.
pub async fn init_error(api: &RuntimeApi, message: &str) -> Result<(), ApiError> {
    let path = format!("{VERSION}/runtime/init/error");
    let answer = api
        .post(
            &path,
            &[("Lambda-Runtime-Function-Error-Type", "Runtime.InitError")],
            error_body("Runtime.InitError", message),
        )
        .await?;
    RuntimeApi::check("POST", &path, answer).map(drop)
}

/// Serves invocations until `stop` resolves or the Runtime API wants the runtime gone.
pub async fn run(shim: Arc<Shim>, api: RuntimeApi, stop: impl Future<Output = ()>) -> Result<(), LoopError> {
    let mut stop = std::pin::pin!(stop);
    let invocations = shim.metrics.register_once(|| {
        prometheus::IntCounterVec::new(
            prometheus::Opts::new(
                "berth_platform_invocations_total",
                "Platform invocations by platform, event source and outcome",
            ),
            &["platform", "source", "outcome"],
        )
        .expect("valid metric")
    });
    tracing::info!(runtime_api = %api.base(), "polling the Lambda Runtime API for invocations");
    loop {
        let inv = tokio::select! {
            inv = next(&api) => inv?,
            _ = &mut stop => return Ok(()),
        };
        let Some(inv) = inv else { continue };
        if let Some(trace) = &inv.trace_id {
            // What AWS's SDKs and X-Ray read. Set between invocations, while no call runs.
            std::env::set_var("_X_AMZN_TRACE_ID", trace);
        }
        let span = tracing::info_span!("lambda", request_id = %inv.request_id);
        let (source, outcome) = handle(&shim, &inv).instrument(span.clone()).await;
        let label = if matches!(outcome, Outcome::Answer(_)) { "ok" } else { "error" };
        invocations.with_label_values(&["lambda", source, label]).inc();
        answer(&api, &inv, outcome).instrument(span).await?;
    }
}

fn kind_label(kind: Kind) -> &'static str {
    match kind {
        Kind::Http(Source::ApiGatewayV1) => "apigateway",
        Kind::Http(Source::HttpApiV2) => "http-api",
        Kind::Http(Source::Alb { .. }) => "alb",
        Kind::Schedule => "schedule",
        Kind::Sqs => "sqs",
        Kind::S3 => "s3",
        Kind::Other => "invoke",
    }
}

/// The next invocation; `None` when one came without a request id (nothing can answer it).
async fn next(api: &RuntimeApi) -> Result<Option<Invocation>, LoopError> {
    let path = format!("{VERSION}/runtime/invocation/next");
    let mut attempt = 0;
    let answer = loop {
        attempt += 1;
        match api.get(&path).await {
            Ok(a) => break a,
            Err(e @ ApiError::Unreachable { .. }) if attempt < NEXT_ATTEMPTS => {
                tracing::warn!(error = %e, attempt, "Runtime API unreachable; trying again");
                tokio::time::sleep(Duration::from_millis(50 << attempt)).await;
            }
            Err(e) => return Err(e.into()),
        }
    };
    if answer.status.is_server_error() {
        return Err(LoopError::Fatal(String::from_utf8_lossy(&answer.body).chars().take(300).collect()));
    }
    let answer = RuntimeApi::check("GET", &path, answer)?;
    let header = |name: &str| answer.headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let Some(request_id) = header("lambda-runtime-aws-request-id") else {
        tracing::error!("the Runtime API handed out an invocation without Lambda-Runtime-Aws-Request-Id; skipped");
        return Ok(None);
    };
    Ok(Some(Invocation {
        request_id,
        deadline_ms: header("lambda-runtime-deadline-ms").and_then(|d| d.parse().ok()),
        trace_id: header("lambda-runtime-trace-id"),
        event: answer.body,
    }))
}

/// Posts the outcome. A response over the limit (ours, or the Runtime API's 413) becomes an
/// error report; a 500 ends the loop.
async fn answer(api: &RuntimeApi, inv: &Invocation, outcome: Outcome) -> Result<(), LoopError> {
    let id = &inv.request_id;
    let outcome = match outcome {
        Outcome::Answer(body) if body.len() > MAX_RESPONSE_BYTES => Outcome::failed(
            "Function.ResponseSizeTooLarge",
            format!("the response is {} bytes; Lambda's limit is {MAX_RESPONSE_BYTES}", body.len()),
        ),
        other => other,
    };
    let (path, headers, body, error_type) = match &outcome {
        Outcome::Answer(body) => (format!("{VERSION}/runtime/invocation/{id}/response"), vec![], body.clone(), None),
        Outcome::Failed { error_type, message } => {
            tracing::warn!(error_type, error = %message, "invocation failed; reporting it to the Runtime API");
            let body = error_body(error_type, message);
            (
                format!("{VERSION}/runtime/invocation/{id}/error"),
                vec![("Lambda-Runtime-Function-Error-Type", *error_type)],
                body,
                Some(*error_type),
            )
        }
    };
    let answer = api.post(&path, &headers, body).await?;
    match answer.status.as_u16() {
        200..=299 => Ok(()),
        413 if error_type.is_none() => {
            let message = "the Runtime API refused the response as too large (413)";
            tracing::warn!("{message}; reporting an error instead");
            let path = format!("{VERSION}/runtime/invocation/{id}/error");
            let body = error_body("Function.ResponseSizeTooLarge", message);
            let retry = api
                .post(&path, &[("Lambda-Runtime-Function-Error-Type", "Function.ResponseSizeTooLarge")], body)
                .await?;
            if retry.status.is_server_error() {
                return Err(LoopError::Fatal(String::from_utf8_lossy(&retry.body).into_owned()));
            }
            Ok(())
        }
        500..=599 => Err(LoopError::Fatal(String::from_utf8_lossy(&answer.body).chars().take(300).collect())),
        status => {
            tracing::warn!(status, body = %String::from_utf8_lossy(&answer.body), "the Runtime API refused the answer");
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_told_apart_by_shape() {
        let cases = [
            (
                json!({"version": "2.0", "httpMethod": "GET", "requestContext": {"http": {"method": "POST"}}}),
                Kind::Http(Source::HttpApiV2),
            ),
            (
                json!({"httpMethod": "GET", "requestContext": {"elb": {}}, "headers": {}}),
                Kind::Http(Source::Alb { multi_value: false }),
            ),
            (
                json!({"httpMethod": "GET", "requestContext": {"elb": {}}, "multiValueHeaders": {}}),
                Kind::Http(Source::Alb { multi_value: true }),
            ),
            (json!({"httpMethod": "GET", "requestContext": {"stage": "prod"}}), Kind::Http(Source::ApiGatewayV1)),
            (json!({"Records": [{"eventSource": "aws:sqs"}]}), Kind::Sqs),
            (json!({"Records": [{"eventSource": "aws:s3"}]}), Kind::S3),
            (json!({"source": "aws.events", "detail-type": "Scheduled Event"}), Kind::Schedule),
            (json!({"source": "aws.events", "detail-type": "Something Else"}), Kind::Other),
            (json!([1, 2]), Kind::Other),
        ];
        for (event, kind) in cases {
            assert_eq!(classify(&event), kind, "{event}");
            // The fast probe agrees on what is HTTP.
            let probe =
                serde_json::from_slice::<Probe<'_>>(event.to_string().as_bytes()).ok().and_then(|p| p.http_source());
            let http = match kind {
                Kind::Http(s) => Some(s),
                _ => None,
            };
            assert_eq!(probe, http, "{event}");
        }
    }

    #[test]
    fn deadlines_are_absolute_times_or_what_an_emulator_sends() {
        let inv = |deadline_ms| Invocation {
            request_id: "r".into(),
            deadline_ms: Some(deadline_ms),
            trace_id: None,
            event: Bytes::new(),
        };
        let now = tokio::time::Instant::now();
        let absolute = inv(berth_core::clock::now_unix_ms() + 2_000).deadline().unwrap();
        assert!(absolute > now + Duration::from_millis(1_800) && absolute < now + Duration::from_millis(2_100));
        let relative = inv(600_000).deadline().unwrap();
        assert!(relative > now + Duration::from_secs(599), "cargo-lambda's 600000 is ten minutes, not 1970");
    }

    #[test]
    fn answers_that_are_not_json_become_json_strings() {
        assert_eq!(as_json_payload(b"{\"a\":1}"), Bytes::from_static(b"{\"a\":1}"));
        assert_eq!(as_json_payload(b"plain"), Bytes::from_static(b"\"plain\""));
    }

    #[test]
    fn attribute_names_become_valid_extension_names() {
        assert_eq!(extension_name("Trace-Id"), Some("traceid".into()));
        assert_eq!(extension_name("--"), None);
        assert_eq!(extension_name("attempt"), None, "the attempt comes from the receive count");
    }
}
