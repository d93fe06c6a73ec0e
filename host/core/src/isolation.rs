//! What the host needs of a group that runs in a supervised worker process (`isolation =
//! "process"`): the [`Isolated`] trait, implemented by `berth-isolation`. Routing, limits,
//! metrics, the services registry and the drain of a swap stay in the host; only the call
//! crosses to the worker.

use std::future::Future;
use std::pin::Pin;

use berth_loader::GroupManifest;
use berth_plugin_api::{CallContext, Input, RString, RVec, Response, ServiceResult};
use serde::Serialize;

use crate::CallError;

/// A boxed, sendable future.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// One call as it goes to a worker.
#[derive(Debug, Clone)]
pub struct WorkerCallHead {
    pub function: u32,
    pub function_name: std::sync::Arc<str>,
    pub request_id: String,
    pub deadline_unix_ms: u64,
    pub trigger: &'static str,
}

/// A group served by a worker process.
pub trait Isolated: Send + Sync {
    /// Calls one function. Dropping the future gives the call up: the worker is told to cancel
    /// it, and killed (and replaced) if it does not within its grace.
    fn call(&self, head: WorkerCallHead, input: Input) -> BoxFuture<'static, Result<Response, CallError>>;
    /// Calls `method` of the service the group exports as `service`.
    fn call_export(
        &self,
        service: RString,
        method: RString,
        payload: RVec<u8>,
        ctx: CallContext,
    ) -> ServiceResult<RVec<u8>>;
    /// Runs the group's stop hook in the worker and waits for the worker to exit.
    fn shutdown(&self) -> BoxFuture<'_, ()>;
    fn manifest(&self) -> &GroupManifest;
    fn sha256(&self) -> &str;
    fn source(&self) -> &std::path::Path;
    /// What `/readyz` and `berth groups` show.
    fn status(&self) -> WorkerStatus;
}

/// The state of a group's worker.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct WorkerStatus {
    /// The worker's process id (0 while none runs).
    pub pid: u32,
    /// `running`, `restarting`, `circuit_open` or `stopped`.
    pub state: String,
    /// How many times a worker of this group was restarted after it died or was killed.
    pub restarts: u64,
    /// How the last worker ended, when one did (`killed by signal 11 (SIGSEGV)`).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub last_exit: Option<String>,
}
