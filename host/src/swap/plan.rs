//! One swap, step by step: [`SwapPlan`] names the group and where the new version comes from;
//! [`swap`] runs it. Every step before the routing switch may refuse the new version, and a refusal
//! leaves the serving version untouched.
//!
//! 1. resolve the file: store an upload under `data_dir/uploads/`, rebuild a `path` group, or
//!    take the previous version's private copy (rollback);
//! 2. check its sha256 against the pin, before anything opens it: the deploy's own, else the
//!    group's `sha256`, a rollback's the one the version served with (`admin.require_sha256`
//!    refuses a deploy without a pin); load it from its own content-addressed private copy
//!    (`loader::load`: ELF completeness, ABI version, abi_stable layout, manifest), and check it
//!    is the same group;
//! 3. install it (`Runtime::install`, the same path `berth up` takes): resolve its services, run
//!    its init hook and build its routes; build the new routing table (refused on a conflict with
//!    another group's route); switch routing table, trigger dispatcher, exports and group list,
//!    each one atomic store;
//! 4. retire the old version in the background (`retire.rs`): drain, stop hook, unload, verify.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use serde::Serialize;

use berth_core::loader::LoadError;
use berth_core::HttpError;
use http::StatusCode;

use super::{Deployments, Slot, VersionRecord};
use crate::builder::BuildError;
use crate::config::GroupConfig;
use crate::install::{GroupError, Pin, PinnedBy};
use crate::runtime::Runtime;

/// What to swap in, for which group.
#[derive(Debug, Clone)]
pub struct SwapPlan {
    pub group: String,
    pub source: SwapSource,
    /// The sha256 a deploy's file must have (normalised lower-case hex): for `Upload` and
    /// `File`; without one a deploy is checked against the group's own `sha256`, if it has one.
    pub sha256: Option<String>,
}

impl SwapPlan {
    /// A plan with no pin of its own (reload, rollback, group list entries carry theirs).
    pub fn new(group: impl Into<String>, source: SwapSource) -> Self {
        SwapPlan { group: group.into(), source, sha256: None }
    }
}

/// Where the new version comes from.
#[derive(Debug, Clone)]
pub enum SwapSource {
    /// The plugin file's bytes, sent to the admin API; stored under `data_dir/uploads/` first.
    Upload(bytes::Bytes),
    /// A plugin file on the host's filesystem.
    File(PathBuf),
    /// The group's own source again: a `path` group is rebuilt, a `file` group's file re-read.
    /// With `only_if_changed` (the file watcher), an identical file is not swapped.
    Reload { only_if_changed: bool },
    /// The version that served before the current one, from its private copy.
    Rollback,
    /// An entry of the group list (`groups_file`): its `url` fetched and verified against its
    /// `sha256`, served with its settings. The same sha256 and settings as the serving version's
    /// swap nothing.
    Listed(Box<GroupConfig>),
}

impl SwapSource {
    fn via(&self) -> &'static str {
        match self {
            SwapSource::Upload(_) => "upload",
            SwapSource::File(_) => "path",
            SwapSource::Reload { only_if_changed: false } => "reload",
            SwapSource::Reload { only_if_changed: true } => "watch",
            SwapSource::Rollback => "rollback",
            SwapSource::Listed(_) => "list",
        }
    }
}

/// What a swap did.
#[derive(Debug, Clone, Serialize)]
pub struct SwapReport {
    pub group: String,
    /// `swapped`, `unchanged` (a reload found the same file) or `unloaded`.
    pub outcome: &'static str,
    /// The version serving now (none after an unload).
    pub current: Option<VersionRecord>,
    /// The version a rollback would return to.
    pub previous: Option<VersionRecord>,
    /// The version now draining in the background, if one was replaced.
    pub retiring: Option<String>,
    /// From the request to the routing switch.
    pub swap_ms: f64,
}

/// Why a swap was refused. The serving version is untouched by every one of them.
#[derive(Debug, thiserror::Error)]
pub enum SwapError {
    #[error("`{group}` is not a group name: use ASCII letters, digits, `-` or `_`")]
    BadName { group: String },
    #[error("group `{group}` is neither loaded nor configured; deploy a plugin file to create it")]
    UnknownGroup { group: String },
    #[error("group `{group}` is not loaded; deploy, reload or roll it back first")]
    NotLoaded { group: String },
    #[error("group `{group}` has no previous version to roll back to")]
    NoPrevious { group: String },
    #[error("plugin `{file}` is group `{found}`, not `{group}`; deploy it as group `{found}`")]
    WrongGroup { group: String, found: String, file: PathBuf },
    #[error("cannot store the uploaded plugin as `{path}`: {source}")]
    Upload { path: PathBuf, source: std::io::Error },
    #[error(transparent)]
    Build(#[from] BuildError),
    #[error(transparent)]
    Load(#[from] LoadError),
    #[error(transparent)]
    Group(#[from] GroupError),
    #[error(
        "{stuck} plugin libraries stayed mapped after unloading (limit: admin.max_stuck_libraries = {limit}), and \
         this version would map another one; restart berth to reclaim their memory (GET /libraries says why they stayed)"
    )]
    TooManyStuck { stuck: usize, limit: usize },
    #[error(
        "deploy of group `{group}` refused: admin.require_sha256 is set, and the deploy names no sha256; send the \
         plugin's sha256 (`sha256sum plugin.so`): `berth deploy {group} plugin.so --sha256 <hex>`, `?sha256=<hex>` on \
         an upload, or `\"sha256\"` beside `\"path\"` in a JSON deploy"
    )]
    Unpinned { group: String },
    #[error("the host is shutting down; no more swaps")]
    ShuttingDown,
    #[error("swap of group `{group}` stopped unexpectedly: {message}")]
    Internal { group: String, message: String },
}

impl HttpError for SwapError {
    /// The status the admin API answers with.
    fn status(&self) -> StatusCode {
        match self {
            SwapError::BadName { .. } => StatusCode::BAD_REQUEST,
            SwapError::Unpinned { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            SwapError::UnknownGroup { .. } | SwapError::NotLoaded { .. } => StatusCode::NOT_FOUND,
            SwapError::NoPrevious { .. } => StatusCode::CONFLICT,
            SwapError::Group(GroupError::Exports { .. } | GroupError::Routes { .. }) => StatusCode::CONFLICT,
            SwapError::TooManyStuck { .. } | SwapError::ShuttingDown => StatusCode::SERVICE_UNAVAILABLE,
            SwapError::Upload { .. } | SwapError::Internal { .. } => StatusCode::INTERNAL_SERVER_ERROR,
            SwapError::Group(GroupError::Internal { .. }) => StatusCode::INTERNAL_SERVER_ERROR,
            SwapError::WrongGroup { .. } | SwapError::Build(_) | SwapError::Load(_) | SwapError::Group(_) => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
        }
    }

    fn code(&self) -> &str {
        SwapError::code(self)
    }

    /// The whole message: an operator deployed this, and needs to know why it was refused.
    fn public_message(&self) -> String {
        self.to_string()
    }
}

impl SwapError {
    /// A short machine-readable code; also the `outcome` label of `berth_swap_total`.
    pub fn code(&self) -> &'static str {
        fn load_code(e: &LoadError) -> &'static str {
            match e {
                LoadError::AbiMismatch { .. } => "abi_mismatch",
                LoadError::Incompatible { .. } => "incompatible",
                LoadError::Instantiate { .. } => "init_failed",
                LoadError::Incomplete { .. } => "truncated",
                LoadError::Read { .. } => "unreadable",
                LoadError::Sha256Mismatch { .. } => "sha256_mismatch",
                _ => "not_a_plugin",
            }
        }
        match self {
            SwapError::BadName { .. } => "bad_name",
            SwapError::UnknownGroup { .. } => "unknown_group",
            SwapError::NotLoaded { .. } => "not_loaded",
            SwapError::NoPrevious { .. } => "no_previous",
            SwapError::WrongGroup { .. } => "wrong_group",
            SwapError::Upload { .. } => "upload_failed",
            SwapError::Build(_) | SwapError::Group(GroupError::Build(_)) => "build_failed",
            SwapError::Load(e) | SwapError::Group(GroupError::Load(e)) => load_code(e),
            SwapError::Group(GroupError::Services(_)) => "services_unresolved",
            SwapError::Group(GroupError::Exports { .. }) => "export_conflict",
            SwapError::Group(GroupError::UnknownFunctionOverride { .. }) => "config_mismatch",
            SwapError::Group(GroupError::Routes { .. }) => "route_conflict",
            SwapError::Group(GroupError::Fetch(e)) => e.code(),
            SwapError::Group(GroupError::WrongName { .. }) => "wrong_group",
            SwapError::Group(GroupError::PinMismatch { .. }) => "sha256_mismatch",
            SwapError::Unpinned { .. } => "sha256_required",
            SwapError::TooManyStuck { .. } => "too_many_stuck",
            SwapError::ShuttingDown => "shutting_down",
            SwapError::Group(_) | SwapError::Internal { .. } => "internal",
        }
    }
}

pub use crate::config::valid_group_name;

/// Runs `plan`: one swap at a time per host. On success the new version serves every request
/// that starts after this returns; the old one drains and unloads in the background.
pub async fn swap(d: &Arc<Deployments>, plan: SwapPlan) -> Result<SwapReport, SwapError> {
    let started = Instant::now();
    let group = plan.group.clone();
    let result = swap_serialized(d, plan, started).await;
    record(d, &group, started, &result);
    result
}

/// Takes `group` out of service: its routes, functions and exports go, the instance drains, stops
/// and unloads in the background. Its last version stays available to reload or roll back to.
pub async fn unload(d: &Arc<Deployments>, group: &str) -> Result<SwapReport, SwapError> {
    let started = Instant::now();
    let result = unload_serialized(d, group, started).await;
    record(d, group, started, &result);
    result
}

fn record(d: &Deployments, group: &str, started: Instant, result: &Result<SwapReport, SwapError>) {
    d.metrics.duration.observe(started.elapsed().as_secs_f64());
    let label = if valid_group_name(group) { group } else { "<invalid>" };
    match result {
        Ok(r) => {
            d.metrics.count(label, "ok");
            let version = r.current.as_ref().map(|c| c.version.as_str()).unwrap_or("-");
            tracing::info!(group, outcome = r.outcome, version, swap_ms = r.swap_ms, retiring = ?r.retiring, "swap done");
        }
        Err(e) => {
            d.metrics.count(label, e.code());
            tracing::warn!(group, code = e.code(), error = %e, "swap refused; the serving version is unchanged");
        }
    }
}

async fn swap_serialized(d: &Arc<Deployments>, plan: SwapPlan, started: Instant) -> Result<SwapReport, SwapError> {
    let state = &d.runtime;
    let name = plan.group.clone();
    if !valid_group_name(&name) {
        return Err(SwapError::BadName { group: name });
    }
    let closed = d.lock.lock().await;
    if *closed {
        return Err(SwapError::ShuttingDown);
    }
    let slot = d.slot(&name);
    let via = plan.source.via();
    let deploy = matches!(plan.source, SwapSource::Upload(_) | SwapSource::File(_));
    if deploy && plan.sha256.is_none() && d.config.admin.require_sha256 {
        return Err(SwapError::Unpinned { group: name });
    }
    // What the new file must hash to: a deploy's own pin, else the group's; a rollback's, the
    // sha256 the version had when it served.
    let mut pin = match (&plan.sha256, &slot) {
        (Some(sha256), _) if deploy => Some(Pin { sha256: sha256.clone(), by: PinnedBy::Deploy }),
        (_, Some(slot)) => Pin::of_config(&slot.config),
        (_, None) => None,
    };

    // 1. The file.
    let (file, group_config) = match (&plan.source, slot) {
        (SwapSource::Upload(bytes), slot) => {
            let file = store_upload(d, &name, bytes.clone()).await?;
            (file.clone(), slot.map(|s| s.config).unwrap_or_else(|| deployed_group_config(&file)))
        }
        (SwapSource::File(path), slot) => {
            (path.clone(), slot.map(|s| s.config).unwrap_or_else(|| deployed_group_config(path)))
        }
        (SwapSource::Reload { only_if_changed }, Some(slot)) => {
            let file = reload_file(d, &name, &slot).await?;
            if *only_if_changed {
                if let Some(current) = &slot.current {
                    if file_sha256(d, &file).await.ok().as_deref() == Some(current.sha256.as_str()) {
                        return Ok(unchanged(name, &slot, started));
                    }
                }
            }
            (file, slot.config)
        }
        (SwapSource::Listed(entry), slot) => {
            if let Some(slot) = slot.as_ref().filter(|_| d.serves(entry)) {
                return Ok(unchanged(name, slot, started));
            }
            pin = Pin::of_config(entry);
            (crate::install::fetch_listed(&d.config, entry).await?, (**entry).clone())
        }
        (SwapSource::Rollback, Some(slot)) => {
            let previous = slot.previous.clone().ok_or_else(|| SwapError::NoPrevious { group: name.clone() })?;
            pin = Some(Pin { sha256: previous.sha256.clone(), by: PinnedBy::Previous });
            let file = if previous.copy.exists() { previous.copy } else { previous.file };
            (file, slot.config)
        }
        (SwapSource::Reload { .. } | SwapSource::Rollback, None) => {
            return Err(SwapError::UnknownGroup { group: name });
        }
    };

    // 2. Check it against its pin (before anything opens it), load and check it.
    let resolved_ms = ms(started);
    let before = d.census_for_swap(d.config.admin.max_stuck_libraries).await;
    let plugin = if group_config.isolation == crate::config::Isolation::Process {
        // A fresh worker opens the new version; nothing is mapped in this process.
        let plugin =
            crate::install::open_file_pinned(&d.config, &group_config, file.clone(), pin.as_ref(), &d.runtime.metrics)
                .await
                .map_err(|e| e.for_group(&name))?;
        if plugin.manifest().name != name {
            let found = plugin.manifest().name.clone();
            crate::install::stop_unused(plugin).await;
            return Err(SwapError::WrongGroup { group: name, found, file });
        }
        plugin
    } else {
        let copy_dir = crate::install::plugin_copies(&d.config);
        let (data_dir, gc, p, to_load) = (d.config.data_dir.clone(), group_config.clone(), pin.clone(), file.clone());
        let plugin = d
            .runtime
            .worker
            .run(move || crate::install::load_library(&data_dir, &gc, p.as_ref(), &to_load, &copy_dir))
            .await
            .map_err(|e| SwapError::Internal { group: name.clone(), message: e.to_string() })?
            .map_err(|e| e.for_group(&name))?;
        let plugin = Arc::new(plugin);
        if plugin.manifest.name != name {
            let found = plugin.manifest.name.clone();
            state.close_quietly(plugin).await;
            return Err(SwapError::WrongGroup { group: name, found, file });
        }
        let plugin = crate::install::Plugin::Library(plugin);
        if let Err(e) = crate::install::check_loaded(&d.config, &group_config, pin.as_ref(), &plugin) {
            state.close_quietly(plugin).await;
            return Err(e.into());
        }
        let crate::install::Plugin::Library(library) = &plugin else { unreachable!("opened in process") };
        let limit = d.config.admin.max_stuck_libraries;
        let copy = library.copy.canonicalize().unwrap_or_else(|_| library.copy.clone());
        if limit > 0 && before.stuck.len() >= limit && !before.mapped.contains(&copy) {
            state.close_quietly(plugin).await;
            return Err(SwapError::TooManyStuck { stuck: before.stuck.len(), limit });
        }
        d.ledger.track(library);
        plugin
    };
    let loaded_ms = ms(started);

    // 3. Services, init hook, routes, switch: the install path every group takes.
    let record = VersionRecord::new(&plugin, &file, via);
    let (_, old) = state.install(&group_config, plugin).await?;
    d.metrics.versions_loaded.inc();
    let swap_ms = ms(started);
    tracing::debug!(group = %name, resolved_ms, loaded_ms, swap_ms, "swap steps (ms since start)");
    let (current, previous) = d.commit(&name, group_config, record);
    drop(closed);
    reconcile_triggers(state);

    // 4. Retire the old version.
    let retiring = old.map(|old| {
        let version = old.version.clone();
        super::retire::spawn(d.clone(), old);
        version
    });
    if retiring.is_none() {
        d.refresh_census().await;
    }
    Ok(SwapReport { group: name, outcome: "swapped", current: Some(current), previous, retiring, swap_ms })
}

async fn unload_serialized(d: &Arc<Deployments>, name: &str, started: Instant) -> Result<SwapReport, SwapError> {
    let state = &d.runtime;
    if !valid_group_name(name) {
        return Err(SwapError::BadName { group: name.to_owned() });
    }
    let closed = d.lock.lock().await;
    if *closed {
        return Err(SwapError::ShuttingDown);
    }
    let Some(old) = state.remove(name) else {
        return Err(SwapError::NotLoaded { group: name.to_owned() });
    };
    let previous = d.retire_current(name);
    drop(closed);
    reconcile_triggers(state);
    let retiring = Some(old.version.clone());
    super::retire::spawn(d.clone(), old);
    Ok(SwapReport {
        group: name.to_owned(),
        outcome: "unloaded",
        current: None,
        previous,
        retiring,
        swap_ms: ms(started),
    })
}

/// Starts and stops timer, queue and blob runners for the functions now serving (in the
/// background: stopping a runner waits for its in-flight deliveries).
fn reconcile_triggers(state: &Arc<Runtime>) {
    let triggers = state.triggers.clone();
    tokio::spawn(async move { triggers.reconcile().await });
}

/// What a swap that found the serving version already in place reports.
fn unchanged(group: String, slot: &Slot, started: Instant) -> SwapReport {
    SwapReport {
        group,
        outcome: "unchanged",
        current: slot.current.clone(),
        previous: slot.previous.clone(),
        retiring: None,
        swap_ms: ms(started),
    }
}

fn ms(started: Instant) -> f64 {
    started.elapsed().as_secs_f64() * 1000.0
}

/// The `[[groups]]` settings of a group that berth.toml does not configure: all defaults.
fn deployed_group_config(file: &Path) -> GroupConfig {
    serde_json::from_value(serde_json::json!({ "file": file })).expect("a file is a valid group config")
}

/// The file a reload loads: a configured `path` group is rebuilt, a configured `file` group's
/// file read again; a group created by a deploy reloads what it was last deployed from.
async fn reload_file(d: &Deployments, name: &str, slot: &Slot) -> Result<PathBuf, SwapError> {
    if slot.configured {
        if let Some(dir) = &slot.config.path {
            let (dir, profile) = (dir.clone(), d.config.build.profile);
            return d
                .runtime
                .worker
                .run(move || crate::builder::build_group_crate(&dir, profile.as_str()))
                .await
                .map_err(|e| SwapError::Internal { group: name.to_owned(), message: e.to_string() })?
                .map_err(SwapError::Build);
        }
        if let Some(file) = &slot.config.file {
            return Ok(file.clone());
        }
        if slot.config.url.is_some() {
            return Ok(crate::install::fetch_listed(&d.config, &slot.config).await?);
        }
    }
    slot.reload_from.clone().ok_or_else(|| SwapError::NotLoaded { group: name.to_owned() })
}

/// Writes an uploaded plugin to `data_dir/uploads/<group>.so` (through a temporary file, so a
/// half-written upload is never loaded).
async fn store_upload(d: &Deployments, group: &str, bytes: bytes::Bytes) -> Result<PathBuf, SwapError> {
    let dir = d.config.data_dir.join("uploads");
    let path = dir.join(format!("{group}.{}", std::env::consts::DLL_EXTENSION));
    let target = path.clone();
    let written = d
        .runtime
        .worker
        .run(move || {
            std::fs::create_dir_all(&dir)?;
            let tmp = target.with_extension(format!("upload{}", std::process::id()));
            std::fs::write(&tmp, &bytes)?;
            std::fs::rename(&tmp, &target)
        })
        .await
        .map_err(|e| SwapError::Internal { group: group.to_owned(), message: e.to_string() })?;
    written.map_err(|source| SwapError::Upload { path: path.clone(), source })?;
    Ok(path)
}

/// The sha256 of a file, hex (not read again while it is unchanged).
async fn file_sha256(d: &Deployments, path: &Path) -> std::io::Result<String> {
    let path = path.to_owned();
    d.runtime.worker.run(move || crate::install::sha256_of_file(&path)).await.map_err(std::io::Error::other)?
}
