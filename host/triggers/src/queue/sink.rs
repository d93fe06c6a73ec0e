//! `kind = "sink"`: publishing CloudEvents over HTTP (binary mode) to a sink — Knative's
//! `K_SINK`, set by a SinkBinding or a source, or any CloudEvents receiver. `K_CE_OVERRIDES`
//! (`{"extensions": {...}}`) adds its extensions to every event. Publish-only.

use std::sync::atomic::{AtomicU64, Ordering};

use berth_plugin_api::{service_error_kind as kind, ServiceError};
use bytes::Bytes;
use http::{HeaderName, HeaderValue, Request};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use super::config::QueueConfig;
use super::publish::{Publish, PublishFuture};

/// Publishes each message as one binary-mode CloudEvent.
pub(crate) struct SinkPublisher {
    name: String,
    /// `None`: `$K_SINK`, read at each publish (a SinkBinding may set it after start).
    url: Option<String>,
    client: Client<HttpConnector, Full<Bytes>>,
    next: AtomicU64,
}

impl SinkPublisher {
    pub(crate) fn new(name: &str, cfg: &QueueConfig) -> Result<Self, String> {
        let url = Some(cfg.url.trim().to_owned()).filter(|u| !u.is_empty());
        if let Some(u) = &url {
            if !u.starts_with("http://") {
                return Err(format!("`[queues.{name}]` url `{u}`: a sink is an http:// address"));
            }
        }
        let client = Client::builder(TokioExecutor::new()).build(HttpConnector::new());
        Ok(SinkPublisher { name: name.to_owned(), url, client, next: AtomicU64::new(1) })
    }

    fn url(&self) -> Result<String, ServiceError> {
        self.url.clone().or_else(|| std::env::var("K_SINK").ok().filter(|s| !s.is_empty())).ok_or_else(|| {
            ServiceError::new(
                kind::UNAVAILABLE,
                &self.name,
                "no sink: K_SINK is not set (bind one with a Knative SinkBinding) and `[queues.<name>] url` is empty"
                    .to_owned(),
            )
        })
    }

    /// The event's headers: the publisher's `ce-*` and `content-type` as given, defaults for
    /// the required attributes, other headers as extensions (`x-origin` → `ce-origin`),
    /// `K_CE_OVERRIDES` last.
    fn headers(&self, given: Vec<(String, String)>) -> (String, Vec<(String, String)>) {
        let mut out: Vec<(String, String)> = Vec::new();
        for (k, v) in given {
            let k = k.to_ascii_lowercase();
            let k = if k.starts_with("ce-") || k == "content-type" {
                k
            } else {
                // `x-origin` → extension `origin`: CloudEvents names are `[a-z0-9]`.
                let ext: String =
                    k.strip_prefix("x-").unwrap_or(&k).chars().filter(char::is_ascii_alphanumeric).collect();
                if ext.is_empty() {
                    continue;
                }
                format!("ce-{ext}")
            };
            out.retain(|(o, _)| *o != k);
            out.push((k, v));
        }
        let has = |out: &[(String, String)], k: &str| out.iter().any(|(o, _)| o == k);
        if !has(&out, "ce-id") {
            let n = self.next.fetch_add(1, Ordering::Relaxed);
            out.push(("ce-id".into(), format!("{}-{}-{n}", self.name, berth_core::clock::now_unix_ms())));
        }
        if !has(&out, "ce-source") {
            out.push(("ce-source".into(), format!("berth/queue/{}", self.name)));
        }
        if !has(&out, "ce-type") {
            out.push(("ce-type".into(), "berth.queue.message".into()));
        }
        if !has(&out, "content-type") {
            out.push(("content-type".into(), "application/json".into()));
        }
        if let Some(overrides) =
            std::env::var("K_CE_OVERRIDES").ok().and_then(|o| serde_json::from_str::<serde_json::Value>(&o).ok())
        {
            for (k, v) in overrides["extensions"].as_object().into_iter().flatten() {
                let k = format!("ce-{}", k.to_ascii_lowercase());
                out.retain(|(o, _)| *o != k);
                out.push((k, v.as_str().map_or_else(|| v.to_string(), str::to_owned)));
            }
        }
        out.push(("ce-specversion".into(), "1.0".into()));
        let id = out.iter().find(|(k, _)| k == "ce-id").map(|(_, v)| v.clone()).unwrap_or_default();
        (id, out)
    }
}

impl Publish for SinkPublisher {
    fn publish(&self, payload: Vec<u8>, headers: Vec<(String, String)>) -> PublishFuture<'_> {
        Box::pin(async move {
            let url = self.url()?;
            let (id, headers) = self.headers(headers);
            let mut req = Request::post(&url)
                .body(Full::new(Bytes::from(payload)))
                .map_err(|e| ServiceError::new(kind::INVALID, &self.name, format!("sink url `{url}`: {e}")))?;
            for (k, v) in headers {
                match (HeaderName::from_bytes(k.as_bytes()), HeaderValue::from_str(&v)) {
                    (Ok(k), Ok(v)) => {
                        req.headers_mut().insert(k, v);
                    }
                    _ => {
                        return Err(ServiceError::new(
                            kind::INVALID,
                            &self.name,
                            format!("header `{k}` cannot be sent"),
                        ))
                    }
                }
            }
            let res = self.client.request(req).await.map_err(|e| {
                ServiceError::new(kind::UNAVAILABLE, &self.name, format!("the sink at {url} cannot be reached: {e}"))
            })?;
            let status = res.status();
            if status.is_success() {
                return Ok(id);
            }
            let body = res.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
            let text: String = String::from_utf8_lossy(&body).chars().take(300).collect();
            Err(ServiceError::new(
                kind::UNAVAILABLE,
                &self.name,
                format!("the sink at {url} answered {status}: {text}"),
            ))
        })
    }
}
