//! The groups a host is serving, and whether it is ready: what `/readyz`, the admin API and the
//! install path share.

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
}

/// The serving groups, in the order they started, and the problems of those that could not.
#[derive(Default)]
pub struct ServingGroups {
    ready: AtomicBool,
    groups: Mutex<Vec<Arc<GroupInstance>>>,
    problems: Mutex<Vec<String>>,
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
        self.problems.lock().expect("problems lock").push(problem);
    }

    pub fn readiness(&self) -> Readiness {
        let problems = self.problems.lock().expect("problems lock").clone();
        let groups = self.all().iter().map(|g| format!("{}@{}", g.name, g.version)).collect();
        Readiness { ready: self.is_ready() && problems.is_empty(), groups, problems }
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
