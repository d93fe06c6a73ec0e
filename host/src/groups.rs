//! Loaded function groups and the functions they serve.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use berth_plugin_api::HostHandle;

use crate::config::{BerthConfig, GroupConfig};
use crate::host_api::GroupHost;
use crate::loader::{self, GroupInstance, LoadError, TriggerSpec};
use crate::metrics::{FunctionMetrics, Metrics};
use crate::routes::Route;
use crate::services::registry::{ResolveError, ServiceRegistry};

#[derive(Debug, thiserror::Error)]
pub enum GroupError {
    #[error(transparent)]
    Build(#[from] crate::builder::BuildError),
    #[error(transparent)]
    Load(#[from] LoadError),
    #[error("group `{group}` ({source_label}): `[groups.functions.{function}]` in berth.toml names a function the group does not have; it has: {available}")]
    UnknownFunctionOverride { group: String, source_label: String, function: String, available: String },
    #[error(
        "group `{group}` is configured twice (second time from `{source_label}`); remove one of the [[groups]] entries"
    )]
    Duplicate { group: String, source_label: String },
    #[error("group `{group}` ({source_label}) refused: {source}")]
    Routes { group: String, source_label: String, source: crate::routes::RouteConflict },
    #[error(transparent)]
    Services(#[from] ResolveError),
    #[error("group `{group}` refused: {message}")]
    Exports { group: String, message: String },
    #[error("groups {groups} depend on each other's services in a cycle; break the cycle (one of them must not need the other)")]
    Cycle { groups: String },
    #[error("building or loading `{source_label}` stopped unexpectedly: {message}")]
    Internal { source_label: String, message: String },
    #[error("group `{group}` ({source_label}) refused: {message}")]
    Migrations { group: String, source_label: String, message: String },
}

/// A group that is loaded and instantiated.
pub struct ServedGroup {
    pub name: Arc<str>,
    pub version: String,
    pub host: HostHandle,
    pub instance: GroupInstance,
    /// Calls executing in this instance (a swap drains them before the stop hook).
    pub calls: crate::swap::InflightCalls,
}

impl ServedGroup {
    /// Runs the group's stop hook.
    pub async fn shutdown(&self) {
        self.instance.group.shutdown().await;
    }
}

/// One function, ready to be called.
pub struct FunctionEntry {
    pub group: Arc<ServedGroup>,
    pub index: u32,
    pub name: Arc<str>,
    pub timeout: Duration,
    pub body_limit: u64,
    pub metrics: FunctionMetrics,
    /// Every trigger the function declares (HTTP routes are also in the routing table).
    pub triggers: Vec<TriggerSpec>,
}

/// A group ready to serve: its instance, its HTTP routes and all of its functions.
pub struct LoadedGroup {
    pub group: Arc<ServedGroup>,
    pub routes: Vec<Route>,
    pub functions: Vec<Arc<FunctionEntry>>,
}

/// Builds the group crate (if the group is configured by `path`) and opens its plugin.
pub async fn open_plugin(
    config: &BerthConfig,
    group_config: &GroupConfig,
) -> Result<Arc<loader::LoadedPlugin>, GroupError> {
    let label = group_config.label();
    let internal =
        |e: tokio::task::JoinError| GroupError::Internal { source_label: label.clone(), message: e.to_string() };
    let file = match (&group_config.path, &group_config.file) {
        (Some(dir), _) => {
            let (dir, profile, quiet) = (dir.clone(), config.build.profile.clone(), config.build.quiet);
            tokio::task::spawn_blocking(move || crate::builder::build_group_crate_with(&dir, &profile, quiet))
                .await
                .map_err(internal)??
        }
        (None, Some(file)) => file.clone(),
        (None, None) => unreachable!("validated when the config was parsed"),
    };
    let copy_dir = config.data_dir.join("plugins");
    let plugin = tokio::task::spawn_blocking(move || loader::load(&file, &copy_dir)).await.map_err(internal)??;
    Ok(Arc::new(plugin))
}

/// Builds (if needed), loads and instantiates one configured group, returning it with its routes.
pub async fn load_group(
    config: &BerthConfig,
    group_config: &GroupConfig,
    registry: &ServiceRegistry,
    metrics: &Metrics,
) -> Result<LoadedGroup, GroupError> {
    let plugin = open_plugin(config, group_config).await?;
    serve_plugin(config, group_config, plugin, registry, metrics).await
}

/// Instantiates an opened plugin with the limits and settings of its `[[groups]]` entry.
pub async fn serve_plugin(
    config: &BerthConfig,
    group_config: &GroupConfig,
    plugin: Arc<loader::LoadedPlugin>,
    registry: &ServiceRegistry,
    metrics: &Metrics,
) -> Result<LoadedGroup, GroupError> {
    let label = group_config.label();
    let manifest = plugin.manifest.clone();
    for name in group_config.functions.keys() {
        if !manifest.functions.iter().any(|f| &f.name == name) {
            return Err(GroupError::UnknownFunctionOverride {
                group: manifest.name.clone(),
                source_label: label,
                function: name.clone(),
                available: manifest.functions.iter().map(|f| f.name.as_str()).collect::<Vec<_>>().join(", "),
            });
        }
    }
    let services = registry.resolve(&manifest.name, &manifest.services, group_config)?;
    apply_migrations(&manifest, group_config, registry).await?;
    let host = GroupHost::with_services(&manifest.name, services);
    let instance = plugin.instantiate(host.clone()).await?;
    let group = Arc::new(ServedGroup {
        name: manifest.name.as_str().into(),
        version: manifest.version.clone(),
        host,
        instance,
        calls: Default::default(),
    });
    let mut routes = Vec::new();
    let mut functions = Vec::new();
    for (index, f) in manifest.functions.iter().enumerate() {
        let over = group_config.functions.get(&f.name).cloned().unwrap_or_default();
        let entry = Arc::new(FunctionEntry {
            group: group.clone(),
            index: index as u32,
            name: f.name.as_str().into(),
            timeout: over.timeout.or(f.timeout).unwrap_or(config.defaults.timeout),
            body_limit: over
                .body_limit
                .map(|b| b.as_u64())
                .or(f.body_limit)
                .unwrap_or(config.defaults.body_limit.as_u64()),
            metrics: metrics.function(&manifest.name, &f.name),
            triggers: f.triggers.clone(),
        });
        for t in &f.triggers {
            if let TriggerSpec::Http { method, route } = t {
                routes.push(Route { method: method.clone(), pattern: route.clone(), entry: entry.clone() });
            }
        }
        functions.push(entry);
    }
    tracing::info!(
        group = %group.name,
        version = %group.version,
        functions = manifest.functions.len(),
        file = %Path::new(&plugin.source).display(),
        sha256 = %&plugin.sha256[..16],
        "group loaded"
    );
    Ok(LoadedGroup { group, routes, functions })
}

/// Applies the group's SQL migrations when it declares exactly one `sql` service: the files of
/// `[[groups]] migrations`, else of the crate's `migrations/` folder when it has one (the pool
/// prefers its backend's subfolder, `migrations/postgres/`, when that exists).
async fn apply_migrations(
    manifest: &loader::GroupManifest,
    group_config: &GroupConfig,
    registry: &ServiceRegistry,
) -> Result<(), GroupError> {
    let sql: Vec<_> = manifest.services.iter().filter(|s| s.kind == "sql").collect();
    let [need] = sql[..] else { return Ok(()) };
    let dir = match (&group_config.migrations, &group_config.path) {
        (Some(dir), _) => dir.clone(),
        (None, Some(crate_dir)) if crate_dir.join("migrations").is_dir() => crate_dir.join("migrations"),
        _ => return Ok(()),
    };
    let service = group_config.bind.get(&need.name).unwrap_or(&need.name);
    let refused = |message: String| GroupError::Migrations {
        group: manifest.name.clone(),
        source_label: group_config.label(),
        message,
    };
    let pool = registry.sql_pool(service).map_err(refused)?;
    let applied = pool.migrate(&manifest.name, &dir).await.map_err(refused)?;
    if !applied.is_empty() {
        tracing::info!(group = %manifest.name, service = %service, migrations = ?applied, "migrations applied");
    }
    Ok(())
}

/// Orders opened plugins so that every group comes after the groups whose exports it needs.
/// Groups in a dependency cycle (and groups that need them) are refused. A dependency on an
/// export nobody provides is left for service resolution to report.
pub type Opened<'a> = (&'a GroupConfig, Arc<loader::LoadedPlugin>);

/// Orders opened plugins (see above); returns the order and the groups refused.
pub fn dependency_order(opened: Vec<Opened<'_>>) -> (Vec<Opened<'_>>, Vec<GroupError>) {
    let provider_of =
        |export: &str| opened.iter().position(|(_, p)| p.manifest.exports.iter().any(|e| e.name == export));
    let deps: Vec<Vec<usize>> = opened
        .iter()
        .enumerate()
        .map(|(i, (_, p))| {
            p.manifest
                .services
                .iter()
                .filter(|s| s.kind == "service")
                .filter_map(|s| provider_of(&s.name))
                .filter(|&j| j != i)
                .collect()
        })
        .collect();
    let mut placed = vec![false; opened.len()];
    let mut order = Vec::with_capacity(opened.len());
    loop {
        let next = (0..opened.len()).find(|&i| !placed[i] && deps[i].iter().all(|&d| placed[d]));
        match next {
            Some(i) => {
                placed[i] = true;
                order.push(i);
            }
            None => break,
        }
    }
    let mut errors = Vec::new();
    let stuck: Vec<String> =
        (0..opened.len()).filter(|&i| !placed[i]).map(|i| format!("`{}`", opened[i].1.manifest.name)).collect();
    if !stuck.is_empty() {
        errors.push(GroupError::Cycle { groups: stuck.join(", ") });
    }
    let mut slots: Vec<Option<_>> = opened.into_iter().map(Some).collect();
    let ordered = order.into_iter().filter_map(|i| slots[i].take()).collect();
    (ordered, errors)
}
