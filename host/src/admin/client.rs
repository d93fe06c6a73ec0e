//! A small client of the admin API, used by `berth deploy`, `berth rollback` and `berth groups`.
//! Plain HTTP/1.1 (reach a remote host's admin API through a tunnel or a TLS-terminating proxy).

use bytes::Bytes;
use http::{header, Method, Request};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("admin address `{0}`: expected `host:port` or `http://host:port` (the admin API speaks plain HTTP)")]
    BadAddress(String),
    #[error("cannot reach the admin API at {addr}: {source}; is `berth up` running with the admin API on? (pass --admin host:port)")]
    Connect { addr: String, source: std::io::Error },
    #[error("admin API at {addr}: {source}")]
    Http { addr: String, source: hyper::Error },
    #[error("admin API at {addr} answered {status} with a body that is not JSON: {body}")]
    NotJson { addr: String, status: u16, body: String },
}

/// One answer of the admin API.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub body: serde_json::Value,
}

impl Answer {
    /// The `message` of an error answer, or the status.
    pub fn message(&self) -> String {
        match self.body.get("message").and_then(|m| m.as_str()) {
            Some(m) => m.to_owned(),
            None => format!("status {}", self.status),
        }
    }
}

/// Talks to one admin API with one token.
#[derive(Debug, Clone)]
pub struct AdminClient {
    authority: String,
    token: String,
}

impl AdminClient {
    /// `address` is `host:port` or `http://host:port`.
    pub fn new(address: &str, token: &str) -> Result<Self, ClientError> {
        let authority = address.strip_prefix("http://").unwrap_or(address).trim_end_matches('/');
        if authority.is_empty()
            || authority.contains('/')
            || !authority.contains(':')
            || address.starts_with("https://")
        {
            return Err(ClientError::BadAddress(address.to_owned()));
        }
        Ok(AdminClient { authority: authority.to_owned(), token: token.to_owned() })
    }

    /// Sends one request and reads the JSON answer (whatever its status).
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        content_type: Option<&str>,
        body: Bytes,
    ) -> Result<Answer, ClientError> {
        let addr = self.authority.clone();
        let stream = tokio::net::TcpStream::connect(&addr)
            .await
            .map_err(|source| ClientError::Connect { addr: addr.clone(), source })?;
        let http = |source| ClientError::Http { addr: addr.clone(), source };
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.map_err(http)?;
        let conn = tokio::spawn(conn);
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header(header::HOST, &self.authority)
            .header(header::AUTHORIZATION, format!("Bearer {}", self.token));
        if let Some(ct) = content_type {
            req = req.header(header::CONTENT_TYPE, ct);
        }
        let req = req.body(Full::new(body)).map_err(|_| ClientError::BadAddress(self.authority.clone()))?;
        let res = sender.send_request(req).await.map_err(http)?;
        let status = res.status().as_u16();
        let bytes = res.into_body().collect().await.map_err(http)?.to_bytes();
        conn.abort();
        let body = serde_json::from_slice(&bytes).map_err(|_| ClientError::NotJson {
            addr: addr.clone(),
            status,
            body: String::from_utf8_lossy(&bytes).chars().take(300).collect(),
        })?;
        Ok(Answer { status, body })
    }
}

#[cfg(test)]
mod tests {
    use super::AdminClient;

    #[test]
    fn addresses_are_host_and_port_over_plain_http() {
        assert!(AdminClient::new("127.0.0.1:8081", "t").is_ok());
        assert!(AdminClient::new("http://localhost:8081/", "t").is_ok());
        assert!(AdminClient::new("https://example.com:443", "t").is_err());
        assert!(AdminClient::new("localhost", "t").is_err());
        assert!(AdminClient::new("http://h:1/x", "t").is_err());
    }
}
