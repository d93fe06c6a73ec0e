//! The group list (`groups_file`): the groups a deployment serves, by name, `url` and `sha256`,
//! in a file of their own — on Kubernetes, a mounted ConfigMap, so that `kubectl apply` of the
//! ConfigMap deploys a new version to every replica without restarting a pod.
//!
//! The kubelet updates a ConfigMap volume atomically: it writes the new files into a fresh
//! `..<timestamp>` directory, then renames a `..data` symlink over the old one; the names the pod
//! sees are symlinks through `..data`. So the watcher watches the list's directory, and on any
//! event there reads the list through its path and compares its content with the last one
//! applied: writes into the new directory change nothing until the rename, and the rename shows
//! the whole new list at once.
//!
//! Applying a list goes through [`crate::swap`] for each entry: a changed entry is fetched,
//! verified against its sha256 and swapped in with the zero-drop machinery; a new one is added;
//! a group that left the list is unloaded. A refused entry leaves its group on the version it
//! serves, and says why in the log, `berth_swap_total{outcome}`, `berth_group_deploy_failing`
//! and `/readyz`'s `deploys`; it is tried again with backoff (a server that was down may be back).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use notify_debouncer_mini::notify::{RecommendedWatcher, RecursiveMode};
use notify_debouncer_mini::{new_debouncer, DebounceEventResult, Debouncer};

use berth_core::serving::DeployProblem;

use crate::config::{read_group_list, GroupConfig};
use crate::swap::{self, Deployments, SwapPlan, SwapSource};
use crate::watch::WatchError;

/// First wait before a refused entry is tried again; it doubles up to [`RETRY_MAX`].
pub const RETRY_FIRST: Duration = Duration::from_secs(5);
pub const RETRY_MAX: Duration = Duration::from_secs(300);
/// The label refusals of the list itself are reported under (in `/readyz`'s `deploys`, whose
/// `wanted_sha256` is then the sha256 of the list's content, and in `berth_swap_total`).
const LIST_LABEL: &str = "(group list)";

/// Watches the group list until dropped.
pub struct GroupListWatcher {
    _debouncer: Debouncer<RecommendedWatcher>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for GroupListWatcher {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn content_hash(path: &Path) -> Option<String> {
    use sha2::Digest;
    std::fs::read(path).ok().map(|bytes| format!("{:x}", sha2::Sha256::digest(bytes)))
}

impl GroupListWatcher {
    /// Starts watching `list` (the host already loaded what it lists at start).
    pub fn start(deployments: Arc<Deployments>, list: PathBuf) -> Result<GroupListWatcher, WatchError> {
        let dir = list.parent().map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("."));
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<()>();
        let mut debouncer = new_debouncer(crate::watch::DEBOUNCE, move |res: DebounceEventResult| match res {
            Ok(_) => {
                let _ = tx.send(());
            }
            Err(e) => tracing::warn!(error = %e, "group list watcher error"),
        })
        .map_err(|source| WatchError::Watch { path: dir.clone(), source })?;
        debouncer
            .watcher()
            .watch(&dir, RecursiveMode::NonRecursive)
            .map_err(|source| WatchError::Watch { path: dir.clone(), source })?;
        tracing::info!(list = %list.display(), "watching the group list");
        let task = tokio::spawn(async move {
            let mut applier = Applier::new(deployments, list);
            applier.start().await;
            loop {
                let retry = applier.retry_in();
                tokio::select! {
                    event = rx.recv() => {
                        if event.is_none() {
                            break;
                        }
                        applier.changed().await;
                    }
                    _ = sleep_or_never(retry) => applier.retry().await,
                }
            }
        });
        Ok(GroupListWatcher { _debouncer: debouncer, task })
    }
}

async fn sleep_or_never(wait: Option<Duration>) {
    match wait {
        Some(wait) => tokio::time::sleep(wait).await,
        None => std::future::pending().await,
    }
}

/// Applies versions of the list.
struct Applier {
    deployments: Arc<Deployments>,
    list: PathBuf,
    /// The content (sha256) of the list last read.
    seen: Option<String>,
    /// The entries of the list last read.
    entries: Vec<GroupConfig>,
    /// Entries refused by the last attempt.
    refused: BTreeSet<String>,
    backoff: Duration,
}

impl Applier {
    fn new(deployments: Arc<Deployments>, list: PathBuf) -> Self {
        Applier { deployments, list, seen: None, entries: Vec::new(), refused: BTreeSet::new(), backoff: RETRY_FIRST }
    }

    /// Starts from the list the host loaded at start, then applies the list as it is now: an
    /// entry that did not load at start is tried again, and a change made since is not missed.
    async fn start(&mut self) {
        self.entries = self.deployments.runtime.config.groups.iter().filter(|g| g.listed).cloned().collect();
        self.changed().await;
    }

    fn retry_in(&self) -> Option<Duration> {
        (!self.refused.is_empty()).then_some(self.backoff)
    }

    async fn changed(&mut self) {
        let hash = content_hash(&self.list);
        if hash.is_none() || hash == self.seen {
            return;
        }
        self.seen = hash;
        let entries = match read_group_list(&self.list) {
            Ok(entries) => entries,
            Err(e) => {
                tracing::warn!(list = %self.list.display(), error = %e, "group list refused; every group keeps its version");
                self.deployments.metrics.count(LIST_LABEL, "invalid_list");
                self.deployments.runtime.serving.deploy_refused(DeployProblem {
                    group: LIST_LABEL.into(),
                    wanted_sha256: self.seen.clone().unwrap_or_default(),
                    error: e.to_string(),
                    since: berth_core::clock::rfc3339_seconds(std::time::SystemTime::now()),
                });
                return;
            }
        };
        self.deployments.runtime.serving.forget_deploy(LIST_LABEL);
        tracing::info!(list = %self.list.display(), groups = entries.len(), "group list changed; applying it");
        let gone: Vec<String> = self
            .entries
            .iter()
            .filter_map(|e| e.name.clone())
            .filter(|name| !entries.iter().any(|n| n.name.as_deref() == Some(name)))
            .collect();
        self.entries = entries;
        self.backoff = RETRY_FIRST;
        let all: Vec<GroupConfig> = self.entries.clone();
        self.apply(&all).await;
        for name in gone {
            self.refused.remove(&name);
            self.deployments.runtime.serving.forget_deploy(&name);
            self.deployments.metrics.deploy_failing.with_label_values(&[&name]).set(0);
            if self.deployments.runtime.serving.contains(&name) {
                tracing::info!(group = %name, "group left the group list; unloading it");
                let _ = swap::unload(&self.deployments, &name).await;
            }
            self.deployments.runtime.serving.group_serves(&name);
        }
    }

    async fn retry(&mut self) {
        let again: Vec<GroupConfig> = self
            .entries
            .iter()
            .filter(|e| e.name.as_ref().is_some_and(|n| self.refused.contains(n)))
            .cloned()
            .collect();
        tracing::info!(groups = ?self.refused, "trying refused group list entries again");
        self.backoff = (self.backoff * 2).min(RETRY_MAX);
        self.apply(&again).await;
    }

    /// Swaps in every entry of `entries` that differs from what serves.
    async fn apply(&mut self, entries: &[GroupConfig]) {
        let serving = &self.deployments.runtime.serving;
        for entry in entries {
            let name = entry.name.clone().unwrap_or_default();
            if self.deployments.serves(entry) {
                self.refused.remove(&name);
                serving.group_serves(&name);
                continue;
            }
            let plan = SwapPlan::new(name.clone(), SwapSource::Listed(Box::new(entry.clone())));
            // The swap logs and counts its own outcome.
            match swap::swap(&self.deployments, plan).await {
                Ok(_) => {
                    self.refused.remove(&name);
                    serving.group_serves(&name);
                    self.deployments.metrics.deploy_failing.with_label_values(&[&name]).set(0);
                }
                Err(e) => {
                    self.refused.insert(name.clone());
                    self.deployments.metrics.deploy_failing.with_label_values(&[&name]).set(1);
                    serving.deploy_refused(DeployProblem {
                        group: name,
                        wanted_sha256: entry.sha256.clone().unwrap_or_default(),
                        error: e.to_string(),
                        since: berth_core::clock::rfc3339_seconds(std::time::SystemTime::now()),
                    });
                }
            }
        }
    }
}
