//! `berth package`: a deployable artifact per platform — the host binary under the name the
//! platform starts (`bootstrap`, `scf_bootstrap`), the groups' plugins, their migrations and a
//! `berth.toml` with the platform's defaults; a zip for the function platforms, a container
//! build context (glibc base, non-root) for kubeless, Knative and plain containers.
//!
//! Every packaged plugin is pinned: the packaged `berth.toml` gives each group the `sha256` of
//! the file under `plugins/` (after stripping), so a package whose plugin was altered refuses to
//! serve it. A group already pinned in the source `berth.toml` is checked against its pin first.

use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::config::{BerthConfig, BuildProfile};

/// What `berth package` can produce.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Target {
    /// AWS Lambda, custom runtime provided.al2023: a zip with `bootstrap` at its root.
    Lambda,
    /// Alibaba Cloud FC 3.0 custom runtime: a zip with `bootstrap` at its root.
    Fc,
    /// Tencent SCF event function (custom runtime): a zip with `bootstrap` at its root.
    Scf,
    /// Tencent SCF web function: a zip with `scf_bootstrap` at its root.
    ScfWeb,
    /// kubeless-style Kubernetes function: a container build context.
    Kubeless,
    /// Knative Service: a container build context.
    Knative,
    /// Berth standalone in a container: a container build context.
    Container,
}

impl Target {
    pub fn name(self) -> &'static str {
        match self {
            Target::Lambda => "lambda",
            Target::Fc => "fc",
            Target::Scf => "scf",
            Target::ScfWeb => "scf-web",
            Target::Kubeless => "kubeless",
            Target::Knative => "knative",
            Target::Container => "container",
        }
    }

    /// The platform the package runs as.
    pub fn platform(self) -> crate::platform::Platform {
        use crate::platform::Platform;
        match self {
            Target::Lambda => Platform::Lambda,
            Target::Fc => Platform::Fc,
            Target::Scf => Platform::Scf,
            Target::ScfWeb => Platform::ScfWeb,
            Target::Kubeless => Platform::Kubeless,
            Target::Knative => Platform::Knative,
            Target::Container => Platform::Standalone,
        }
    }

    /// The name the host binary gets: what the platform starts.
    pub fn entry(self) -> &'static str {
        match self {
            Target::Lambda | Target::Fc | Target::Scf => "bootstrap",
            Target::ScfWeb => "scf_bootstrap",
            Target::Kubeless | Target::Knative | Target::Container => "berth",
        }
    }

    /// Whether the artifact is a zip (else a container build context).
    pub fn is_zip(self) -> bool {
        matches!(self, Target::Lambda | Target::Fc | Target::Scf | Target::ScfWeb)
    }

    /// What to do with the artifact.
    fn upload(self, artifact: &Path) -> String {
        let a = artifact.display();
        match self {
            Target::Lambda => format!(
                "upload: aws lambda create-function --function-name <name> --runtime provided.al2023 --handler bootstrap \
                 --architectures {} --role <role-arn> --zip-file fileb://{a}",
                if cfg!(target_arch = "aarch64") { "arm64" } else { "x86_64" }
            ),
            Target::Fc => format!("upload: {a} as the code of an FC 3.0 custom-runtime function (startup command: /code/bootstrap, port 9000)"),
            Target::Scf => format!("upload: {a} as the code of an SCF event function with runtime CustomRuntime"),
            Target::ScfWeb => format!("upload: {a} as the code of an SCF web function (it starts scf_bootstrap, port 9000)"),
            Target::Kubeless | Target::Knative | Target::Container => {
                format!("build and push: docker build -t <registry>/<image>:<tag> {a} && docker push <registry>/<image>:<tag>")
            }
        }
    }
}

/// What to package, and how.
#[derive(Debug, Clone)]
pub struct Options {
    pub config: PathBuf,
    pub target: Target,
    /// Cargo profile of the host binary (`production` by default). Groups build with `release`
    /// for `production` and `release`, with `dev` for `dev`.
    pub profile: String,
    /// Where the artifact goes.
    pub out: PathBuf,
    /// A host binary to package instead of building one.
    pub host_binary: Option<PathBuf>,
    pub quiet: bool,
}

/// The artifact written.
#[derive(Debug)]
pub struct Packaged {
    pub path: PathBuf,
    pub bytes: u64,
    pub files: Vec<String>,
    /// The newest glibc symbol version the binaries need (`2.34`), when found.
    pub glibc: Option<String>,
    pub upload: String,
}

/// Why packaging failed.
#[derive(Debug, thiserror::Error)]
pub enum PackageError {
    #[error(transparent)]
    Config(Box<crate::config::ConfigError>),
    #[error("cannot build group `{group}`: {source}")]
    Build { group: String, source: crate::builder::BuildError },
    #[error("cannot build the host binary (cargo build --profile {profile} -p berth-host): {message}; pass --host-binary to package one already built")]
    Host { profile: String, message: String },
    #[error("{what} `{path}`: {source}")]
    Io { what: &'static str, path: PathBuf, source: std::io::Error },
    #[error("cannot write the zip `{path}`: {message}")]
    Zip { path: PathBuf, message: String },
    #[error("berth.toml cannot be rewritten for the package: {0}")]
    Toml(String),
    #[error(transparent)]
    Pin(Box<crate::install::GroupError>),
}

/// A group's plugin as the package holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Placed {
    /// `plugins/<name>.so`, relative to the packaged berth.toml.
    file: String,
    /// `migrations/<name>`, when the group has migrations.
    migrations: Option<String>,
    /// The packaged file's sha256 (what the packaged entry pins).
    sha256: String,
}

fn io<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> PackageError + 'a {
    move |source| PackageError::Io { what, path: path.to_owned(), source }
}

/// Packages the groups of `opts.config` for `opts.target`.
pub fn package(opts: &Options) -> Result<Packaged, PackageError> {
    let text = fs::read_to_string(&opts.config).map_err(io("cannot read the config", &opts.config))?;
    let base = opts.config.parent().map(Path::to_path_buf).unwrap_or_default();
    let no_env = std::collections::BTreeMap::<String, String>::new();
    let config = BerthConfig::parse(&text, &base, &no_env).map_err(|e| PackageError::Config(Box::new(e)))?;
    let target = opts.target;
    let staging = opts.out.join(format!(".berth-{}.staging", target.name()));
    if staging.exists() {
        fs::remove_dir_all(&staging).map_err(io("cannot clear", &staging))?;
    }
    fs::create_dir_all(staging.join("plugins")).map_err(io("cannot create", &staging))?;

    // The groups: built (or taken as they are) and copied under plugins/.
    let group_profile = if opts.profile == "dev" { BuildProfile::Dev } else { BuildProfile::Release };
    let mut placed = Vec::new();
    for (i, g) in config.groups.iter().enumerate() {
        let file = match (&g.path, &g.file) {
            (Some(dir), _) => crate::builder::build_group_crate_with(dir, group_profile.as_str(), opts.quiet)
                .map_err(|source| PackageError::Build { group: g.label(), source })?,
            (None, Some(file)) => file.clone(),
            // A `url` group is fetched where it runs, as its entry says.
            (None, None) => {
                placed.push(None);
                continue;
            }
        };
        // A pinned group is packaged only with the plugin it pins.
        if let Some(pin) = crate::install::Pin::of_config(g) {
            crate::install::verify_file(&config.data_dir, g, &pin, &file)
                .map_err(|e| PackageError::Pin(Box::new(e)))?;
        }
        let name = file.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| format!("group{i}.so"));
        let dest = staging.join("plugins").join(&name);
        fs::copy(&file, &dest).map_err(io("cannot copy the plugin", &file))?;
        strip(&dest, "--strip-unneeded");
        let sha256 = crate::install::sha256_of_file(&dest).map_err(io("cannot read the packaged plugin", &dest))?;
        let migrations = match crate::install::migrations_dir(g) {
            Some(dir) if dir.is_dir() => {
                let rel = format!("migrations/{}", name.trim_end_matches(".so"));
                copy_dir(&dir, &staging.join(&rel))?;
                Some(rel)
            }
            _ => None,
        };
        placed.push(Some(Placed { file: format!("plugins/{name}"), migrations, sha256 }));
    }

    // The static front ends, under static/ (their mounts point there).
    let mut statics = Vec::new();
    for (i, mount) in config.statics.iter().enumerate() {
        let name = mount.dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "site".into());
        let rel = format!("static/{i}-{name}");
        let root = mount.dir.canonicalize().map_err(io("cannot read the static dir", &mount.dir))?;
        copy_confined(&root, &root, &staging.join(&rel))?;
        statics.push(rel);
    }

    // The host binary, named as the platform starts it.
    let host = match &opts.host_binary {
        Some(p) => p.clone(),
        None => build_host(&opts.profile, opts.quiet)?,
    };
    let entry = staging.join(target.entry());
    fs::copy(&host, &entry).map_err(io("cannot copy the host binary", &host))?;
    strip(&entry, "--strip-all");
    set_executable(&entry)?;
    let glibc = glibc_needed(&[&entry]);

    // The group list, when berth.toml has one: packaged beside it (a deployment may still
    // point BERTH_GROUPS_FILE at a mounted one, as the Helm chart does).
    if let Some(list) = &config.groups_file {
        fs::copy(list, staging.join(PACKAGED_LIST)).map_err(io("cannot copy the group list", list))?;
    }
    // berth.toml with the platform's defaults.
    let packaged_config = packaged_toml(&text, target, &placed, &statics, config.groups_file.is_some())?;
    fs::write(staging.join("berth.toml"), packaged_config).map_err(io("cannot write", &staging))?;

    let mut files = list_files(&staging)?;
    files.sort();
    let path = if target.is_zip() {
        let zip = opts.out.join(format!("berth-{}.zip", target.name()));
        write_zip(&staging, &files, target.entry(), &zip)?;
        fs::remove_dir_all(&staging).map_err(io("cannot clear", &staging))?;
        zip
    } else {
        fs::write(staging.join("Dockerfile"), dockerfile(target)).map_err(io("cannot write", &staging))?;
        fs::write(
            staging.join(".dockerignore"),
            "*\n!berth\n!berth.toml\n!groups.toml\n!plugins\n!migrations\n!static\n",
        )
        .map_err(io("cannot write", &staging))?;
        files.push("Dockerfile".into());
        let dir = opts.out.join(format!("berth-{}", target.name()));
        if dir.exists() {
            fs::remove_dir_all(&dir).map_err(io("cannot clear", &dir))?;
        }
        fs::rename(&staging, &dir).map_err(io("cannot move the build context to", &dir))?;
        dir
    };
    let bytes = if target.is_zip() {
        fs::metadata(&path).map(|m| m.len()).unwrap_or(0)
    } else {
        files.iter().filter_map(|f| fs::metadata(path.join(f)).ok()).map(|m| m.len()).sum()
    };
    let upload = target.upload(&path);
    Ok(Packaged { path, bytes, files, glibc, upload })
}

/// Builds the host binary with `profile` from the source tree this berth was built from.
fn build_host(profile: &str, quiet: bool) -> Result<PathBuf, PackageError> {
    let fail = |message: String| PackageError::Host { profile: profile.to_owned(), message };
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).parent().map(Path::to_path_buf).unwrap_or_default();
    if !workspace.join("Cargo.toml").is_file() {
        return Err(fail(format!("the Berth source tree it was built from ({}) is not here", workspace.display())));
    }
    let status = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
        .args(["build", "-p", "berth-host", "--bin", "berth", "--profile", profile])
        .args(quiet.then_some("--quiet"))
        .current_dir(&workspace)
        .status()
        .map_err(|e| fail(e.to_string()))?;
    if !status.success() {
        return Err(fail(format!("cargo exited with {status}")));
    }
    let dir = if profile == "dev" { "debug" } else { profile };
    let target_dir =
        std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| workspace.join("target"));
    Ok(target_dir.join(dir).join("berth"))
}

/// Where a package keeps berth.toml's group list.
const PACKAGED_LIST: &str = "groups.toml";

/// `berth.toml` as the package carries it: groups as files under `plugins/`, each pinned by
/// its sha256, the platform named, its defaults left to it.
fn packaged_toml(
    text: &str,
    target: Target,
    placed: &[Option<Placed>],
    statics: &[String],
    has_list: bool,
) -> Result<String, PackageError> {
    let mut doc: toml::Table = text.parse().map_err(|e: toml::de::Error| PackageError::Toml(e.to_string()))?;
    if has_list {
        doc.insert("groups_file".into(), toml::Value::String(PACKAGED_LIST.into()));
    }
    if let Some(toml::Value::Array(groups)) = doc.get_mut("groups") {
        for (g, placed) in groups.iter_mut().zip(placed) {
            let Some(Placed { file, migrations, sha256 }) = placed else { continue };
            if let toml::Value::Table(t) = g {
                t.remove("path");
                t.insert("file".into(), toml::Value::String(file.clone()));
                t.insert("sha256".into(), toml::Value::String(sha256.clone()));
                if let Some(m) = migrations {
                    t.insert("migrations".into(), toml::Value::String(m.clone()));
                }
            }
        }
    }
    if let Some(toml::Value::Array(mounts)) = doc.get_mut("static") {
        for (mount, dir) in mounts.iter_mut().zip(statics) {
            if let toml::Value::Table(t) = mount {
                t.insert("dir".into(), toml::Value::String(dir.clone()));
            }
        }
    }
    let platform = target.platform();
    if platform.data_dir().is_some() {
        // The platform's writable directory (/tmp) applies.
        doc.remove("data_dir");
    }
    doc.remove("build");
    let table = |doc: &mut toml::Table, name: &str| -> Result<toml::Table, PackageError> {
        match doc.remove(name) {
            None => Ok(toml::Table::new()),
            Some(toml::Value::Table(t)) => Ok(t),
            Some(_) => Err(PackageError::Toml(format!("`{name}` is not a table"))),
        }
    };
    if platform.freezes() {
        let mut admin = table(&mut doc, "admin")?;
        admin.insert("enabled".into(), toml::Value::Boolean(false));
        doc.insert("admin".into(), toml::Value::Table(admin));
    }
    if target == Target::Container {
        let mut server = table(&mut doc, "server")?;
        server.insert("listen".into(), toml::Value::String("0.0.0.0:8080".into()));
        // Off loopback `/invoke/` needs a token (berth refuses to start otherwise): without one
        // configured, the container serves no direct invoke (BERTH_SERVER__DIRECT_INVOKE=true
        // with BERTH_SERVER__INVOKE_TOKEN turns it on).
        if !server.contains_key("invoke_token") && !server.contains_key("direct_invoke") {
            server.insert("direct_invoke".into(), toml::Value::Boolean(false));
        }
        doc.insert("server".into(), toml::Value::Table(server));
        if !doc.contains_key("data_dir")
            || doc.get("data_dir").and_then(|d| d.as_str()).is_some_and(|d| !d.starts_with('/'))
        {
            doc.insert("data_dir".into(), toml::Value::String("/var/lib/berth".into()));
        }
    }
    let mut section = table(&mut doc, "platform")?;
    section.insert("name".into(), toml::Value::String(platform.name().into()));
    doc.insert("platform".into(), toml::Value::Table(section));
    let body = toml::to_string(&doc).map_err(|e| PackageError::Toml(e.to_string()))?;
    Ok(format!(
        "# Written by `berth package --target {}`: the groups are the plugins under plugins/.\n{body}",
        target.name()
    ))
}

/// `ops/container/Dockerfile`, the image Berth's own build and every package context share.
const DOCKERFILE: &str = include_str!("../../ops/container/Dockerfile");
/// The line of [`DOCKERFILE`] that picks where the binary comes from.
const FROM_SOURCE: &str = "ARG BERTH_FROM=source";

/// The container build context's Dockerfile: `ops/container/Dockerfile` with its stage set to
/// take the binary, `berth.toml`, `plugins/` and `migrations/` from the context (a glibc base:
/// plugins are loaded with dlopen, which static musl cannot do; a non-root user; port 8080).
fn dockerfile(target: Target) -> String {
    // The line itself, not a comment that names it.
    let body: String = DOCKERFILE
        .lines()
        .map(|line| if line == FROM_SOURCE { "ARG BERTH_FROM=context" } else { line })
        .flat_map(|line| [line, "\n"])
        .collect();
    format!("# Written by `berth package --target {}` from ops/container/Dockerfile.\n{body}", target.name())
}

fn copy_dir(from: &Path, to: &Path) -> Result<(), PackageError> {
    fs::create_dir_all(to).map_err(io("cannot create", to))?;
    for entry in fs::read_dir(from).map_err(io("cannot read", from))? {
        let entry = entry.map_err(io("cannot read", from))?;
        let path = entry.path();
        if path.is_dir() {
            copy_dir(&path, &to.join(entry.file_name()))?;
        } else {
            fs::copy(&path, to.join(entry.file_name())).map_err(io("cannot copy", &path))?;
        }
    }
    Ok(())
}

/// Copies a static front end: what the host would serve of it, and nothing it would refuse —
/// a symlink that leads out of `root` is left out (with a warning), not copied as its target.
fn copy_confined(root: &Path, from: &Path, to: &Path) -> Result<(), PackageError> {
    fs::create_dir_all(to).map_err(io("cannot create", to))?;
    for entry in fs::read_dir(from).map_err(io("cannot read", from))? {
        let entry = entry.map_err(io("cannot read", from))?;
        let path = entry.path();
        let real = match path.canonicalize() {
            Ok(real) if real.starts_with(root) => real,
            _ => {
                tracing::warn!(file = %path.display(), "left out of the package: a link that leads out of the static dir (the host would refuse it)");
                continue;
            }
        };
        if real.is_dir() {
            if from.starts_with(&real) {
                tracing::warn!(dir = %path.display(), "left out of the package: a link back up its own tree");
                continue;
            }
            copy_confined(root, &real, &to.join(entry.file_name()))?;
        } else {
            fs::copy(&real, to.join(entry.file_name())).map_err(io("cannot copy", &path))?;
        }
    }
    Ok(())
}

fn list_files(root: &Path) -> Result<Vec<String>, PackageError> {
    let mut out = Vec::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in fs::read_dir(&dir).map_err(io("cannot read", &dir))? {
            let path = entry.map_err(io("cannot read", &dir))?.path();
            if path.is_dir() {
                dirs.push(path);
            } else if let Ok(rel) = path.strip_prefix(root) {
                out.push(rel.to_string_lossy().into_owned());
            }
        }
    }
    Ok(out)
}

fn write_zip(root: &Path, files: &[String], entry: &str, out: &Path) -> Result<(), PackageError> {
    let zip_err = |e: zip::result::ZipError| PackageError::Zip { path: out.to_owned(), message: e.to_string() };
    let file = fs::File::create(out).map_err(io("cannot create", out))?;
    let mut zip = zip::ZipWriter::new(file);
    for name in files {
        let mode = if name == entry { 0o755 } else { 0o644 };
        let options = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated)
            .unix_permissions(mode);
        zip.start_file(name.as_str(), options).map_err(zip_err)?;
        let data = fs::read(root.join(name)).map_err(io("cannot read", &root.join(name)))?;
        zip.write_all(&data).map_err(io("cannot write", out))?;
    }
    zip.finish().map_err(zip_err)?;
    Ok(())
}

/// Strips what a deployment does not need (debug info, local symbols); a missing `strip` only
/// leaves the file larger.
fn strip(path: &Path, how: &str) {
    match Command::new("strip").arg(how).arg(path).status() {
        Ok(s) if s.success() => {}
        Ok(s) => tracing::warn!(file = %path.display(), status = %s, "strip failed; packaging the file unstripped"),
        Err(e) => {
            tracing::warn!(file = %path.display(), error = %e, "strip is not installed; packaging the file unstripped")
        }
    }
}

#[cfg(unix)]
fn set_executable(path: &Path) -> Result<(), PackageError> {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(0o755)).map_err(io("cannot make executable", path))
}

#[cfg(not(unix))]
fn set_executable(_: &Path) -> Result<(), PackageError> {
    Ok(())
}

/// The newest `GLIBC_2.x` symbol version named in `files` (what the target's glibc must have).
fn glibc_needed(files: &[&Path]) -> Option<String> {
    let mut best: Option<(u32, u32)> = None;
    for f in files {
        let Ok(bytes) = fs::read(f) else { continue };
        for (i, _) in bytes.windows(8).enumerate().filter(|(_, w)| w == b"GLIBC_2.") {
            let rest = &bytes[i + 8..bytes.len().min(i + 14)];
            let digits: String =
                rest.iter().take_while(|b| b.is_ascii_digit() || **b == b'.').map(|b| *b as char).collect();
            let mut parts = digits.split('.').filter_map(|p| p.parse::<u32>().ok());
            if let Some(minor) = parts.next() {
                let v = (minor, parts.next().unwrap_or(0));
                best = best.max(Some(v));
            }
        }
    }
    best.map(|(minor, patch)| if patch > 0 { format!("2.{minor}.{patch}") } else { format!("2.{minor}") })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_package_context_builds_the_shared_image_from_the_context() {
        let d = dockerfile(Target::Knative);
        assert!(d.lines().any(|l| l == "ARG BERTH_FROM=context"), "{d}");
        assert!(!d.lines().any(|l| l == FROM_SOURCE), "{d}");
        assert!(d.contains("FROM debian:bookworm-slim") && d.contains("USER 65532:65532"), "{d}");
        assert!(d.contains(r#"ENTRYPOINT ["/usr/local/bin/berth"]"#), "{d}");
    }

    #[test]
    fn the_packaged_config_names_the_platform_and_points_at_the_plugins() {
        let text = "data_dir = \".berth\"\n[build]\nprofile = \"dev\"\n[[groups]]\npath = \"examples/todo\"\n[[groups]]\nname = \"far\"\nurl = \"https://a.example/far.so\"\nsha256 = \"ab\"\n[[groups]]\nfile = \"x/libhello.so\"\n[services.db]\nkind = \"sqlite\"\n";
        let (todo_sha, hello_sha) = ("a".repeat(64), "b".repeat(64));
        let placed = vec![
            Some(Placed {
                file: "plugins/libtodo.so".to_owned(),
                migrations: Some("migrations/libtodo".to_owned()),
                sha256: todo_sha.clone(),
            }),
            None,
            Some(Placed { file: "plugins/libhello.so".to_owned(), migrations: None, sha256: hello_sha.clone() }),
        ];
        let out = packaged_toml(text, Target::Lambda, &placed, &[], false).unwrap();
        let doc: toml::Table = out.parse().unwrap();
        assert!(!doc.contains_key("data_dir") && !doc.contains_key("build"), "{out}");
        assert_eq!(doc["groups"][0]["file"].as_str(), Some("plugins/libtodo.so"));
        assert!(doc["groups"][0].get("path").is_none());
        assert_eq!(doc["groups"][0]["migrations"].as_str(), Some("migrations/libtodo"));
        assert_eq!(
            doc["groups"][1]["url"].as_str(),
            Some("https://a.example/far.so"),
            "a url group is fetched where it runs"
        );
        assert!(doc["groups"][1].get("file").is_none());
        assert_eq!(doc["groups"][2]["file"].as_str(), Some("plugins/libhello.so"));
        assert_eq!(doc["groups"][0]["sha256"].as_str(), Some(todo_sha.as_str()), "each packaged plugin is pinned");
        assert_eq!(doc["groups"][2]["sha256"].as_str(), Some(hello_sha.as_str()));
        assert_eq!(doc["groups"][1]["sha256"].as_str(), Some("ab"), "a url group keeps its own pin");
        assert_eq!(doc["admin"]["enabled"].as_bool(), Some(false));
        assert_eq!(doc["platform"]["name"].as_str(), Some("lambda"));
        assert_eq!(doc["services"]["db"]["kind"].as_str(), Some("sqlite"));
        let out = packaged_toml(text, Target::Container, &placed, &[], false).unwrap();
        let doc: toml::Table = out.parse().unwrap();
        assert_eq!(doc["server"]["listen"].as_str(), Some("0.0.0.0:8080"));
        assert_eq!(doc["server"]["direct_invoke"].as_bool(), Some(false), "no invoke token: no /invoke/ off loopback");
        assert_eq!(doc["data_dir"].as_str(), Some("/var/lib/berth"));
        let tokened = format!("{text}[server]\ninvoke_token = \"t0ken-0123456789\"\n");
        let out = packaged_toml(&tokened, Target::Container, &placed, &[], false).unwrap();
        let doc: toml::Table = out.parse().unwrap();
        assert!(doc["server"].get("direct_invoke").is_none(), "a configured token keeps /invoke/ on");
        assert!(doc.get("admin").is_none(), "a long-lived container keeps its admin API settings");
        assert!(doc.get("groups_file").is_none());
        let listed = format!("groups_file = \"/home/dev/shop/groups.toml\"\n{text}");
        let out = packaged_toml(&listed, Target::Container, &placed, &[], true).unwrap();
        let doc: toml::Table = out.parse().unwrap();
        assert_eq!(doc["groups_file"].as_str(), Some("groups.toml"), "the list is packaged beside berth.toml");
    }

    #[test]
    fn static_front_ends_are_packed_without_links_that_lead_out() {
        let text = "[[static]]\nprefix = \"/\"\ndir = \"web/dist\"\nspa = true\n";
        let out = packaged_toml(text, Target::Container, &[], &["static/0-dist".to_owned()], false).unwrap();
        let doc: toml::Table = out.parse().unwrap();
        assert_eq!(doc["static"][0]["dir"].as_str(), Some("static/0-dist"), "{out}");
        assert_eq!(doc["static"][0]["spa"].as_bool(), Some(true));

        let tmp = tempfile::tempdir().unwrap();
        let site = tmp.path().join("dist");
        fs::create_dir_all(site.join("assets")).unwrap();
        fs::write(site.join("index.html"), "<h1>hi</h1>").unwrap();
        fs::write(site.join("assets/app.js"), "1").unwrap();
        fs::write(tmp.path().join("secret"), "no").unwrap();
        std::os::unix::fs::symlink(tmp.path().join("secret"), site.join("leak.txt")).unwrap();
        std::os::unix::fs::symlink(site.join("index.html"), site.join("home.html")).unwrap();
        std::os::unix::fs::symlink(&site, site.join("assets/loop")).unwrap();
        let to = tmp.path().join("packed");
        let root = site.canonicalize().unwrap();
        copy_confined(&root, &root, &to).unwrap();
        let mut files = list_files(&to).unwrap();
        files.sort();
        assert_eq!(files, ["assets/app.js", "home.html", "index.html"]);
    }

    #[test]
    fn the_glibc_a_binary_needs_is_its_newest_symbol_version() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("bin");
        fs::write(&f, b"\0GLIBC_2.17\0GLIBC_2.34\0GLIBC_2.2.5\0").unwrap();
        assert_eq!(glibc_needed(&[&f]).as_deref(), Some("2.34"));
    }
}
