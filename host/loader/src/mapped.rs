//! Which plugin libraries are mapped in this process, which of them are still in use, and why one
//! that is no longer in use could not be unloaded.
//!
//! Dropping a [`LoadedPlugin`] closes its library, but `dlclose` does not promise to unmap it. The
//! only honest answer is the kernel's: `/proc/self/maps`. A library mapped there while no
//! `LoadedPlugin` of its private copy is alive is *stuck*. The usual cause (abi-notes; rust-lang/rust
//! #88737): plugin code registered a thread-local destructor on a host thread
//! (`__cxa_thread_atexit_impl`), and glibc keeps the library until that thread exits, which for a
//! tokio worker is the end of the process. Less common: a `STB_GNU_UNIQUE` symbol makes glibc mark
//! the library NODELETE.
//!
//! Memory stays bounded even then, in two ways. Private copies are named by content, so deploying
//! a version that is stuck again reuses the mapping (`dlopen` of the same file returns the same
//! library) instead of adding one: flipping between two versions costs at most two libraries
//! however many swaps happen. And the stuck list of [`LibraryLedger::census`] feeds the `admin.max_stuck_libraries`
//! limit, past which a deploy that would map yet another library is refused (restart the host to
//! reclaim the memory).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};

use serde::Serialize;

use crate::LoadedPlugin;

/// A plugin library that stayed mapped after its last handle closed.
#[derive(Debug, Clone, Serialize)]
pub struct StuckLibrary {
    pub path: PathBuf,
    pub reason: String,
}

/// What is mapped right now.
#[derive(Debug, Default, Clone)]
pub struct Census {
    /// Private copies mapped in the process.
    pub mapped: BTreeSet<PathBuf>,
    /// Mapped, but no plugin of that copy is alive.
    pub stuck: Vec<StuckLibrary>,
}

/// Every plugin library the host opened, tracked without keeping any of them alive.
pub struct LibraryLedger {
    /// `data_dir/plugins`, canonical (as `/proc/self/maps` spells paths).
    dir: PathBuf,
    opened: Mutex<Vec<(PathBuf, Weak<LoadedPlugin>)>>,
    /// Reasons found for stuck copies, so each file is inspected once.
    reasons: Mutex<BTreeMap<PathBuf, String>>,
}

impl LibraryLedger {
    /// A ledger of the private copies under `dir`.
    pub fn new(dir: &Path) -> Self {
        let _ = std::fs::create_dir_all(dir);
        let dir = dir.canonicalize().unwrap_or_else(|_| dir.to_owned());
        LibraryLedger { dir, opened: Mutex::new(Vec::new()), reasons: Mutex::new(BTreeMap::new()) }
    }

    /// Records an opened plugin.
    pub fn track(&self, plugin: &Arc<LoadedPlugin>) {
        let copy = plugin.copy.canonicalize().unwrap_or_else(|_| plugin.copy.clone());
        let mut opened = self.opened.lock().expect("ledger lock");
        opened.retain(|(_, w)| w.strong_count() > 0);
        opened.push((copy, Arc::downgrade(plugin)));
    }

    /// The private copies with a live plugin.
    fn live(&self) -> BTreeSet<PathBuf> {
        let mut opened = self.opened.lock().expect("ledger lock");
        opened.retain(|(_, w)| w.strong_count() > 0);
        opened.iter().map(|(p, _)| p.clone()).collect()
    }

    /// Reads `/proc/self/maps`. Blocking (a procfs read and, for a newly stuck library, a read
    /// of its file): call it from `spawn_blocking` on hot paths.
    pub fn census(&self) -> Census {
        let mapped = mapped_under(&self.dir);
        let live = self.live();
        let mut reasons = self.reasons.lock().expect("ledger lock");
        reasons.retain(|p, _| mapped.contains(p));
        let stuck = mapped
            .iter()
            .filter(|p| !live.contains(*p))
            .map(|p| StuckLibrary {
                path: p.clone(),
                reason: reasons.entry(p.clone()).or_insert_with(|| why_stuck(p)).clone(),
            })
            .collect();
        Census { mapped, stuck }
    }
}

/// The distinct files under `dir` that `/proc/self/maps` lists.
pub fn mapped_under(dir: &Path) -> BTreeSet<PathBuf> {
    let Ok(maps) = std::fs::read_to_string("/proc/self/maps") else {
        return BTreeSet::new();
    };
    maps.lines()
        // address perms offset dev inode pathname
        .filter_map(|line| line.splitn(6, ' ').nth(5))
        .map(|p| p.trim_start().trim_end_matches(" (deleted)"))
        .filter(|p| Path::new(p).starts_with(dir))
        .map(PathBuf::from)
        .collect()
}

/// Why a library with no live handle could still be mapped, from its dynamic symbol table.
pub fn why_stuck(path: &Path) -> String {
    let symbols = match std::fs::read(path).map_err(|e| e.to_string()).and_then(|b| crate::elf::dynamic_symbols(&b)) {
        Ok(s) => s,
        Err(e) => return format!("still mapped after its last handle closed; its symbols could not be read: {e}"),
    };
    if let Some(s) = symbols.iter().find(|s| s.gnu_unique && s.defined) {
        return format!(
            "still mapped after its last handle closed: it defines the STB_GNU_UNIQUE symbol `{}`, which makes glibc \
             mark the library NODELETE",
            s.name
        );
    }
    if symbols.iter().any(|s| s.name == "__cxa_thread_atexit_impl" && !s.defined) {
        // Every Rust library with std imports it; what matters is whether plugin code used it on
        // a host thread, which only the fact that the library stayed mapped tells.
        return "still mapped after its last handle closed: plugin code registered a thread-local destructor on a \
                host thread (through `__cxa_thread_atexit_impl`, which it imports), and glibc keeps such a library \
                mapped until that thread exits (rust-lang/rust#88737); tokio worker threads live as long as the \
                host. Avoid thread-locals with destructors in plugin code (scoped `tracing` dispatchers, \
                `std::thread::current()`, crates' per-thread caches). Deploying this version again reuses the \
                mapping"
            .into();
    }
    "still mapped after its last handle closed, without thread-local destructors or NODELETE symbols: another \
     handle to it is open (another library depending on it?)"
        .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_lists_this_process_binary() {
        let exe = std::env::current_exe().unwrap().canonicalize().unwrap();
        let mapped = mapped_under(exe.parent().unwrap());
        assert!(mapped.contains(&exe), "{mapped:?}");
        assert!(mapped_under(Path::new("/nonexistent-berth-dir")).is_empty());
    }
}
