//! Knative Serving and Eventing: HTTP on `$PORT`; CloudEvents 1.0 over HTTP in binary and
//! structured mode (batched mode refused clearly) to the function bound to the event's type
//! (`[platform.events]`, else `[platform] invoke`); a function that answers with a `ce-type`
//! header answers a reply event (binary mode); a duplicate delivery (same source and id) of an
//! event already handled gets the first answer again without a second call. `K_SERVICE` and
//! `K_REVISION` go into the log and into `berth_platform_info`. Anything that is not a
//! CloudEvent is served by Berth's router.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use berth_core::dispatcher::EventData;
use berth_core::error::{json_error, Body};
use berth_core::Metrics;
use berth_triggers::http::invoke::read_event_body;
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use serde_json::Value;

use crate::Shim;

/// How many handled events are remembered for duplicate deliveries.
const SEEN_KEPT: usize = 10_000;
/// Answers larger than this are not kept for duplicates (the duplicate is answered 200 empty).
const SEEN_BODY_KEPT: usize = 64 * 1024;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// `berth_platform_info{platform="knative",service,revision} 1`.
pub fn register_info(metrics: &Metrics, env: &dyn Fn(&str) -> Option<String>) {
    let info = prometheus::IntGaugeVec::new(
        prometheus::Opts::new("berth_platform_info", "The platform Berth runs on, with its service and revision"),
        &["platform", "service", "revision"],
    )
    .expect("valid metric");
    let (service, revision) = (env("K_SERVICE").unwrap_or_default(), env("K_REVISION").unwrap_or_default());
    tracing::info!(k_service = %service, k_revision = %revision, "serving as a Knative revision");
    info.with_label_values(&["knative", &service, &revision]).set(1);
    metrics.register(Box::new(info));
}

/// An answer kept for a duplicate delivery.
#[derive(Clone)]
struct Kept {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

/// An event's identity for duplicate detection: (source, id).
type EventKey = (String, String);

/// Events handled, by (source, id), oldest forgotten first.
#[derive(Default)]
pub struct Seen {
    inner: Mutex<(HashMap<EventKey, Kept>, VecDeque<EventKey>)>,
}

impl Seen {
    fn get(&self, key: &EventKey) -> Option<Kept> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner()).0.get(key).cloned()
    }

    fn put(&self, key: EventKey, kept: Kept) {
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let (map, order) = &mut *g;
        if map.insert(key.clone(), kept).is_none() {
            order.push_back(key);
            while order.len() > SEEN_KEPT {
                if let Some(old) = order.pop_front() {
                    map.remove(&old);
                }
            }
        }
    }
}

/// Why a request is not a CloudEvent Berth can take.
#[derive(Debug, PartialEq, Eq)]
pub struct Refused(pub String);

/// The media type of a `Content-Type` value, lower-case, without parameters.
fn media_type(headers: &HeaderMap) -> String {
    headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

/// A binary-mode event from its `ce-*` headers (values percent-decoded) and body.
pub fn binary_event(headers: &HeaderMap, body: Vec<u8>) -> Result<EventData, Refused> {
    let get = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(|v| percent_encoding::percent_decode_str(v).decode_utf8_lossy().into_owned())
    };
    let spec = get("ce-specversion").unwrap_or_default();
    if spec != "1.0" {
        return Err(Refused(format!("ce-specversion `{spec}` is not supported; Berth takes CloudEvents 1.0")));
    }
    let required = |name: &str| {
        get(name)
            .filter(|v| !v.is_empty())
            .ok_or_else(|| Refused(format!("a binary-mode CloudEvent needs the `{name}` header")))
    };
    let mut event = EventData {
        id: required("ce-id")?,
        source: required("ce-source")?,
        ty: required("ce-type")?,
        subject: get("ce-subject"),
        time: get("ce-time"),
        datacontenttype: headers.get(http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(str::to_owned),
        data: body,
        ..Default::default()
    };
    for (k, _) in headers {
        if let Some(ext) = k.as_str().strip_prefix("ce-") {
            if !matches!(ext, "specversion" | "id" | "source" | "type" | "subject" | "time") {
                if let Some(v) = get(k.as_str()) {
                    event.extensions.push((ext.to_owned(), v));
                }
            }
        }
    }
    Ok(event)
}

/// A structured-mode event: the whole event as JSON (`data`, or `data_base64`).
pub fn structured_event(body: &[u8]) -> Result<EventData, Refused> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| Refused(format!("the structured-mode CloudEvent is not JSON: {e}")))?;
    let Value::Object(mut o) = v else {
        return Err(Refused("a structured-mode CloudEvent must be a JSON object".into()));
    };
    let mut take = |k: &str| match o.remove(k) {
        Some(Value::String(s)) => Some(s),
        Some(other) if !other.is_null() => Some(other.to_string()),
        _ => None,
    };
    let spec = take("specversion").unwrap_or_default();
    if spec != "1.0" {
        return Err(Refused(format!("specversion `{spec}` is not supported; Berth takes CloudEvents 1.0")));
    }
    // CloudEvents 1.0: `id`, `source` and `type` are required and non-empty.
    let mut required = |k: &str| take(k).filter(|v| !v.is_empty());
    let (Some(id), Some(source), Some(ty)) = (required("id"), required("source"), required("type")) else {
        return Err(Refused("a CloudEvent needs non-empty `id`, `source` and `type`".into()));
    };
    let datacontenttype = take("datacontenttype");
    let subject = take("subject");
    let time = take("time");
    let data_base64 = take("data_base64");
    let data = match (o.remove("data"), data_base64) {
        (_, Some(b64)) => {
            B64.decode(b64.as_bytes()).map_err(|e| Refused(format!("`data_base64` is not base64: {e}")))?
        }
        (Some(Value::String(s)), None) if !datacontenttype.as_deref().is_some_and(is_json) => s.into_bytes(),
        (Some(v), None) => v.to_string().into_bytes(),
        (None, None) => Vec::new(),
    };
    let extensions = o
        .into_iter()
        .filter(|(k, _)| k != "dataschema")
        .map(|(k, v)| (k, v.as_str().map_or_else(|| v.to_string(), str::to_owned)))
        .collect();
    Ok(EventData {
        id,
        source,
        ty,
        subject,
        time,
        datacontenttype: datacontenttype.or_else(|| Some("application/json".into())),
        data,
        extensions,
    })
}

fn is_json(ct: &str) -> bool {
    let ct = ct.split(';').next().unwrap_or("").trim();
    ct == "application/json" || ct.ends_with("+json")
}

/// Serves one request.
pub async fn handle(shim: &Arc<Shim>, req: Request<Incoming>, peer: SocketAddr) -> Response<Body> {
    let media = media_type(req.headers());
    let binary = req.headers().contains_key("ce-specversion");
    let structured = media == "application/cloudevents+json";
    if media == "application/cloudevents-batch+json" {
        let request_id = shim.http.request_ids.for_request(&req);
        return json_error(
            StatusCode::BAD_REQUEST,
            "batch_not_supported",
            "CloudEvents batched mode is not supported; send events one at a time (binary or structured mode)",
            Some(&request_id),
        );
    }
    if !binary && !structured {
        let Ok(res) = berth_triggers::http::handle(shim.http.clone(), req, peer).await;
        return res;
    }
    let request_id = shim.http.request_ids.for_request(&req);
    let (parts, body) = req.into_parts();
    let body = match read_event_body(body, &request_id).await {
        Ok(b) => b,
        Err(res) => return res,
    };
    let event = if structured { structured_event(&body) } else { binary_event(&parts.headers, body) };
    let event = match event {
        Ok(e) => e,
        Err(Refused(message)) => return json_error(StatusCode::BAD_REQUEST, "bad_event", &message, Some(&request_id)),
    };
    let key = (event.source.clone(), event.id.clone());
    if let Some(kept) = shim.seen.get(&key) {
        tracing::info!(source = %key.0, id = %key.1, "duplicate CloudEvent; answered as the first delivery was");
        let mut res = Response::new(Full::new(kept.body));
        *res.status_mut() = kept.status;
        *res.headers_mut() = kept.headers;
        return res;
    }
    let Some(target) = shim.config.events.get(&event.ty).cloned().or_else(|| shim.config.invoke.clone()) else {
        let message = format!(
            "no function is bound to CloudEvents type `{}`: add `[platform.events] \"{}\" = \"group/function\"` (or `[platform] invoke`) to berth.toml",
            event.ty, event.ty
        );
        return json_error(StatusCode::BAD_REQUEST, "unbound_event_type", &message, Some(&request_id));
    };
    let event_id = event.id.clone();
    let res = match shim.deliver(&target, "event", event, None).await {
        Ok(r) => reply(r, &target, &event_id),
        Err(berth_core::DeliveryError::Failed { status, code, message }) => {
            return json_error(status, &code, &message, Some(&request_id));
        }
        Err(e) => return json_error(StatusCode::NOT_FOUND, "not_found", &e.to_string(), Some(&request_id)),
    };
    if res.body.len() <= SEEN_BODY_KEPT {
        shim.seen.put(key, res.clone());
    }
    let mut out = Response::new(Full::new(res.body));
    *out.status_mut() = res.status;
    *out.headers_mut() = res.headers;
    out
}

/// The function's answer as Eventing takes it: a reply event (binary mode) when the function
/// set `ce-type`, else 202 with no body.
fn reply(r: berth_plugin_api::Response, target: &crate::FunctionRef, event_id: &str) -> Kept {
    let ty = r.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case("ce-type")).map(|(_, v)| v.to_owned());
    let Some(ty) = ty else {
        return Kept { status: StatusCode::ACCEPTED, headers: HeaderMap::new(), body: Bytes::new() };
    };
    let mut headers = HeaderMap::new();
    let mut set = |k: &str, v: &str| {
        if let (Ok(k), Ok(v)) = (HeaderName::from_bytes(k.as_bytes()), HeaderValue::from_str(v)) {
            headers.insert(k, v);
        }
    };
    set("ce-specversion", "1.0");
    set("ce-type", &ty);
    set("ce-id", &format!("{event_id}.reply"));
    set("ce-source", &format!("berth/{}/{}", target.group, target.function));
    for (k, v) in r.headers.iter() {
        let k = k.to_ascii_lowercase();
        if (k.starts_with("ce-") && k != "ce-specversion") || k == "content-type" {
            set(&k, v);
        }
    }
    Kept { status: StatusCode::OK, headers, body: Bytes::copy_from_slice(&r.body) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binary_mode_decodes_percent_encoded_attributes_and_needs_the_required_ones() {
        let mut h = HeaderMap::new();
        for (k, v) in [
            ("ce-specversion", "1.0"),
            ("ce-id", "1"),
            ("ce-source", "/s"),
            ("ce-type", "t"),
            ("ce-subject", "x%20y%25z"),
            ("ce-traceparent", "00-ab"),
            ("content-type", "application/json"),
        ] {
            h.insert(HeaderName::from_static(k), HeaderValue::from_static(v));
        }
        let e = binary_event(&h, b"{}".to_vec()).unwrap();
        assert_eq!(
            (e.id.as_str(), e.subject.as_deref(), e.datacontenttype.as_deref()),
            ("1", Some("x y%z"), Some("application/json"))
        );
        assert_eq!(e.extensions, vec![("traceparent".to_owned(), "00-ab".to_owned())]);
        h.remove("ce-source");
        assert_eq!(
            binary_event(&h, vec![]).unwrap_err(),
            Refused("a binary-mode CloudEvent needs the `ce-source` header".into())
        );
    }

    #[test]
    fn structured_mode_takes_data_or_data_base64() {
        let e =
            structured_event(br#"{"specversion":"1.0","id":"1","source":"/s","type":"t","data":{"a":1},"ext1":"v"}"#)
                .unwrap();
        assert_eq!(
            (e.data.as_slice(), e.extensions.clone()),
            (br#"{"a":1}"#.as_slice(), vec![("ext1".to_owned(), "v".to_owned())])
        );
        let e = structured_event(
            br#"{"specversion":"1.0","id":"1","source":"/s","type":"t","datacontenttype":"text/plain","data":"hi"}"#,
        )
        .unwrap();
        assert_eq!(e.data, b"hi");
        let e = structured_event(br#"{"specversion":"1.0","id":"1","source":"/s","type":"t","data_base64":"AP8="}"#)
            .unwrap();
        assert_eq!(e.data, [0, 255]);
        assert!(structured_event(br#"{"specversion":"0.3","id":"1","source":"/s","type":"t"}"#)
            .unwrap_err()
            .0
            .contains("0.3"));
        assert!(structured_event(b"{nope").unwrap_err().0.contains("not JSON"));
        assert!(structured_event(br#"{"specversion":"1.0","id":"1"}"#)
            .unwrap_err()
            .0
            .contains("`id`, `source` and `type`"));
    }
}
