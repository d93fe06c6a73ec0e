//! Errors that reach an HTTP client: each knows its status, its machine-readable code and the
//! message a caller may see ([`HttpError`]); every listener answers them with the same JSON body
//! ([`error_response`]): `{"error": code, "message": ..., "request_id": ...}`.

use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode};
use http_body_util::Full;
use serde::Serialize;

/// The body type of every response the host makes itself.
pub type Body = Full<Bytes>;

/// An error answered to an HTTP client.
pub trait HttpError {
    /// The status it answers with.
    fn status(&self) -> StatusCode;
    /// A short machine-readable code (`not_found`, `timeout`).
    fn code(&self) -> &str;
    /// What the caller is told (details that belong in the log stay there).
    fn public_message(&self) -> String;
}

/// The JSON error body every host listener answers with. `request_id` is left out where there is
/// none (the admin API).
pub fn json_error(status: StatusCode, code: &str, message: &str, request_id: Option<&str>) -> Response<Body> {
    #[derive(Serialize)]
    struct ErrorBody<'a> {
        error: &'a str,
        message: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        request_id: Option<&'a str>,
    }
    json_response(status, &ErrorBody { error: code, message, request_id })
}

/// `error` as the JSON error body.
pub fn error_response(error: &dyn HttpError, request_id: Option<&str>) -> Response<Body> {
    json_error(error.status(), error.code(), &error.public_message(), request_id)
}

/// `value` as a JSON response.
pub fn json_response<T: Serialize + ?Sized>(status: StatusCode, value: &T) -> Response<Body> {
    let body = serde_json::to_vec(value).unwrap_or_default();
    with_content_type(status, "application/json", Bytes::from(body))
}

/// `value` as an indented JSON response (for people reading the admin API).
pub fn pretty_json_response<T: Serialize + ?Sized>(status: StatusCode, value: &T) -> Response<Body> {
    let body = serde_json::to_vec_pretty(value).unwrap_or_default();
    with_content_type(status, "application/json", Bytes::from(body))
}

/// A response with `body` and a static content type.
pub fn with_content_type(status: StatusCode, content_type: &'static str, body: Bytes) -> Response<Body> {
    let mut res = Response::new(Full::new(body));
    *res.status_mut() = status;
    res.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    res
}

/// Compares a presented secret with the expected one without stopping at the first difference,
/// so response times do not reveal how much of a guess was right.
pub fn same_secret(given: &[u8], expected: &[u8]) -> bool {
    given.len() == expected.len() && given.iter().zip(expected).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
}

/// The token of an `Authorization: Bearer <token>` header, if the request has one.
pub fn bearer_token(headers: &http::HeaderMap) -> Option<&str> {
    headers.get(header::AUTHORIZATION)?.to_str().ok()?.strip_prefix("Bearer ").map(str::trim)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_compare_whole() {
        assert!(same_secret(b"secret", b"secret"));
        assert!(!same_secret(b"secreT", b"secret"));
        assert!(!same_secret(b"secret-longer", b"secret"));
        assert!(!same_secret(b"", b"secret"));
    }

    #[test]
    fn the_error_body_names_code_message_and_request_id() {
        let res = json_error(StatusCode::NOT_FOUND, "not_found", "no such thing", Some("r-1"));
        assert_eq!(res.status(), StatusCode::NOT_FOUND);
        assert_eq!(res.headers()[header::CONTENT_TYPE], "application/json");
        let res = json_error(StatusCode::UNAUTHORIZED, "unauthorized", "no", None);
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    }
}

/// `url` as logs and messages show it: without a password and without the query, where
/// presigned artifact URLs carry their signature (`https://h/p.so?…`).
pub fn shown_url(url: &str) -> String {
    let (base, query) = match url.split_once(['?', '#']) {
        Some((base, _)) => (base, "?…"),
        None => (url, ""),
    };
    let base = match (base.find("://"), base.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => format!("{}://{}", &base[..scheme], &base[at + 1..]),
        _ => base.to_owned(),
    };
    format!("{base}{query}")
}

#[cfg(test)]
mod shown_url_tests {
    use super::shown_url;

    #[test]
    fn urls_are_shown_without_their_secrets() {
        assert_eq!(shown_url("https://a.example/g.so"), "https://a.example/g.so");
        assert_eq!(
            shown_url("https://bucket.s3.amazonaws.com/g.so?X-Amz-Signature=abc&X-Amz-Credential=k"),
            "https://bucket.s3.amazonaws.com/g.so?…"
        );
        assert_eq!(shown_url("https://user:pw@a.example/g.so"), "https://a.example/g.so");
        assert_eq!(shown_url("redis://:pw@r:6379/1"), "redis://r:6379/1");
    }
}
