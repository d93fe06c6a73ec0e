//! Direct Redis access. PLACEHOLDER until the Redis backend lands (being written now).

use berth_plugin_api::RedisHandle;

use super::registry::SetupError;
use crate::config::RedisConfig;
use crate::metrics::ServiceMetrics;

pub fn open(name: &str, _cfg: &RedisConfig, _m: ServiceMetrics) -> Result<RedisHandle, SetupError> {
    Err(SetupError(format!("`{name}`: the redis backend is not available in this build")))
}
