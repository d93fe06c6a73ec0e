//! The [`Trigger`] trait every event trigger implements (timers, queue consumers, blob watchers;
//! one file each in `berth-triggers`), and the [`TriggerSupervisor`] that starts and stops their
//! runners as the set of serving functions changes. The HTTP listener and direct invoke are not
//! runners: one listener serves every route, and its install-time check is the routing table's
//! conflict refusal.
//!
//! A runner is keyed by its binding: a swap that keeps a binding keeps its runner (deliveries reach
//! the new version through the dispatcher), a new binding starts one, a removed binding stops its
//! runner gracefully.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::dispatcher::{Dispatcher, EventBinding};

/// What a runner is given.
#[derive(Clone)]
pub struct RunnerContext {
    pub dispatcher: Arc<Dispatcher>,
    /// Flips to true when the runner must stop: finish in-flight work, take no more.
    pub stop: watch::Receiver<bool>,
}

/// One kind of event trigger. Adding one is a file in `berth-triggers` implementing this and
/// one entry in the host's list of triggers.
pub trait Trigger: Send + Sync {
    /// `timer`, `queue`, `blob`.
    fn kind(&self) -> &'static str;
    /// Starts a runner for `binding`; an error (unknown queue, bad schedule) is reported and the
    /// binding stays inactive.
    fn start(&self, binding: &EventBinding, ctx: RunnerContext) -> Result<JoinHandle<()>, String>;
}

struct Running {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

/// The running event-trigger runners.
pub struct TriggerSupervisor {
    dispatcher: Arc<Dispatcher>,
    kinds: Vec<Arc<dyn Trigger>>,
    running: Mutex<BTreeMap<String, (EventBinding, Running)>>,
    problems: Mutex<BTreeMap<String, String>>,
    /// Set when the platform delivers timer, queue and blob events itself (Lambda, FC, SCF):
    /// then no runner starts in the process.
    delivered_by: Mutex<Option<String>>,
}

fn key(b: &EventBinding) -> String {
    format!("{}/{} {}", b.group, b.function, b.trigger.describe())
}

/// How long a stopping runner may take to finish in-flight deliveries.
pub const STOP_GRACE: Duration = Duration::from_secs(30);

impl TriggerSupervisor {
    pub fn new(dispatcher: Arc<Dispatcher>, kinds: Vec<Arc<dyn Trigger>>) -> Self {
        TriggerSupervisor {
            dispatcher,
            kinds,
            running: Mutex::new(BTreeMap::new()),
            problems: Mutex::new(BTreeMap::new()),
            delivered_by: Mutex::new(None),
        }
    }

    /// Problems of bindings that could not start, by binding.
    pub fn problems(&self) -> Vec<String> {
        self.problems.lock().expect("supervisor lock").iter().map(|(k, v)| format!("{k}: {v}")).collect()
    }

    /// Brings the runners in line with the dispatcher's current bindings.
    pub async fn reconcile(&self) {
        if let Some(platform) = &*self.delivered_by.lock().expect("supervisor lock") {
            tracing::debug!(%platform, "event triggers are delivered by the platform; no runner starts here");
            return;
        }
        let wanted: BTreeMap<String, EventBinding> =
            self.dispatcher.bindings().into_iter().map(|b| (key(&b), b)).collect();
        let mut stopping = Vec::new();
        {
            let mut running = self.running.lock().expect("supervisor lock");
            let gone: Vec<String> = running.keys().filter(|k| !wanted.contains_key(*k)).cloned().collect();
            for k in gone {
                if let Some((b, r)) = running.remove(&k) {
                    tracing::info!(group = %b.group, function = %b.function, trigger = %b.trigger.describe(), "stopping trigger");
                    let _ = r.stop.send(true);
                    stopping.push(r.task);
                }
            }
            let mut problems = self.problems.lock().expect("supervisor lock");
            problems.retain(|k, _| wanted.contains_key(k));
            for (k, b) in wanted {
                if running.contains_key(&k) {
                    continue;
                }
                let Some(kind) = self.kinds.iter().find(|t| t.kind() == b.trigger.kind()) else {
                    problems.insert(k, format!("this host has no `{}` trigger", b.trigger.kind()));
                    continue;
                };
                let (stop_tx, stop_rx) = watch::channel(false);
                match kind.start(&b, RunnerContext { dispatcher: self.dispatcher.clone(), stop: stop_rx }) {
                    Ok(task) => {
                        tracing::info!(group = %b.group, function = %b.function, trigger = %b.trigger.describe(), "trigger started");
                        problems.remove(&k);
                        running.insert(k, (b, Running { stop: stop_tx, task }));
                    }
                    Err(e) => {
                        tracing::error!(group = %b.group, function = %b.function, error = %e, "trigger could not start");
                        problems.insert(k, e);
                    }
                }
            }
        }
        for task in stopping {
            let abort = task.abort_handle();
            if tokio::time::timeout(STOP_GRACE, task).await.is_err() {
                tracing::warn!("a trigger runner did not stop within the grace period; aborting it");
                abort.abort();
            }
        }
    }

    /// Leaves timers, queues and blob events to `platform`, which delivers them itself: no
    /// runner starts in this process from now on.
    pub fn leave_to_platform(&self, platform: &str) {
        *self.delivered_by.lock().expect("supervisor lock") = Some(platform.to_owned());
    }

    /// Stops every runner (shutdown), waiting for in-flight deliveries up to the grace period.
    pub async fn stop_all(&self) {
        let all: Vec<_> = std::mem::take(&mut *self.running.lock().expect("supervisor lock")).into_values().collect();
        for (_, r) in &all {
            let _ = r.stop.send(true);
        }
        for (_, r) in all {
            let abort = r.task.abort_handle();
            if tokio::time::timeout(STOP_GRACE, r.task).await.is_err() {
                abort.abort();
            }
        }
    }
}
