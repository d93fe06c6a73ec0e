//! API Gateway REST (v1), HTTP API (v2) / Function URL and ALB events: the request for Berth's
//! router, and the router's answer in the shape each source expects.

use std::collections::BTreeMap;

use base64::Engine as _;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::http_event::{encode_query, HttpAnswer, HttpCall};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// Which HTTP source an event came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// API Gateway REST API (payload 1.0).
    ApiGatewayV1,
    /// API Gateway HTTP API (payload 2.0) and Lambda Function URLs.
    HttpApiV2,
    /// An Application Load Balancer; `multi_value` when the target group has multi-value
    /// headers on (the answer must use them too).
    Alb { multi_value: bool },
}

/// Why an HTTP event cannot be read.
#[derive(Debug, thiserror::Error)]
#[error("malformed {kind} event: {message}")]
pub struct BadEvent {
    pub kind: &'static str,
    pub message: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct V1 {
    http_method: String,
    path: Option<String>,
    #[serde(default)]
    headers: Option<BTreeMap<String, Option<String>>>,
    #[serde(default)]
    multi_value_headers: Option<BTreeMap<String, Option<Vec<String>>>>,
    #[serde(default)]
    query_string_parameters: Option<BTreeMap<String, Option<String>>>,
    #[serde(default)]
    multi_value_query_string_parameters: Option<BTreeMap<String, Option<Vec<String>>>>,
    body: Option<String>,
    #[serde(default)]
    is_base64_encoded: bool,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct V2 {
    raw_path: Option<String>,
    #[serde(default)]
    raw_query_string: String,
    #[serde(default)]
    cookies: Vec<String>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    request_context: V2Context,
    body: Option<String>,
    #[serde(default)]
    is_base64_encoded: bool,
}

#[derive(Deserialize)]
struct V2Context {
    http: V2Http,
}

#[derive(Deserialize)]
struct V2Http {
    method: String,
    path: Option<String>,
}

fn body(body: Option<String>, base64: bool, source: &'static str) -> Result<Vec<u8>, BadEvent> {
    match body {
        None => Ok(Vec::new()),
        Some(b) if base64 => B64.decode(b.as_bytes()).map_err(|e| BadEvent {
            kind: source,
            message: format!("`isBase64Encoded` is true but `body` is not base64: {e}"),
        }),
        Some(b) => Ok(b.into_bytes()),
    }
}

/// Headers from the single- and multi-value maps (multi-value wins: it has every value).
fn headers(
    single: Option<BTreeMap<String, Option<String>>>,
    multi: Option<BTreeMap<String, Option<Vec<String>>>>,
) -> Vec<(String, String)> {
    match multi.filter(|m| !m.is_empty()) {
        Some(multi) => multi
            .into_iter()
            .flat_map(|(k, vs)| vs.unwrap_or_default().into_iter().map(move |v| (k.to_ascii_lowercase(), v)))
            .collect(),
        None => {
            single.unwrap_or_default().into_iter().filter_map(|(k, v)| Some((k.to_ascii_lowercase(), v?))).collect()
        }
    }
}

/// The query string from the single- and multi-value maps. API Gateway hands the values
/// decoded; ALB hands them as the client sent them (`decoded = false`): kept as they are.
fn query(
    single: Option<BTreeMap<String, Option<String>>>,
    multi: Option<BTreeMap<String, Option<Vec<String>>>>,
    decoded: bool,
) -> String {
    let pairs: Vec<(String, String)> = match multi.filter(|m| !m.is_empty()) {
        Some(multi) => multi
            .into_iter()
            .flat_map(|(k, vs)| vs.unwrap_or_default().into_iter().map(move |v| (k.clone(), v)))
            .collect(),
        None => single.unwrap_or_default().into_iter().filter_map(|(k, v)| Some((k, v?))).collect(),
    };
    if decoded {
        encode_query(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())))
    } else {
        pairs.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("&")
    }
}

/// The request inside an HTTP event of `source` (the event's JSON text).
pub fn request(source: Source, event: &[u8]) -> Result<HttpCall, BadEvent> {
    match source {
        Source::ApiGatewayV1 | Source::Alb { .. } => {
            let name = if source == Source::ApiGatewayV1 { "API Gateway REST" } else { "ALB" };
            let e: V1 = serde_json::from_slice(event).map_err(|e| BadEvent { kind: name, message: e.to_string() })?;
            let decoded = source == Source::ApiGatewayV1;
            Ok(HttpCall {
                method: e.http_method,
                path: e.path.unwrap_or_else(|| "/".into()),
                query: query(e.query_string_parameters, e.multi_value_query_string_parameters, decoded),
                headers: headers(e.headers, e.multi_value_headers),
                body: body(e.body, e.is_base64_encoded, name)?,
                ..Default::default()
            })
        }
        Source::HttpApiV2 => {
            let name = "HTTP API";
            let e: V2 = serde_json::from_slice(event).map_err(|e| BadEvent { kind: name, message: e.to_string() })?;
            let mut headers: Vec<(String, String)> =
                e.headers.into_iter().map(|(k, v)| (k.to_ascii_lowercase(), v)).collect();
            if !e.cookies.is_empty() {
                headers.retain(|(k, _)| k != "cookie");
                headers.push(("cookie".into(), e.cookies.join("; ")));
            }
            Ok(HttpCall {
                method: e.request_context.http.method,
                path: e.raw_path.or(e.request_context.http.path).unwrap_or_else(|| "/".into()),
                query: e.raw_query_string,
                headers,
                body: body(e.body, e.is_base64_encoded, name)?,
                ..Default::default()
            })
        }
    }
}

/// The body as the JSON answer carries it: text as it is, anything else base64.
fn answer_body(answer: &HttpAnswer) -> (String, bool) {
    if answer.is_text() {
        (String::from_utf8_lossy(&answer.body).into_owned(), false)
    } else {
        (B64.encode(&answer.body), true)
    }
}

/// Headers one value per name (the last one wins), for sources without multi-value headers.
fn single_value(answer: &HttpAnswer) -> Map<String, Value> {
    answer.headers.iter().map(|(k, v)| (k.clone(), json!(v))).collect()
}

/// Headers with every value, in order.
fn every_value(answer: &HttpAnswer) -> Map<String, Value> {
    let mut multi: Map<String, Value> = Map::new();
    for (k, v) in &answer.headers {
        match multi.get_mut(k) {
            Some(Value::Array(vs)) => vs.push(json!(v)),
            _ => {
                multi.insert(k.clone(), json!([v]));
            }
        }
    }
    multi
}

/// The router's answer in the shape `source` expects.
pub fn response(source: Source, answer: &HttpAnswer) -> Value {
    let (body, is_base64) = answer_body(answer);
    let status = answer.status.as_u16();
    match source {
        Source::ApiGatewayV1 => {
            json!({
                "statusCode": status,
                "headers": single_value(answer),
                "multiValueHeaders": every_value(answer),
                "body": body,
                "isBase64Encoded": is_base64,
            })
        }
        Source::HttpApiV2 => {
            // Repeated headers are joined with commas, except cookies, which get their own field
            // (always present: some gateways turn a missing one into a 500).
            let mut headers: Map<String, Value> = Map::new();
            let mut cookies = Vec::new();
            for (k, v) in &answer.headers {
                if k == "set-cookie" {
                    cookies.push(json!(v));
                    continue;
                }
                match headers.get_mut(k) {
                    Some(Value::String(s)) => {
                        s.push_str(", ");
                        s.push_str(v);
                    }
                    _ => {
                        headers.insert(k.clone(), json!(v));
                    }
                }
            }
            json!({
                "statusCode": status,
                "headers": headers,
                "cookies": cookies,
                "body": body,
                "isBase64Encoded": is_base64,
            })
        }
        Source::Alb { multi_value } => {
            let description = format!("{} {}", status, answer.status.canonical_reason().unwrap_or(""));
            let mut out = json!({
                "statusCode": status,
                "statusDescription": description.trim_end(),
                "body": body,
                "isBase64Encoded": is_base64,
            });
            if multi_value {
                out["multiValueHeaders"] = Value::Object(every_value(answer));
            } else {
                out["headers"] = Value::Object(single_value(answer));
            }
            out
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use http::StatusCode;

    fn answer(headers: &[(&str, &str)], body: &[u8]) -> HttpAnswer {
        HttpAnswer {
            status: StatusCode::CREATED,
            headers: headers.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            body: Bytes::copy_from_slice(body),
        }
    }

    #[test]
    fn v1_requests_take_every_header_and_query_value() {
        let call = request(
            Source::ApiGatewayV1,
            json!({
                "httpMethod": "POST", "path": "/echo", "resource": "/{proxy+}",
                "headers": {"X-A": "2", "Content-Type": "text/plain"},
                "multiValueHeaders": {"X-A": ["1", "2"], "Content-Type": ["text/plain"]},
                "queryStringParameters": {"q": "b"},
                "multiValueQueryStringParameters": {"q": ["a b", "b&c"]},
                "requestContext": {"requestId": "r"}, "body": "aGk=", "isBase64Encoded": true
            })
            .to_string()
            .as_bytes(),
        )
        .unwrap();
        assert_eq!((call.method.as_str(), call.path.as_str(), call.query.as_str()), ("POST", "/echo", "q=a+b&q=b%26c"));
        assert_eq!(call.body, b"hi");
        assert!(
            call.headers.contains(&("x-a".into(), "1".into())) && call.headers.contains(&("x-a".into(), "2".into()))
        );
    }

    #[test]
    fn v2_requests_use_the_raw_path_and_query_and_the_cookies() {
        let call = request(
            Source::HttpApiV2,
            json!({
                "version": "2.0", "rawPath": "/hello/a%20b", "rawQueryString": "x=1&x=2",
                "cookies": ["a=1", "b=2"], "headers": {"x-demo": "1,2"},
                "requestContext": {"http": {"method": "GET", "path": "/hello/a b"}}
            })
            .to_string()
            .as_bytes(),
        )
        .unwrap();
        assert_eq!((call.path.as_str(), call.query.as_str()), ("/hello/a%20b", "x=1&x=2"));
        assert!(call.headers.contains(&("cookie".into(), "a=1; b=2".into())), "{:?}", call.headers);
    }

    #[test]
    fn a_body_that_claims_base64_and_is_not_is_a_clear_error() {
        let err = request(
            Source::ApiGatewayV1,
            json!({"httpMethod": "POST", "body": "%%%", "isBase64Encoded": true}).to_string().as_bytes(),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("API Gateway REST") && err.contains("not base64"), "{err}");
    }

    #[test]
    fn answers_take_each_sources_shape() {
        let a = answer(
            &[("content-type", "text/plain"), ("set-cookie", "a=1"), ("set-cookie", "b=2"), ("x-m", "1"), ("x-m", "2")],
            b"ok",
        );
        let v1 = response(Source::ApiGatewayV1, &a);
        assert_eq!(v1["multiValueHeaders"]["set-cookie"], json!(["a=1", "b=2"]));
        assert_eq!(
            (v1["statusCode"].clone(), v1["body"].clone(), v1["isBase64Encoded"].clone()),
            (json!(201), json!("ok"), json!(false))
        );
        let v2 = response(Source::HttpApiV2, &a);
        assert_eq!(v2["cookies"], json!(["a=1", "b=2"]));
        assert_eq!(v2["headers"]["x-m"], json!("1, 2"));
        assert!(v2["headers"].get("set-cookie").is_none());
        let alb = response(Source::Alb { multi_value: false }, &a);
        assert_eq!(
            (alb["statusDescription"].clone(), alb["headers"]["x-m"].clone()),
            (json!("201 Created"), json!("2"))
        );
        let alb = response(Source::Alb { multi_value: true }, &a);
        assert_eq!(alb["multiValueHeaders"]["x-m"], json!(["1", "2"]));
        let bin = response(Source::HttpApiV2, &answer(&[("content-type", "application/octet-stream")], &[0, 255]));
        assert_eq!((bin["body"].clone(), bin["isBase64Encoded"].clone()), (json!("AP8="), json!(true)));
        assert_eq!(response(Source::HttpApiV2, &answer(&[], b""))["cookies"], json!([]), "cookies is always there");
    }
}
