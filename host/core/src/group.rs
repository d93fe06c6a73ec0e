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
    /// Linked into the host's own binary: a group the SDK's test harness serves (no library
    /// to open or close).
    Linked(LinkedGroup),
}

/// A group whose code is part of this binary: its group object (made by the SDK, with its init
/// hook run) and its manifest.
pub struct LinkedGroup {
    pub group: GroupBox,
    pub manifest: GroupManifest,
    /// Where it comes from, for `source()` (a crate name, a test).
    pub origin: std::path::PathBuf,
}

/// A function's limits when neither `berth.toml` nor the function sets them.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// 6 MiB: what AWS Lambda accepts synchronously.
pub const DEFAULT_BODY_LIMIT: u64 = 6 * 1024 * 1024;

/// A function's limits as `berth.toml` sets them (`None`: the function's own, else the default).
#[derive(Debug, Clone, Copy, Default)]
pub struct FunctionLimits {
    pub timeout: Option<Duration>,
    pub body_limit: Option<u64>,
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
            GroupCode::Worker(_) | GroupCode::Linked(_) => None,
        }
    }

    /// The isolated worker this instance runs in, when it does.
    pub fn worker(&self) -> Option<&Arc<dyn Isolated>> {
        match &self.code {
            GroupCode::Worker(w) => Some(w),
            GroupCode::Library(_) | GroupCode::Linked(_) => None,
        }
    }

    /// The plugin's manifest.
    pub fn manifest(&self) -> &GroupManifest {
        match &self.code {
            GroupCode::Library(p) => &p.plugin.manifest,
            GroupCode::Worker(w) => w.manifest(),
            GroupCode::Linked(l) => &l.manifest,
        }
    }

    /// The sha256 of the plugin file this instance runs.
    pub fn sha256(&self) -> &str {
        match &self.code {
            GroupCode::Library(p) => &p.plugin.sha256,
            GroupCode::Worker(w) => w.sha256(),
            GroupCode::Linked(_) => "linked",
        }
    }

    /// The plugin file as configured.
    pub fn source(&self) -> &std::path::Path {
        match &self.code {
            GroupCode::Library(p) => &p.plugin.source,
            GroupCode::Worker(w) => w.source(),
            GroupCode::Linked(l) => &l.origin,
        }
    }

    /// The in-process group object, when the group runs in the host.
    pub fn group_box(&self) -> Option<&GroupBox> {
        match &self.code {
            GroupCode::Library(p) => Some(&p.group),
            GroupCode::Linked(l) => Some(&l.group),
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
            GroupCode::Linked(l) => l.group.call_export(service, method, payload, ctx),
        }
    }

    /// Runs the group's stop hook (for a worker: the hook, then the worker exits).
    pub async fn shutdown(&self) {
        match &self.code {
            GroupCode::Library(p) => p.group.shutdown().await,
            GroupCode::Worker(w) => w.shutdown().await,
            GroupCode::Linked(l) => l.group.shutdown().await,
        }
    }

    /// `none` or `process`.
    pub fn isolation(&self) -> &'static str {
        match &self.code {
            GroupCode::Library(_) | GroupCode::Linked(_) => "none",
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

impl FunctionEntry {
    /// The entries of every function of `group`, in manifest order (an entry's index is its
    /// function's), each with its limits: `limits(name)` (what `berth.toml` sets), else the
    /// function's own, else [`DEFAULT_TIMEOUT`] / [`DEFAULT_BODY_LIMIT`] or the host's
    /// `defaults` when given.
    pub fn all_of(
        group: &Arc<GroupInstance>,
        defaults: FunctionLimits,
        limits: impl Fn(&str) -> FunctionLimits,
        metrics: &crate::Metrics,
    ) -> Vec<Arc<FunctionEntry>> {
        let manifest = group.manifest();
        manifest
            .functions
            .iter()
            .enumerate()
            .map(|(index, f)| {
                let over = limits(&f.name);
                Arc::new(FunctionEntry {
                    group: group.clone(),
                    index: index as u32,
                    name: f.name.as_str().into(),
                    timeout: over.timeout.or(f.timeout).or(defaults.timeout).unwrap_or(DEFAULT_TIMEOUT),
                    body_limit: over.body_limit.or(f.body_limit).or(defaults.body_limit).unwrap_or(DEFAULT_BODY_LIMIT),
                    metrics: metrics.function(&manifest.name, &f.name),
                    triggers: f.triggers.clone(),
                })
            })
            .collect()
    }
}
