//! Direct Redis commands.

use std::fmt;

use berth_plugin_api::{service_error_kind as kind, RVec, RedisHandle};

use super::{lift, ServiceError, ServiceResult};

/// Direct Redis access. Keys are **not** namespaced: this is the raw server.
#[derive(Clone)]
pub struct Redis {
    name: String,
    handle: RedisHandle,
}

impl fmt::Debug for Redis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Redis").field("name", &self.name).finish()
    }
}

impl Redis {
    pub(crate) fn new(name: &str, handle: RedisHandle) -> Self {
        Redis { name: name.to_owned(), handle }
    }

    /// Runs one command: `redis.cmd(&["HSET", "user:1", "name", "ann"])`. The reply as JSON.
    pub async fn cmd<A: AsRef<[u8]>>(&self, args: &[A]) -> ServiceResult<serde_json::Value> {
        let args: RVec<RVec<u8>> = args.iter().map(|a| a.as_ref().into()).collect();
        let json = lift(self.handle.command(args).await)?;
        serde_json::from_str(&json)
            .map_err(|e| ServiceError::local(kind::OTHER, &self.name, format!("undecodable reply: {e}")))
    }
}
