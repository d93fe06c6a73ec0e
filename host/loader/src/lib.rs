//! `berth-loader`: opening plugin libraries, the only crate of the host allowed `unsafe`
//! (every block carries a `// SAFETY:` comment; `clippy::undocumented_unsafe_blocks` is denied).
//!
//! - [`load`] checks and opens one plugin file and reads its [`manifest`].
//! - [`elf`] answers two questions about a file without `dlopen`: is it complete, and which
//!   dynamic symbols would keep it mapped.
//! - [`mapped`] is the census of plugin libraries really mapped in the process.
//!
//! ```no_run
//! let plugin = berth_loader::load("target/release/libhello.so".as_ref(), ".berth/plugins".as_ref())?;
//! println!("group {} {} ({} functions)", plugin.manifest.name, plugin.manifest.version, plugin.manifest.functions.len());
//! # Ok::<(), berth_loader::LoadError>(())
//! ```
//!
//! Each version of a plugin is copied to its own path (named by its sha256) before `dlopen`, so
//! that a later version of the same file is a different library and a file rewritten in place
//! never changes code that is running. abi_stable's `RootModule::load_from_*` would cache one
//! module per type and never unload; we open the library ourselves (`RawLibrary`), read the header
//! with `lib_header_from_raw_library`, and keep the handle, so that dropping a [`LoadedPlugin`]
//! really closes it.
//!
//! Checks, in order, each with its own message naming the file:
//! empty file → not a shared library (text, other formats) → `dlopen` failure → no Berth ABI
//! symbol → ABI version mismatch → abi_stable version/layout mismatch → manifest errors.
#![allow(unsafe_code, reason = "dlopen/dlsym and calling into plugin code: the loader is the one place for it")]
#![deny(clippy::undocumented_unsafe_blocks)]

pub mod elf;
pub mod known;
pub mod manifest;
pub mod mapped;

use manifest::convert_manifest;
pub use manifest::{ExportInfo, FunctionManifest, GroupManifest, ServiceNeed, TriggerSpec};

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

use berth_plugin_api::abi_stable::abi_stability::abi_checking::{
    check_layout_compatibility_with_globals, CheckingGlobals,
};
use berth_plugin_api::abi_stable::library::{lib_header_from_raw_library, IsLayoutChecked, LibHeader, RawLibrary};
use berth_plugin_api::abi_stable::StableAbi;
use berth_plugin_api::{
    describe_error, GroupBox, HostHandle, InstantiateArgs, PluginModuleRef, RResult, ABI_VERSION, ABI_VERSION_SYMBOL,
};
use sha2::{Digest, Sha256};

/// How long a group's init hook may take.
pub const INIT_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("plugin `{path}`: cannot read it: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("plugin `{path}`: the file is empty; build the group again (`cargo build` in its crate)")]
    Empty { path: PathBuf },
    #[error("plugin `{path}`: {what}, not a shared library; point `file` at the group's built `.so`")]
    NotSharedLibrary { path: PathBuf, what: &'static str },
    #[error("plugin `{path}`: {detail}; the file is incomplete (an interrupted copy, upload or build?): copy or build it again")]
    Incomplete { path: PathBuf, detail: String },
    #[error("plugin `{path}`: the dynamic loader refused it: {message}")]
    Open { path: PathBuf, message: String },
    #[error("plugin `{path}`: a shared library, but not a Berth plugin (no `berth_plugin_abi_version` symbol); a group crate must call `berth::group!(...)`")]
    NotBerthPlugin { path: PathBuf },
    #[error(
        "plugin `{path}`: built for plugin ABI {found}, this host speaks {expected}; rebuild it against berth {sdk}"
    )]
    AbiMismatch { path: PathBuf, found: u32, expected: u32, sdk: &'static str },
    #[error("plugin `{path}`: incompatible with this host's plugin API (built against a different berth-plugin-api): {detail}")]
    Incompatible { path: PathBuf, detail: String },
    #[error("plugin `{path}`: invalid manifest: {message}")]
    Manifest { path: PathBuf, message: String },
    #[error("plugin `{path}` (group `{group}`): instantiation failed: {message}")]
    Instantiate { path: PathBuf, group: String, message: String },
    #[error("plugin `{path}`: its sha256 is {actual}, the pin says {expected}; nothing of it was opened")]
    Sha256Mismatch { path: PathBuf, expected: String, actual: String },
}

/// An opened plugin library. Dropping it closes the library: drop every object the plugin made
/// first (a [`PluginInstance`] holds an `Arc` of this to guarantee it).
pub struct LoadedPlugin {
    pub manifest: GroupManifest,
    /// The file as configured.
    pub source: PathBuf,
    /// The private copy that was actually opened.
    pub copy: PathBuf,
    pub sha256: String,
    module: PluginModuleRef,
    // Declared last: dropped after everything above.
    _library: RawLibrary,
}

impl std::fmt::Debug for LoadedPlugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedPlugin").field("source", &self.source).field("sha256", &self.sha256).finish()
    }
}

/// The group object a [`LoadedPlugin`] made (its init hook ran), with the library it needs.
pub struct PluginInstance {
    // Field order matters: the group (plugin-made) is dropped before the library.
    pub group: GroupBox,
    pub plugin: std::sync::Arc<LoadedPlugin>,
}

fn describe_content(head: &[u8]) -> &'static str {
    if head.is_empty() {
        "an empty file"
    } else if std::str::from_utf8(head).is_ok_and(|s| s.chars().all(|c| !c.is_control() || c.is_whitespace())) {
        "a text file"
    } else {
        "not an ELF file"
    }
}

/// Reads a file and its sha256 in chunks, yielding the CPU between chunks: a plugin is several
/// megabytes (~10 ms of hashing), and a hot swap on a busy core must not hold the CPU that long
/// in one piece (request latency measured by `ops/bench/swap.sh`). With `keep`, returns the
/// bytes read (else only the last chunk is held). Also returns the file's stamp when it is safe
/// to remember the hash by (the same before and after the read, and settled: see [`known`]).
fn read_and_hash(path: &Path, keep: bool) -> std::io::Result<(Vec<u8>, String, Option<known::Stamp>)> {
    const CHUNK: usize = 128 * 1024;
    let read_at = std::time::SystemTime::now();
    let mut file = std::fs::File::open(path)?;
    let before = file.metadata()?;
    let mut bytes = Vec::with_capacity(if keep { before.len() as usize } else { CHUNK });
    let mut hasher = Sha256::new();
    loop {
        if !keep {
            bytes.clear();
        }
        let start = bytes.len();
        let n = (&mut file).take(CHUNK as u64).read_to_end(&mut bytes)?;
        if n == 0 {
            break;
        }
        hasher.update(&bytes[start..]);
        std::thread::yield_now();
    }
    let stamp = known::Stamp::of(&before);
    let stable = file.metadata().is_ok_and(|after| known::Stamp::of(&after) == stamp) && stamp.settled_before(read_at);
    Ok((bytes, format!("{:x}", hasher.finalize()), stable.then_some(stamp)))
}

/// Copies `path` into `copy_dir` under a name derived from its content hash (if not there yet),
/// once its hash is the one `expected` (when given).
fn private_copy(path: &Path, copy_dir: &Path, expected: Option<&str>) -> Result<(PathBuf, String), LoadError> {
    let read_err = |source| LoadError::Read { path: path.to_owned(), source };
    let (bytes, sha256, stamp) = read_and_hash(path, true).map_err(read_err)?;
    if let Some(expected) = expected.filter(|e| *e != sha256) {
        return Err(LoadError::Sha256Mismatch { path: path.to_owned(), expected: expected.to_owned(), actual: sha256 });
    }
    // `dlopen` maps segments past the end of a truncated file, and touching them kills the
    // process with SIGBUS: refuse a file shorter than its own headers say.
    crate::elf::check_complete(&bytes).map_err(|detail| LoadError::Incomplete { path: path.to_owned(), detail })?;
    std::fs::create_dir_all(copy_dir).map_err(read_err)?;
    let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("plugin");
    // A private copy loaded again (a rollback) is its own copy.
    let suffix = format!("-{}", &sha256[..16]);
    let in_copy_dir = path.parent().and_then(|p| p.canonicalize().ok()) == copy_dir.canonicalize().ok();
    let copy = if in_copy_dir && stem.ends_with(&suffix) {
        path.to_owned()
    } else {
        let copy = copy_dir.join(format!("{stem}{suffix}.{}", std::env::consts::DLL_EXTENSION));
        if !copy.exists() {
            // Write under a temporary name and rename, so a half-written copy is never opened.
            static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
            let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let tmp = copy.with_extension(format!("tmp{}-{n}", std::process::id()));
            std::fs::write(&tmp, &bytes).map_err(read_err)?;
            std::fs::rename(&tmp, &copy).map_err(read_err)?;
        }
        copy
    };
    if let (Some(stamp), Ok(meta)) = (stamp, std::fs::metadata(&copy)) {
        let copy_stamp = known::Stamp::of(&meta);
        known::remember(path, known::Known { stamp, sha256: sha256.clone(), copy: Some((copy.clone(), copy_stamp)) });
    }
    Ok((copy, sha256))
}

/// The private copy in `copy_dir` and the sha256 of `path`, when this process has read the file
/// as it is now and its copy is still the one written then: nothing needs reading.
fn known_copy(path: &Path, copy_dir: &Path) -> Option<(PathBuf, String)> {
    known::read_dir_once(copy_dir);
    let stamp = known::Stamp::of(&std::fs::metadata(path).ok()?);
    let known = known::lookup(path, stamp)?;
    let copy = known::copy_of(&known).filter(|c| c.parent() == Some(copy_dir))?;
    Some((copy.to_owned(), known.sha256))
}

/// The sha256 of a file, lower-case hex (read in chunks); remembered while the file is unchanged
/// (see [`known`]), so that asking again of an unchanged plugin reads nothing.
pub fn sha256_of_file(path: &Path) -> std::io::Result<String> {
    if let Some(known) = known::lookup(path, known::Stamp::of(&std::fs::metadata(path)?)) {
        return Ok(known.sha256);
    }
    let (_, sha256, stamp) = read_and_hash(path, false)?;
    if let Some(stamp) = stamp {
        known::remember(path, known::Known { stamp, sha256: sha256.clone(), copy: None });
    }
    Ok(sha256)
}

/// Opens and checks a plugin file. `copy_dir` receives the private copy.
pub fn load(path: &Path, copy_dir: &Path) -> Result<LoadedPlugin, LoadError> {
    load_pinned(path, copy_dir, None)
}

/// [`load`], refusing the file unless its sha256 is `expected` (lower-case hex), before anything
/// of it is opened (a library's code runs as soon as it is). The bytes hashed are the bytes
/// copied and opened: the file is read once, so a file rewritten meanwhile cannot slip past. A
/// file this process has read before and that is unchanged since (its [`known::Stamp`]) is not
/// read again: its private copy is opened.
pub fn load_pinned(path: &Path, copy_dir: &Path, expected: Option<&str>) -> Result<LoadedPlugin, LoadError> {
    let (copy, sha256) = match known_copy(path, copy_dir) {
        // Read, hashed and checked before, unchanged since: only the pin is new.
        Some((copy, sha256)) => {
            if let Some(expected) = expected.filter(|e| *e != sha256) {
                let (path, expected) = (path.to_owned(), expected.to_owned());
                return Err(LoadError::Sha256Mismatch { path, expected, actual: sha256 });
            }
            (copy, sha256)
        }
        None => {
            let mut head = Vec::with_capacity(512);
            std::fs::File::open(path)
                .and_then(|f| f.take(512).read_to_end(&mut head))
                .map_err(|source| LoadError::Read { path: path.to_owned(), source })?;
            if head.is_empty() {
                return Err(LoadError::Empty { path: path.to_owned() });
            }
            if !head.starts_with(b"\x7fELF") {
                return Err(LoadError::NotSharedLibrary { path: path.to_owned(), what: describe_content(&head) });
            }
            private_copy(path, copy_dir, expected)?
        }
    };
    let library =
        RawLibrary::load_at(&copy).map_err(|e| LoadError::Open { path: path.to_owned(), message: e.to_string() })?;

    // SAFETY: the symbol is declared by `berth::group!` as `extern "C" fn() -> u32`; a library
    // that exports the name with another type is not a Berth plugin and is beyond protection.
    let found = unsafe {
        match library.get::<extern "C" fn() -> u32>(ABI_VERSION_SYMBOL) {
            Ok(f) => (*f)(),
            Err(_) => return Err(LoadError::NotBerthPlugin { path: path.to_owned() }),
        }
    };
    if found != ABI_VERSION {
        return Err(LoadError::AbiMismatch {
            path: path.to_owned(),
            found,
            expected: ABI_VERSION,
            sdk: env!("CARGO_PKG_VERSION"),
        });
    }
    // SAFETY: the header lives in the library, which `LoadedPlugin` keeps open for as long as the
    // module reference is used; abi_stable validates the header before handing it out.
    let header = unsafe { lib_header_from_raw_library(&library) }
        .map_err(|e| LoadError::Incompatible { path: path.to_owned(), detail: e.to_string() })?;
    let module = check_root_module(path, header, &layout_checked(copy_dir, &sha256))?;
    let mut manifest = match (module.manifest())() {
        RResult::ROk(m) => convert_manifest(path, m)?,
        RResult::RErr(e) => return Err(LoadError::Manifest { path: path.to_owned(), message: describe_error(&e) }),
    };
    // A plugin built before `describe` existed has none: its API is listed without schemas.
    manifest.api = module.describe().map(|describe| describe().into_string()).filter(|a| !a.is_empty());
    Ok(LoadedPlugin { manifest, source: path.to_owned(), copy, sha256, module, _library: library })
}

/// This host build's GNU build id (from the first page of its executable), read once.
fn host_build_id() -> Option<&'static str> {
    static ID: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    ID.get_or_init(|| {
        let mut head = Vec::with_capacity(64 * 1024);
        std::fs::File::open("/proc/self/exe").and_then(|f| f.take(64 * 1024).read_to_end(&mut head)).ok()?;
        elf::build_id(&head)
    })
    .as_deref()
}

/// Where a passed layout check of the plugin content `sha256` against this host build is
/// remembered: `<copy_dir>/layout-checked/<host build id>/<sha256>` (none without a build id).
fn layout_checked(copy_dir: &Path, sha256: &str) -> Option<PathBuf> {
    Some(copy_dir.join("layout-checked").join(host_build_id()?).join(sha256))
}

/// Checks the plugin's root-module layout against ours and returns the root module.
///
/// abi_stable's own `init_root_module` records every checked prefix type and non-exhaustive enum
/// in a process-global map that keeps `&'static` pointers into the *plugin's* type layouts
/// (`CHECKING_GLOBALS.prefix_type_map`): after that library is closed, the next load's check
/// reads unmapped memory and the host dies with SIGSEGV (seen when two hosts in one process load
/// and unload the same group). So we run the same check against a fresh `CheckingGlobals` that
/// lives only for this call, then initialise the module through the unchecked path.
///
/// The check walks both type graphs (~1 ms a plugin, most of a load's CPU after hashing) and its
/// verdict depends only on the plugin's bytes and the host's: once passed, `remembered` (see
/// [`layout_checked`]) records it, and the same content is not checked again by the same host
/// build, in this process or the next (a restart, a swap back to a version).
fn check_root_module(
    path: &Path,
    header: &'static LibHeader,
    remembered: &Option<PathBuf>,
) -> Result<PluginModuleRef, LoadError> {
    let incompatible = |detail: String| LoadError::Incompatible { path: path.to_owned(), detail };
    let layout = match header.root_mod_consts().layout() {
        IsLayoutChecked::Yes(layout) => layout,
        IsLayoutChecked::No => return Err(incompatible("the library was exported without a layout to check".into())),
    };
    if !remembered.as_ref().is_some_and(|marker| marker.exists()) {
        let globals = CheckingGlobals::new();
        let checked = check_layout_compatibility_with_globals(<PluginModuleRef as StableAbi>::LAYOUT, layout, &globals)
            // Format now: the error holds references into the library.
            .map_err(|e| e.to_string());
        drop(globals);
        if let Err(full) = checked {
            tracing::debug!(path = %path.display(), report = %full, "abi_stable layout report");
            return Err(incompatible(summarize_abi_report(&full)));
        }
        if let Some(marker) = remembered {
            // Best effort: without it the next load checks again.
            let _ =
                marker.parent().map(std::fs::create_dir_all).transpose().and_then(|_| std::fs::File::create(marker));
        }
    }
    // SAFETY: the layout was checked just above against the type we transmute to, or by this
    // same host build on these same bytes (the marker is named by both).
    unsafe { header.init_root_module_with_unchecked_layout::<PluginModuleRef>() }
        .map_err(|e| incompatible(e.to_string()))
}

/// abi_stable's incompatibility report is a full dump of both layouts; its verdict is in the
/// `Error:` paragraphs at the end. Keep those, on one line.
fn summarize_abi_report(report: &str) -> String {
    let Some(start) = report.find("\nError:") else {
        return report.lines().map(str::trim).filter(|l| !l.is_empty()).take(3).collect::<Vec<_>>().join(" ");
    };
    let verdict: Vec<&str> = report[start..].lines().map(str::trim).filter(|l| !l.is_empty()).take(12).collect();
    format!("{} (run with log = \"debug\" for abi_stable's full layout report)", verdict.join(" "))
}

/// Lowers the calling thread's scheduling priority to `nice` (Linux: the nice value is per
/// thread). The hot-swap worker runs at a lower priority so that loading a plugin (reading and
/// hashing megabytes, `dlopen`) never takes the CPU from requests.
pub fn lower_thread_priority(nice: i32) -> std::io::Result<()> {
    // SAFETY: `setpriority` only reads its integer arguments; with `PRIO_PROCESS` and `who = 0`
    // glibc/NPTL applies it to the calling thread alone.
    let r = unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, nice) };
    if r == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

impl LoadedPlugin {
    /// Creates the group (running its init hook) with `host` as its host handle.
    pub async fn instantiate(self: &std::sync::Arc<Self>, host: HostHandle) -> Result<PluginInstance, LoadError> {
        let err = |message: String| LoadError::Instantiate {
            path: self.source.clone(),
            group: self.manifest.name.clone(),
            message,
        };
        let fut = (self.module.instantiate())(InstantiateArgs { host });
        match tokio::time::timeout(INIT_TIMEOUT, fut).await {
            Err(_) => Err(err(format!("init hook did not finish within {}s", INIT_TIMEOUT.as_secs()))),
            Ok(RResult::RErr(e)) => Err(err(describe_error(&e))),
            Ok(RResult::ROk(group)) => Ok(PluginInstance { group, plugin: self.clone() }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A real ELF file (the loader's completeness check reads its headers), copied to `dir`.
    fn elf_in(dir: &Path, name: &str) -> PathBuf {
        let file = dir.join(name);
        std::fs::copy("/proc/self/exe", &file).expect("copy the test binary");
        file
    }

    #[test]
    fn an_unchanged_file_is_hashed_once_and_a_changed_one_again() {
        let dir = std::env::temp_dir().join(format!("berth-loader-known-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let copies = dir.join("copies");
        std::fs::create_dir_all(&copies).unwrap();
        let file = elf_in(&dir, "libplugin.so");

        // Just written: its times are too fresh to trust, so nothing is remembered.
        let (copy, sha256) = private_copy(&file, &copies, None).unwrap();
        assert!(known_copy(&file, &copies).is_none(), "a file written this instant must be hashed each time");

        // Settled: remembered, with its private copy; another copy dir does not share it.
        std::thread::sleep(known::SETTLED + Duration::from_millis(100));
        assert_eq!(private_copy(&file, &copies, None).unwrap(), (copy.clone(), sha256.clone()));
        assert_eq!(known_copy(&file, &copies), Some((copy.clone(), sha256.clone())));
        assert!(known_copy(&file, &dir).is_none());

        // A restarted process knows it too, from the copy directory.
        known::forget_all();
        assert_eq!(known_copy(&file, &copies), Some((copy.clone(), sha256.clone())));

        // A pin that does not match is refused without reading the file again.
        let wrong = "0".repeat(64);
        match load_pinned(&file, &copies, Some(&wrong)) {
            Err(LoadError::Sha256Mismatch { actual, .. }) => assert_eq!(actual, sha256),
            other => panic!("expected a sha256 mismatch, got {:?}", other.map(|p| p.sha256)),
        }

        // The source rewritten in place: read and hashed again, a new copy.
        let mut bytes = std::fs::read(&file).unwrap();
        bytes.extend_from_slice(b"changed");
        std::fs::write(&file, &bytes).unwrap();
        assert!(known_copy(&file, &copies).is_none(), "a rewritten file must not keep its old hash");
        let (new_copy, new_sha256) = private_copy(&file, &copies, None).unwrap();
        assert_ne!(new_sha256, sha256);
        assert_ne!(new_copy, copy);

        // The private copy touched: no longer trusted either.
        std::thread::sleep(known::SETTLED + Duration::from_millis(100));
        private_copy(&file, &copies, None).unwrap();
        assert!(known_copy(&file, &copies).is_some());
        std::fs::write(&new_copy, b"tampered").unwrap();
        assert!(known_copy(&file, &copies).is_none(), "a private copy changed since must not be opened");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
