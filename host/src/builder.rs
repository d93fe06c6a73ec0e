//! Builds function-group crates with cargo and finds the plugin library each produced.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};

use serde::Deserialize;

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("group crate `{dir}` has no Cargo.toml; `path` must name a crate directory")]
    NotACrate { dir: PathBuf },
    #[error("could not run cargo to build `{dir}`: {source}; is cargo on PATH (or $CARGO set)?")]
    Spawn { dir: PathBuf, source: std::io::Error },
    #[error("cargo failed to build `{dir}`{}", errors_text(.errors))]
    Failed {
        dir: PathBuf,
        /// The errors, one line each (`src/lib.rs:12:5: error[E0425]: ...`), when diagnostics
        /// are compact ([`set_compact_diagnostics`]); else cargo printed them above.
        errors: Vec<String>,
    },
    #[error(
        "`{dir}` built, but produced no cdylib; add `[lib] crate-type = [\"cdylib\", \"rlib\"]` to its Cargo.toml"
    )]
    NoCdylib { dir: PathBuf },
}

fn errors_text(errors: &[String]) -> String {
    if errors.is_empty() {
        " (its errors are above); fix them and run again".to_owned()
    } else {
        format!(":\n  {}", errors.join("\n  "))
    }
}

/// Compact diagnostics (`berth dev`): cargo's own output is not shown; a failed build's
/// [`BuildError::Failed`] carries its errors as one `file:line:col: error: message` line each.
static COMPACT: AtomicBool = AtomicBool::new(false);

/// Switches this process's builds to compact diagnostics.
pub fn set_compact_diagnostics(on: bool) {
    COMPACT.store(on, Ordering::Relaxed);
}

#[derive(Deserialize)]
struct Message {
    reason: String,
    #[serde(default)]
    manifest_path: Option<PathBuf>,
    #[serde(default)]
    target: Option<Target>,
    #[serde(default)]
    filenames: Vec<PathBuf>,
    /// A `compiler-message`'s diagnostic.
    #[serde(default)]
    message: Option<Diagnostic>,
}

#[derive(Deserialize)]
struct Diagnostic {
    level: String,
    #[serde(default)]
    rendered: Option<String>,
}

#[derive(Deserialize)]
struct Target {
    crate_types: Vec<String>,
}

/// The cargo executable: `$CARGO` when run under cargo, else `cargo` from `PATH`.
fn cargo() -> PathBuf {
    std::env::var_os("CARGO").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("cargo"))
}

/// Builds the crate in `dir` with `profile` (`release` or `dev`) and returns the path of its
/// cdylib. Cargo's own diagnostics go to stderr. Blocking: call it from `spawn_blocking`.
pub fn build_group_crate(dir: &Path, profile: &str) -> Result<PathBuf, BuildError> {
    build_group_crate_with(dir, profile, false)
}

/// [`build_group_crate`], optionally with cargo's progress lines silenced.
pub fn build_group_crate_with(dir: &Path, profile: &str, quiet: bool) -> Result<PathBuf, BuildError> {
    let manifest = dir.join("Cargo.toml");
    if !manifest.is_file() {
        return Err(BuildError::NotACrate { dir: dir.to_owned() });
    }
    let manifest = manifest.canonicalize().unwrap_or(manifest);
    tracing::info!(crate_dir = %dir.display(), profile, "building function group");
    let compact = COMPACT.load(Ordering::Relaxed);
    let format =
        if compact { "--message-format=json-diagnostic-short" } else { "--message-format=json-render-diagnostics" };
    let mut child = Command::new(cargo())
        .args(["build", "--lib", format, "--profile", profile, "--manifest-path"])
        .arg(&manifest)
        .args((quiet || compact).then_some("--quiet"))
        .stdout(Stdio::piped())
        .stderr(if compact { Stdio::piped() } else { Stdio::inherit() })
        .spawn()
        .map_err(|source| BuildError::Spawn { dir: dir.to_owned(), source })?;
    // Cargo's own errors (a broken Cargo.toml, a dependency that cannot be fetched) are on its
    // stderr, not in the JSON.
    let stderr = child.stderr.take().map(|e| {
        std::thread::spawn(move || {
            BufReader::new(e).lines().map_while(Result::ok).filter(|l| l.starts_with("error")).collect::<Vec<String>>()
        })
    });
    let stdout = child.stdout.take().expect("stdout was piped");
    let mut cdylib = None;
    let mut errors = Vec::new();
    for line in BufReader::new(stdout).lines() {
        let Ok(line) = line else { break };
        let Ok(msg) = serde_json::from_str::<Message>(&line) else {
            continue;
        };
        if msg.reason == "compiler-message" {
            if let Some(d) = msg.message.filter(|d| d.level == "error") {
                errors.extend(d.rendered.map(|r| r.trim_end().to_owned()));
            }
            continue;
        }
        if msg.reason != "compiler-artifact" || msg.manifest_path.as_deref() != Some(manifest.as_path()) {
            continue;
        }
        if msg.target.is_some_and(|t| t.crate_types.iter().any(|c| c == "cdylib")) {
            cdylib =
                msg.filenames.into_iter().find(|f| f.extension().is_some_and(|e| e == std::env::consts::DLL_EXTENSION));
        }
    }
    let status = child.wait().map_err(|source| BuildError::Spawn { dir: dir.to_owned(), source })?;
    if let Some(e) = stderr.and_then(|t| t.join().ok()) {
        // "error: could not compile `x` (lib) due to 1 previous error" repeats what is above.
        errors.extend(e.into_iter().filter(|l| !l.starts_with("error: could not compile")));
    }
    if !status.success() {
        return Err(BuildError::Failed { dir: dir.to_owned(), errors });
    }
    cdylib.ok_or_else(|| BuildError::NoCdylib { dir: dir.to_owned() })
}
