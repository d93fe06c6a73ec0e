//! Shared by the criterion benches: building and loading a plugin, and one HTTP call's context
//! and input as the host makes them once a request is routed.

#![allow(dead_code, reason = "each bench uses part of this")]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use berth_host::config::{BerthConfig, GroupConfig};
use berth_host::loader::LoadedPlugin;
use berth_host::services::registry::{GroupSettings, RegistrySettings, ServiceRegistry};
use berth_plugin_api::{CallContext, HostHandle, HttpRequestBuilder, Input, Input_NE, ROption, RStr, RString, RVec};

/// A release build of a plugin crate, loaded from its own scratch directory.
pub struct Bench {
    pub so: PathBuf,
    pub scratch: PathBuf,
    pub plugin: Arc<LoadedPlugin>,
    /// The index of the measured function.
    pub index: u32,
}

/// Builds `crate_dir` (relative to the workspace) in release, loads it and finds `function`.
pub fn load(crate_dir: &str, function: &str) -> Bench {
    berth_host::telemetry::init("warn");
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let so = berth_host::builder::build_group_crate(&workspace.join(crate_dir), "release")
        .unwrap_or_else(|e| panic!("building {crate_dir}: {e}"));
    let name = Path::new(crate_dir).file_name().and_then(|n| n.to_str()).unwrap_or("plugin");
    let scratch = std::env::temp_dir().join(format!("berth-bench-{name}-{}", std::process::id()));
    let plugin = Arc::new(
        berth_host::loader::load(&so, &scratch.join("plugins")).unwrap_or_else(|e| panic!("loading {crate_dir}: {e}")),
    );
    let index = plugin
        .manifest
        .functions
        .iter()
        .position(|f| f.name == function)
        .unwrap_or_else(|| panic!("{crate_dir} has no function `{function}`")) as u32;
    Bench { so, scratch, plugin, index }
}

/// `GET path` with one route parameter: the context and input of one call.
pub fn get(host: &HostHandle, path: &str, param: (&str, &str)) -> (CallContext, Input_NE) {
    let ctx = CallContext {
        request_id: RString::from("bench"),
        deadline_unix_ms: 0,
        host: host.clone(),
        trigger: RStr::from_str("http"),
        caller: ROption::RNone,
    };
    let mut request = HttpRequestBuilder::new("GET", path, "", param.0.len() + param.1.len(), 0, 1);
    request.param(param.0, param.1);
    (ctx, Input_NE::new(Input::Http(request.finish(RVec::new()))))
}

/// Awaits `op()` `iters` times in a row and returns how long that took.
pub async fn timed<F, Fut, T>(iters: u64, op: F) -> Duration
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = T>,
{
    let started = Instant::now();
    for _ in 0..iters {
        op().await;
    }
    started.elapsed()
}

/// Criterion settings of the service benches: 2 s warm-up, 5 s measured.
pub fn service_bench_config() -> criterion::Criterion {
    criterion::Criterion::default().warm_up_time(Duration::from_secs(2)).measurement_time(Duration::from_secs(5))
}

/// The service registry of `config`, as the host makes it (without queues).
pub fn registry(config: &BerthConfig) -> ServiceRegistry {
    let settings = RegistrySettings {
        data_dir: config.data_dir.clone(),
        services: config.services.clone(),
        http_client: config.http_client.clone(),
        outbound_site: Default::default(),
    };
    ServiceRegistry::new(settings, berth_host::core::Metrics::new(), None)
}

/// What a `[[groups]]` entry says about the group's services.
pub fn settings(gc: &GroupConfig) -> GroupSettings<'_> {
    GroupSettings {
        config: &gc.config,
        secrets: &gc.secrets,
        bind: &gc.bind,
        migrations: None,
        outbound: &gc.allowed_outbound_hosts,
    }
}
