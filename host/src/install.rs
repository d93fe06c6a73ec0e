//! Installing a group: the one path every way a group comes to serve goes through (`berth up`,
//! a hot swap, `berth invoke`, tests): open its plugin ([`open_plugin`]), instantiate it with its
//! services and limits ([`Runtime::instantiate`](crate::runtime::Runtime::instantiate)), and
//! switch it in ([`Runtime::activate`](crate::runtime::Runtime::activate)); removing one is
//! [`Runtime::remove`](crate::runtime::Runtime::remove).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use berth_core::isolation::Isolated as _;
use berth_core::loader::{self, GroupManifest, LoadError, LoadedPlugin};
use berth_core::{FunctionEntry, FunctionLimits, GroupInstance};
use berth_isolation::{IsolationError, WorkerGroup, WorkerSettings};
use berth_services::ResolveError;
use berth_triggers::http::routes::{Route, RouteConflict};

use crate::config::{BerthConfig, GroupConfig, Isolation};

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
    Routes { group: String, source_label: String, source: Box<RouteConflict> },
    #[error(transparent)]
    Services(ResolveError),
    #[error("group `{group}` refused: {message}")]
    Exports { group: String, message: String },
    #[error("groups {groups} depend on each other's services in a cycle; break the cycle (one of them must not need the other)")]
    Cycle { groups: String },
    #[error("no group named `{group}` is configured; berth.toml has: {available}")]
    NotConfigured { group: String, available: String },
    #[error("building or loading `{source_label}` stopped unexpectedly: {message}")]
    Internal { source_label: String, message: String },
    #[error("group `{group}` ({source_label}) refused: {message}")]
    Migrations { group: String, source_label: String, message: String },
    #[error(transparent)]
    Fetch(#[from] crate::fetch::FetchError),
    #[error(transparent)]
    Isolation(#[from] IsolationError),
    #[error(
        "`{source_label}` is group `{found}`, but its [[groups]] entry names it `{expected}`; fix `name` or the file"
    )]
    WrongName { expected: String, found: String, source_label: String },
    #[error(
        "{}: plugin `{}` has sha256 {actual}, but {} pins {expected}; refused: {}",
        who(.group.as_deref(), .source_label, .file), .file.display(), .pinned_by.what(), .pinned_by.fix(.actual)
    )]
    PinMismatch {
        group: Option<String>,
        source_label: String,
        file: PathBuf,
        expected: String,
        actual: String,
        pinned_by: PinnedBy,
    },
}

/// The group a pin refusal is about: its name, and its source when that is not the file.
fn who(group: Option<&str>, source_label: &str, file: &Path) -> String {
    let shown = Path::new(source_label) != file;
    match group {
        Some(g) if shown => format!("group `{g}` ({source_label})"),
        Some(g) => format!("group `{g}`"),
        None => format!("group `{source_label}`"),
    }
}

/// Who pinned the sha256 a plugin file must have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PinnedBy {
    /// `sha256` of the group's `[[groups]]` entry in berth.toml.
    Config,
    /// `sha256` of the group's entry in the group list (`groups_file`).
    GroupList,
    /// The `sha256` a deploy request carried.
    Deploy,
    /// The version a rollback returns to: its sha256 when it served.
    Previous,
}

impl PinnedBy {
    fn what(self) -> &'static str {
        match self {
            PinnedBy::Config => "its [[groups]] entry",
            PinnedBy::GroupList => "the group list",
            PinnedBy::Deploy => "the deploy",
            PinnedBy::Previous => "the version to roll back to",
        }
    }

    fn fix(self, actual: &str) -> String {
        match self {
            PinnedBy::Config | PinnedBy::GroupList => format!(
                "if this file is the one to serve, update the pin to `sha256 = \"{actual}\"`; otherwise put the \
                 pinned file back (a version already serving stays)"
            ),
            PinnedBy::Deploy => "the serving version stays; send the sha256 of the file deployed (`sha256sum \
                                 plugin.so`), or deploy the file that was pinned"
                .to_owned(),
            PinnedBy::Previous => "the serving version stays; the previous version's private copy changed on disk: \
                                   deploy that version again from its file"
                .to_owned(),
        }
    }
}

/// The sha256 a plugin file must have before it is opened, and who said so.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pin {
    /// Lower-case hex.
    pub sha256: String,
    pub by: PinnedBy,
}

impl Pin {
    /// The pin of a `[[groups]]` or group list entry, if it has one.
    pub fn of_config(group_config: &GroupConfig) -> Option<Pin> {
        let by = if group_config.listed { PinnedBy::GroupList } else { PinnedBy::Config };
        group_config.sha256.clone().map(|sha256| Pin { sha256, by })
    }
}

impl GroupError {
    /// Names the group in a pin refusal that could not (the file was refused before it was
    /// opened, and its entry has no `name`).
    pub fn for_group(self, name: &str) -> Self {
        match self {
            GroupError::PinMismatch { group: None, source_label, file, expected, actual, pinned_by } => {
                GroupError::PinMismatch {
                    group: Some(name.to_owned()),
                    source_label,
                    file,
                    expected,
                    actual,
                    pinned_by,
                }
            }
            other => other,
        }
    }

    /// The group a problem is about, when the entry names it (what `/readyz` keys it by).
    pub fn group(&self) -> Option<&str> {
        match self {
            GroupError::Routes { group, .. }
            | GroupError::Exports { group, .. }
            | GroupError::Migrations { group, .. }
            | GroupError::UnknownFunctionOverride { group, .. } => Some(group),
            GroupError::WrongName { expected, .. } => Some(expected),
            GroupError::PinMismatch { group, .. } => group.as_deref(),
            GroupError::Fetch(
                crate::fetch::FetchError::Download { group, .. }
                | crate::fetch::FetchError::Mismatch { group, .. }
                | crate::fetch::FetchError::TooLarge { group, .. }
                | crate::fetch::FetchError::Store { group, .. }
                | crate::fetch::FetchError::Corrupt { group, .. }
                | crate::fetch::FetchError::NoClient { group, .. },
            ) => Some(group),
            _ => None,
        }
    }
}

/// A group instantiated but not yet serving: its instance, its HTTP routes and its functions.
pub struct Instantiated {
    pub group: Arc<GroupInstance>,
    pub routes: Vec<Route>,
    pub functions: Vec<Arc<FunctionEntry>>,
    /// The `[[groups]]` label, for messages.
    pub source_label: String,
}

/// An opened plugin: a library in this process, or a worker process that opened it
/// (`isolation = "process"`).
#[derive(Clone)]
pub enum Plugin {
    Library(Arc<LoadedPlugin>),
    Worker(Arc<WorkerGroup>),
}

impl Plugin {
    pub fn manifest(&self) -> &GroupManifest {
        match self {
            Plugin::Library(p) => &p.manifest,
            Plugin::Worker(w) => w.manifest(),
        }
    }

    pub fn sha256(&self) -> &str {
        match self {
            Plugin::Library(p) => &p.sha256,
            Plugin::Worker(w) => w.sha256(),
        }
    }

    pub fn source(&self) -> &Path {
        match self {
            Plugin::Library(p) => &p.source,
            Plugin::Worker(w) => w.source(),
        }
    }
}

/// How the worker of a `process` group runs.
pub fn worker_settings(config: &BerthConfig, group_config: &GroupConfig) -> WorkerSettings {
    let w = &group_config.worker;
    WorkerSettings {
        binary: config
            .workers
            .binary
            .clone()
            .or_else(|| std::env::current_exe().ok())
            .unwrap_or_else(|| PathBuf::from("berth")),
        memory: w.memory.map(|m| m.as_u64()),
        open_files: Some(w.open_files),
        cpu_time: w.cpu_time,
        kill_grace: w.kill_grace,
        max_crashes: w.max_crashes.max(1),
        crash_window: w.crash_window,
        circuit_open: w.circuit_open,
        threads: w.threads.max(1),
    }
}

/// Opens plugin `file` as `group_config` says: in this process, or in a new worker; checked
/// against the entry's `sha256` when it has one.
pub async fn open_file(
    config: &BerthConfig,
    group_config: &GroupConfig,
    file: PathBuf,
    metrics: &berth_core::Metrics,
) -> Result<Plugin, GroupError> {
    let pin = Pin::of_config(group_config);
    open_file_pinned(config, group_config, file, pin.as_ref(), metrics).await
}

/// [`open_file`] with the pin given (a deploy's, a rollback's) instead of the entry's. A file
/// that does not have the pinned sha256 is refused before it is opened.
pub async fn open_file_pinned(
    config: &BerthConfig,
    group_config: &GroupConfig,
    file: PathBuf,
    pin: Option<&Pin>,
    metrics: &berth_core::Metrics,
) -> Result<Plugin, GroupError> {
    let internal =
        |e: tokio::task::JoinError| GroupError::Internal { source_label: group_config.label(), message: e.to_string() };
    let copy_dir = plugin_copies(config);
    let plugin = match group_config.isolation {
        Isolation::Process => {
            // The worker opens the file: check it here, before the worker exists.
            if let Some(pin) = pin {
                let (d, g, f, p) = (config.data_dir.clone(), group_config.clone(), file.clone(), pin.clone());
                tokio::task::spawn_blocking(move || verify_file(&d, &g, &p, &f)).await.map_err(internal)??;
            }
            let settings = worker_settings(config, group_config);
            Plugin::Worker(WorkerGroup::open(file, copy_dir, settings, metrics).await?)
        }
        Isolation::None => {
            let (d, g, p) = (config.data_dir.clone(), group_config.clone(), pin.cloned());
            Plugin::Library(Arc::new(
                tokio::task::spawn_blocking(move || load_library(&d, &g, p.as_ref(), &file, &copy_dir))
                    .await
                    .map_err(internal)??,
            ))
        }
    };
    if let Err(e) = check_loaded(config, group_config, pin, &plugin) {
        stop_unused(plugin).await;
        return Err(e);
    }
    Ok(plugin)
}

/// Closes a plugin that will not serve (off the async workers; a worker is told to exit).
pub async fn stop_unused(plugin: Plugin) {
    match plugin {
        Plugin::Library(p) => {
            let _ = tokio::task::spawn_blocking(move || drop(p)).await;
        }
        Plugin::Worker(w) => w.shutdown().await,
    }
}

/// Builds the group crate (if the group is configured by `path`) and opens its plugin.
pub async fn open_plugin(
    config: &BerthConfig,
    group_config: &GroupConfig,
    metrics: &berth_core::Metrics,
) -> Result<Plugin, GroupError> {
    let label = group_config.label();
    let internal =
        |e: tokio::task::JoinError| GroupError::Internal { source_label: label.clone(), message: e.to_string() };
    let file = match (&group_config.path, &group_config.file) {
        (Some(dir), _) => {
            let (dir, profile, quiet) = (dir.clone(), config.build.profile, config.build.quiet);
            tokio::task::spawn_blocking(move || crate::builder::build_group_crate_with(&dir, profile.as_str(), quiet))
                .await
                .map_err(internal)??
        }
        (None, Some(file)) => file.clone(),
        (None, None) => fetch_listed(config, group_config).await?,
    };
    open_file(config, group_config, file, metrics).await
}

/// Opens a plugin file in this process, refusing it before it is opened unless it has the
/// pinned sha256. The loader hashes the file once, as it reads the bytes it copies and opens.
pub fn load_library(
    data_dir: &Path,
    group_config: &GroupConfig,
    pin: Option<&Pin>,
    file: &Path,
    copy_dir: &Path,
) -> Result<LoadedPlugin, GroupError> {
    match loader::load_pinned(file, copy_dir, pin.map(|p| p.sha256.as_str())) {
        Ok(plugin) => Ok(plugin),
        Err(LoadError::Sha256Mismatch { actual, .. }) => {
            let pin = pin.expect("the loader checks a hash only when given one");
            Err(check_pin(data_dir, group_config, pin, file, &actual)
                .expect_err("the loader found another hash than the pin's"))
        }
        Err(e) => Err(e.into()),
    }
}

/// Checks a plugin file against `pin` before anything opens it (a plugin's code runs as soon
/// as it is opened). An unreadable file passes: opening it says why it cannot be read.
pub fn verify_file(data_dir: &Path, group_config: &GroupConfig, pin: &Pin, file: &Path) -> Result<(), GroupError> {
    match sha256_of_file(file) {
        Ok(actual) => check_pin(data_dir, group_config, pin, file, &actual),
        Err(_) => Ok(()),
    }
}

pub use berth_core::loader::sha256_of_file;

/// Compares `actual`, the sha256 of `file`, with `pin`. A fetched copy in the cache that differs
/// is removed (the next try downloads it again); any other file is left as it is.
pub fn check_pin(
    data_dir: &Path,
    group_config: &GroupConfig,
    pin: &Pin,
    file: &Path,
    actual: &str,
) -> Result<(), GroupError> {
    if actual == pin.sha256 {
        return Ok(());
    }
    let fetched = group_config.url.is_some() && file.starts_with(crate::fetch::cache_dir(data_dir));
    if fetched {
        let _ = std::fs::remove_file(file);
        return Err(crate::fetch::FetchError::Corrupt {
            group: group_config.name.clone().unwrap_or_else(|| group_config.label()),
            path: file.to_owned(),
            expected: pin.sha256.clone(),
            actual: actual.to_owned(),
        }
        .into());
    }
    Err(GroupError::PinMismatch {
        group: group_config.name.clone(),
        source_label: group_config.label(),
        file: file.to_owned(),
        expected: pin.sha256.clone(),
        actual: actual.to_owned(),
        pinned_by: pin.by,
    })
}

/// Checks a loaded plugin against its `[[groups]]` entry: the group `name` says, and `pin`
/// once more with the hash the loader computed of the bytes it really loaded (for a worker, the
/// file may have changed since [`verify_file`] read it).
pub fn check_loaded(
    config: &BerthConfig,
    group_config: &GroupConfig,
    pin: Option<&Pin>,
    plugin: &Plugin,
) -> Result<(), GroupError> {
    if let Some(expected) = group_config.name.as_deref() {
        if plugin.manifest().name != expected {
            return Err(GroupError::WrongName {
                expected: expected.to_owned(),
                found: plugin.manifest().name.clone(),
                source_label: group_config.label(),
            });
        }
    }
    match pin {
        Some(pin) => check_pin(&config.data_dir, group_config, pin, plugin.source(), plugin.sha256())
            .map_err(|e| e.for_group(&plugin.manifest().name)),
        None => Ok(()),
    }
}

/// The plugin file of a `url` group: fetched (or found in the cache) and verified.
pub async fn fetch_listed(config: &BerthConfig, group_config: &GroupConfig) -> Result<PathBuf, GroupError> {
    let (Some(url), Some(sha256), Some(group)) = (&group_config.url, &group_config.sha256, &group_config.name) else {
        unreachable!("a group without path or file has url, sha256 and name (checked when the config was parsed)")
    };
    let pin = crate::fetch::Pinned { group, url, sha256 };
    Ok(crate::fetch::fetch(&config.data_dir, pin, config.admin.max_upload.as_u64()).await?)
}

/// Where private copies of plugin files go.
pub fn plugin_copies(config: &BerthConfig) -> PathBuf {
    config.data_dir.join("plugins")
}

/// The folder of SQL migrations of a group: `[[groups]] migrations`, else the crate's
/// `migrations/` folder when it has one.
pub fn migrations_dir(group_config: &GroupConfig) -> Option<PathBuf> {
    match (&group_config.migrations, &group_config.path) {
        (Some(dir), _) => Some(dir.clone()),
        (None, Some(crate_dir)) if crate_dir.join("migrations").is_dir() => Some(crate_dir.join("migrations")),
        _ => None,
    }
}

/// The functions of `plugin` with their limits, and its HTTP routes.
pub(crate) fn function_entries(
    config: &BerthConfig,
    group_config: &GroupConfig,
    group: &Arc<GroupInstance>,
    metrics: &berth_core::Metrics,
) -> (Vec<Arc<FunctionEntry>>, Vec<Route>) {
    let defaults = FunctionLimits {
        timeout: Some(config.defaults.timeout),
        body_limit: Some(config.defaults.body_limit.as_u64()),
    };
    let limits = |name: &str| {
        let over = group_config.functions.get(name);
        FunctionLimits {
            timeout: over.and_then(|o| o.timeout),
            body_limit: over.and_then(|o| o.body_limit).map(|b| b.as_u64()),
        }
    };
    let functions = FunctionEntry::all_of(group, defaults, limits, metrics);
    let routes = Route::of(&functions);
    (functions, routes)
}

/// Refuses `[groups.functions.<name>]` overrides for functions the group does not have.
pub(crate) fn check_overrides(group_config: &GroupConfig, plugin: &Plugin) -> Result<(), GroupError> {
    let manifest = plugin.manifest();
    for name in group_config.functions.keys() {
        if !manifest.functions.iter().any(|f| &f.name == name) {
            return Err(GroupError::UnknownFunctionOverride {
                group: manifest.name.clone(),
                source_label: group_config.label(),
                function: name.clone(),
                available: manifest.functions.iter().map(|f| f.name.as_str()).collect::<Vec<_>>().join(", "),
            });
        }
    }
    Ok(())
}

/// An opened plugin with the `[[groups]]` entry it was configured by.
pub type Opened<'a> = (&'a GroupConfig, Plugin);

/// Orders opened plugins so that every group comes after the groups whose exports it needs.
/// Groups in a dependency cycle (and groups that need them) are refused. A dependency on an
/// export nobody provides is left for service resolution to report.
pub fn dependency_order(opened: Vec<Opened<'_>>) -> (Vec<Opened<'_>>, Vec<GroupError>) {
    let deps = dependencies(&opened);
    let mut placed = vec![false; opened.len()];
    let mut order = Vec::with_capacity(opened.len());
    while let Some(i) = (0..opened.len()).find(|&i| !placed[i] && deps[i].iter().all(|&d| placed[d])) {
        placed[i] = true;
        order.push(i);
    }
    let mut errors = Vec::new();
    let stuck: Vec<String> =
        (0..opened.len()).filter(|&i| !placed[i]).map(|i| format!("`{}`", opened[i].1.manifest().name)).collect();
    if !stuck.is_empty() {
        errors.push(GroupError::Cycle { groups: stuck.join(", ") });
    }
    let mut slots: Vec<Option<_>> = opened.into_iter().map(Some).collect();
    let ordered = order.into_iter().filter_map(|i| slots[i].take()).collect();
    (ordered, errors)
}

/// For each opened plugin, the indices of the plugins that export a service it needs.
fn dependencies(opened: &[Opened<'_>]) -> Vec<Vec<usize>> {
    let provider_of =
        |export: &str| opened.iter().position(|(_, p)| p.manifest().exports.iter().any(|e| e.name == export));
    opened
        .iter()
        .enumerate()
        .map(|(i, (_, p))| {
            p.manifest()
                .services
                .iter()
                .filter(|s| s.kind == "service")
                .filter_map(|s| provider_of(&s.name))
                .filter(|&j| j != i)
                .collect()
        })
        .collect()
}

/// Keeps group `name` and the groups whose exports it needs (transitively): what `berth invoke`
/// installs to call one function.
pub fn with_dependencies<'a>(opened: Vec<Opened<'a>>, name: &str) -> Vec<Opened<'a>> {
    let deps = dependencies(&opened);
    let mut keep = vec![false; opened.len()];
    let mut todo: Vec<usize> = opened.iter().position(|(_, p)| p.manifest().name == name).into_iter().collect();
    while let Some(i) = todo.pop() {
        if !std::mem::replace(&mut keep[i], true) {
            todo.extend(&deps[i]);
        }
    }
    opened.into_iter().zip(keep).filter_map(|(o, k)| k.then_some(o)).collect()
}
