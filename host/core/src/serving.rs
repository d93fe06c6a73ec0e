//! The groups a host is serving, and whether it is ready: what `/readyz`, the admin API and the
//! install path share.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use serde::Serialize;

use crate::group::GroupInstance;

/// What `/readyz` answers.
#[derive(Debug, Clone, Serialize)]
pub struct Readiness {
    pub ready: bool,
    /// `name@version` of every serving group.
    pub groups: Vec<String>,
    /// Why a configured group or trigger is not serving.
    pub problems: Vec<String>,
    /// What each group serves: version and the plugin's sha256.
    pub serving: Vec<ServingVersion>,
    /// Deploys of the group list that did not take: the version asked for and why it is not
    /// the one serving (the previous version serves on; the host stays ready).
    pub deploys: Vec<DeployProblem>,
}

/// One serving group's version.
#[derive(Debug, Clone, Serialize)]
pub struct ServingVersion {
    pub group: String,
    pub version: String,
    pub sha256: String,
    /// `none` (in the host's process) or `process` (a supervised worker).
    pub isolation: &'static str,
    /// The worker of a `process` group: pid, state, restarts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub worker: Option<crate::isolation::WorkerStatus>,
}

/// A deploy that was refused.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct DeployProblem {
    pub group: String,
    /// The sha256 the group list asks for.
    pub wanted_sha256: String,
    pub error: String,
    /// RFC 3339, UTC.
    pub since: String,
}

/// The serving groups, in the order they started, and the problems of those that could not.
#[derive(Default)]
pub struct ServingGroups {
    ready: AtomicBool,
    groups: Mutex<Vec<Arc<GroupInstance>>>,
    /// (the group it is about, when known; the message).
    problems: Mutex<Vec<(Option<String>, String)>>,
    deploys: Mutex<BTreeMap<String, DeployProblem>>,
}

impl ServingGroups {
    /// True once every configured group was tried.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    /// Marks the configured groups as loaded (or refused).
    pub fn set_ready(&self) {
        self.ready.store(true, Ordering::Release);
    }

    /// Records why something configured is not serving (reported by `/readyz`).
    pub fn add_problem(&self, problem: String) {
        self.problems.lock().expect("problems lock").push((None, problem));
    }

    /// Records why configured group `group` is not serving; [`ServingGroups::group_serves`]
    /// clears it.
    pub fn add_group_problem(&self, group: &str, problem: String) {
        self.problems.lock().expect("problems lock").push((Some(group.to_owned()), problem));
    }

    /// `group` serves the version asked for: its problems and refused deploys are over.
    pub fn group_serves(&self, group: &str) {
        self.problems.lock().expect("problems lock").retain(|(g, _)| g.as_deref() != Some(group));
        self.deploys.lock().expect("deploys lock").remove(group);
    }

    /// A deploy of `group` was refused; the version serving (if any) stays.
    pub fn deploy_refused(&self, problem: DeployProblem) {
        let mut deploys = self.deploys.lock().expect("deploys lock");
        // The same refusal again keeps the time it started.
        if let Some(old) = deploys.get(&problem.group) {
            if old.wanted_sha256 == problem.wanted_sha256 && old.error == problem.error {
                return;
            }
        }
        deploys.insert(problem.group.clone(), problem);
    }

    /// Forgets a refused deploy of `group` (the group left the list).
    pub fn forget_deploy(&self, group: &str) {
        self.deploys.lock().expect("deploys lock").remove(group);
    }

    pub fn readiness(&self) -> Readiness {
        let problems: Vec<String> =
            self.problems.lock().expect("problems lock").iter().map(|(_, p)| p.clone()).collect();
        let all = self.all();
        let groups = all.iter().map(|g| format!("{}@{}", g.name, g.version)).collect();
        let serving = all
            .iter()
            .map(|g| ServingVersion {
                group: g.name.to_string(),
                version: g.version.clone(),
                sha256: g.sha256().to_owned(),
                isolation: g.isolation(),
                worker: g.worker().map(|w| w.status()),
            })
            .collect();
        let deploys = self.deploys.lock().expect("deploys lock").values().cloned().collect();
        Readiness { ready: self.is_ready() && problems.is_empty(), groups, problems, serving, deploys }
    }

    /// The groups serving now, in the order they started.
    pub fn all(&self) -> Vec<Arc<GroupInstance>> {
        self.groups.lock().expect("groups lock").clone()
    }

    /// The serving instance of group `name`.
    pub fn get(&self, name: &str) -> Option<Arc<GroupInstance>> {
        self.groups.lock().expect("groups lock").iter().find(|g| *g.name == *name).cloned()
    }

    /// True when a group named `name` is serving.
    pub fn contains(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// Puts `new` in the place of the serving group named `name` (or appends it; or removes the
    /// group when `new` is `None`) and returns the instance it replaced.
    pub fn replace(&self, name: &str, new: Option<Arc<GroupInstance>>) -> Option<Arc<GroupInstance>> {
        let mut groups = self.groups.lock().expect("groups lock");
        let at = groups.iter().position(|g| *g.name == *name);
        match (at, new) {
            (Some(i), Some(new)) => Some(std::mem::replace(&mut groups[i], new)),
            (Some(i), None) => Some(groups.remove(i)),
            (None, Some(new)) => {
                groups.push(new);
                None
            }
            (None, None) => None,
        }
    }
}
