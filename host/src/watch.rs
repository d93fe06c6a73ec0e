//! `berth up --watch`: swap a group when its source changes.
//!
//! A `file` group is reloaded when its plugin file changes (the file's directory is watched, so a
//! file replaced by a rename is seen too); a `path` group is rebuilt with cargo and reloaded when
//! a file under its crate changes (`target/` and hidden entries excepted). Events are debounced
//! ([`DEBOUNCE`]) so that a build writing many files makes one swap, and a reload whose file has
//! the sha256 of the serving version does nothing. Every swap goes through [`crate::swap::swap`]:
//! a file caught half-written or a build that fails leaves the serving version in place (and says
//! so in the log and `berth_swap_total`); the next change tries again.

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use notify_debouncer_mini::notify::{RecommendedWatcher, RecursiveMode};
use notify_debouncer_mini::{new_debouncer, DebounceEventResult, Debouncer};

use crate::swap::Deployments;
use crate::swap::{self, SwapError, SwapPlan, SwapReport, SwapSource};

/// Quiet time after the last change before a swap starts.
pub const DEBOUNCE: Duration = Duration::from_millis(300);

#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    #[error("--watch: cannot watch `{path}`: {source}")]
    Watch { path: PathBuf, source: notify_debouncer_mini::notify::Error },
}

/// How far a file's modification time may lag the wall clock read just before the write: the
/// kernel stamps files from its coarse clock, updated once per scheduler tick (1–10 ms).
const COARSE_CLOCK_LAG: Duration = Duration::from_millis(50);

/// What tells one version of a file from the next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    modified: SystemTime,
    len: u64,
    inode: u64,
}

fn stamp(path: &Path) -> Option<Stamp> {
    let m = std::fs::metadata(path).ok()?;
    Some(Stamp { modified: m.modified().ok()?, len: m.len(), inode: m.ino() })
}

/// What a change of a path means.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Target {
    /// The plugin file of a `file` group.
    File { group: String, file: PathBuf },
    /// The crate directory of a `path` group.
    Crate { group: String, dir: PathBuf },
}

impl Target {
    fn group(&self) -> &str {
        match self {
            Target::File { group, .. } | Target::Crate { group, .. } => group,
        }
    }

    /// True when a change of `path` should reload this target's group.
    fn affected_by(&self, path: &Path) -> bool {
        match self {
            Target::File { file, .. } => path == file,
            Target::Crate { dir, .. } => path.strip_prefix(dir).is_ok_and(|rel| {
                rel.components().all(|c| match c {
                    Component::Normal(name) => {
                        let name = name.to_string_lossy();
                        name != "target" && !name.starts_with('.') && !name.ends_with('~')
                    }
                    _ => true,
                })
            }),
        }
    }
}

/// Hears what the watcher does, for a display (`berth dev`). The swap's own log lines and
/// metrics are there either way.
pub trait WatchReport: Send + Sync {
    /// A change of `group`'s sources was seen; a rebuild (or reload) starts.
    fn building(&self, group: &str);
    /// The swap that change started ended, `elapsed` after [`WatchReport::building`].
    fn done(&self, group: &str, result: &Result<SwapReport, SwapError>, elapsed: Duration);
}

/// Watches the sources of every configured group until dropped.
pub struct Watcher {
    _debouncer: Debouncer<RecommendedWatcher>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn canonical(p: &Path) -> PathBuf {
    p.canonicalize().unwrap_or_else(|_| p.to_owned())
}

impl Watcher {
    /// Starts watching the groups the host loaded from its configuration.
    pub fn start(deployments: Arc<Deployments>) -> Result<Watcher, WatchError> {
        Self::start_reporting(deployments, None)
    }

    /// [`Watcher::start`], telling `report` about every rebuild and swap.
    pub fn start_reporting(
        deployments: Arc<Deployments>,
        report: Option<Arc<dyn WatchReport>>,
    ) -> Result<Watcher, WatchError> {
        let mut targets = Vec::new();
        for (group, config) in deployments.configured_groups() {
            if let Some(dir) = &config.path {
                targets.push(Target::Crate { group, dir: canonical(dir) });
            } else if let Some(file) = &config.file {
                targets.push(Target::File { group, file: canonical(file) });
            }
        }
        // notify also reports reads (inotify access events), and a reload reads the very file it
        // watches: without a filter, a broken file would be retried every debounce period forever.
        // So a path counts only when its stamp (modification time, size, inode) differs from the
        // last one seen. A plugin file's first stamp is taken here, before any watch is set up.
        // Any other path seen for the first time (a crate's source) counts only if it was
        // modified after watching began, so that a build reading every source does not rebuild
        // once per file. File times come from the kernel's coarse clock, which lags
        // `SystemTime::now()` by up to a scheduler tick: the cut-off allows for that.
        let mut seen: BTreeMap<PathBuf, Option<Stamp>> = BTreeMap::new();
        for t in &targets {
            if let Target::File { file, .. } = t {
                seen.insert(file.clone(), stamp(file));
            }
        }
        let since = std::time::SystemTime::now() - COARSE_CLOCK_LAG;
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Vec<PathBuf>>();
        let mut debouncer = new_debouncer(DEBOUNCE, move |res: DebounceEventResult| match res {
            Ok(events) => {
                let _ = tx.send(events.into_iter().map(|e| e.path).collect());
            }
            Err(e) => tracing::warn!(error = %e, "file watcher error"),
        })
        .map_err(|source| WatchError::Watch { path: PathBuf::new(), source })?;
        let mut watched = BTreeSet::new();
        for t in &targets {
            let (path, mode) = match t {
                Target::File { file, .. } => {
                    (file.parent().unwrap_or(Path::new("/")).to_owned(), RecursiveMode::NonRecursive)
                }
                Target::Crate { dir, .. } => (dir.clone(), RecursiveMode::Recursive),
            };
            if watched.insert(path.clone()) {
                debouncer
                    .watcher()
                    .watch(&path, mode)
                    .map_err(|source| WatchError::Watch { path: path.clone(), source })?;
            }
            tracing::info!(group = t.group(), path = %path.display(), "watching for changes");
        }
        let task = tokio::spawn(async move {
            while let Some(paths) = rx.recv().await {
                let paths: Vec<PathBuf> = paths
                    .into_iter()
                    .filter(|p| {
                        let now = stamp(p);
                        match seen.insert(p.clone(), now) {
                            Some(before) => before != now,
                            None => now.is_none_or(|s| s.modified >= since),
                        }
                    })
                    .collect();
                let groups: BTreeSet<&str> =
                    targets.iter().filter(|t| paths.iter().any(|p| t.affected_by(p))).map(Target::group).collect();
                for group in groups {
                    tracing::info!(group, "source changed; reloading");
                    let started = std::time::Instant::now();
                    if let Some(r) = &report {
                        r.building(group);
                    }
                    let plan = SwapPlan::new(group, SwapSource::Reload { only_if_changed: true });
                    // Outcomes (and refusals) are logged and counted by the swap itself.
                    let result = swap::swap(&deployments, plan).await;
                    if let Some(r) = &report {
                        r.done(group, &result, started.elapsed());
                    }
                }
            }
        });
        Ok(Watcher { _debouncer: debouncer, task })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crate_changes_count_except_build_output_and_hidden_files() {
        let t = Target::Crate { group: "g".into(), dir: PathBuf::from("/src/g") };
        assert!(t.affected_by(Path::new("/src/g/src/lib.rs")));
        assert!(t.affected_by(Path::new("/src/g/Cargo.toml")));
        assert!(!t.affected_by(Path::new("/src/g/target/debug/libg.so")));
        assert!(!t.affected_by(Path::new("/src/g/.git/index")));
        assert!(!t.affected_by(Path::new("/src/g/src/lib.rs~")));
        assert!(!t.affected_by(Path::new("/src/other/lib.rs")));
    }

    #[test]
    fn a_file_group_reacts_to_its_file_only() {
        let t = Target::File { group: "g".into(), file: PathBuf::from("/p/libg.so") };
        assert!(t.affected_by(Path::new("/p/libg.so")));
        assert!(!t.affected_by(Path::new("/p/libh.so")));
    }
}
