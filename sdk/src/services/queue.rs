//! Publishing to a queue binding.

use std::fmt;

use berth_plugin_api::{service_error_kind as kind, QueueHandle, RString, Tuple2};
use serde::Serialize;

use super::{lift, ServiceError, ServiceResult};

/// A queue to publish to (`ctx.queue("orders")`).
#[derive(Clone)]
pub struct Queue {
    name: String,
    handle: QueueHandle,
}

impl fmt::Debug for Queue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Queue").field("name", &self.name).finish()
    }
}

impl Queue {
    pub(crate) fn new(name: &str, handle: QueueHandle) -> Self {
        Queue { name: name.to_owned(), handle }
    }

    /// Publishes raw bytes with headers; returns the backend's message id.
    pub async fn publish(&self, payload: impl Into<Vec<u8>>, headers: &[(&str, &str)]) -> ServiceResult<String> {
        let headers = headers.iter().map(|(k, v)| Tuple2(RString::from(*k), RString::from(*v))).collect();
        lift(self.handle.publish(payload.into().into(), headers).await).map(|s| s.into_string())
    }

    /// Publishes a JSON value.
    pub async fn publish_json<T: Serialize>(&self, value: &T) -> ServiceResult<String> {
        let raw = serde_json::to_vec(value)
            .map_err(|e| ServiceError::local(kind::INVALID, &self.name, format!("encoding the message: {e}")))?;
        self.publish(raw, &[("content-type", "application/json")]).await
    }
}
