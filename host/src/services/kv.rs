//! Key-value backends. PLACEHOLDER until the embedded and Redis stores land (being written now).

use std::path::Path;
use std::sync::Arc;

use berth_plugin_api::KvHandle;

use super::registry::SetupError;
use crate::config::{EmbeddedKvConfig, RedisKvConfig};
use crate::metrics::ServiceMetrics;

/// A key-value backend shared by every group that uses it; namespacing is done by [`handle`].
pub trait KvBackend: Send + Sync {}

pub fn open_embedded(
    name: &str,
    _cfg: &EmbeddedKvConfig,
    _data_dir: &Path,
    _m: ServiceMetrics,
) -> Result<Arc<dyn KvBackend>, SetupError> {
    Err(SetupError(format!("`{name}`: the embedded kv backend is not available in this build")))
}

pub fn open_redis(name: &str, _cfg: &RedisKvConfig, _m: ServiceMetrics) -> Result<Arc<dyn KvBackend>, SetupError> {
    Err(SetupError(format!("`{name}`: the redis-kv backend is not available in this build")))
}

pub fn handle(_backend: Arc<dyn KvBackend>, _namespace: Option<String>, _name: &str) -> KvHandle {
    unreachable!("no kv backend can be opened in this build")
}
