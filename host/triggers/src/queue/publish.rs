//! The handle a group gets for a queue it declared (`queue("orders")`): publishing through the
//! binding's backend, with a timeout and the service metrics of `queue:<name>`.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use berth_core::host_future::FutureExt as _;
use berth_plugin_api::abi_stable::{sabi_trait::TD_Opaque, std_types::RArc};
use berth_plugin_api::{
    service_error_kind as kind, Pair, QueueHandle, QueuePublisher, QueuePublisher_TO, RString, RVec, ServiceError,
    ServiceResult, Tuple2,
};

use super::config::{QueueConfig, QueueKind};
#[cfg(feature = "nats")]
use super::nats;
#[cfg(feature = "rabbitmq")]
use super::rabbitmq;
#[cfg(feature = "redis")]
use super::redis;
use super::{compiled_out, not_configured};
use berth_core::metrics::{Metrics, ServiceMetrics};

pub(crate) type PublishFuture<'a> = Pin<Box<dyn Future<Output = Result<String, ServiceError>> + Send + 'a>>;

/// A backend's publisher: payload and headers in, the backend's message id out.
pub(crate) trait Publish: Send + Sync {
    fn publish(&self, payload: Vec<u8>, headers: Vec<(String, String)>) -> PublishFuture<'_>;
}

/// The handle groups get: a backend publisher with metrics and a timeout.
#[derive(Clone)]
struct PublishHandle {
    name: Arc<str>,
    inner: Arc<dyn Publish>,
    timeout: Duration,
    metrics: ServiceMetrics,
}

impl QueuePublisher for PublishHandle {
    fn publish(&self, payload: RVec<u8>, headers: RVec<Pair>) -> ServiceResult<RString> {
        let me = self.clone();
        async move {
            let headers = headers.into_iter().map(|Tuple2(k, v)| (k.into_string(), v.into_string())).collect();
            let publish = async {
                match tokio::time::timeout(me.timeout, me.inner.publish(payload.into_vec(), headers)).await {
                    Ok(r) => r.map(RString::from),
                    Err(_) => Err(ServiceError::new(
                        kind::TIMEOUT,
                        &me.name,
                        format!("the broker did not confirm the message within {} ms", me.timeout.as_millis()),
                    )),
                }
            };
            me.metrics.observe("publish", publish).await
        }
        .into_ffi()
    }
}

/// The publish handles of every `[queues.*]`, opened on first use by a group's declaration.
pub struct Publishers {
    config: BTreeMap<String, QueueConfig>,
    metrics: Metrics,
    opened: Mutex<BTreeMap<String, QueueHandle>>,
}

impl Publishers {
    pub fn new(queues: &BTreeMap<String, QueueConfig>, metrics: Metrics) -> Self {
        Publishers { config: queues.clone(), metrics, opened: Mutex::new(BTreeMap::new()) }
    }

    /// The handle for `[queues.<name>]`. Checks the configuration; connects on first publish.
    pub fn handle(&self, name: &str) -> Result<QueueHandle, String> {
        let mut opened = self.opened.lock().expect("publishers lock");
        if let Some(h) = opened.get(name) {
            return Ok(h.clone());
        }
        let cfg = self.config.get(name).ok_or_else(|| not_configured(name))?;
        let stream = cfg.stream.clone().unwrap_or_else(|| name.to_owned());
        let inner: Arc<dyn Publish> = match cfg.kind {
            #[cfg(feature = "redis")]
            QueueKind::Redis => Arc::new(redis::RedisPublisher::new(name, &stream, cfg)?),
            #[cfg(feature = "nats")]
            QueueKind::Nats => Arc::new(nats::NatsPublisher::new(name, &stream, cfg)?),
            #[cfg(feature = "rabbitmq")]
            QueueKind::Rabbitmq => Arc::new(rabbitmq::AmqpPublisher::new(name, &stream, cfg)?),
            QueueKind::Sink => Arc::new(super::sink::SinkPublisher::new(name, cfg)?),
            #[allow(unreachable_patterns, reason = "reachable when a broker's feature is off")]
            kind => return Err(compiled_out(name, kind)),
        };
        let handle = PublishHandle {
            name: name.into(),
            inner,
            timeout: cfg.timeout,
            metrics: self.metrics.service(&format!("queue:{name}")),
        };
        let handle: QueueHandle = QueuePublisher_TO::from_ptr(RArc::new(handle), TD_Opaque);
        opened.insert(name.to_owned(), handle.clone());
        Ok(handle)
    }
}

impl berth_services::registry::QueueSource for Publishers {
    fn handle(&self, queue: &str) -> Result<QueueHandle, String> {
        Publishers::handle(self, queue)
    }
}

/// A [`ServiceError`] for a broker that failed.
#[cfg(any(feature = "nats", feature = "rabbitmq"))]
pub(crate) fn unavailable(queue: &str, what: &str, e: impl std::fmt::Display) -> ServiceError {
    ServiceError::new(kind::UNAVAILABLE, queue, format!("{what}: {e}"))
}
