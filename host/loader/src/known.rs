//! Plugin files already read and hashed by this process, so that an unchanged file is not read and
//! hashed again: a swap back to a version served before, a reload or watch event that finds the
//! same file, the same file named by two groups. A plugin is megabytes; hashing it is most of
//! what a swap between known versions would cost (`ops/bench/swap.sh`, `swap cpu`).
//!
//! A file counts as unchanged while its [`Stamp`] (device, inode, size, modification and change
//! times) is the one it had when it was hashed. The change time is the kernel's, set on every
//! write and never by a caller. A file changed within the same timestamp tick as the hash could
//! keep its stamp (git's "racy" files): a file whose times are not safely older than the read
//! ([`SETTLED`]) is hashed, and not remembered.
//!
//! What is known of files with a private copy is also written beside the copies
//! (`<copy dir>/known-files.json`), so that a restarted host does not hash its plugins again
//! either (cold start, `ops/bench/coldstart.sh`).

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, SystemTime};

/// How much older than the read a file's times must be for its hash to be remembered.
pub const SETTLED: Duration = Duration::from_secs(2);

/// What identifies one content of a file without reading it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Stamp {
    dev: u64,
    ino: u64,
    len: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl Stamp {
    pub fn of(meta: &std::fs::Metadata) -> Self {
        Stamp {
            dev: meta.dev(),
            ino: meta.ino(),
            len: meta.len(),
            mtime: (meta.mtime(), meta.mtime_nsec()),
            ctime: (meta.ctime(), meta.ctime_nsec()),
        }
    }

    /// Whether both times are at least [`SETTLED`] before `read_at`.
    pub fn settled_before(&self, read_at: SystemTime) -> bool {
        let Ok(read) = read_at.duration_since(SystemTime::UNIX_EPOCH) else { return false };
        let newest = self.mtime.max(self.ctime);
        let newest = Duration::new(newest.0.max(0) as u64, newest.1.clamp(0, 999_999_999) as u32);
        newest + SETTLED <= read
    }
}

/// A file's hash, and the private copy holding those bytes.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Known {
    pub stamp: Stamp,
    pub sha256: String,
    /// The private copy, with its stamp when it was written or found.
    pub copy: Option<(PathBuf, Stamp)>,
}

/// The file beside the private copies that keeps what is known of their sources.
pub const FILE: &str = "known-files.json";

#[derive(Default)]
struct State {
    files: HashMap<PathBuf, Known>,
    /// Copy directories whose [`FILE`] has been read.
    read: Vec<PathBuf>,
}

static KNOWN: Mutex<Option<State>> = Mutex::new(None);

fn with<T>(f: impl FnOnce(&mut State) -> T) -> T {
    let mut known = KNOWN.lock().unwrap_or_else(PoisonError::into_inner);
    f(known.get_or_insert_with(State::default))
}

/// What is known of `path` if it still has `stamp`.
pub fn lookup(path: &Path, stamp: Stamp) -> Option<Known> {
    with(|k| k.files.get(path).filter(|known| known.stamp == stamp).cloned())
}

/// Reads what an earlier process wrote in `copy_dir` (once per process; a missing or unreadable
/// file is nothing known).
pub fn read_dir_once(copy_dir: &Path) {
    with(|k| {
        if k.read.iter().any(|d| d == copy_dir) {
            return;
        }
        k.read.push(copy_dir.to_owned());
        let Ok(text) = std::fs::read(copy_dir.join(FILE)) else { return };
        let Ok(entries) = serde_json::from_slice::<Vec<(PathBuf, Known)>>(&text) else { return };
        for (path, known) in entries {
            // Only entries whose copy is in this directory (what was written here).
            if known.copy.as_ref().is_some_and(|(c, _)| c.parent() == Some(copy_dir)) {
                k.files.entry(path).or_insert(known);
            }
        }
    });
}

/// Remembers `path`'s hash (replacing what was known of an older content); with a private copy,
/// also in its directory's [`FILE`] (best effort: written whole, through a temporary file, under
/// the lock, so that loads running at once neither share the temporary file nor rename an older
/// list over a newer one).
pub fn remember(path: &Path, known: Known) {
    let dir = known.copy.as_ref().and_then(|(c, _)| c.parent().map(Path::to_owned));
    with(|k| {
        k.files.insert(path.to_owned(), known);
        let Some(dir) = dir else { return };
        let entries: Vec<_> =
            k.files.iter().filter(|(_, v)| v.copy.as_ref().is_some_and(|(c, _)| c.parent() == Some(&*dir))).collect();
        let Ok(bytes) = serde_json::to_vec(&entries) else { return };
        let tmp = dir.join(format!("{FILE}.tmp{}", std::process::id()));
        if std::fs::write(&tmp, bytes).and_then(|()| std::fs::rename(&tmp, dir.join(FILE))).is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
    });
}

/// Forgets everything this process knows (tests: as a restarted process would be).
pub fn forget_all() {
    with(|k| *k = State::default());
}

/// The private copy of `known`, if it is still the file that was written or found.
pub fn copy_of(known: &Known) -> Option<&Path> {
    let (copy, stamp) = known.copy.as_ref()?;
    let now = std::fs::metadata(copy).ok()?;
    (Stamp::of(&now) == *stamp).then_some(copy.as_path())
}
