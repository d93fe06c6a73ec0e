//! An HTTP request that arrived inside a platform event (API Gateway, ALB, Function URL, SCF's
//! API Gateway trigger): built into a request for Berth's router, and the answer collected so
//! the shim can write it in the shape the event source expects.

use berth_triggers::http::route_only;
use bytes::Bytes;
use http::{HeaderName, HeaderValue, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use tokio::time::Instant;

use crate::Shim;

/// A request taken out of an event.
#[derive(Debug, Default)]
pub struct HttpCall {
    pub method: String,
    /// The path as the client sent it, percent-encoded.
    pub path: String,
    /// The raw query string, without `?`.
    pub query: String,
    /// Header fields in order; a name may repeat.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub request_id: String,
    /// The platform's deadline for the invocation.
    pub deadline: Option<Instant>,
}

/// The router's answer.
#[derive(Debug)]
pub struct HttpAnswer {
    pub status: StatusCode,
    /// Header fields in order (names lower-case); a name may repeat.
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
}

impl HttpAnswer {
    /// The first value of header `name`.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// Whether the body is text a JSON string can carry as it is (else base64).
    pub fn is_text(&self) -> bool {
        std::str::from_utf8(&self.body).is_ok() && is_text_type(self.header("content-type").unwrap_or(""))
    }

    /// A clear error answer (the JSON body Berth's router answers errors with).
    pub fn error(status: StatusCode, code: &str, message: &str, request_id: &str) -> Self {
        let body = serde_json::json!({ "error": code, "message": message, "request_id": request_id });
        HttpAnswer {
            status,
            headers: vec![("content-type".into(), "application/json".into())],
            body: Bytes::from(body.to_string()),
        }
    }
}

/// Content types whose bodies are text (API Gateway's and ALB's notion: everything else goes
/// base64-encoded).
pub fn is_text_type(content_type: &str) -> bool {
    let ct = content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    ct.is_empty()
        || ct.starts_with("text/")
        || ct == "application/json"
        || ct.ends_with("+json")
        || ct == "application/xml"
        || ct.ends_with("+xml")
        || ct == "application/javascript"
        || ct == "application/x-www-form-urlencoded"
        || ct == "application/graphql"
}

/// Routes `call` through Berth's router and collects the answer.
pub async fn route(shim: &Shim, call: HttpCall) -> HttpAnswer {
    let HttpCall { method, path, query, headers, body, request_id, deadline } = call;
    let bad = |what: String| HttpAnswer::error(StatusCode::BAD_REQUEST, "bad_request", &what, &request_id);
    let Ok(method) = Method::from_bytes(method.as_bytes()) else {
        return bad(format!("`{method}` is not an HTTP method"));
    };
    let path = if path.starts_with('/') { path } else { format!("/{path}") };
    let uri = if query.is_empty() { path } else { format!("{path}?{query}") };
    let mut req = match Request::builder().method(method).uri(&uri).body(Full::new(Bytes::from(body))) {
        Ok(r) => r,
        Err(e) => return bad(format!("`{uri}` is not a request target: {e}")),
    };
    for (k, v) in headers {
        match (HeaderName::from_bytes(k.as_bytes()), HeaderValue::from_str(&v)) {
            (Ok(k), Ok(v)) => {
                req.headers_mut().append(k, v);
            }
            _ => tracing::debug!(header = %k, "event header is not a valid HTTP header; left out"),
        }
    }
    if let Some(d) = deadline {
        req.extensions_mut().insert(berth_core::call::Deadline(d));
    }
    let res = route_only(&shim.http, req, &request_id).await;
    let (parts, body) = res.into_parts();
    let body = match body.collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => match e {},
    };
    let headers = parts
        .headers
        .iter()
        .filter(|(k, _)| *k != "x-request-id")
        .filter_map(|(k, v)| Some((k.as_str().to_owned(), v.to_str().ok()?.to_owned())))
        .collect();
    HttpAnswer { status: parts.status, headers, body }
}

/// `a=1&b=2` from decoded pairs.
pub fn encode_query<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    let mut s = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        s.append_pair(k, v);
    }
    s.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_types_are_told_from_binary_ones() {
        for t in ["text/html; charset=utf-8", "application/json", "application/problem+json", "", "image/svg+xml"] {
            assert!(is_text_type(t), "{t}");
        }
        for t in ["application/octet-stream", "image/png", "application/zip"] {
            assert!(!is_text_type(t), "{t}");
        }
        let binary = HttpAnswer {
            status: StatusCode::OK,
            headers: vec![("content-type".into(), "text/plain".into())],
            body: Bytes::from_static(&[0xff, 0xfe]),
        };
        assert!(!binary.is_text(), "bytes that are not UTF-8 are binary whatever the type says");
    }

    #[test]
    fn queries_are_encoded_from_decoded_pairs() {
        assert_eq!(encode_query([("a", "1 2"), ("b", "x&y"), ("a", "3")]), "a=1+2&b=x%26y&a=3");
    }
}
