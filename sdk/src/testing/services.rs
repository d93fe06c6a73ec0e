//! A group under test with its services (cargo feature `testing`): see [`TestGroupBuilder`].

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use berth_core::loader::{ExportInfo, GroupManifest, ServiceNeed};
use berth_core::{GroupCode, GroupInstance, LinkedGroup, Metrics};
use berth_plugin_api::abi_stable::sabi_trait::TD_Opaque;
use berth_plugin_api::abi_stable::std_types::RArc;
use berth_plugin_api::{
    service_error_kind, BlobHandle, FfiFuture, Host, HostHandle, Host_TO, HttpClientHandle, KvHandle, LogRecord, Pair,
    QueueHandle, QueuePublisher, QueuePublisher_TO, RResult, RStr, RString, RVec, RedisHandle, ServiceClientHandle,
    ServiceError, ServiceResult, SqlHandle,
};
use berth_services::config::{SecretSource, ServiceSection};
use berth_services::host::GroupHost;
use berth_services::outbound::{AllowedHosts, GrantSite, PatternError};
use berth_services::registry::{GroupSettings, QueueSource, RegistrySettings, ServiceRegistry};
use berth_services::ResolveError;

use super::TestGroup;
use crate::__private::GroupDef;
use crate::{Error, GroupContext};

// === the builder ===

/// Options of a group under test; made by [`TestGroup::builder`], finished by
/// [`TestGroupBuilder::start`].
///
/// [`TestGroup::start`](super::TestGroup::start) and [`TestGroup::builder`] provision every
/// service the group declares in `berth::group! { services: [...] }` on the host's own backends
/// (`berth-services`), in a temporary directory of the test group's own that is removed when it
/// drops:
///
/// | declared | backed by |
/// | --- | --- |
/// | `sql("db")` | a SQLite file; PostgreSQL, in a fresh schema dropped afterwards, when `DATABASE_URL` is set (feature `testing-postgres`) |
/// | `kv("cache")` | the embedded key-value store; Redis under a unique key prefix, deleted afterwards, when `REDIS_URL` is set (feature `testing-redis`) |
/// | `redis("raw")` | the Redis server of `REDIS_URL` (feature `testing-redis`); otherwise calls fail naming what to set |
/// | `blob("uploads")` | a local bucket (a directory) |
/// | `queue("orders")` | a recorder: [`TestGroup::published`] lists what was published (there is no broker in a unit test) |
/// | `http()` | the host's outbound client (feature `testing-http`), allowed to call what [`TestGroupBuilder::allow_outbound`] lists and nothing else by default; otherwise calls fail naming the feature |
/// | `secret("key")` | the value given with [`TestGroupBuilder::secret`] |
/// | an interface crate's `requirement("users")` | the export of a group loaded with [`TestGroupBuilder::provider`] |
/// | (always) `ctx.config()` | the JSON given with [`TestGroupBuilder::config`] |
///
/// ```ignore
/// let g = TestGroup::builder(todo::berth_group())
///     .config(serde_json::json!({ "page_size": 20 }))
///     .secret("stripe_key", "sk_test_123")
///     .migrations("db", "migrations")            // relative to the crate under test
///     .provider(users::berth_group())            // serves `users` to todo
///     .start()?;
/// ```
///
/// Services are resolved by the host's own registry, so a group that declares something the
/// harness cannot give it (a secret without a value, a service no provider exports) is refused
/// at start, as the host would refuse it at load, with a message that names the builder option
/// to use. Every call runs on a tokio runtime the test group owns (from inside another
/// runtime, a `#[tokio::test]`, on a thread of its own).
///
/// Enable it for tests only, `[dev-dependencies] berth = { ..., features = ["testing"] }`: with
/// it, group crates export no plugin symbols (so that a test binary can link a group and its
/// providers), and a plugin build (`cargo build --lib`) never turns on dev-dependency features.
pub struct TestGroupBuilder {
    def: GroupDef,
    config: serde_json::Value,
    secrets: BTreeMap<String, String>,
    migrations: Vec<(String, PathBuf)>,
    providers: Vec<GroupDef>,
    allowed_outbound_hosts: Vec<String>,
}

impl std::fmt::Debug for TestGroupBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestGroupBuilder")
            .field("group", &self.def.name)
            .field("config", &self.config)
            .field("secrets", &self.secrets.keys().collect::<Vec<_>>())
            .field("migrations", &self.migrations)
            .field("providers", &self.providers.iter().map(|p| p.name).collect::<Vec<_>>())
            .field("allowed_outbound_hosts", &self.allowed_outbound_hosts)
            .finish()
    }
}

impl TestGroupBuilder {
    /// The group configuration (what `[groups.config]` gives; `ctx.config()`): a JSON object.
    pub fn config(mut self, config: serde_json::Value) -> Self {
        self.config = config;
        self
    }

    /// The value of the secret the group declares as `secret(name)`. A value cannot end with a
    /// line break (the host trims those from secret files).
    pub fn secret(mut self, name: &str, value: impl Into<String>) -> Self {
        self.secrets.insert(name.to_owned(), value.into());
        self
    }

    /// Applies the `*.sql` files of `dir` (or of `dir/<backend>/`, `dir/sqlite/` for example,
    /// when that folder exists) to the group's SQL service `service` before its init hook runs,
    /// with the host's migration code. A relative `dir` is taken from the current directory,
    /// which `cargo test` sets to the crate's root.
    pub fn migrations(mut self, service: &str, dir: impl Into<PathBuf>) -> Self {
        self.migrations.push((service.to_owned(), dir.into()));
        self
    }

    /// What the group's outbound HTTP client (`ctx.http()`) may call: entries of
    /// `allowed_outbound_hosts` as berth.toml writes them (`"http://127.0.0.1:*"`,
    /// `"https://api.example.com"`, `"*://*:*"`); each call adds to the list. The default, as in
    /// the host, is nothing: a test makes the grant its group will need in berth.toml explicit,
    /// and a refused call's error names the entry to add here. Link-local and metadata addresses
    /// are refused unless listed by address, and loopback unless listed (`127.0.0.1`, `localhost`).
    /// A malformed entry fails [`TestGroupBuilder::start`] with the entry and how to write it.
    /// Providers get no outbound access.
    pub fn allow_outbound(mut self, entries: &[&str]) -> Self {
        self.allowed_outbound_hosts.extend(entries.iter().map(|e| (*e).to_owned()));
        self
    }

    /// Loads another group first, with its own services (on the same backends, as in one host),
    /// and serves its exports to this one and to providers added after it. A provider starts
    /// with an empty configuration and no secrets; its init hook runs.
    pub fn provider(mut self, def: GroupDef) -> Self {
        self.providers.push(def);
        self
    }

    /// Provisions the services, loads the providers, applies the migrations and runs the
    /// group's init hook.
    pub fn start(self) -> Result<TestGroup, StartError> {
        let TestGroupBuilder { def, config, secrets, migrations, providers, allowed_outbound_hosts } = self;
        let config = match config {
            serde_json::Value::Object(map) => map,
            serde_json::Value::Null => serde_json::Map::new(),
            other => return Err(StartError::Config { group: def.name.to_owned(), value: other.to_string() }),
        };
        let outbound = AllowedHosts::parse(&allowed_outbound_hosts)
            .map_err(|error| StartError::Outbound { group: def.name.to_owned(), error })?;
        let backends = Backends::from_env()?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("berth-test")
            .enable_all()
            .build()
            .map_err(StartError::Runtime)?;
        let dir = tempfile::Builder::new().prefix("berth-test-").tempdir().map_err(StartError::TempDir)?;
        let uid = unique_id();

        let mut sections = BTreeMap::new();
        for d in providers.iter().chain(std::iter::once(&def)).flat_map(|g| &g.services) {
            if let Some(section) = backends.section(d.kind, &d.name, &uid) {
                sections.entry(d.name.clone()).or_insert(section);
            }
        }
        #[cfg(feature = "testing-redis")]
        if let Some(url) = &backends.redis {
            sections.insert(CLEANUP_REDIS.to_owned(), section(serde_json::json!({ "kind": "redis", "url": url })));
        }
        let captured = Arc::new(Captured::default());
        let settings = RegistrySettings {
            data_dir: dir.path().to_owned(),
            services: sections,
            outbound_site: GrantSite::TestHarness,
            ..Default::default()
        };
        let queues: Arc<dyn QueueSource> = Arc::new(Recorder(captured.clone()));
        let metrics = Metrics::new();
        let registry = Arc::new(ServiceRegistry::new(settings, metrics.clone(), Some(queues)));

        // From here on, dropping `env` undoes what was made (schemas, keys, the directory).
        let mut env = Env {
            runtime: Some(runtime),
            registry: Some(registry.clone()),
            metrics,
            providers: Vec::new(),
            captured,
            cleanup: Vec::new(),
            dir,
        };
        let mut cleanup = Vec::new();
        let prepared = env.block_on(backends.prepare(&registry, &def, &providers, &uid, &mut cleanup));
        env.cleanup = cleanup;
        prepared?;

        let mut exported = BTreeSet::new();
        for p in &providers {
            let load = Load {
                def: p,
                config: &serde_json::Map::new(),
                secrets: &BTreeMap::new(),
                migrations: &[],
                outbound: &AllowedHosts::default(),
            };
            let host = env.block_on(load.run(&registry, &backends, env.dir.path(), &exported))?;
            let instance = env.block_on(serve_exports(&registry, p, host))?;
            exported.extend(p.exports.iter().map(|e| e.name.to_owned()));
            env.providers.push(instance);
        }
        let load = Load { def: &def, config: &config, secrets: &secrets, migrations: &migrations, outbound: &outbound };
        let host = env.block_on(load.run(&registry, &backends, env.dir.path(), &exported))?;
        Ok(TestGroup { def, host, env })
    }
}

/// Why a group under test could not start. Each message says what to change.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    #[error("the test harness could not start its tokio runtime: {0}")]
    Runtime(#[source] std::io::Error),
    #[error(
        "the test harness could not create its temporary data directory: {0}; check that the temporary \
         directory (TMPDIR) exists and is writable"
    )]
    TempDir(#[source] std::io::Error),
    /// An entry of [`TestGroupBuilder::allow_outbound`] is malformed.
    #[error("`.allow_outbound(...)` of group `{group}`: {error}")]
    Outbound { group: String, error: PatternError },
    #[error("`.config(...)` of group `{group}` must be a JSON object (what `[groups.config]` holds), not `{value}`")]
    Config { group: String, value: String },
    /// What the group declares that the builder did not give (every problem at once, as the
    /// host reports them).
    #[error("group `{group}` cannot start: {}", problems.join("; "))]
    Unprovided { group: String, problems: Vec<String> },
    #[error("secret `{name}` of group `{group}`: {message}")]
    Secret { group: String, name: String, message: String },
    #[error("`.migrations(\"{service}\", ...)`: group `{group}` declares no sql service `{service}` ({declared})")]
    MigrationsService { group: String, service: String, declared: String },
    #[error("`.migrations(\"{service}\", \"{dir}\")`: {message}")]
    Migrations { service: String, dir: String, message: String },
    /// The host's registry refused the group's services.
    #[error("{0}")]
    Services(#[from] ResolveError),
    #[error("provider group `{group}` cannot serve its exports: {message}")]
    Exports { group: String, message: String },
    #[error("{message}")]
    Database { message: String },
    #[error("the init hook of group `{group}` failed: {error}")]
    Init { group: String, error: Error },
    /// [`TestGroup::serve`] could not serve the group over HTTP.
    #[error("group `{group}` cannot be served over HTTP: {message}")]
    Serve { group: String, message: String },
}

impl StartError {
    /// The error [`TestGroup::start`] answers: an init hook's own error as it returned it, any
    /// other failure as a 500 with this message.
    pub fn into_error(self) -> Error {
        match self {
            StartError::Init { error, .. } => error,
            other => Error::internal(other.to_string()),
        }
    }
}

/// One message a function published to a queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    /// The id the publisher got back (`test-<queue>-<n>`).
    pub id: String,
    pub payload: Vec<u8>,
    /// The headers as published (`content-type`, `ce-*`, ...).
    pub headers: Vec<(String, String)>,
}

impl Published {
    /// The first header named `name` (ASCII case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// The payload decoded from JSON.
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> serde_json::Result<T> {
        serde_json::from_slice(&self.payload)
    }

    /// The payload as UTF-8 text.
    pub fn text(&self) -> Result<&str, std::str::Utf8Error> {
        std::str::from_utf8(&self.payload)
    }
}

impl TestGroup {
    /// A group under test with options: configuration, secrets, migrations, provider groups,
    /// outbound hosts.
    pub fn builder(def: GroupDef) -> TestGroupBuilder {
        TestGroupBuilder {
            def,
            config: serde_json::json!({}),
            secrets: BTreeMap::new(),
            migrations: Vec::new(),
            providers: Vec::new(),
            allowed_outbound_hosts: Vec::new(),
        }
    }

    /// What the functions of this test group (the group and its providers) published to
    /// `queue`, oldest first. Empty for a queue nothing was published to.
    pub fn published(&self, queue: &str) -> Vec<Published> {
        self.env.captured.queues.lock().expect("queue recorder lock").get(queue).cloned().unwrap_or_default()
    }

    /// The group's services as its init hook sees them (`sql`, `kv`, `blob`, `queue`, `secret`,
    /// `config`, ...): to seed data before a call or check it after one, inside
    /// [`TestGroup::block_on`].
    pub fn group_context(&self) -> GroupContext {
        GroupContext { host: self.host.clone() }
    }

    /// Runs `fut` to completion on this test group's runtime (where its services live).
    pub fn block_on<F>(&self, fut: F) -> F::Output
    where
        F: Future + Send,
        F::Output: Send,
    {
        self.env.block_on(fut)
    }

    /// The temporary directory the embedded backends keep their files in (SQLite databases,
    /// the key-value store, blob buckets under `blob/<name>/`). Removed when the group drops.
    pub fn data_dir(&self) -> &Path {
        self.env.dir.path()
    }
}

// === the environment: runtime, directory, backends ===

/// What a test group owns besides the group: dropped after its host handle, it removes what
/// the backends made.
pub(super) struct Env {
    runtime: Option<tokio::runtime::Runtime>,
    registry: Option<Arc<ServiceRegistry>>,
    /// The host metrics the registry and a [`super::TestServer`] count in.
    pub(super) metrics: Metrics,
    providers: Vec<Arc<GroupInstance>>,
    captured: Arc<Captured>,
    cleanup: Vec<Cleanup>,
    dir: tempfile::TempDir,
}

impl Env {
    /// Runs `fut` on the runtime: on this thread, or on a thread of its own when this thread
    /// already runs another runtime (a `#[tokio::test]`), which cannot block on a second one.
    pub(super) fn block_on<F>(&self, fut: F) -> F::Output
    where
        F: Future + Send,
        F::Output: Send,
    {
        let runtime = self.runtime.as_ref().expect("the runtime lives until the test group drops");
        if tokio::runtime::Handle::try_current().is_err() {
            return runtime.block_on(fut);
        }
        std::thread::scope(|s| {
            s.spawn(|| runtime.block_on(fut)).join().unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        })
    }
}

impl Env {
    /// Runs `fut` in the background on the runtime.
    pub(super) fn spawn<F>(&self, fut: F) -> tokio::task::JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.runtime.as_ref().expect("the runtime lives until the test group drops").spawn(fut)
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        let cleanup = std::mem::take(&mut self.cleanup);
        if !cleanup.is_empty() {
            self.block_on(async move {
                for c in cleanup {
                    c.run().await;
                }
            });
        }
        let Some(runtime) = self.runtime.take() else { return };
        {
            // Pools and connections close inside the runtime they were opened in.
            let _entered = runtime.enter();
            self.providers.clear();
            self.registry = None;
        }
        runtime.shutdown_background();
    }
}

/// Something to undo when the test group drops.
enum Cleanup {
    #[cfg(feature = "testing-postgres")]
    DropSchema { service: String, schema: String, handle: SqlHandle },
    #[cfg(feature = "testing-redis")]
    DeleteKeys { prefix: String, handle: RedisHandle },
}

impl Cleanup {
    async fn run(self) {
        match self {
            #[cfg(feature = "testing-postgres")]
            Cleanup::DropSchema { service, schema, handle } => {
                let sql = format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE");
                if let RResult::RErr(e) = handle.execute(sql.into(), RVec::new()).await {
                    eprintln!(
                        "berth::testing: could not drop schema `{schema}` of sql service `{service}`: {}",
                        e.message
                    );
                }
            }
            #[cfg(feature = "testing-redis")]
            Cleanup::DeleteKeys { prefix, handle } => {
                let script = "for _, k in ipairs(redis.call('KEYS', ARGV[1])) do redis.call('DEL', k) end return 0";
                let args = ["EVAL", script, "0", &format!("{prefix}*")];
                let args = args.iter().map(|a| RVec::from(a.as_bytes().to_vec())).collect();
                if let RResult::RErr(e) = handle.command(args).await {
                    eprintln!("berth::testing: could not delete the Redis keys under `{prefix}`: {}", e.message);
                }
            }
        }
    }
}

/// The name of the hidden `redis` service the harness deletes its key-value keys with.
#[cfg(feature = "testing-redis")]
const CLEANUP_REDIS: &str = "berth-test-cleanup";

/// The group name the harness resolves its own handles under.
#[cfg(any(feature = "testing-postgres", feature = "testing-redis"))]
const HARNESS: &str = "berth-test";

/// Which backends this test run uses, from the features and the environment.
struct Backends {
    /// `DATABASE_URL`, when SQL runs on PostgreSQL.
    #[cfg(feature = "testing-postgres")]
    postgres: Option<String>,
    /// `REDIS_URL`, when the key-value store and `redis` services run on Redis.
    #[cfg(feature = "testing-redis")]
    redis: Option<String>,
}

/// Says `message` once per test process (on stderr, which `cargo test` shows for failures).
#[cfg(not(all(feature = "testing-postgres", feature = "testing-redis")))]
fn note_once(flag: &std::sync::atomic::AtomicBool, message: &str) {
    if !flag.swap(true, Ordering::Relaxed) {
        eprintln!("berth::testing: {message}");
    }
}

fn env_var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

fn section(value: serde_json::Value) -> ServiceSection {
    serde_json::from_value(value).expect("a service section the harness writes is valid")
}

impl Backends {
    fn from_env() -> Result<Backends, StartError> {
        let database_url = env_var("DATABASE_URL");
        #[cfg(feature = "testing-postgres")]
        let postgres = match database_url {
            Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => Some(url),
            Some(_) => {
                return Err(StartError::Database {
                    message: "DATABASE_URL is set but is not a postgres:// URL: the test harness runs SQL on \
                              PostgreSQL when DATABASE_URL=postgres://user@host/db, and on SQLite when it is unset"
                        .into(),
                })
            }
            None => None,
        };
        #[cfg(not(feature = "testing-postgres"))]
        if database_url.is_some() {
            static NOTED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
            note_once(&NOTED, "DATABASE_URL is set, but berth's `testing-postgres` feature is off: SQL runs on SQLite");
        }
        let redis_url = env_var("REDIS_URL");
        #[cfg(feature = "testing-redis")]
        let redis = redis_url;
        #[cfg(not(feature = "testing-redis"))]
        if redis_url.is_some() {
            static NOTED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
            note_once(
                &NOTED,
                "REDIS_URL is set, but berth's `testing-redis` feature is off: key-value stores are embedded",
            );
        }
        Ok(Backends {
            #[cfg(feature = "testing-postgres")]
            postgres,
            #[cfg(feature = "testing-redis")]
            redis,
        })
    }

    /// The `[services.<name>]` section for a declaration of `kind`, if it is one of those.
    fn section(&self, kind: &str, name: &str, uid: &str) -> Option<ServiceSection> {
        let _ = (name, uid);
        let value = match kind {
            #[cfg(feature = "testing-postgres")]
            "sql" if self.postgres.is_some() => {
                let url = self.postgres.as_deref().unwrap_or_default();
                serde_json::json!({ "kind": "postgres", "url": with_search_path(url, &schema_name(uid, name)) })
            }
            "sql" => serde_json::json!({ "kind": "sqlite" }),
            #[cfg(feature = "testing-redis")]
            "kv" if self.redis.is_some() => serde_json::json!({
                "kind": "redis-kv",
                "url": self.redis.as_deref().unwrap_or_default(),
                "key_prefix": redis_prefix(uid),
            }),
            "kv" => serde_json::json!({ "kind": "kv" }),
            #[cfg(feature = "testing-redis")]
            "redis" if self.redis.is_some() => {
                serde_json::json!({ "kind": "redis", "url": self.redis.as_deref().unwrap_or_default() })
            }
            "blob" => serde_json::json!({ "kind": "blob" }),
            _ => return None,
        };
        Some(section(value))
    }

    /// Why a declared service cannot be given to the group in this test run (its calls fail
    /// with this message), or `None` when it can.
    fn unavailable(&self, need: &ServiceNeed) -> Option<String> {
        match need.kind.as_str() {
            #[cfg(feature = "testing-redis")]
            "redis" if self.redis.is_some() => None,
            #[cfg(feature = "testing-redis")]
            "redis" => Some(format!(
                "redis service `{}` needs a Redis server, which the test harness does not embed: set \
                 REDIS_URL=redis://127.0.0.1:6379 (a server whose keys tests may write)",
                need.name
            )),
            #[cfg(not(feature = "testing-redis"))]
            "redis" => Some(format!(
                "redis service `{}` needs a Redis server, which the test harness does not embed: enable berth's \
                 `testing-redis` feature (`berth = {{ ..., features = [\"testing-redis\"] }}` under \
                 [dev-dependencies]) and set REDIS_URL=redis://127.0.0.1:6379",
                need.name
            )),
            #[cfg(not(feature = "testing-http"))]
            "http" => Some(
                "the outbound HTTP client needs berth's `testing-http` feature in tests: \
                 `berth = { ..., features = [\"testing-http\"] }` under [dev-dependencies]"
                    .into(),
            ),
            _ => None,
        }
    }

    /// Makes the backends ready before any group touches them: a fresh PostgreSQL schema per SQL
    /// service, the handle that deletes the Redis keys afterwards. Each thing made is recorded in
    /// `cleanup` as soon as it exists.
    async fn prepare(
        &self,
        registry: &ServiceRegistry,
        def: &GroupDef,
        providers: &[GroupDef],
        uid: &str,
        cleanup: &mut Vec<Cleanup>,
    ) -> Result<(), StartError> {
        let _ = (registry, def, providers, uid, &cleanup);
        #[cfg(feature = "testing-postgres")]
        if self.postgres.is_some() {
            let names: BTreeSet<&str> = providers
                .iter()
                .chain(std::iter::once(def))
                .flat_map(|g| &g.services)
                .filter(|d| d.kind == "sql")
                .map(|d| d.name.as_str())
                .collect();
            for name in names {
                let schema = schema_name(uid, name);
                let services = registry.resolve(HARNESS, &[plain_need("sql", name)], no_settings()).await?;
                let handle =
                    services.sql(name).map_err(|e| StartError::Database { message: e.message.into_string() })?;
                cleanup.push(Cleanup::DropSchema {
                    service: name.to_owned(),
                    schema: schema.clone(),
                    handle: handle.clone(),
                });
                let sql = format!("CREATE SCHEMA IF NOT EXISTS \"{schema}\"");
                if let RResult::RErr(e) = handle.execute(sql.into(), RVec::new()).await {
                    return Err(StartError::Database {
                        message: format!(
                            "PostgreSQL (DATABASE_URL): creating schema `{schema}` for sql service `{name}` failed: \
                             {}; check that the server is up and its user may CREATE SCHEMA, or unset \
                             DATABASE_URL to test on SQLite",
                            e.message
                        ),
                    });
                }
            }
        }
        #[cfg(feature = "testing-redis")]
        if self.redis.is_some() {
            let services = registry.resolve(HARNESS, &[plain_need("redis", CLEANUP_REDIS)], no_settings()).await?;
            if let Ok(handle) = services.redis(CLEANUP_REDIS) {
                cleanup.push(Cleanup::DeleteKeys { prefix: redis_prefix(uid), handle });
            }
        }
        Ok(())
    }
}

/// A process-wide unique, lowercase id for this test group's schemas and key prefixes.
fn unique_id() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or_default();
    format!("{:x}_{:x}_{}", std::process::id(), nanos, NEXT.fetch_add(1, Ordering::Relaxed))
}

/// `berth_test_<uid>_<service>`, a PostgreSQL identifier (at most 63 bytes).
#[cfg(feature = "testing-postgres")]
fn schema_name(uid: &str, service: &str) -> String {
    let service: String =
        service.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '_' }).collect();
    let mut name = format!("berth_test_{uid}_{service}");
    name.truncate(63);
    name
}

/// `url` with `search_path` set to `schema` for every connection of the pool.
#[cfg(feature = "testing-postgres")]
fn with_search_path(url: &str, schema: &str) -> String {
    let (base, fragment) = url.split_once('#').map_or((url, None), |(b, f)| (b, Some(f)));
    let sep = if base.contains('?') { '&' } else { '?' };
    let mut out = format!("{base}{sep}options=-c%20search_path%3D{schema}");
    if let Some(f) = fragment {
        out.push('#');
        out.push_str(f);
    }
    out
}

#[cfg(feature = "testing-redis")]
fn redis_prefix(uid: &str) -> String {
    format!("berth-test:{uid}:")
}

#[cfg(any(feature = "testing-postgres", feature = "testing-redis"))]
fn plain_need(kind: &str, name: &str) -> ServiceNeed {
    ServiceNeed { kind: kind.into(), name: name.into(), interface: String::new(), version: String::new() }
}

#[cfg(any(feature = "testing-postgres", feature = "testing-redis"))]
fn no_settings() -> GroupSettings<'static> {
    static CONFIG: std::sync::OnceLock<serde_json::Map<String, serde_json::Value>> = std::sync::OnceLock::new();
    static EMPTY: BTreeMap<String, SecretSource> = BTreeMap::new();
    static BIND: BTreeMap<String, String> = BTreeMap::new();
    static NONE: AllowedHosts = AllowedHosts::new();
    GroupSettings {
        config: CONFIG.get_or_init(serde_json::Map::new),
        secrets: &EMPTY,
        bind: &BIND,
        migrations: None,
        outbound: &NONE,
    }
}

// === loading one group ===

/// What loading one group takes.
struct Load<'a> {
    def: &'a GroupDef,
    config: &'a serde_json::Map<String, serde_json::Value>,
    secrets: &'a BTreeMap<String, String>,
    migrations: &'a [(String, PathBuf)],
    outbound: &'a AllowedHosts,
}

fn needs_of(def: &GroupDef) -> Vec<ServiceNeed> {
    def.services
        .iter()
        .map(|d| ServiceNeed {
            kind: d.kind.to_owned(),
            name: d.name.clone(),
            interface: d.interface.to_owned(),
            version: d.version.to_owned(),
        })
        .collect()
}

impl Load<'_> {
    /// Resolves the group's services with the host's registry, applies its migrations, and
    /// runs its init hook. Returns the group's host.
    async fn run(
        self,
        registry: &ServiceRegistry,
        backends: &Backends,
        data_dir: &Path,
        exported: &BTreeSet<String>,
    ) -> Result<HostHandle, StartError> {
        let group = self.def.name;
        let mut unavailable = BTreeMap::new();
        let mut needs = Vec::new();
        let mut problems = Vec::new();
        for need in needs_of(self.def) {
            if let Some(why) = backends.unavailable(&need) {
                unavailable.insert((need.kind.clone(), need.name.clone()), why);
                continue;
            }
            match need.kind.as_str() {
                "service" if !exported.contains(&need.name) => problems.push(format!(
                    "it uses service `{}` ({} {}), which no group under test exports: load the group that exports \
                     it with `.provider(<its crate>::berth_group())` on `TestGroup::builder`",
                    need.name, need.interface, need.version
                )),
                "secret" if !self.secrets.contains_key(&need.name) => problems.push(format!(
                    "it declares secret `{0}`: give it a value with `.secret(\"{0}\", \"...\")` on `TestGroup::builder`",
                    need.name
                )),
                _ => {}
            }
            needs.push(need);
        }
        if !problems.is_empty() {
            return Err(StartError::Unprovided { group: group.to_owned(), problems });
        }
        let secrets = self.write_secrets(&needs, data_dir)?;
        let bind = BTreeMap::new();
        let settings = GroupSettings {
            config: self.config,
            secrets: &secrets,
            bind: &bind,
            migrations: None,
            outbound: self.outbound,
        };
        let services = registry.resolve(group, &needs, settings).await?;
        for (service, dir) in self.migrations {
            let Some(need) = needs.iter().find(|n| n.kind == "sql" && n.name == *service) else {
                let sql: Vec<String> =
                    needs.iter().filter(|n| n.kind == "sql").map(|n| format!("`{}`", n.name)).collect();
                let declared = if sql.is_empty() {
                    "it declares none".to_owned()
                } else {
                    format!("it declares {}", sql.join(", "))
                };
                return Err(StartError::MigrationsService {
                    group: group.to_owned(),
                    service: service.clone(),
                    declared,
                });
            };
            let dir = std::env::current_dir().map(|cwd| cwd.join(dir)).unwrap_or_else(|_| dir.clone());
            let settings = GroupSettings { migrations: Some(&dir), ..settings };
            // Resolving one SQL service with a migrations folder is how the host applies them.
            registry.resolve(group, std::slice::from_ref(need), settings).await.map_err(|e| {
                StartError::Migrations {
                    service: service.clone(),
                    dir: dir.display().to_string(),
                    message: e.to_string(),
                }
            })?;
        }
        let inner = GroupHost::with_services(group, services);
        let host = Host_TO::from_ptr(RArc::new(HarnessHost { inner, unavailable: Arc::new(unavailable) }), TD_Opaque);
        if let Some(init) = self.def.init {
            init(GroupContext { host: host.clone() })
                .await
                .map_err(|error| StartError::Init { group: group.to_owned(), error })?;
        }
        Ok(host)
    }

    /// Writes the values of the secrets the group declares into files of the data directory,
    /// the `file` source of `[groups.secrets]`.
    fn write_secrets(
        &self,
        needs: &[ServiceNeed],
        data_dir: &Path,
    ) -> Result<BTreeMap<String, SecretSource>, StartError> {
        let group = self.def.name;
        let mut sources = BTreeMap::new();
        for need in needs.iter().filter(|n| n.kind == "secret") {
            let fail =
                |message: String| StartError::Secret { group: group.to_owned(), name: need.name.clone(), message };
            let Some(value) = self.secrets.get(&need.name) else { continue };
            if value.ends_with(['\n', '\r']) {
                return Err(fail(
                    "a secret value cannot end with a line break (the host trims it from secret files)".into(),
                ));
            }
            let dir = data_dir.join("secrets").join(group);
            std::fs::create_dir_all(&dir).map_err(|e| fail(format!("cannot create `{}`: {e}", dir.display())))?;
            let path = dir.join(&need.name);
            write_private(&path, value.as_bytes())
                .map_err(|e| fail(format!("cannot write `{}`: {e}", path.display())))?;
            sources.insert(need.name.clone(), SecretSource::File(path));
        }
        Ok(sources)
    }
}

/// Writes a file only its owner can read.
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)?.write_all(bytes)
}

/// Makes a loaded provider group serve its exports, through the host's export directory.
async fn serve_exports(
    registry: &ServiceRegistry,
    def: &GroupDef,
    host: HostHandle,
) -> Result<Arc<GroupInstance>, StartError> {
    let exports: Vec<ExportInfo> = def
        .exports
        .iter()
        .map(|e| ExportInfo { name: e.name.into(), interface: e.interface.into(), version: e.version.into() })
        .collect();
    registry
        .exports
        .check_exports(def.name, &exports)
        .map_err(|message| StartError::Exports { group: def.name.to_owned(), message })?;
    let origin = PathBuf::from(format!("<berth::testing provider `{}`>", def.name));
    let manifest = GroupManifest::from_abi(&origin, def.manifest())
        .map_err(|e| StartError::Exports { group: def.name.to_owned(), message: e.to_string() })?;
    let group = crate::export::group_box(Arc::new(def.clone()), host.clone());
    let instance = Arc::new(GroupInstance {
        name: def.name.into(),
        version: def.version.into(),
        host,
        code: GroupCode::Linked(LinkedGroup { group, manifest, origin }),
        calls: Default::default(),
    });
    registry.exports.publish(&instance, &exports);
    Ok(instance)
}

// === the host a group under test sees ===

/// The host's `GroupHost` with the group's resolved services, logging to stderr (which
/// `cargo test` shows for a failing test), and answering the services this test run cannot
/// provide with why.
#[derive(Clone)]
struct HarnessHost {
    inner: HostHandle,
    /// (kind, name) → why it is not there.
    unavailable: Arc<BTreeMap<(String, String), String>>,
}

impl HarnessHost {
    fn check(&self, kind: &str, name: &str) -> Result<(), ServiceError> {
        match self.unavailable.get(&(kind.to_owned(), name.to_owned())) {
            Some(why) => Err(ServiceError::new(service_error_kind::NOT_DECLARED, name, why.as_str())),
            None => Ok(()),
        }
    }

    fn or_unavailable<T>(
        &self,
        kind: &str,
        name: RStr<'_>,
        get: impl FnOnce(RStr<'_>) -> RResult<T, ServiceError>,
    ) -> RResult<T, ServiceError> {
        match self.check(kind, name.as_str()) {
            Ok(()) => get(name),
            Err(e) => RResult::RErr(e),
        }
    }
}

impl Host for HarnessHost {
    fn max_log_level(&self) -> u8 {
        berth_plugin_api::log_level::DEBUG
    }
    fn log(&self, record: LogRecord<'_>) {
        eprintln!("[{}] {} {}: {}", record.request_id, record.level, record.target, record.message);
    }
    fn sleep(&self, millis: u64) -> FfiFuture<()> {
        self.inner.sleep(millis)
    }
    fn now_unix_ms(&self) -> u64 {
        self.inner.now_unix_ms()
    }
    fn config_json(&self) -> RString {
        self.inner.config_json()
    }
    fn secret(&self, name: RStr<'_>) -> RResult<RString, ServiceError> {
        self.inner.secret(name)
    }
    fn sql(&self, name: RStr<'_>) -> RResult<SqlHandle, ServiceError> {
        self.or_unavailable("sql", name, |n| self.inner.sql(n))
    }
    fn kv(&self, name: RStr<'_>) -> RResult<KvHandle, ServiceError> {
        self.or_unavailable("kv", name, |n| self.inner.kv(n))
    }
    fn redis(&self, name: RStr<'_>) -> RResult<RedisHandle, ServiceError> {
        self.or_unavailable("redis", name, |n| self.inner.redis(n))
    }
    fn blob(&self, name: RStr<'_>) -> RResult<BlobHandle, ServiceError> {
        self.or_unavailable("blob", name, |n| self.inner.blob(n))
    }
    fn http_client(&self) -> RResult<HttpClientHandle, ServiceError> {
        match self.check("http", "http") {
            Ok(()) => self.inner.http_client(),
            Err(e) => RResult::RErr(e),
        }
    }
    fn queue(&self, name: RStr<'_>) -> RResult<QueueHandle, ServiceError> {
        self.or_unavailable("queue", name, |n| self.inner.queue(n))
    }
    fn service(&self, name: RStr<'_>) -> RResult<ServiceClientHandle, ServiceError> {
        self.or_unavailable("service", name, |n| self.inner.service(n))
    }
}

// === queues: a recorder ===

/// Every message published in one test group, by queue.
#[derive(Default)]
struct Captured {
    queues: Mutex<BTreeMap<String, Vec<Published>>>,
    next: AtomicU64,
}

/// The registry's source of queue handles: each publishes into [`Captured`].
struct Recorder(Arc<Captured>);

impl QueueSource for Recorder {
    fn handle(&self, queue: &str) -> Result<QueueHandle, String> {
        let publisher = RecordingQueue { queue: queue.to_owned(), captured: self.0.clone() };
        Ok(QueuePublisher_TO::from_ptr(RArc::new(publisher), TD_Opaque))
    }
}

#[derive(Clone)]
struct RecordingQueue {
    queue: String,
    captured: Arc<Captured>,
}

impl QueuePublisher for RecordingQueue {
    fn publish(&self, payload: RVec<u8>, headers: RVec<Pair>) -> ServiceResult<RString> {
        let n = self.captured.next.fetch_add(1, Ordering::Relaxed) + 1;
        let id = format!("test-{}-{n}", self.queue);
        let message = Published {
            id: id.clone(),
            payload: payload.into_vec(),
            headers: headers.into_iter().map(|p| (p.0.into_string(), p.1.into_string())).collect(),
        };
        self.captured.queues.lock().expect("queue recorder lock").entry(self.queue.clone()).or_default().push(message);
        use berth_plugin_api::async_ffi::FutureExt as _;
        std::future::ready(RResult::ROk(RString::from(id))).into_ffi()
    }
}
