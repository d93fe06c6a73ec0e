//! A client of a platform's runtime API (AWS Lambda's, Tencent SCF's): plain HTTP/1.1 to a
//! local endpoint, one connection kept alive.

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

/// The largest event accepted from a runtime API (Lambda allows 6 MB synchronous, 200 MB never
/// arrives through `next`).
pub const MAX_EVENT_BYTES: usize = 32 * 1024 * 1024;
/// How long a post to the runtime API may take.
const POST_TIMEOUT: Duration = Duration::from_secs(30);

/// Why the runtime API did not answer as it should.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("`{0}` is not a runtime API address: expected host:port or http://host:port[/base]")]
    BadAddress(String),
    #[error("the runtime API at {url} cannot be reached: {message}")]
    Unreachable { url: String, message: String },
    #[error("the runtime API at {url} did not answer within {secs} s")]
    Timeout { url: String, secs: u64 },
    #[error("the runtime API answered {status} to {method} {url}: {body}")]
    Status { method: &'static str, url: String, status: StatusCode, body: String },
    #[error("the event from {url} is larger than {MAX_EVENT_BYTES} bytes")]
    EventTooLarge { url: String },
}

/// The runtime API's base address, e.g. `http://127.0.0.1:9001` or, under cargo-lambda's
/// emulator, `http://127.0.0.1:9000/.rt`.
#[derive(Clone)]
pub struct RuntimeApi {
    client: Client<HttpConnector, Full<Bytes>>,
    base: String,
}

impl std::fmt::Debug for RuntimeApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RuntimeApi").field("base", &self.base).finish()
    }
}

/// An answer of the runtime API.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl RuntimeApi {
    /// A client of the API at `address`: `host:port` as real Lambda gives it, or a full URL with
    /// a base path as emulators do (both kept as given).
    pub fn new(address: &str) -> Result<Self, ApiError> {
        let address = address.trim().trim_end_matches('/');
        let base = if address.starts_with("http://") {
            address.to_owned()
        } else if address.contains("://") {
            return Err(ApiError::BadAddress(address.to_owned()));
        } else {
            format!("http://{address}")
        };
        base.parse::<http::Uri>().map_err(|_| ApiError::BadAddress(address.to_owned()))?;
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new()).pool_idle_timeout(None).build(connector);
        Ok(RuntimeApi { client, base })
    }

    /// The base address.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// `GET base+path`, waiting as long as it takes (a long poll).
    pub async fn get(&self, path: &str) -> Result<Answer, ApiError> {
        self.send(Method::GET, path, &[], Bytes::new(), None).await
    }

    /// `POST base+path` with `body`.
    pub async fn post(&self, path: &str, headers: &[(&str, &str)], body: Bytes) -> Result<Answer, ApiError> {
        self.send(Method::POST, path, headers, body, Some(POST_TIMEOUT)).await
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Bytes,
        timeout: Option<Duration>,
    ) -> Result<Answer, ApiError> {
        let url = format!("{}{path}", self.base);
        let mut req = Request::builder().method(method.clone()).uri(&url);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = req.body(Full::new(body)).map_err(|_| ApiError::BadAddress(url.clone()))?;
        let exchange = async {
            let res = self
                .client
                .request(req)
                .await
                .map_err(|e| ApiError::Unreachable { url: url.clone(), message: error_chain(&e) })?;
            let (parts, body) = res.into_parts();
            let body = Limited::new(body, MAX_EVENT_BYTES).collect().await.map_err(|e| {
                if e.downcast_ref::<http_body_util::LengthLimitError>().is_some() {
                    ApiError::EventTooLarge { url: url.clone() }
                } else {
                    ApiError::Unreachable { url: url.clone(), message: e.to_string() }
                }
            })?;
            Ok(Answer { status: parts.status, headers: parts.headers, body: body.to_bytes() })
        };
        let answer = match timeout {
            Some(t) => tokio::time::timeout(t, exchange)
                .await
                .map_err(|_| ApiError::Timeout { url: url.clone(), secs: t.as_secs() })??,
            None => exchange.await?,
        };
        Ok(answer)
    }

    /// `Err` unless `answer` is a 2xx (emulators answer 200 where Lambda answers 202).
    pub fn check(method: &'static str, url: &str, answer: Answer) -> Result<Answer, ApiError> {
        if answer.status.is_success() {
            Ok(answer)
        } else {
            Err(ApiError::Status {
                method,
                url: url.to_owned(),
                status: answer.status,
                body: String::from_utf8_lossy(&answer.body).chars().take(300).collect(),
            })
        }
    }
}

/// An error and its sources on one line.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(inner) = source {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        source = inner.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_with_and_without_a_scheme_keep_their_base_path() {
        assert_eq!(RuntimeApi::new("127.0.0.1:9001").unwrap().base(), "http://127.0.0.1:9001");
        assert_eq!(RuntimeApi::new("http://127.0.0.1:9000/.rt/").unwrap().base(), "http://127.0.0.1:9000/.rt");
        let err = RuntimeApi::new("https://x:1").unwrap_err().to_string();
        assert!(err.contains("https://x:1") && err.contains("host:port"), "{err}");
    }
}
