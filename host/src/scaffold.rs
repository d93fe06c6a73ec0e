//! `berth new`: writes a complete function-group crate from a template — its own `Cargo.toml`
//! (the SDK by path and version), a `berth.toml` serving it on embedded defaults, `src/lib.rs`,
//! a test through the harness, a README and a `.gitignore`. The templates are in
//! `host/templates/new/` (minijinja), compiled into the binary.

use std::path::{Path, PathBuf};

/// What a new group starts from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Template {
    /// HTTP routes (the default).
    Http,
    /// A timer (every 10 s) counting its runs in a key-value store.
    Timer,
    /// A queue consumer (Redis Streams by default) and a route that publishes to it.
    Queue,
    /// Object-storage events: objects put into a bucket are indexed.
    Blob,
    /// A group exporting a service to other groups, with its typed client.
    Service,
    /// A group consuming another group's service (Berth's first-party `users`).
    Consumer,
}

impl Template {
    pub fn as_str(self) -> &'static str {
        match self {
            Template::Http => "http",
            Template::Timer => "timer",
            Template::Queue => "queue",
            Template::Blob => "blob",
            Template::Service => "service",
            Template::Consumer => "consumer",
        }
    }

    /// Its `src/lib.rs`, its test, and the sample event file of a template whose functions
    /// take events (for `berth invoke --event`).
    fn sources(self) -> (&'static str, &'static str, Option<(&'static str, &'static str)>) {
        macro_rules! kind {
            ($k:literal) => {
                kind!($k, None)
            };
            ($k:literal, $event:literal) => {
                kind!($k, Some(($event, include_str!(concat!("../templates/new/", $k, "/event.json.j2")))))
            };
            ($k:literal, $event:expr) => {
                (
                    include_str!(concat!("../templates/new/", $k, "/lib.rs.j2")),
                    include_str!(concat!("../templates/new/", $k, "/test.rs.j2")),
                    $event,
                )
            };
        }
        match self {
            Template::Http => kind!("http"),
            Template::Timer => kind!("timer", "events/tick.json"),
            Template::Queue => kind!("queue", "events/job.json"),
            Template::Blob => kind!("blob", "events/put.json"),
            Template::Service => kind!("service"),
            Template::Consumer => kind!("consumer"),
        }
    }
}

/// Where the crates a new group depends on by path are: the SDK (and, for `consumer`, the
/// first-party `users` group and its interface).
#[derive(Debug, Clone)]
pub struct Sources {
    pub sdk: PathBuf,
    pub users: PathBuf,
    pub users_api: PathBuf,
}

impl Sources {
    /// The crates of the Berth checkout this binary was built from.
    pub fn built_in() -> Sources {
        let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        Sources { sdk: repo.join("sdk"), users: repo.join("plugins/users"), users_api: repo.join("plugins/users-api") }
    }
}

/// The SDK version a new group requires (this binary's).
pub const SDK_VERSION: &str = env!("CARGO_PKG_VERSION");

#[derive(Debug, thiserror::Error)]
pub enum NewError {
    #[error("`{dir}` exists and is not empty; berth new writes only into a new or empty directory")]
    NotEmpty { dir: PathBuf },
    #[error("`{dir}` exists and is not a directory")]
    NotADirectory { dir: PathBuf },
    #[error("group name `{name}`: {reason}")]
    BadName { name: String, reason: String },
    #[error(
        "the berth SDK is not at `{path}` (this binary was built from a checkout that moved or is \
         gone); pass --sdk <path of the sdk directory of a Berth checkout>"
    )]
    NoSdk { path: PathBuf },
    #[error("the first-party `users` group the consumer template uses is not at `{path}`")]
    NoUsers { path: PathBuf },
    #[error("cannot write `{path}`: {source}")]
    Write { path: PathBuf, source: std::io::Error },
    #[error("template `{template}` file `{file}` did not render: {source}")]
    Render { template: &'static str, file: &'static str, source: minijinja::Error },
}

/// Words that cannot name a group crate: Rust keywords and the crates every group links.
const RESERVED: &[&str] = &[
    "as",
    "async",
    "await",
    "break",
    "const",
    "continue",
    "crate",
    "dyn",
    "else",
    "enum",
    "extern",
    "false",
    "fn",
    "for",
    "if",
    "impl",
    "in",
    "let",
    "loop",
    "match",
    "mod",
    "move",
    "mut",
    "pub",
    "ref",
    "return",
    "self",
    "static",
    "struct",
    "super",
    "trait",
    "true",
    "type",
    "unsafe",
    "use",
    "where",
    "while",
    "abstract",
    "become",
    "box",
    "do",
    "final",
    "macro",
    "override",
    "priv",
    "typeof",
    "unsized",
    "virtual",
    "yield",
    "try",
    "gen",
    "std",
    "core",
    "alloc",
    "proc_macro",
    "test",
    "berth",
    "serde",
    "serde_json",
    "tracing",
    "users",
    "users-api",
    "users_api",
];

/// Checks a group name: it is the crate's name, the group's name in the host and the first
/// segment of its routes, so it is lowercase ASCII letters, digits and `-`, starting with a
/// letter, at most 48 characters, and not a Rust keyword or a crate the group links.
pub fn check_name(name: &str) -> Result<(), NewError> {
    let bad = |reason: &str| Err(NewError::BadName { name: name.to_owned(), reason: reason.to_owned() });
    if name.is_empty() {
        return bad("it is empty");
    }
    if name.len() > 48 {
        return bad("it is longer than 48 characters");
    }
    if !name.starts_with(|c: char| c.is_ascii_lowercase()) {
        return bad("it must start with a lowercase letter (a-z)");
    }
    if let Some(c) = name.chars().find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-')) {
        return bad(&format!("`{c}` is not allowed: use lowercase letters, digits and `-` (e.g. `order-api`)"));
    }
    if name.ends_with('-') || name.contains("--") {
        return bad("a `-` must be between letters or digits");
    }
    if RESERVED.contains(&name) || RESERVED.contains(&name.replace('-', "_").as_str()) {
        return bad("it is a Rust keyword or the name of a crate every group links; choose another");
    }
    Ok(())
}

/// What [`create`] wrote.
#[derive(Debug)]
pub struct Created {
    pub dir: PathBuf,
    pub name: String,
    pub files: Vec<PathBuf>,
}

/// Writes a new group crate named `name` (default: the directory's name) into `dir`, which must
/// be missing or empty.
pub fn create(dir: &Path, name: Option<&str>, template: Template, sources: &Sources) -> Result<Created, NewError> {
    let name = match name {
        Some(n) => n.to_owned(),
        None => dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
    };
    check_name(&name)?;
    if dir.exists() {
        if !dir.is_dir() {
            return Err(NewError::NotADirectory { dir: dir.to_owned() });
        }
        let empty =
            std::fs::read_dir(dir).map_err(|source| NewError::Write { path: dir.to_owned(), source })?.next().is_none();
        if !empty {
            return Err(NewError::NotEmpty { dir: dir.to_owned() });
        }
    }
    let sdk = sources.sdk.canonicalize().map_err(|_| NewError::NoSdk { path: sources.sdk.clone() })?;
    if !sdk.join("Cargo.toml").is_file() {
        return Err(NewError::NoSdk { path: sources.sdk.clone() });
    }
    let (users, users_api) = if template == Template::Consumer {
        let users = sources.users.canonicalize().map_err(|_| NewError::NoUsers { path: sources.users.clone() })?;
        let api =
            sources.users_api.canonicalize().map_err(|_| NewError::NoUsers { path: sources.users_api.clone() })?;
        (users, api)
    } else {
        (PathBuf::new(), PathBuf::new())
    };
    let crate_ident = name.replace('-', "_");
    let vars = minijinja::context! {
        name => &name,
        crate_ident => &crate_ident,
        kind => template.as_str(),
        sdk_version => SDK_VERSION,
        // TOML basic strings: a Windows path's backslashes would be escapes.
        sdk_path => toml_path(&sdk),
        users_path => toml_path(&users),
        users_api_path => toml_path(&users_api),
    };
    let (lib, test, event) = template.sources();
    let mut files: Vec<(&'static str, &'static str, PathBuf)> = vec![
        ("Cargo.toml", include_str!("../templates/new/Cargo.toml.j2"), "Cargo.toml".into()),
        ("berth.toml", include_str!("../templates/new/berth.toml.j2"), "berth.toml".into()),
        ("README.md", include_str!("../templates/new/README.md.j2"), "README.md".into()),
        (".gitignore", include_str!("../templates/new/gitignore.j2"), ".gitignore".into()),
        ("src/lib.rs", lib, "src/lib.rs".into()),
        ("tests", test, PathBuf::from("tests").join(format!("{crate_ident}.rs"))),
    ];
    if let Some((file, source)) = event {
        files.push((file, source, file.into()));
    }
    let mut env = minijinja::Environment::new();
    env.set_keep_trailing_newline(true);
    let mut rendered = Vec::with_capacity(files.len());
    for (file, source, path) in files {
        let text = env.render_str(source, &vars).map_err(|source| NewError::Render {
            template: template.as_str(),
            file,
            source,
        })?;
        rendered.push((dir.join(path), text));
    }
    let mut written = Vec::with_capacity(rendered.len());
    for (path, text) in rendered {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|source| NewError::Write { path: parent.to_owned(), source })?;
        }
        std::fs::write(&path, text).map_err(|source| NewError::Write { path: path.clone(), source })?;
        written.push(path);
    }
    Ok(Created { dir: dir.to_owned(), name, files: written })
}

fn toml_path(p: &Path) -> String {
    p.display().to_string().replace('\\', "/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked_with_a_reason() {
        for ok in ["todo", "order-api", "a1", "x-2-y"] {
            check_name(ok).unwrap();
        }
        let reason = |n: &str| check_name(n).unwrap_err().to_string();
        assert!(reason("").contains("empty"));
        assert!(reason("Todo").contains("lowercase letter"));
        assert!(reason("1st").contains("lowercase letter"));
        assert!(reason("my_group").contains("`_` is not allowed"), "{}", reason("my_group"));
        assert!(reason("a.b").contains("`.` is not allowed"));
        assert!(reason("a-").contains("between"));
        assert!(reason("a--b").contains("between"));
        assert!(reason("fn").contains("keyword"));
        assert!(reason("berth").contains("keyword"));
        assert!(reason(&"a".repeat(49)).contains("48"));
    }

    #[test]
    fn every_template_renders_a_crate_named_after_its_directory() {
        let tmp = tempfile::tempdir().unwrap();
        for t in
            [Template::Http, Template::Timer, Template::Queue, Template::Blob, Template::Service, Template::Consumer]
        {
            let dir = tmp.path().join(format!("my-{}", t.as_str()));
            let created = create(&dir, None, t, &Sources::built_in()).unwrap();
            assert_eq!(created.name, format!("my-{}", t.as_str()));
            let cargo = std::fs::read_to_string(dir.join("Cargo.toml")).unwrap();
            let manifest: toml::Table = toml::from_str(&cargo).unwrap();
            assert_eq!(manifest["package"]["name"].as_str(), Some(created.name.as_str()));
            let berth = &manifest["dependencies"]["berth"];
            assert_eq!(berth["version"].as_str(), Some(SDK_VERSION), "{cargo}");
            assert!(Path::new(berth["path"].as_str().unwrap()).join("Cargo.toml").is_file(), "{cargo}");
            let lib = std::fs::read_to_string(dir.join("src/lib.rs")).unwrap();
            assert!(!lib.contains("{{") && lib.contains("berth::group!"), "{lib}");
            let test = dir.join("tests").join(format!("my_{}.rs", t.as_str()));
            assert!(std::fs::read_to_string(&test).unwrap().contains(&format!("my_{}::berth_group()", t.as_str())));
            let config = std::fs::read_to_string(dir.join("berth.toml")).unwrap();
            assert!(config.contains("path = \".\""), "{config}");
            assert!(dir.join(".gitignore").is_file() && dir.join("README.md").is_file());
        }
    }

    #[test]
    fn a_directory_with_files_is_left_alone() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join("keep.txt"), "mine").unwrap();
        let err = create(tmp.path(), Some("ok"), Template::Http, &Sources::built_in()).unwrap_err();
        assert!(matches!(err, NewError::NotEmpty { .. }), "{err}");
        assert_eq!(std::fs::read_to_string(tmp.path().join("keep.txt")).unwrap(), "mine");
        assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 1);
    }

    #[test]
    fn a_missing_sdk_is_named() {
        let tmp = tempfile::tempdir().unwrap();
        let sources = Sources { sdk: tmp.path().join("nope"), ..Sources::built_in() };
        let err = create(&tmp.path().join("g"), None, Template::Http, &sources).unwrap_err().to_string();
        assert!(err.contains("nope") && err.contains("--sdk"), "{err}");
        assert!(!tmp.path().join("g").exists(), "nothing is written when the SDK is missing");
    }
}
