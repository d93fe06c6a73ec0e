//! `berth.toml`: typed configuration, parsed (with `BERTH_*` environment overrides) before any
//! port is bound. Unknown keys are errors.
//!
//! Each part of the host owns its sections: `[services.*]`, `[http_client]` and secrets are
//! `berth_services::config`, `[queues.*]` and `[[triggers]]` are `berth_triggers::queue::config`;
//! this module composes them into the whole file and owns the rest (server, admin, build, groups).
//!
//! An environment override has the shape `BERTH_<SECTION>__<KEY>` (`BERTH_SERVER__LISTEN`,
//! `BERTH_SERVICES__DB__URL`) or names a top-level key (`BERTH_LOG`, `BERTH_DATA_DIR`). Any other
//! variable that starts with `BERTH_` (a script's `BERTH_BIN`) is not configuration: it is left
//! out, with a warning that names it ([`BerthConfig::warnings`]).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bytesize::ByteSize;
use serde::Deserialize;

pub use berth_platforms::config::{FunctionRef, PlatformConfig};
pub use berth_services::config::{
    BlobConfig, EmbeddedKvConfig, HttpClientConfig, RedisConfig, RedisKvConfig, SecretSource, ServiceSection,
    SqlServerConfig, SqliteConfig,
};
pub use berth_triggers::queue::config::{QueueConfig, QueueKind, TriggerBindingConfig};

/// Prefix of environment overrides: `BERTH_SERVER__LISTEN=0.0.0.0:8080` sets `server.listen`.
pub const ENV_PREFIX: &str = "BERTH";
/// Separator between nested keys in an environment override.
pub const ENV_SEPARATOR: &str = "__";
/// The config file `berth up` reads when none is given.
pub const DEFAULT_CONFIG_FILE: &str = "berth.toml";
/// Top-level keys an environment variable may set without a section (`BERTH_LOG=debug`).
const ENV_TOP_LEVEL_KEYS: &[&str] = &["VERSION", "LOG", "DATA_DIR", "GROUPS_FILE", "ALLOW_EMBEDDED"];
/// Sections an environment variable may set keys of (`BERTH_<SECTION>__<KEY>`).
const ENV_SECTIONS: &[&str] =
    &["SERVER", "DEFAULTS", "BUILD", "SERVICES", "HTTP_CLIENT", "ADMIN", "QUEUES", "PLATFORM", "TIMERS", "WORKERS"];
/// Service kinds kept in the host's own data directory (or memory).
pub const EMBEDDED_KINDS: &[&str] = &["sqlite", "kv", "memory-kv", "blob"];
/// `BERTH_*` variables the command line reads itself (never configuration, never warned about).
pub const CLI_ENV_VARS: &[&str] = &["BERTH_INVOKE_TOKEN", "BERTH_PLATFORM", "BERTH_CONFIG"];

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config file `{path}` not found; run from a directory with a berth.toml or pass --config")]
    Missing { path: PathBuf },
    #[error("invalid configuration in `{path}`: {source}")]
    Invalid { path: PathBuf, source: config::ConfigError },
    #[error("invalid configuration in `{path}`: {message}")]
    Semantic { path: PathBuf, message: String },
}

/// The whole `berth.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BerthConfig {
    /// Manifest format version; only 1 exists.
    #[serde(default = "default_version")]
    pub version: u32,
    /// Log filter (`tracing` env-filter syntax): `info`, `berth=debug,warn`.
    #[serde(default = "default_log")]
    pub log: String,
    /// Where Berth keeps its state (plugin copies, later databases and blobs).
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    #[serde(default)]
    pub server: ServerConfig,
    #[serde(default)]
    pub defaults: FunctionDefaults,
    #[serde(default)]
    pub build: BuildConfig,
    #[serde(default)]
    pub groups: Vec<GroupConfig>,
    /// `[openapi]`: the OpenAPI document of the groups' HTTP functions (`GET /openapi.json`).
    #[serde(default)]
    pub openapi: berth_triggers::http::openapi::OpenApiConfig,
    /// Host layers around every group's routes: `[middleware.cors]`, `[middleware.auth]`,
    /// `access_log`.
    #[serde(default)]
    pub middleware: berth_triggers::http::middleware::MiddlewareConfig,
    /// Static front ends: `[[static]] prefix = "/" dir = "web/dist" spa = true`. Routes of the
    /// groups take precedence over them.
    #[serde(default, rename = "static")]
    pub statics: Vec<berth_triggers::http::static_files::StaticConfig>,
    /// A second list of groups, in a file of its own (`[[groups]]` entries with `name`, `url` and
    /// `sha256`): on Kubernetes, a mounted ConfigMap. `berth up` watches it and swaps, adds and
    /// removes the groups it lists when it changes (see `crate::group_list`).
    #[serde(default)]
    pub groups_file: Option<PathBuf>,
    /// Whether embedded backends (`sqlite`, `kv`, `memory-kv`, `blob`: files in this host's data
    /// directory) may be configured. A deployment with several replicas sets it to false: each
    /// replica would have a private copy and they would disagree.
    #[serde(default = "default_true")]
    pub allow_embedded: bool,
    /// Timers across replicas: where each scheduled run is claimed before it starts.
    #[serde(default)]
    pub timers: TimersConfig,
    /// How workers of `isolation = "process"` groups start.
    #[serde(default)]
    pub workers: WorkersConfig,
    /// Backends, by the name groups declare them under: `[services.db] kind = "sqlite"`.
    #[serde(default)]
    pub services: BTreeMap<String, ServiceSection>,
    /// The outbound HTTP client every group that declares `http()` shares.
    #[serde(default)]
    pub http_client: HttpClientConfig,
    /// The admin API (hot swap): its listener and token.
    #[serde(default)]
    pub admin: AdminConfig,
    /// `[auth_limit]`: how many wrong tokens a client may send before it is refused unchecked.
    #[serde(default)]
    pub auth_limit: AuthLimitConfig,
    /// Queue bindings, by the name triggers and publishers use: `[queues.orders] kind = "redis"`.
    #[serde(default)]
    pub queues: BTreeMap<String, QueueConfig>,
    /// Trigger bindings added or overridden here, without rebuilding the group.
    #[serde(default)]
    pub triggers: Vec<TriggerBindingConfig>,
    /// Where the events a platform delivers go (schedules, queues, buckets, CloudEvents types,
    /// direct invokes), and which platform to run as.
    #[serde(default)]
    pub platform: PlatformConfig,
    /// What parsing left out and the user should hear of (environment variables that are not
    /// configuration); `berth up` logs each once the log is set up.
    #[serde(skip)]
    pub warnings: Vec<String>,
}

/// `[timers]`: how replicas sharing a claim store run each scheduled tick once.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimersConfig {
    /// Where ticks are claimed: the name of a `[services.*]` entry of kind `redis`, `redis-kv` or
    /// `postgres`, or a `redis://` / `postgres://` URL. Unset: every host runs every tick (one
    /// replica).
    #[serde(default)]
    pub lock: Option<String>,
    /// Prefix of the claim keys, so that several deployments can share one Redis.
    #[serde(default = "default_lock_prefix")]
    pub lock_prefix: String,
}

impl Default for TimersConfig {
    fn default() -> Self {
        TimersConfig { lock: None, lock_prefix: default_lock_prefix() }
    }
}

/// Where timer ticks are claimed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LockTarget {
    Redis(String),
    Postgres(String),
}

impl TimersConfig {
    /// Where `lock` claims ticks: a URL as given, or the URL of the `[services.*]` it names.
    pub fn lock_target(&self, services: &BTreeMap<String, ServiceSection>) -> Result<Option<LockTarget>, String> {
        let Some(lock) = self.lock.as_deref().map(str::trim).filter(|l| !l.is_empty()) else { return Ok(None) };
        let by_url = |url: &str| {
            if url.starts_with("redis://") || url.starts_with("rediss://") {
                Some(LockTarget::Redis(url.to_owned()))
            } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
                Some(LockTarget::Postgres(url.to_owned()))
            } else {
                None
            }
        };
        if lock.contains("://") {
            return by_url(lock).map(Some).ok_or_else(|| {
                format!(
                    "`timers.lock = \"{lock}\"`: expected a redis:// or postgres:// URL, or the name of a [services.*] entry"
                )
            });
        }
        let section = services.get(lock).ok_or_else(|| {
            format!(
                "`timers.lock = \"{lock}\"` names no `[services.{lock}]`; add one of kind \"redis\" or \"postgres\", or give a URL"
            )
        })?;
        if !matches!(section.kind.as_str(), "redis" | "redis-kv" | "postgres") {
            return Err(format!(
                "`timers.lock = \"{lock}\"`: `[services.{lock}]` is kind = \"{}\"; ticks are claimed in Redis or PostgreSQL \
                 (kind \"redis\", \"redis-kv\" or \"postgres\")",
                section.kind
            ));
        }
        let url = section.settings.get("url").and_then(|u| u.as_str()).filter(|u| !u.trim().is_empty());
        let url = url.ok_or_else(|| format!("`timers.lock = \"{lock}\"`: `[services.{lock}]` has no `url`"))?;
        Ok(Some(if section.kind == "postgres" {
            LockTarget::Postgres(url.to_owned())
        } else {
            LockTarget::Redis(url.to_owned())
        }))
    }
}

/// `[admin]`: the admin API's own listener.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminConfig {
    #[serde(default = "default_true")]
    pub enabled: bool,
    #[serde(default = "default_admin_listen")]
    pub listen: SocketAddr,
    /// Bearer token every admin request must carry. Without one, the API only listens on a
    /// loopback address, with a random token written to `<data_dir>/admin.token`.
    #[serde(default)]
    pub token: Option<SecretToken>,
    /// Largest plugin file a deploy may upload.
    #[serde(default = "default_max_upload")]
    pub max_upload: ByteSize,
    /// Plugin libraries that may stay mapped after their version was replaced (see
    /// `swap::mapped`) before deploys of versions not already loaded are refused; 0 = no limit.
    #[serde(default = "default_max_stuck_libraries")]
    pub max_stuck_libraries: usize,
    /// Nice value (0-19) of the thread that loads and unloads plugins during swaps: the higher,
    /// the more a deploy on a busy host yields the CPU to requests (and the longer it takes).
    #[serde(default = "default_swap_nice")]
    pub swap_nice: i32,
    /// Refuse a deploy (`POST /groups/{name}/deploy`) that does not carry the sha256 of the
    /// plugin it sends (`berth deploy --sha256`).
    #[serde(default)]
    pub require_sha256: bool,
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig {
            enabled: true,
            listen: default_admin_listen(),
            token: None,
            max_upload: default_max_upload(),
            max_stuck_libraries: default_max_stuck_libraries(),
            swap_nice: default_swap_nice(),
            require_sha256: false,
        }
    }
}

/// A bearer token of `berth.toml` (the admin API's, direct invoke's). Its `Debug` never shows it.
#[derive(Clone, Deserialize)]
#[serde(transparent)]
pub struct SecretToken(pub String);

impl std::fmt::Debug for SecretToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretToken(<redacted>)")
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// Requests in flight at once, across all functions; more get 503 at once (no queue).
    #[serde(default = "default_max_concurrency")]
    pub max_concurrency: usize,
    /// How long shutdown waits for in-flight requests.
    #[serde(default = "default_grace", with = "humantime_serde")]
    pub shutdown_grace: Duration,
    /// Tokio worker threads (default: one per core).
    #[serde(default)]
    pub workers: Option<usize>,
    /// Bearer token for `POST /invoke/...` from non-loopback addresses (loopback needs none,
    /// unless `invoke_loopback_exempt = false`). Its `Debug` never shows it.
    #[serde(default)]
    pub invoke_token: Option<SecretToken>,
    /// Whether `/invoke/...` is served. Unset: on standalone; on a platform's listener (FC, SCF
    /// web functions, kubeless, Knative) only when `invoke_token` is set. On with a non-loopback
    /// `listen` and no `invoke_token`, the host refuses to start.
    #[serde(default)]
    pub direct_invoke: Option<bool>,
    /// Whether loopback callers of `/invoke/...` need no token. Unset: yes standalone, no on a
    /// platform (its sidecars, like Knative's queue-proxy, connect from loopback). Set it to false
    /// behind a reverse proxy or service-mesh sidecar on the same host.
    #[serde(default)]
    pub invoke_loopback_exempt: Option<bool>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: default_listen(),
            max_concurrency: default_max_concurrency(),
            shutdown_grace: default_grace(),
            workers: None,
            invoke_token: None,
            direct_invoke: None,
            invoke_loopback_exempt: None,
        }
    }
}

/// `[auth_limit]`: failed-token limiting of the admin API, `/invoke/` and `[middleware.auth]`
/// (see `berth_core::auth_limit`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthLimitConfig {
    /// Missing or wrong tokens per client address and surface within `window` before its
    /// attempts get 429 unchecked; 0 turns the limit off.
    #[serde(default = "default_auth_failures")]
    pub failures: u32,
    #[serde(default = "default_auth_window", with = "humantime_serde")]
    pub window: Duration,
    /// Client addresses (per surface) remembered at once; past it the oldest window is dropped.
    #[serde(default = "default_auth_clients")]
    pub clients: usize,
}

impl Default for AuthLimitConfig {
    fn default() -> Self {
        AuthLimitConfig {
            failures: default_auth_failures(),
            window: default_auth_window(),
            clients: default_auth_clients(),
        }
    }
}

impl AuthLimitConfig {
    pub fn settings(&self) -> berth_core::auth_limit::AuthLimitSettings {
        berth_core::auth_limit::AuthLimitSettings {
            max_failures: self.failures,
            window: self.window,
            max_clients: self.clients,
        }
    }
}

fn default_auth_failures() -> u32 {
    berth_core::auth_limit::AuthLimitSettings::default().max_failures
}
fn default_auth_window() -> Duration {
    berth_core::auth_limit::AuthLimitSettings::default().window
}
fn default_auth_clients() -> usize {
    berth_core::auth_limit::AuthLimitSettings::default().max_clients
}

/// Limits applied to every function that does not set its own.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FunctionDefaults {
    #[serde(default = "default_timeout", with = "humantime_serde")]
    pub timeout: Duration,
    #[serde(default = "default_body_limit")]
    pub body_limit: ByteSize,
}

impl Default for FunctionDefaults {
    fn default() -> Self {
        FunctionDefaults { timeout: default_timeout(), body_limit: default_body_limit() }
    }
}

/// How `berth up` builds group crates.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BuildConfig {
    /// Cargo profile: `release` (default) or `dev`.
    #[serde(default)]
    pub profile: BuildProfile,
    /// Pass `--quiet` to cargo (errors and warnings still show).
    #[serde(default)]
    pub quiet: bool,
}

impl Default for BuildConfig {
    fn default() -> Self {
        BuildConfig { profile: BuildProfile::Release, quiet: false }
    }
}

/// The cargo profile group crates are built with.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub enum BuildProfile {
    #[default]
    Release,
    Dev,
}

impl TryFrom<String> for BuildProfile {
    type Error = String;

    fn try_from(name: String) -> Result<Self, String> {
        match name.as_str() {
            "release" => Ok(BuildProfile::Release),
            "dev" => Ok(BuildProfile::Dev),
            other => Err(format!("`build.profile = \"{other}\"`: expected \"release\" or \"dev\"")),
        }
    }
}

impl BuildProfile {
    /// The profile's name as cargo knows it.
    pub fn as_str(self) -> &'static str {
        match self {
            BuildProfile::Release => "release",
            BuildProfile::Dev => "dev",
        }
    }
}

/// One function group: a crate to build (`path`), a built plugin (`file`), or a built plugin
/// to fetch (`url`, pinned by `sha256`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupConfig {
    /// The group's name, as its manifest says it; required with `url` (the plugin is checked
    /// against it), optional otherwise.
    pub name: Option<String>,
    /// Directory of a group crate; `berth up` builds it with cargo.
    pub path: Option<PathBuf>,
    /// A prebuilt plugin (`.so`).
    pub file: Option<PathBuf>,
    /// A prebuilt plugin served over `http(s)`, fetched at start and when the group list changes,
    /// cached in `<data_dir>/fetched/` by its sha256.
    pub url: Option<String>,
    /// The sha256 (hex) the group's plugin must have: the file at `url`, the `file`, or for a
    /// `path` group the plugin cargo builds. A plugin with another one is refused before it is
    /// opened (at start, on `--watch`, on a swap, on a fetch), and the serving version stays.
    pub sha256: Option<String>,
    /// Per-function overrides, by function name.
    #[serde(default)]
    pub functions: BTreeMap<String, FunctionOverride>,
    /// Free-form settings handed to the group as JSON (`ctx.config()`).
    #[serde(default)]
    pub config: serde_json::Map<String, serde_json::Value>,
    /// The group's secrets, by the name it declares them under.
    #[serde(default)]
    pub secrets: BTreeMap<String, SecretSource>,
    /// Binds a declared service name to a differently named `[services.*]` entry
    /// (`db = "main-postgres"`); unbound names resolve to the service of the same name.
    #[serde(default)]
    pub bind: BTreeMap<String, String>,
    /// What the group's outbound HTTP client may call, as Spin writes it: `scheme://host[:port]`
    /// entries (`"https://api.stripe.com"`, `"http://127.0.0.1:*"`, `"https://*.example.com"`,
    /// `"*://*:*"`). Empty (the default): nothing. Malformed entries are refused here, with the
    /// entry and how to write it; see `berth_services::outbound` for the rules.
    #[serde(default)]
    pub allowed_outbound_hosts: berth_services::outbound::AllowedHosts,
    /// SQL migrations applied when the group loads (default: the crate's `migrations/` folder).
    pub migrations: Option<PathBuf>,
    /// Where the group's code runs: `none` (in the host's process, the fastest) or `process`
    /// (a supervised worker process: a crash or a runaway handler takes down the worker only).
    #[serde(default)]
    pub isolation: Isolation,
    /// Limits and supervision of a `process` group's worker.
    #[serde(default)]
    pub worker: WorkerConfig,
    /// Host layers for this group's routes (CORS, auth, access log); each replaces the host's
    /// `[middleware]` of the same kind. Needs `name`.
    #[serde(default)]
    pub middleware: berth_triggers::http::middleware::MiddlewareConfig,
    /// True for an entry of `groups_file` (what its watcher adds, swaps and removes).
    #[serde(skip)]
    pub listed: bool,
}

/// `isolation = "none" | "process"`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Isolation {
    #[default]
    None,
    Process,
}

/// `[groups.worker]`: a `process` group's worker limits and supervision.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkerConfig {
    /// The worker's memory (its data segment and anonymous mappings, `RLIMIT_DATA`); a worker
    /// that allocates past it dies and is restarted. Unset: no limit.
    #[serde(default)]
    pub memory: Option<ByteSize>,
    /// Open files and sockets (`RLIMIT_NOFILE`).
    #[serde(default = "default_open_files")]
    pub open_files: u64,
    /// CPU time over the worker's life (`RLIMIT_CPU`); unset: no limit.
    #[serde(default, with = "humantime_serde")]
    pub cpu_time: Option<Duration>,
    /// How long a call past its deadline may take to give up before its worker is killed and
    /// replaced (a handler that never awaits cannot be cancelled otherwise).
    #[serde(default = "default_kill_grace", with = "humantime_serde")]
    pub kill_grace: Duration,
    /// Crashes within `crash_window` that open the circuit: calls answer 503 with
    /// `retry-after` for `circuit_open` instead of restarting the worker again and again.
    #[serde(default = "default_max_crashes")]
    pub max_crashes: u32,
    #[serde(default = "default_crash_window", with = "humantime_serde")]
    pub crash_window: Duration,
    #[serde(default = "default_circuit_open", with = "humantime_serde")]
    pub circuit_open: Duration,
    /// Threads the worker runs its calls on. 1 (the default) is cheapest per call; more let a
    /// CPU-heavy group use more cores, and let its other calls go on while one handler spins
    /// (until the watchdog kills the worker).
    #[serde(default = "default_threads")]
    pub threads: u16,
}

fn default_threads() -> u16 {
    1
}

fn default_open_files() -> u64 {
    1024
}
fn default_kill_grace() -> Duration {
    Duration::from_millis(500)
}
fn default_max_crashes() -> u32 {
    5
}
fn default_crash_window() -> Duration {
    Duration::from_secs(60)
}
fn default_circuit_open() -> Duration {
    Duration::from_secs(30)
}

impl Default for WorkerConfig {
    fn default() -> Self {
        WorkerConfig {
            memory: None,
            open_files: default_open_files(),
            cpu_time: None,
            kill_grace: default_kill_grace(),
            max_crashes: default_max_crashes(),
            crash_window: default_crash_window(),
            circuit_open: default_circuit_open(),
            threads: default_threads(),
        }
    }
}

/// `[workers]`: how this host starts the workers of `process` groups.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkersConfig {
    /// The `berth` executable that runs `berth worker` (default: this one).
    #[serde(default)]
    pub binary: Option<PathBuf>,
}

impl GroupConfig {
    /// A short label for messages: the path, file or URL as written.
    pub fn label(&self) -> String {
        match (&self.path, &self.file, &self.url) {
            (Some(p), _, _) | (None, Some(p), _) => p.display().to_string(),
            (None, None, Some(url)) => crate::fetch::shown_url(url),
            _ => self.name.clone().unwrap_or_default(),
        }
    }

    /// Checks the entry's source: exactly one of `path`, `file`, `url`; `url` with `name` and a
    /// sha256. `at` names the entry in messages (`groups[2]`).
    fn check_source(&mut self, at: &str) -> Result<(), String> {
        match (&self.path, &self.file, &self.url) {
            (None, None, None) => {
                return Err(format!(
                    "{at} needs `path = \"dir/of/crate\"` (built with cargo), `file = \"plugin.so\"` or `url = \"https://…\"` \
                     with `sha256`"
                ));
            }
            (Some(_), Some(_), _) | (Some(_), _, Some(_)) | (_, Some(_), Some(_)) => {
                return Err(format!("{at} sets more than one of `path`, `file` and `url`; keep one"));
            }
            _ => {}
        }
        if let Some(name) = &self.name {
            if !valid_group_name(name) {
                return Err(format!("{at}: `name = \"{name}\"` is not a group name (ASCII letters, digits, `-`, `_`)"));
            }
        }
        let label =
            self.name.as_deref().map(|n| format!("{at} (`{n}`)")).unwrap_or_else(|| format!("{at} ({})", self.label()));
        // A pin on any source: for `path` it is the plugin file cargo builds, for `file` the file.
        if let Some(raw) = self.sha256.take() {
            self.sha256 = Some(normalize_sha256(&raw).map_err(|e| format!("{label}: `sha256 = \"{raw}\"` {e}"))?);
        }
        let Some(url) = &self.url else { return Ok(()) };
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(format!("{label}: `url = \"{url}\"` must be an http:// or https:// address"));
        }
        if self.name.is_none() {
            return Err(format!("{label}: a `url` group needs `name`, the group its plugin must be"));
        }
        if self.sha256.is_none() {
            return Err(format!(
                "{label}: a `url` group needs `sha256 = \"<64 hex digits>\"` (`sha256sum plugin.so` prints it); got none"
            ));
        }
        Ok(())
    }
}

/// A `sha256` pin as written (in berth.toml, a group list or a deploy request), normalised:
/// trimmed, lower case, exactly 64 hex digits. The error completes "`sha256 = \"…\"` …".
pub fn normalize_sha256(raw: &str) -> Result<String, String> {
    let sha = raw.trim().to_ascii_lowercase();
    if sha.len() != 64 || !sha.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(format!(
            "is not a sha256: expected 64 hex digits, got {} characters (`sha256sum plugin.so` prints it)",
            sha.chars().count()
        ));
    }
    Ok(sha)
}

/// A group name as manifests allow it (it becomes a file name and a metric label).
pub fn valid_group_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= 128 && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// A `groups_file`: `[[groups]]` entries, each a `url` group.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct GroupListFile {
    #[serde(default)]
    groups: Vec<GroupConfig>,
}

/// Reads a `groups_file`: every entry must be a `url` group with `name` and `sha256`, each name
/// once. Relative `migrations` paths resolve against the file's directory.
pub fn read_group_list(path: &Path) -> Result<Vec<GroupConfig>, ConfigError> {
    let semantic = |message: String| ConfigError::Semantic {
        path: path.to_owned(),
        message: format!("group list `{}`: {message}", path.display()),
    };
    let text = std::fs::read_to_string(path)
        .map_err(|e| semantic(format!("cannot read the group list (groups_file): {e}; mount it or fix the path")))?;
    let list: GroupListFile =
        toml::from_str(&text).map_err(|e| semantic(format!("the group list is not valid: {e}")))?;
    let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let mut names = std::collections::BTreeSet::new();
    let mut groups = Vec::with_capacity(list.groups.len());
    for (i, mut g) in list.groups.into_iter().enumerate() {
        let at = format!("groups[{i}]");
        g.check_source(&at).map_err(&semantic)?;
        if g.url.is_none() {
            return Err(semantic(format!(
                "{at}: a group list holds `url` groups (name, url, sha256); put `path` and `file` groups in berth.toml"
            )));
        }
        let name = g.name.clone().unwrap_or_default();
        if !names.insert(name.clone()) {
            return Err(semantic(format!("{at}: group `{name}` is listed twice")));
        }
        if let Some(m) = g.migrations.as_mut() {
            if m.is_relative() {
                *m = base.join(&*m);
            }
        }
        g.listed = true;
        groups.push(g);
    }
    Ok(groups)
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FunctionOverride {
    #[serde(default, with = "humantime_serde")]
    pub timeout: Option<Duration>,
    pub body_limit: Option<ByteSize>,
}

fn default_version() -> u32 {
    1
}
fn default_log() -> String {
    "info".into()
}
fn default_data_dir() -> PathBuf {
    PathBuf::from(".berth")
}
fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8080))
}
fn default_max_concurrency() -> usize {
    1024
}
fn default_grace() -> Duration {
    Duration::from_secs(30)
}
fn default_timeout() -> Duration {
    berth_core::group::DEFAULT_TIMEOUT
}
fn default_body_limit() -> ByteSize {
    ByteSize::b(berth_core::group::DEFAULT_BODY_LIMIT)
}
fn default_true() -> bool {
    true
}
fn default_lock_prefix() -> String {
    "berth".into()
}
fn default_admin_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8081))
}
fn default_max_upload() -> ByteSize {
    ByteSize::mib(256)
}
fn default_max_stuck_libraries() -> usize {
    16
}
fn default_swap_nice() -> i32 {
    10
}

/// Settings a platform puts around `berth.toml`: `defaults` apply where the file is silent,
/// `overrides` win over the file (the platform's contract: the port it sends requests to).
/// Each entry is a dotted key and a TOML value: `("server.listen", "\"0.0.0.0:9000\"")`.
#[derive(Debug, Clone, Default)]
pub struct Layers {
    pub defaults: Vec<(String, String)>,
    pub overrides: Vec<(String, String)>,
}

impl Layers {
    fn toml(entries: &[(String, String)]) -> String {
        entries.iter().map(|(k, v)| format!("{k} = {v}\n")).collect()
    }

    fn defaults_toml(&self) -> String {
        Self::toml(&self.defaults)
    }

    fn overrides_toml(&self) -> String {
        Self::toml(&self.overrides)
    }

    /// A TOML string value.
    pub fn string(s: &str) -> String {
        serde_json::Value::from(s).to_string()
    }
}

/// Where environment overrides come from: the process environment, or a map in tests.
pub trait EnvSource {
    fn vars(&self) -> BTreeMap<String, String>;
}

/// The real process environment.
#[derive(Debug, Clone, Copy)]
pub struct ProcessEnv;

impl EnvSource for ProcessEnv {
    fn vars(&self) -> BTreeMap<String, String> {
        std::env::vars().filter(|(k, _)| k.starts_with(&format!("{ENV_PREFIX}_"))).collect()
    }
}

impl EnvSource for BTreeMap<String, String> {
    fn vars(&self) -> BTreeMap<String, String> {
        self.clone()
    }
}

/// Splits `BERTH_*` variables into configuration overrides and warnings about the rest.
fn config_vars(vars: BTreeMap<String, String>) -> (config::Map<String, String>, Vec<String>) {
    let mut taken = config::Map::new();
    let mut warnings = Vec::new();
    let prefix = format!("{ENV_PREFIX}_");
    for (name, value) in vars {
        let Some(key) = name.strip_prefix(&prefix) else { continue };
        let is_config = match key.split_once(ENV_SEPARATOR) {
            Some((section, rest)) => !rest.is_empty() && !section.is_empty(),
            None => ENV_TOP_LEVEL_KEYS.contains(&key),
        };
        if is_config {
            taken.insert(name, value);
        } else if !CLI_ENV_VARS.contains(&name.as_str()) {
            warnings.push(format!(
                "environment variable `{name}` is not configuration and was ignored: overrides are \
                 `{ENV_PREFIX}_<SECTION>{ENV_SEPARATOR}<KEY>` (sections: {}) or one of {}",
                ENV_SECTIONS.iter().map(|s| s.to_ascii_lowercase()).collect::<Vec<_>>().join(", "),
                ENV_TOP_LEVEL_KEYS.iter().map(|k| format!("{ENV_PREFIX}_{k}")).collect::<Vec<_>>().join(", "),
            ));
        }
    }
    (taken, warnings)
}

impl BerthConfig {
    /// Reads `path` with environment overrides. Relative paths inside (groups, data_dir) are
    /// resolved against the file's directory.
    pub fn load(path: &Path, env: &dyn EnvSource) -> Result<Self, ConfigError> {
        Self::load_layered(path, env, &Layers::default())
    }

    /// [`BerthConfig::load`] with a platform's layers: its defaults under the file, its
    /// overrides over the file (the environment still wins over both).
    pub fn load_layered(path: &Path, env: &dyn EnvSource, layers: &Layers) -> Result<Self, ConfigError> {
        if !path.is_file() {
            return Err(ConfigError::Missing { path: path.to_owned() });
        }
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError::Semantic { path: path.to_owned(), message: format!("cannot read it: {e}") })?;
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        Self::parse_layered(&text, &base, env, layers).map_err(|e| match e {
            ConfigError::Invalid { source, .. } => ConfigError::Invalid { path: path.to_owned(), source },
            ConfigError::Semantic { message, .. } => ConfigError::Semantic { path: path.to_owned(), message },
            other => other,
        })
    }

    /// Parses TOML text with environment overrides; `base` resolves relative paths.
    pub fn parse(text: &str, base: &Path, env: &dyn EnvSource) -> Result<Self, ConfigError> {
        Self::parse_layered(text, base, env, &Layers::default())
    }

    /// [`BerthConfig::parse`] with a platform's layers.
    pub fn parse_layered(text: &str, base: &Path, env: &dyn EnvSource, layers: &Layers) -> Result<Self, ConfigError> {
        let invalid = |source| ConfigError::Invalid { path: PathBuf::from("<text>"), source };
        let (vars, warnings) = config_vars(env.vars());
        let cfg = config::Config::builder()
            .add_source(config::File::from_str(&layers.defaults_toml(), config::FileFormat::Toml))
            .add_source(config::File::from_str(text, config::FileFormat::Toml))
            .add_source(config::File::from_str(&layers.overrides_toml(), config::FileFormat::Toml))
            .add_source(
                config::Environment::with_prefix(ENV_PREFIX)
                    .prefix_separator("_")
                    .separator(ENV_SEPARATOR)
                    .try_parsing(true)
                    .source(Some(vars)),
            )
            .build()
            .map_err(invalid)?;
        let mut parsed: BerthConfig = cfg.try_deserialize().map_err(invalid)?;
        parsed.warnings = warnings;
        parsed.validate()?;
        parsed.check_groups()?;
        parsed.resolve(base);
        parsed.add_listed_groups()?;
        Ok(parsed)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let semantic = |message: String| ConfigError::Semantic { path: PathBuf::from("<text>"), message };
        if self.version != 1 {
            return Err(semantic(format!("`version = {}` is not supported; this berth reads version 1", self.version)));
        }
        if self.server.max_concurrency == 0 {
            return Err(semantic("`server.max_concurrency` must be at least 1".into()));
        }
        if self.server.workers == Some(0) {
            return Err(semantic("`server.workers` must be at least 1; leave it out for one per core".into()));
        }
        if !(0..=19).contains(&self.admin.swap_nice) {
            return Err(semantic(format!(
                "`admin.swap_nice = {}`: expected 0 (normal) to 19 (lowest)",
                self.admin.swap_nice
            )));
        }
        let admin_token = self.admin.token.as_ref().is_some_and(|t| !t.0.trim().is_empty());
        if self.admin.enabled && !admin_token && !self.admin.listen.ip().is_loopback() {
            return Err(semantic(format!(
                "`admin.listen = \"{}\"` is not a loopback address and the admin API has no token: set `[admin] token` \
                 (or BERTH_ADMIN__TOKEN), listen on 127.0.0.1, or set `admin.enabled = false`",
                self.admin.listen
            )));
        }
        berth_services::registry::check_sections(&self.services).map_err(semantic)?;
        berth_triggers::http::static_files::check(&self.statics).map_err(|e| semantic(e.to_string()))?;
        let api = &self.openapi.path;
        if !api.starts_with('/')
            || berth_triggers::http::routes::RESERVED_PATHS.contains(&api.as_str())
            || api.starts_with("/invoke/")
        {
            return Err(semantic(format!(
                "`openapi.path = \"{api}\"` must start with `/` and not be one of the host's own paths (/healthz, /readyz, /metrics, /invoke/)"
            )));
        }
        if !self.allow_embedded {
            for (name, s) in &self.services {
                if EMBEDDED_KINDS.contains(&s.kind.as_str()) {
                    return Err(semantic(format!(
                        "`[services.{name}]` is kind = \"{}\", kept in this host's own data directory, and \
                         `allow_embedded = false` (set where several replicas serve: each would keep a private copy \
                         and they would disagree); point it at a shared backend (postgres, mysql, redis, redis-kv) \
                         or set allow_embedded = true",
                        s.kind
                    )));
                }
            }
        }
        match self.timers.lock_target(&self.services).map_err(semantic)? {
            None => {}
            #[cfg(feature = "redis")]
            Some(LockTarget::Redis(url)) => {
                berth_triggers::timer::RedisClaims::new(&url).map_err(semantic)?;
            }
            #[cfg(feature = "postgres")]
            Some(LockTarget::Postgres(url)) => {
                berth_triggers::timer::PostgresClaims::check_url(&url).map_err(semantic)?;
            }
            #[allow(unreachable_patterns)]
            Some(target) => {
                let feature = if matches!(target, LockTarget::Redis(_)) { "redis" } else { "postgres" };
                return Err(semantic(format!(
                    "`timers.lock` claims ticks in {feature}, which this berth was built without; rebuild it with \
                     `--features {feature}`"
                )));
            }
        }
        self.validate_queues().map_err(semantic)
    }

    fn validate_queues(&self) -> Result<(), String> {
        for (name, q) in &self.queues {
            if q.url.trim().is_empty() && q.kind != QueueKind::Sink {
                return Err(format!("`[queues.{name}]` needs a `url`"));
            }
            if q.concurrency == 0 || q.max_attempts == 0 {
                return Err(format!("`[queues.{name}]`: `concurrency` and `max_attempts` must be at least 1"));
            }
            if q.backoff_base > q.backoff_max {
                return Err(format!("`[queues.{name}]`: `backoff_base` is longer than `backoff_max`"));
            }
            if q.subject.is_some() && q.kind != QueueKind::Nats {
                return Err(format!("`[queues.{name}]`: `subject` is for kind = \"nats\" only"));
            }
        }
        for (i, t) in self.triggers.iter().enumerate() {
            if !self.queues.contains_key(&t.queue) {
                return Err(format!(
                    "triggers[{i}] ({}/{}) names queue `{}`, which has no `[queues.{}]` section",
                    t.group, t.function, t.queue, t.queue
                ));
            }
            if t.concurrency == Some(0) || t.max_attempts == Some(0) {
                return Err(format!(
                    "triggers[{i}] ({}/{}): `concurrency` and `max_attempts` must be at least 1; leave one out to \
                     keep the function's own setting (or the queue's)",
                    t.group, t.function
                ));
            }
        }
        Ok(())
    }

    /// Checks every `[[groups]]` entry's source (normalising `sha256`).
    fn check_groups(&mut self) -> Result<(), ConfigError> {
        for (i, g) in self.groups.iter_mut().enumerate() {
            g.check_source(&format!("groups[{i}]"))
                .map_err(|message| ConfigError::Semantic { path: PathBuf::from("<text>"), message })?;
            if g.name.is_none() && g.middleware != Default::default() {
                return Err(ConfigError::Semantic {
                    path: PathBuf::from("<text>"),
                    message: format!(
                        "groups[{i}] ({}) sets `[groups.middleware]` but no `name`: add the group's name, so that its \
                         layers are in place before its routes serve",
                        g.label()
                    ),
                });
            }
        }
        Ok(())
    }

    /// Appends the groups of `groups_file` (after [`BerthConfig::resolve`]).
    fn add_listed_groups(&mut self) -> Result<(), ConfigError> {
        let Some(list) = self.groups_file.clone() else { return Ok(()) };
        let listed = read_group_list(&list)?;
        for g in listed {
            let name = g.name.clone().unwrap_or_default();
            if self.groups.iter().any(|c| c.name.as_deref() == Some(name.as_str())) {
                return Err(ConfigError::Semantic {
                    path: list.clone(),
                    message: format!("group `{name}` is in berth.toml's [[groups]] and in the group list; keep one"),
                });
            }
            self.groups.push(g);
        }
        Ok(())
    }

    fn resolve(&mut self, base: &Path) {
        let abs = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        abs(&mut self.data_dir);
        self.groups_file.as_mut().map(abs);
        for s in &mut self.statics {
            abs(&mut s.dir);
        }
        for g in &mut self.groups {
            g.path.as_mut().map(abs);
            g.file.as_mut().map(abs);
            g.migrations.as_mut().map(abs);
            for s in g.secrets.values_mut() {
                if let SecretSource::File(p) = s {
                    abs(p);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str, env: &[(&str, &str)]) -> Result<BerthConfig, ConfigError> {
        let env: BTreeMap<String, String> = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        BerthConfig::parse(text, Path::new("/srv"), &env)
    }

    #[test]
    fn defaults_apply_and_paths_resolve_against_the_file() {
        let c = parse("[[groups]]\npath = \"examples/hello\"\n", &[]).unwrap();
        assert_eq!(c.server.listen, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(c.defaults.body_limit, ByteSize::mib(6));
        assert_eq!(c.defaults.timeout, Duration::from_secs(30));
        assert_eq!(c.groups[0].path.as_deref(), Some(Path::new("/srv/examples/hello")));
        assert_eq!(c.data_dir, Path::new("/srv/.berth"));
    }

    #[test]
    fn environment_overrides_file_values() {
        let c = parse(
            "[server]\nlisten = \"127.0.0.1:8080\"\n",
            &[("BERTH_SERVER__LISTEN", "127.0.0.1:9999"), ("BERTH_SERVER__MAX_CONCURRENCY", "7")],
        )
        .unwrap();
        assert_eq!(c.server.listen.port(), 9999);
        assert_eq!(c.server.max_concurrency, 7);
    }

    #[test]
    fn unknown_keys_are_errors_that_name_the_key() {
        let err = parse("[server]\nlisten = \"127.0.0.1:1\"\nlisen = 3\n", &[]).unwrap_err().to_string();
        assert!(err.contains("lisen"), "{err}");
        let err = parse("", &[("BERTH_SEVRER__LISTEN", "x")]).unwrap_err().to_string();
        assert!(err.contains("sevrer"), "{err}");
    }

    #[test]
    fn unrelated_berth_variables_are_ignored_with_a_warning_that_names_them() {
        let c =
            parse("", &[("BERTH_BIN", "/usr/local/bin/berth"), ("BERTH_LOG", "debug"), ("BERTH_INVOKE_TOKEN", "t")])
                .unwrap();
        assert_eq!(c.log, "debug", "a top-level key is still configuration");
        assert_eq!(c.warnings.len(), 1, "{:?}", c.warnings);
        assert!(
            c.warnings[0].contains("`BERTH_BIN`") && c.warnings[0].contains("BERTH_<SECTION>__<KEY>"),
            "{:?}",
            c.warnings
        );
    }

    #[test]
    fn zero_is_not_a_count_of_workers_or_consumers() {
        let err = parse("[server]\nworkers = 0\n", &[]).unwrap_err().to_string();
        assert!(err.contains("`server.workers` must be at least 1"), "{err}");
        assert_eq!(parse("[server]\nworkers = 2\n", &[]).unwrap().server.workers, Some(2));
        let err = parse(
            "[queues.q]\nkind = \"redis\"\nurl = \"redis://x\"\n[[triggers]]\ngroup = \"g\"\nfunction = \"f\"\nqueue = \"q\"\nconcurrency = 0\n",
            &[],
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("triggers[0] (g/f)") && err.contains("at least 1"), "{err}");
    }

    #[test]
    fn the_build_profile_is_release_or_dev() {
        assert_eq!(parse("", &[]).unwrap().build.profile, BuildProfile::Release);
        assert_eq!(parse("[build]\nprofile = \"dev\"\n", &[]).unwrap().build.profile, BuildProfile::Dev);
        let err = parse("[build]\nprofile = \"fast\"\n", &[]).unwrap_err().to_string();
        assert!(err.contains("fast") && err.contains("release") && err.contains("dev"), "{err}");
    }

    #[test]
    fn per_function_overrides_parse_units() {
        let c = parse(
            "[[groups]]\nfile = \"a.so\"\n[groups.functions.slow]\ntimeout = \"150ms\"\nbody_limit = \"2KiB\"\n",
            &[],
        )
        .unwrap();
        let o = &c.groups[0].functions["slow"];
        assert_eq!(o.timeout, Some(Duration::from_millis(150)));
        assert_eq!(o.body_limit, Some(ByteSize::kib(2)));
    }

    #[test]
    fn services_parse_by_kind_and_refuse_unknown_kinds_and_keys() {
        let c = parse(
            "[services.db]\nkind = \"postgres\"\nurl = \"postgres://x/y\"\n[services.cache]\nkind = \"kv\"\nshared = true\n",
            &[("BERTH_SERVICES__DB__URL", "postgres://127.0.0.1/test")],
        )
        .unwrap();
        let db = &c.services["db"];
        assert_eq!(db.kind, "postgres");
        assert_eq!(db.settings["url"], "postgres://127.0.0.1/test", "the environment wins over the file");
        let cache = &c.services["cache"];
        assert_eq!((cache.kind.as_str(), &cache.settings["shared"]), ("kv", &serde_json::json!(true)));
        let err = parse("[services.db]\nkind = \"oracle\"\n", &[]).unwrap_err().to_string();
        assert!(err.contains("oracle"), "{err}");
        let err = parse("[services.db]\nkind = \"sqlite\"\nurl = \"x\"\n", &[]).unwrap_err().to_string();
        assert!(err.contains("url"), "{err}");
    }

    #[test]
    fn secrets_come_from_env_or_file_and_never_print() {
        let c = parse(
            "[[groups]]\nfile = \"a.so\"\n[groups.secrets]\nkey = { env = \"STRIPE\" }\ncert = { file = \"c.pem\" }\n",
            &[],
        )
        .unwrap();
        let s = &c.groups[0].secrets;
        assert!(matches!(&s["key"], SecretSource::Env(v) if v == "STRIPE"));
        assert!(matches!(&s["cert"], SecretSource::File(p) if p == Path::new("/srv/c.pem")));
    }

    #[test]
    fn the_admin_api_needs_a_token_off_loopback() {
        let c = parse("", &[]).unwrap();
        assert!(c.admin.enabled && c.admin.token.is_none());
        assert_eq!(c.admin.listen, "127.0.0.1:8081".parse().unwrap());
        let err = parse("[admin]\nlisten = \"0.0.0.0:8081\"\n", &[]).unwrap_err().to_string();
        assert!(err.contains("not a loopback address") && err.contains("BERTH_ADMIN__TOKEN"), "{err}");
        let c = parse("[admin]\nlisten = \"0.0.0.0:8081\"\n", &[("BERTH_ADMIN__TOKEN", "s3cret")]).unwrap();
        assert_eq!(c.admin.token.as_ref().unwrap().0, "s3cret");
        assert!(!format!("{c:?}").contains("s3cret"), "the token never prints");
        let c = parse("[server]\ninvoke_token = \"inv-s3cret\"\n", &[]).unwrap();
        assert!(!format!("{c:?}").contains("inv-s3cret"), "the invoke token never prints either");
        assert!(parse("[admin]\nlisten = \"0.0.0.0:8081\"\nenabled = false\n", &[]).is_ok());
    }

    #[test]
    fn a_group_needs_exactly_one_source() {
        let err = parse("[[groups]]\n", &[]).unwrap_err().to_string();
        assert!(err.contains("needs `path"), "{err}");
        let err = parse("[[groups]]\npath = \"a\"\nfile = \"b\"\n", &[]).unwrap_err().to_string();
        assert!(err.contains("more than one of"), "{err}");
    }

    const SHA: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

    #[test]
    fn a_url_group_needs_a_name_and_a_sha256() {
        let c = parse(
            &format!(
                "[[groups]]\nname = \"hello\"\nurl = \"https://a.example/h.so\"\nsha256 = \"{}\"\n",
                SHA.to_uppercase()
            ),
            &[],
        )
        .unwrap();
        assert_eq!(c.groups[0].sha256.as_deref(), Some(SHA), "the pin is normalised to lower case");
        assert_eq!(c.groups[0].label(), "https://a.example/h.so");
        let err =
            parse("[[groups]]\nname = \"hello\"\nurl = \"https://a.example/h.so\"\n", &[]).unwrap_err().to_string();
        assert!(err.contains("needs `sha256") && err.contains("sha256sum"), "{err}");
        let err = parse(&format!("[[groups]]\nurl = \"https://a.example/h.so\"\nsha256 = \"{SHA}\"\n"), &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("needs `name`"), "{err}");
        let err = parse(&format!("[[groups]]\nname = \"h\"\nurl = \"ftp://a/h.so\"\nsha256 = \"{SHA}\"\n"), &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("http:// or https://"), "{err}");
    }

    #[test]
    fn path_and_file_groups_take_a_normalised_pin_and_a_malformed_one_is_refused_by_group_and_key() {
        let padded = format!("  {}\n", SHA.to_uppercase());
        let c = parse(
            &format!(
                "[[groups]]\nfile = \"a.so\"\nsha256 = \"{SHA}\"\n[[groups]]\nname = \"p\"\npath = \"crate\"\nsha256 = {padded:?}\n[[groups]]\nfile = \"b.so\"\n"
            ),
            &[],
        )
        .unwrap();
        assert_eq!(c.groups[0].sha256.as_deref(), Some(SHA));
        assert_eq!(c.groups[1].sha256.as_deref(), Some(SHA), "trimmed and lower-cased");
        assert_eq!(c.groups[2].sha256, None, "a pin stays optional for `path` and `file` groups");
        let err =
            parse("[[groups]]\nname = \"hello\"\nfile = \"a.so\"\nsha256 = \"abc\"\n", &[]).unwrap_err().to_string();
        assert!(err.contains("groups[0] (`hello`)") && err.contains("`sha256 = \"abc\"`"), "{err}");
        assert!(err.contains("64 hex digits") && err.contains("got 3 characters"), "{err}");
        let not_hex = "g".repeat(64);
        let err =
            parse(&format!("[[groups]]\npath = \"crate\"\nsha256 = \"{not_hex}\"\n"), &[]).unwrap_err().to_string();
        assert!(err.contains("groups[0] (") && err.contains("crate") && err.contains("not a sha256"), "{err}");
        let err = parse(&format!("[[groups]]\nname = \"h\"\nurl = \"https://a/h.so\"\nsha256 = \"{SHA}0\"\n"), &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("`h`") && err.contains("got 65 characters"), "{err}");
        assert_eq!(normalize_sha256(&format!(" {} ", SHA.to_uppercase())).as_deref(), Ok(SHA));
        assert!(normalize_sha256("").is_err());
    }

    #[test]
    fn admin_require_sha256_is_off_unless_set() {
        assert!(!parse("", &[]).unwrap().admin.require_sha256);
        assert!(parse("[admin]\nrequire_sha256 = true\n", &[]).unwrap().admin.require_sha256);
        assert!(parse("", &[("BERTH_ADMIN__REQUIRE_SHA256", "true")]).unwrap().admin.require_sha256);
    }

    #[test]
    fn a_group_list_adds_url_groups_and_refuses_anything_else() {
        let dir = tempfile::tempdir().unwrap();
        let list = dir.path().join("groups.toml");
        std::fs::write(&list, format!("[[groups]]\nname = \"hello\"\nurl = \"http://a/h.so\"\nsha256 = \"{SHA}\"\n"))
            .unwrap();
        let text = format!("groups_file = \"{}\"\n[[groups]]\nfile = \"a.so\"\n", list.display());
        let c = parse(&text, &[]).unwrap();
        assert_eq!(c.groups.len(), 2);
        assert!(!c.groups[0].listed && c.groups[1].listed);
        std::fs::write(&list, "[[groups]]\nfile = \"x.so\"\n").unwrap();
        let err = parse(&text, &[]).unwrap_err().to_string();
        assert!(err.contains("group list") && err.contains("holds `url` groups"), "{err}");
        std::fs::remove_file(&list).unwrap();
        let err = parse(&text, &[]).unwrap_err().to_string();
        assert!(err.contains("cannot read the group list"), "{err}");
    }

    #[test]
    fn embedded_services_are_refused_when_replicas_share_nothing() {
        let text = "allow_embedded = false\n[services.db]\nkind = \"sqlite\"\n";
        let err = parse(text, &[]).unwrap_err().to_string();
        assert!(err.contains("`[services.db]` is kind = \"sqlite\"") && err.contains("allow_embedded"), "{err}");
        assert!(parse(text, &[("BERTH_ALLOW_EMBEDDED", "true")]).is_ok());
        assert!(parse("allow_embedded = false\n[services.db]\nkind = \"postgres\"\nurl = \"postgres://x/y\"\n", &[])
            .is_ok());
    }

    #[test]
    fn the_timer_lock_is_a_redis_service_or_url() {
        let c =
            parse("[services.cache]\nkind = \"redis\"\nurl = \"redis://r:6379\"\n[timers]\nlock = \"cache\"\n", &[])
                .unwrap();
        assert_eq!(c.timers.lock_target(&c.services).unwrap(), Some(LockTarget::Redis("redis://r:6379".into())));
        let err = parse("[timers]\nlock = \"cache\"\n", &[]).unwrap_err().to_string();
        assert!(err.contains("names no `[services.cache]`"), "{err}");
        let err = parse("[services.db]\nkind = \"sqlite\"\n[timers]\nlock = \"db\"\n", &[]).unwrap_err().to_string();
        assert!(err.contains("claimed in Redis or PostgreSQL"), "{err}");
        let c = parse("", &[("BERTH_TIMERS__LOCK", "redis://127.0.0.1:6379")]).unwrap();
        assert_eq!(
            c.timers.lock_target(&c.services).unwrap(),
            Some(LockTarget::Redis("redis://127.0.0.1:6379".into()))
        );
        let c = parse(
            "[services.db]\nkind = \"postgres\"\nurl = \"postgres://127.0.0.1/test\"\n[timers]\nlock = \"db\"\n",
            &[],
        )
        .unwrap();
        assert_eq!(
            c.timers.lock_target(&c.services).unwrap(),
            Some(LockTarget::Postgres("postgres://127.0.0.1/test".into()))
        );
        // What the Helm chart does: the service's URL (and so the lock's) only in the environment,
        // under a hyphenated name.
        let c = parse(
            "[services.orders-db]\nkind = \"postgres\"\n[timers]\nlock = \"orders-db\"\n",
            &[("BERTH_SERVICES__ORDERS-DB__URL", "postgres://db/orders")],
        )
        .unwrap();
        assert_eq!(
            c.timers.lock_target(&c.services).unwrap(),
            Some(LockTarget::Postgres("postgres://db/orders".into()))
        );
        let err = parse("[timers]\nlock = \"mysql://x/y\"\n", &[]).unwrap_err().to_string();
        assert!(err.contains("expected a redis:// or postgres:// URL"), "{err}");
    }
    #[test]
    fn queues_parse_with_defaults_env_overrides_and_trigger_bindings() {
        let c = parse(
            "[queues.orders]\nkind = \"redis\"\nurl = \"redis://x\"\nbackoff_base = \"50ms\"\n\
             [[triggers]]\ngroup = \"shop\"\nfunction = \"ship\"\nqueue = \"orders\"\nconcurrency = 2\n",
            &[("BERTH_QUEUES__ORDERS__URL", "redis://127.0.0.1:6379"), ("BERTH_QUEUES__ORDERS__MAX_ATTEMPTS", "3")],
        )
        .unwrap();
        let q = &c.queues["orders"];
        assert_eq!(
            (q.kind, q.url.as_str(), q.max_attempts, q.concurrency),
            (QueueKind::Redis, "redis://127.0.0.1:6379", 3, 8)
        );
        assert_eq!((q.backoff_base, q.backoff_max), (Duration::from_millis(50), Duration::from_secs(60)));
        assert_eq!(
            (c.triggers[0].queue.as_str(), c.triggers[0].concurrency, c.triggers[0].max_attempts),
            ("orders", Some(2), None)
        );
        let err = parse("[queues.q]\nkind = \"kafka\"\nurl = \"x\"\n", &[]).unwrap_err().to_string();
        assert!(err.contains("kafka"), "{err}");
        let err = parse("[queues.q]\nkind = \"redis\"\nurl = \"x\"\nsubject = \"s\"\n", &[]).unwrap_err().to_string();
        assert!(err.contains("`subject` is for kind = \"nats\""), "{err}");
        let err =
            parse("[[triggers]]\ngroup = \"g\"\nfunction = \"f\"\nqueue = \"nope\"\n", &[]).unwrap_err().to_string();
        assert!(err.contains("[queues.nope]"), "{err}");
    }
}
