//! Hot swap: replacing a group's serving version while traffic flows, without dropping a request,
//! and unloading the old version's library afterwards.
//!
//! - [`plan`]: a [`SwapPlan`] and the steps of one swap (load, check, init, switch), or of an unload.
//! - [`retire`]: what happens to the replaced version: drain, stop hook, unload, verification.
//! - [`drain`]: in-flight calls per group instance.
//! - [`mapped`]: which plugin libraries are really mapped (`/proc/self/maps`) and why a closed one
//!   stayed.
//!
//! Unloading is safe only if nothing the plugin made outlives its library: the drain waits until
//! no table, entry or request refers to the old instance, its objects are dropped before its
//! `RawLibrary`, and host futures never keep a plugin's waker past their own life
//! (`berth_core::host_future`). What could not be unloaded is measured, explained and bounded
//! ([`mapped`]).
//!
//! [`Deployments`] is the per-host bookkeeping: per group, the `[[groups]]` settings new versions
//! are served with, the current and previous versions (for rollback), and the swap lock (one swap
//! at a time per host).

pub mod metrics;
pub mod plan;
pub mod retire;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use serde::Serialize;

pub use berth_core::drain::{self, InflightCall, InflightCalls};
pub use berth_core::loader::mapped::{self, Census, StuckLibrary};
pub use plan::{swap, unload, SwapError, SwapPlan, SwapReport, SwapSource};

use crate::runtime::Runtime;
use berth_core::GroupInstance;

use crate::config::{BerthConfig, GroupConfig};
use mapped::LibraryLedger;
use metrics::SwapMetrics;

/// One version of a group, as deployed.
#[derive(Debug, Clone, Serialize)]
pub struct VersionRecord {
    pub version: String,
    pub sha256: String,
    /// The file it was loaded from, as given.
    pub file: PathBuf,
    /// The private copy that was opened.
    pub copy: PathBuf,
    /// RFC 3339, UTC.
    pub loaded_at: String,
    pub loaded_at_unix_ms: u64,
    /// How it came: `config`, `upload`, `path`, `reload`, `watch` or `rollback`.
    pub via: &'static str,
}

impl VersionRecord {
    fn new(plugin: &crate::install::Plugin, file: &Path, via: &'static str) -> Self {
        let copy = match plugin {
            crate::install::Plugin::Library(p) => &p.copy,
            crate::install::Plugin::Worker(_) => plugin.source(),
        };
        Self::of(&plugin.manifest().version, plugin.sha256(), copy, file, via)
    }

    fn of(version: &str, sha256: &str, copy: &Path, file: &Path, via: &'static str) -> Self {
        let now = SystemTime::now();
        VersionRecord {
            version: version.to_owned(),
            sha256: sha256.to_owned(),
            file: file.to_owned(),
            copy: copy.to_owned(),
            loaded_at: berth_core::clock::rfc3339_seconds(now),
            loaded_at_unix_ms: berth_core::clock::unix_ms(now),
            via,
        }
    }
}

/// What the host keeps per group across versions.
#[derive(Debug, Clone)]
struct Slot {
    /// The settings every version is served with (limits, config, secrets, bindings).
    config: GroupConfig,
    /// From berth.toml (reloads go back to its `path` or `file`), or created by a deploy.
    configured: bool,
    current: Option<VersionRecord>,
    previous: Option<VersionRecord>,
    /// For a group created by a deploy: what a reload loads.
    reload_from: Option<PathBuf>,
}

/// A replaced version that has not finished retiring.
struct Retiring {
    id: u64,
    name: Arc<str>,
    version: String,
    sha256: String,
    group: std::sync::Weak<GroupInstance>,
    since: std::time::Instant,
}

/// Per-host swap bookkeeping, over the [`Runtime`] it swaps groups of.
pub struct Deployments {
    pub runtime: Arc<Runtime>,
    config: Arc<BerthConfig>,
    /// Held for a whole swap; `true` once the host is shutting down.
    lock: tokio::sync::Mutex<bool>,
    slots: Mutex<BTreeMap<String, Slot>>,
    retiring: Mutex<Vec<Retiring>>,
    retirements: Mutex<Vec<tokio::task::JoinHandle<()>>>,
    next_id: std::sync::atomic::AtomicU64,
    ledger: Arc<LibraryLedger>,
    /// The census the last unload ended with, taken under the swap lock (or the one at start):
    /// libraries become stuck only when unloaded, so its stuck list is current for a swap
    /// holding that lock.
    last_census: Mutex<Census>,
    pub metrics: SwapMetrics,
}

/// `GET /groups` of the admin API.
#[derive(Debug, Serialize)]
pub struct HostStatus {
    pub groups: Vec<GroupStatus>,
    /// Groups unloaded through the admin API (they can be reloaded or rolled back).
    pub unloaded: Vec<UnloadedGroup>,
    /// Replaced versions still draining or unloading.
    pub retiring: Vec<RetiringStatus>,
    pub libraries: LibraryStatus,
}

/// One serving group.
#[derive(Debug, Serialize)]
pub struct GroupStatus {
    pub name: String,
    pub version: String,
    pub sha256: String,
    pub file: PathBuf,
    pub copy: PathBuf,
    pub loaded_at: String,
    pub loaded_at_unix_ms: u64,
    pub via: &'static str,
    pub functions: Vec<FunctionStatus>,
    /// Calls executing in this version right now.
    /// `none` or `process`.
    pub isolation: &'static str,
    /// The worker of a `process` group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker: Option<berth_core::isolation::WorkerStatus>,
    pub inflight: usize,
    /// The version a rollback returns to.
    pub previous: Option<VersionRecord>,
}

#[derive(Debug, Serialize)]
pub struct FunctionStatus {
    pub name: String,
    pub triggers: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct UnloadedGroup {
    pub name: String,
    pub previous: Option<VersionRecord>,
}

#[derive(Debug, Serialize)]
pub struct RetiringStatus {
    pub name: String,
    pub version: String,
    pub sha256: String,
    pub inflight: usize,
    pub retiring_for_ms: u64,
}

#[derive(Debug, Serialize)]
pub struct LibraryStatus {
    /// Private plugin copies mapped in the process.
    pub mapped: usize,
    /// Mapped although nothing uses them any more, with the reason found.
    pub stuck: Vec<StuckLibrary>,
}

impl Deployments {
    pub fn new(runtime: Arc<Runtime>) -> Arc<Self> {
        let config = runtime.config.clone();
        Arc::new(Deployments {
            metrics: SwapMetrics::new(&runtime.metrics),
            ledger: Arc::new(LibraryLedger::new(&crate::install::plugin_copies(&config))),
            runtime,
            config,
            lock: tokio::sync::Mutex::new(false),
            slots: Mutex::new(BTreeMap::new()),
            retiring: Mutex::new(Vec::new()),
            retirements: Mutex::new(Vec::new()),
            next_id: std::sync::atomic::AtomicU64::new(1),
            last_census: Mutex::new(Census::default()),
        })
    }

    /// Records a group loaded from berth.toml at startup.
    pub fn record_loaded(&self, group_config: &GroupConfig, group: &Arc<GroupInstance>) {
        if let Some(library) = group.library() {
            self.ledger.track(library);
        }
        self.metrics.versions_loaded.inc();
        let file = group.source().to_owned();
        let copy = group.library().map_or_else(|| file.clone(), |l| l.copy.clone());
        self.metrics.serving(&group.name, None, Some((&group.version, group.sha256())));
        let slot = Slot {
            config: group_config.clone(),
            configured: true,
            current: Some(VersionRecord::of(&group.version, group.sha256(), &copy, &file, "config")),
            previous: None,
            reload_from: None,
        };
        self.slots.lock().expect("slots lock").insert(group.name.to_string(), slot);
        // `berth_plugin_libraries_mapped` is set by the caller's one census (`refresh_census`)
        // once every group is recorded: reading `/proc/self/maps` costs ~1 ms a time.
    }

    /// Groups loaded from berth.toml, with their settings (what `--watch` watches).
    pub fn configured_groups(&self) -> Vec<(String, GroupConfig)> {
        let slots = self.slots.lock().expect("slots lock");
        slots.iter().filter(|(_, s)| s.configured).map(|(n, s)| (n.clone(), s.config.clone())).collect()
    }

    /// True when `entry` (a group list entry) is what its group serves: the same sha256 and
    /// the same settings.
    pub fn serves(&self, entry: &GroupConfig) -> bool {
        let Some(name) = entry.name.as_deref() else { return false };
        let slots = self.slots.lock().expect("slots lock");
        slots.get(name).is_some_and(|s| {
            s.current.as_ref().map(|c| c.sha256.as_str()) == entry.sha256.as_deref() && s.config == *entry
        })
    }

    fn slot(&self, name: &str) -> Option<Slot> {
        self.slots.lock().expect("slots lock").get(name).cloned()
    }

    /// Makes `deployed` the current version of `name`; returns (current, previous).
    fn commit(
        &self,
        name: &str,
        config: GroupConfig,
        deployed: VersionRecord,
    ) -> (VersionRecord, Option<VersionRecord>) {
        let mut slots = self.slots.lock().expect("slots lock");
        let listed = config.listed;
        let slot = slots.entry(name.to_owned()).or_insert_with(|| Slot {
            config: config.clone(),
            configured: false,
            current: None,
            previous: None,
            reload_from: None,
        });
        // A group list entry brings its settings (and makes the group one the list owns).
        slot.config = config;
        slot.configured |= listed;
        match deployed.via {
            "path" => slot.reload_from = Some(deployed.file.clone()),
            "upload" | "rollback" => slot.reload_from = Some(deployed.copy.clone()),
            _ => {}
        }
        let old = slot.current.as_ref().map(|c| (c.version.clone(), c.sha256.clone()));
        self.metrics.serving(
            name,
            old.as_ref().map(|(v, s)| (v.as_str(), s.as_str())),
            Some((&deployed.version, &deployed.sha256)),
        );
        // Reloading the same file keeps the version to roll back to.
        if let Some(current) = slot.current.take() {
            if current.sha256 != deployed.sha256 {
                slot.previous = Some(current);
            }
        }
        slot.current = Some(deployed.clone());
        (deployed, slot.previous.clone())
    }

    /// Marks `name` unloaded; its last version becomes the one to roll back to.
    fn retire_current(&self, name: &str) -> Option<VersionRecord> {
        let mut slots = self.slots.lock().expect("slots lock");
        let slot = slots.get_mut(name)?;
        if let Some(current) = slot.current.take() {
            self.metrics.serving(name, Some((&current.version, &current.sha256)), None);
            slot.previous = Some(current);
        }
        slot.previous.clone()
    }

    /// `/proc/self/maps` right now (off the async workers).
    pub async fn census(&self) -> Census {
        let ledger = self.ledger.clone();
        tokio::task::spawn_blocking(move || ledger.census()).await.unwrap_or_default()
    }

    /// Takes a census and updates `berth_plugin_libraries_mapped`.
    pub async fn refresh_census(&self) -> Census {
        let census = self.census().await;
        self.metrics.libraries_mapped.set(census.mapped.len() as i64);
        census
    }

    /// Keeps `census` for [`Deployments::census_for_swap`]: the census an unload ended with
    /// (taken under the swap lock), or the one at start.
    pub fn remember_census(&self, census: &Census) {
        *self.last_census.lock().expect("census lock") = census.clone();
    }

    /// What a swap about to map a library checks `admin.max_stuck_libraries` against: the last
    /// census, unless that already shows the limit reached (then a fresh one, which also knows
    /// the libraries mapped since). Reading `/proc/self/maps` costs ~1 ms.
    pub async fn census_for_swap(&self, limit: usize) -> Census {
        let last = self.last_census.lock().expect("census lock").clone();
        if limit > 0 && last.stuck.len() >= limit {
            self.census().await
        } else {
            last
        }
    }

    /// Everything the admin API lists.
    pub async fn status(&self) -> HostStatus {
        // Retiring versions first, then the census: an empty retiring list means every library
        // it had is already accounted for by the census that follows.
        let retiring = self
            .retiring
            .lock()
            .expect("retiring lock")
            .iter()
            .map(|r| RetiringStatus {
                name: r.name.to_string(),
                version: r.version.clone(),
                sha256: r.sha256.clone(),
                inflight: r.group.upgrade().map(|g| g.calls.current()).unwrap_or(0),
                retiring_for_ms: r.since.elapsed().as_millis() as u64,
            })
            .collect();
        let census = self.refresh_census().await;
        let slots = self.slots.lock().expect("slots lock").clone();
        let groups = self
            .runtime
            .serving
            .all()
            .into_iter()
            .map(|g| {
                let slot = slots.get(&*g.name);
                let current = slot.and_then(|s| s.current.clone());
                let functions = g
                    .manifest()
                    .functions
                    .iter()
                    .map(|f| FunctionStatus {
                        name: f.name.clone(),
                        triggers: f.triggers.iter().map(|t| t.describe()).collect(),
                    })
                    .collect();
                GroupStatus {
                    name: g.name.to_string(),
                    version: g.version.clone(),
                    sha256: g.sha256().to_owned(),
                    file: current.as_ref().map(|c| c.file.clone()).unwrap_or_else(|| g.source().to_owned()),
                    copy: g.library().map_or_else(|| g.source().to_owned(), |l| l.copy.clone()),
                    isolation: g.isolation(),
                    worker: g.worker().map(|w| w.status()),
                    loaded_at: current.as_ref().map(|c| c.loaded_at.clone()).unwrap_or_default(),
                    loaded_at_unix_ms: current.as_ref().map(|c| c.loaded_at_unix_ms).unwrap_or(0),
                    via: current.as_ref().map(|c| c.via).unwrap_or("config"),
                    functions,
                    inflight: g.calls.current(),
                    previous: slot.and_then(|s| s.previous.clone()),
                }
            })
            .collect();
        let unloaded = slots
            .iter()
            .filter(|(_, s)| s.current.is_none())
            .map(|(name, s)| UnloadedGroup { name: name.clone(), previous: s.previous.clone() })
            .collect();
        HostStatus {
            groups,
            unloaded,
            retiring,
            libraries: LibraryStatus { mapped: census.mapped.len(), stuck: census.stuck },
        }
    }

    /// Refuses further swaps and waits for any swap in progress.
    pub async fn close(&self) {
        *self.lock.lock().await = true;
    }

    /// Waits (up to `grace` each) for replaced versions to finish retiring.
    pub async fn wait_retired(&self, grace: std::time::Duration) {
        let tasks: Vec<_> = std::mem::take(&mut *self.retirements.lock().expect("retirements lock"));
        for task in tasks {
            let abort = task.abort_handle();
            if tokio::time::timeout(grace, task).await.is_err() {
                abort.abort();
            }
        }
    }
}
