//! A group instance serving calls, and one function of it ready to be called.

use std::sync::Arc;
use std::time::Duration;

use berth_loader::{LoadedPlugin, PluginInstance, TriggerSpec};
use berth_plugin_api::{GroupBox, HostHandle};

use crate::drain::InflightCalls;
use crate::metrics::FunctionMetrics;

/// One version of a group, instantiated and serving: what routes, dispatcher entries and
/// exports point at. There is one per loaded version; a hot swap makes a new one and retires the
/// old one once nothing refers to it.
pub struct GroupInstance {
    pub name: Arc<str>,
    pub version: String,
    pub host: HostHandle,
    /// The plugin's group object and the library it came from (dropped in that order).
    pub plugin: PluginInstance,
    /// Calls executing in this instance (a swap drains them before the stop hook).
    pub calls: InflightCalls,
}

impl GroupInstance {
    /// The plugin's group object: where calls go.
    pub fn group_box(&self) -> &GroupBox {
        &self.plugin.group
    }

    /// The library this instance runs in.
    pub fn library(&self) -> &Arc<LoadedPlugin> {
        &self.plugin.plugin
    }

    /// Runs the group's stop hook.
    pub async fn shutdown(&self) {
        self.plugin.group.shutdown().await;
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
