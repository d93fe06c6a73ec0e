//! Outbound HTTP for functions: one pooled client per host, with timeouts and a response size
//! limit. TLS through rustls (ring provider).

use std::time::Duration;

use berth_plugin_api::{
    service_error_kind as kind, HeadBuilder, HttpClient, OutboundRequest, Response, ServiceError, ServiceResult, Tuple2,
};

use crate::config::HttpClientConfig;
use berth_core::host_future::FutureExt as _;
use berth_core::metrics::ServiceMetrics;

/// The host's outbound client.
#[derive(Clone)]
pub struct OutboundClient {
    client: reqwest::Client,
    timeout: Duration,
    max_response: u64,
    metrics: ServiceMetrics,
}

impl OutboundClient {
    pub fn new(cfg: &HttpClientConfig, metrics: ServiceMetrics) -> Self {
        // Idempotent: the first caller installs ring as the process's rustls provider.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10).min(cfg.timeout))
            .user_agent(concat!("berth/", env!("CARGO_PKG_VERSION")))
            .build()
            .unwrap_or_default();
        OutboundClient { client, timeout: cfg.timeout, max_response: cfg.max_response_size.as_u64(), metrics }
    }

    /// Sends one request.
    pub async fn fetch(&self, req: OutboundRequest) -> Result<Response, ServiceError> {
        let err = |k: u8, m: String| ServiceError::new(k, "http", m);
        let method = reqwest::Method::from_bytes(req.method.as_bytes())
            .map_err(|_| err(kind::INVALID, format!("invalid method `{}`", req.method)))?;
        let url = reqwest::Url::parse(req.url.as_str())
            .map_err(|e| err(kind::INVALID, format!("invalid url `{}`: {e}", req.url)))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(err(kind::INVALID, format!("url `{url}`: only http and https are supported")));
        }
        let timeout = match req.timeout_ms {
            0 => self.timeout,
            ms => Duration::from_millis(ms).min(self.timeout),
        };
        let mut builder = self.client.request(method, url.clone()).timeout(timeout).body(req.body.into_vec());
        for Tuple2(k, v) in req.headers.iter() {
            builder = builder.header(k.as_str(), v.as_str());
        }
        let mut res = builder.send().await.map_err(|e| {
            let k = if e.is_timeout() { kind::TIMEOUT } else { kind::UNAVAILABLE };
            err(k, format!("{} {url}: {e}", req.method))
        })?;
        let status = res.status().as_u16();
        let mut headers = HeadBuilder::with_capacity(0, res.headers().len());
        for (k, v) in res.headers() {
            if let Ok(v) = v.to_str() {
                headers.push(k.as_str(), v, false);
            }
        }
        let headers = headers.finish();
        if res.content_length().is_some_and(|n| n > self.max_response) {
            return Err(err(kind::TOO_LARGE, format!("{url} answered more than {} bytes", self.max_response)));
        }
        let mut body = Vec::new();
        loop {
            match res.chunk().await {
                Ok(Some(chunk)) => {
                    if body.len() as u64 + chunk.len() as u64 > self.max_response {
                        return Err(err(
                            kind::TOO_LARGE,
                            format!("{url} answered more than {} bytes", self.max_response),
                        ));
                    }
                    body.extend_from_slice(&chunk);
                }
                Ok(None) => break,
                Err(e) => {
                    let k = if e.is_timeout() { kind::TIMEOUT } else { kind::UNAVAILABLE };
                    return Err(err(k, format!("reading the answer of {url}: {e}")));
                }
            }
        }
        Ok(Response { status, headers, body: body.into() })
    }
}

impl HttpClient for OutboundClient {
    fn fetch(&self, request: OutboundRequest) -> ServiceResult<Response> {
        let c = self.clone();
        async move { c.metrics.observe("fetch", c.fetch(request)).await }.into_ffi()
    }
}
