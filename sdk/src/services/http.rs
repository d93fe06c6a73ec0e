//! Outbound HTTP through the host's client (timeouts, connection pooling).

use std::fmt;
use std::time::Duration;

use berth_plugin_api::{HttpClientHandle, OutboundRequest, RString, Tuple2};
use serde::de::DeserializeOwned;

use super::{lift, ServiceError, ServiceResult};

/// The host's HTTP client.
#[derive(Clone)]
pub struct HttpClient {
    handle: HttpClientHandle,
}

impl fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpClient").finish()
    }
}

/// A response to an outbound request.
#[derive(Debug, Clone)]
pub struct OutboundResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl OutboundResponse {
    pub fn json<T: DeserializeOwned>(&self) -> ServiceResult<T> {
        serde_json::from_slice(&self.body).map_err(|e| {
            ServiceError::local(
                berth_plugin_api::service_error_kind::INVALID,
                "http",
                format!("response is not the expected JSON: {e}"),
            )
        })
    }
}

impl HttpClient {
    pub(crate) fn new(handle: HttpClientHandle) -> Self {
        HttpClient { handle }
    }

    /// Sends a request. `timeout` None uses the host's default.
    pub async fn send(
        &self,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        body: impl Into<Vec<u8>>,
        timeout: Option<Duration>,
    ) -> ServiceResult<OutboundResponse> {
        let request = OutboundRequest {
            method: method.into(),
            url: url.into(),
            headers: headers.iter().map(|(k, v)| Tuple2(RString::from(*k), RString::from(*v))).collect(),
            body: body.into().into(),
            timeout_ms: timeout.map(|d| d.as_millis() as u64).unwrap_or(0),
        };
        let r = lift(self.handle.fetch(request).await)?;
        Ok(OutboundResponse {
            status: r.status,
            headers: r.headers.iter().map(|(k, v)| (k.to_owned(), v.to_owned())).collect(),
            body: r.body.into_vec(),
        })
    }

    pub async fn get(&self, url: &str) -> ServiceResult<OutboundResponse> {
        self.send("GET", url, &[], Vec::new(), None).await
    }
}
