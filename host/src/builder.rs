//! Builds function-group crates with cargo and finds the plugin library each produced.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde::Deserialize;

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("group crate `{dir}` has no Cargo.toml; `path` must name a crate directory")]
    NotACrate { dir: PathBuf },
    #[error("could not run cargo to build `{dir}`: {source}; is cargo on PATH (or $CARGO set)?")]
    Spawn { dir: PathBuf, source: std::io::Error },
    #[error("cargo failed to build `{dir}` (its errors are above); fix them and run again")]
    Failed { dir: PathBuf },
    #[error(
        "`{dir}` built, but produced no cdylib; add `[lib] crate-type = [\"cdylib\", \"rlib\"]` to its Cargo.toml"
    )]
    NoCdylib { dir: PathBuf },
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
    let mut child = Command::new(cargo())
        .args(["build", "--lib", "--message-format=json-render-diagnostics", "--profile", profile, "--manifest-path"])
        .arg(&manifest)
        .args(quiet.then_some("--quiet"))
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|source| BuildError::Spawn { dir: dir.to_owned(), source })?;
    let stdout = child.stdout.take().expect("stdout was piped");
    let mut cdylib = None;
    for line in BufReader::new(stdout).lines() {
        let Ok(line) = line else { break };
        let Ok(msg) = serde_json::from_str::<Message>(&line) else {
            continue;
        };
        if msg.reason != "compiler-artifact" || msg.manifest_path.as_deref() != Some(manifest.as_path()) {
            continue;
        }
        if msg.target.is_some_and(|t| t.crate_types.iter().any(|c| c == "cdylib")) {
            cdylib =
                msg.filenames.into_iter().find(|f| f.extension().is_some_and(|e| e == std::env::consts::DLL_EXTENSION));
        }
    }
    let status = child.wait().map_err(|source| BuildError::Spawn { dir: dir.to_owned(), source })?;
    if !status.success() {
        return Err(BuildError::Failed { dir: dir.to_owned() });
    }
    cdylib.ok_or_else(|| BuildError::NoCdylib { dir: dir.to_owned() })
}
