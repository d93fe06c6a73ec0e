//! The `[services.<name>]`, `[http_client]` and `[groups.secrets]` sections of `berth.toml`: each
//! backend's settings, typed. `kind` picks the backend's provider; unknown keys are errors.

use std::path::PathBuf;
use std::time::Duration;

use bytesize::ByteSize;
use serde::Deserialize;

/// One `[services.<name>]` section: `kind` picks the provider, which parses the rest into its
/// own config type (one of the types below) and refuses keys it does not know.
#[derive(Debug, Clone, Deserialize)]
pub struct ServiceSection {
    pub kind: String,
    #[serde(flatten)]
    pub settings: serde_json::Map<String, serde_json::Value>,
}

impl ServiceSection {
    /// The settings as one JSON object, as providers parse them.
    pub fn settings_value(&self) -> serde_json::Value {
        serde_json::Value::Object(self.settings.clone())
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SqliteConfig {
    /// The database file; relative paths are under `data_dir`. Default: `<data_dir>/sql/<name>.db`.
    pub path: Option<PathBuf>,
    #[serde(default = "default_sqlite_connections")]
    pub max_connections: u32,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SqlServerConfig {
    /// `postgres://user@host:5432/db` or `mysql://root@127.0.0.1:3306/db`.
    pub url: String,
    #[serde(default = "default_pool_connections")]
    pub max_connections: u32,
    /// How long a call waits for a connection (and a connection attempt may take).
    #[serde(default = "default_acquire_timeout", with = "humantime_serde")]
    pub acquire_timeout: Duration,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmbeddedKvConfig {
    /// The store's file; relative paths are under `data_dir`. Default: `<data_dir>/kv/<name>.db`.
    pub path: Option<PathBuf>,
    /// Shared stores are not namespaced per group.
    #[serde(default)]
    pub shared: bool,
    #[serde(default = "default_max_value")]
    pub max_value_size: ByteSize,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisKvConfig {
    /// `redis://127.0.0.1:6379/0`.
    pub url: String,
    /// Prefix of every key this store writes (before the group namespace).
    #[serde(default = "default_redis_prefix")]
    pub key_prefix: String,
    #[serde(default)]
    pub shared: bool,
    #[serde(default = "default_max_value")]
    pub max_value_size: ByteSize,
    /// How long one command may take before the call fails with `timeout`.
    #[serde(default = "default_acquire_timeout", with = "humantime_serde")]
    pub timeout: Duration,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisConfig {
    pub url: String,
    #[serde(default = "default_acquire_timeout", with = "humantime_serde")]
    pub timeout: Duration,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BlobConfig {
    /// The bucket's directory; relative paths are under `data_dir`. Default: `<data_dir>/blob/<name>`.
    pub dir: Option<PathBuf>,
    #[serde(default = "default_max_object")]
    pub max_object_size: ByteSize,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpClientConfig {
    /// Default timeout of an outbound request (a call may ask for less).
    #[serde(default = "default_timeout", with = "humantime_serde")]
    pub timeout: Duration,
    /// Largest response body a function may receive.
    #[serde(default = "default_body_limit")]
    pub max_response_size: ByteSize,
}

impl Default for HttpClientConfig {
    fn default() -> Self {
        HttpClientConfig { timeout: default_timeout(), max_response_size: default_body_limit() }
    }
}

/// Where a group's secret comes from: `stripe_key = { env = "STRIPE_KEY" }` or `{ file = "..." }`.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub enum SecretSource {
    Env(String),
    File(PathBuf),
}

impl std::fmt::Debug for SecretSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SecretSource::Env(v) => write!(f, "env:{v}"),
            SecretSource::File(p) => write!(f, "file:{}", p.display()),
        }
    }
}

fn default_timeout() -> Duration {
    Duration::from_secs(30)
}
fn default_body_limit() -> ByteSize {
    ByteSize::mib(6)
}
fn default_sqlite_connections() -> u32 {
    4
}
fn default_pool_connections() -> u32 {
    10
}
fn default_acquire_timeout() -> Duration {
    Duration::from_secs(5)
}
fn default_max_value() -> ByteSize {
    ByteSize::mib(1)
}
fn default_max_object() -> ByteSize {
    ByteSize::mib(64)
}
fn default_redis_prefix() -> String {
    "berth:".into()
}
