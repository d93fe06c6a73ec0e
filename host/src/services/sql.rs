//! SQL backends. PLACEHOLDER until the sqlx backends land (being written now): opening fails with
//! a clear message, so a group that declares SQL is refused at load.

use std::path::Path;

use berth_plugin_api::SqlHandle;

use super::registry::SetupError;
use crate::config::ServiceConfig;
use crate::metrics::ServiceMetrics;

/// A pool of connections to one configured database.
#[derive(Clone)]
pub struct SqlPool {
    handle: SqlHandle,
}

impl SqlPool {
    pub fn open(
        name: &str,
        cfg: &ServiceConfig,
        _data_dir: &Path,
        _metrics: ServiceMetrics,
    ) -> Result<SqlPool, SetupError> {
        Err(SetupError(format!("`{name}`: {} backend is not available in this build", cfg.kind())))
    }
    pub fn handle(&self) -> SqlHandle {
        self.handle.clone()
    }
}
