//! A group instance serving calls, and one function of it ready to be called.

use std::sync::Arc;
use std::time::Duration;

use berth_loader::{GroupManifest, LoadedPlugin, PluginInstance, TriggerSpec};
use berth_plugin_api::{CallContext, GroupBox, HostHandle, RString, RVec, ServiceResult};

use crate::drain::InflightCalls;
use crate::isolation::Isolated;
use crate::metrics::FunctionMetrics;

/// Where a group's code runs.
pub enum GroupCode {
    /// In the host's address space (`isolation = "none"`): the plugin's group object and the
    /// library it came from (dropped in that order).
    Library(PluginInstance),
    /// In a supervised worker process (`isolation = "process"`).
    Worker(Arc<dyn Isolated>),
}

/// One version of a group, instantiated and serving: what routes, dispatcher entries and
/// exports point at. There is one per loaded version; a hot swap makes a new one and retires the
/// old one once nothing refers to it.
pub struct GroupInstance {
    pub name: Arc<str>,
    pub version: String,
    pub host: HostHandle,
    pub code: GroupCode,
    /// Calls executing in this instance (a swap drains them before the stop hook).
    pub calls: InflightCalls,
}

impl GroupInstance {
    /// The library this instance runs in, when it runs in the host.
    pub fn library(&self) -> Option<&Arc<LoadedPlugin>> {
        match &self.code {
            GroupCode::Library(p) => Some(&p.plugin),
            GroupCode::Worker(_) => None,
        }
    }

    /// The isolated worker this instance runs in, when it does.
    pub fn worker(&self) -> Option<&Arc<dyn Isolated>> {
        match &self.code {
            GroupCode::Worker(w) => Some(w),
            GroupCode::Library(_) => None,
        }
    }

    /// The plugin's manifest.
    pub fn manifest(&self) -> &GroupManifest {
        match &self.code {
            GroupCode::Library(p) => &p.plugin.manifest,
            GroupCode::Worker(w) => w.manifest(),
        }
    }

    /// The sha256 of the plugin file this instance runs.
    pub fn sha256(&self) -> &str {
        match &self.code {
            GroupCode::Library(p) => &p.plugin.sha256,
            GroupCode::Worker(w) => w.sha256(),
        }
    }

    /// The plugin file as configured.
    pub fn source(&self) -> &std::path::Path {
        match &self.code {
            GroupCode::Library(p) => &p.plugin.source,
            GroupCode::Worker(w) => w.source(),
        }
    }

    /// The in-process group object, when the group runs in the host.
    pub fn group_box(&self) -> Option<&GroupBox> {
        match &self.code {
            GroupCode::Library(p) => Some(&p.group),
            GroupCode::Worker(_) => None,
        }
    }

    /// Calls `method` of the service this group exports as `service`.
    pub fn call_export(
        &self,
        service: RString,
        method: RString,
        payload: RVec<u8>,
        ctx: CallContext,
    ) -> ServiceResult<RVec<u8>> {
        match &self.code {
            GroupCode::Library(p) => p.group.call_export(service, method, payload, ctx),
            GroupCode::Worker(w) => w.call_export(service, method, payload, ctx),
        }
    }

    /// Runs the group's stop hook (for a worker: the hook, then the worker exits).
    pub async fn shutdown(&self) {
        match &self.code {
            GroupCode::Library(p) => p.group.shutdown().await,
            GroupCode::Worker(w) => w.shutdown().await,
        }
    }

    /// `none` or `process`.
    pub fn isolation(&self) -> &'static str {
        match &self.code {
            GroupCode::Library(_) => "none",
            GroupCode::Worker(_) => "process",
        }
    }
}

/// One function, ready to be called.
pub struct FunctionEntry {
    pub group: Arc<GroupInstance>,
    pub index: u32,
    pub name: Arc<str>,
    pub timeout: Duration,
    pub body_limit: u64,
    pub metrics: FunctionMetrics,
    /// Every trigger the function declares (HTTP routes are also in the routing table).
    pub triggers: Vec<TriggerSpec>,
}
