//! `berth-services`: the services the host provides to groups, and their resolution.
//!
//! Backends (a SQL pool, a key-value store, a Redis connection, a blob directory, the HTTP client)
//! are configured once per host under `[services.<name>]` and live as long as the host. Each
//! backend kind is a [`ServiceProvider`](berth_core::ServiceProvider) in its own file, compiled in
//! by its cargo feature (`sqlite` — the default: SQLite and the embedded key-value store —,
//! `postgres`, `mysql`, `redis`, `http-client`; `full` for all). When a group loads,
//! [`ServiceRegistry::resolve`] checks every service its manifest declares and builds the
//! group's [`GroupServices`]: the only handles the group can reach. A missing or mistyped
//! service refuses the group at load, naming what is missing and which `berth.toml` section
//! would provide it; it is never a failure at first request.
//!
//! [`host::GroupHost`] is the host side of the plugin ABI's `Host` trait: what one group sees.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use std::collections::BTreeMap;
//! use berth_services::registry::{GroupSettings, RegistrySettings, ServiceRegistry};
//!
//! let text = r#"{ "kind": "kv" }"#;
//! let settings = RegistrySettings {
//!     data_dir: ".berth".into(),
//!     services: [("cache".to_owned(), serde_json::from_str(text)?)].into(),
//!     ..Default::default()
//! };
//! let registry = ServiceRegistry::new(settings, berth_core::Metrics::new(), None);
//! let (config, secrets, bind) = (serde_json::Map::new(), BTreeMap::new(), BTreeMap::new());
//! let needs = [berth_core::loader::ServiceNeed { kind: "kv".into(), name: "cache".into(), interface: String::new(), version: String::new() }];
//! let services = registry.resolve("todo", &needs, GroupSettings { config: &config, secrets: &secrets, bind: &bind, migrations: None, outbound: &Default::default() }).await?;
//! let host = berth_services::host::GroupHost::with_services("todo", services);
//! # drop(host); Ok(()) }
//! ```
#![forbid(unsafe_code)]

pub mod blob;
pub mod config;
pub mod exports;
pub mod host;
#[cfg(feature = "http-client")]
pub mod http_client;
pub mod kv;
pub mod outbound;
#[cfg(feature = "redis")]
pub mod redis;
pub mod registry;
#[cfg(any(feature = "sqlite", feature = "postgres", feature = "mysql"))]
pub mod sql;

pub use registry::{ResolveError, ServiceRegistry};

/// Why a backend could not be set up (a bad path, an invalid URL); the registry adds the
/// section's name.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct SetupError(pub String);

use std::collections::BTreeMap;
use std::sync::Arc;

use berth_plugin_api::{
    service_error_kind, BlobHandle, HttpClientHandle, KvHandle, QueueHandle, RedisHandle, ServiceClientHandle,
    ServiceError, SqlHandle,
};

/// A secret's value. Its `Debug` never shows the value.
#[derive(Clone)]
pub struct Secret(pub(crate) Arc<str>);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// The services one group may reach, resolved when it loaded.
#[derive(Default, Clone)]
pub struct GroupServices {
    pub config_json: String,
    pub secrets: BTreeMap<String, Secret>,
    pub sql: BTreeMap<String, SqlHandle>,
    pub kv: BTreeMap<String, KvHandle>,
    pub redis: BTreeMap<String, RedisHandle>,
    pub blob: BTreeMap<String, BlobHandle>,
    pub http: Option<HttpClientHandle>,
    pub queues: BTreeMap<String, QueueHandle>,
    pub exported: BTreeMap<String, ServiceClientHandle>,
}

impl std::fmt::Debug for GroupServices {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupServices")
            .field("secrets", &self.secrets.keys().collect::<Vec<_>>())
            .field("sql", &self.sql.keys().collect::<Vec<_>>())
            .field("kv", &self.kv.keys().collect::<Vec<_>>())
            .field("redis", &self.redis.keys().collect::<Vec<_>>())
            .field("blob", &self.blob.keys().collect::<Vec<_>>())
            .field("http", &self.http.is_some())
            .field("queues", &self.queues.keys().collect::<Vec<_>>())
            .field("exported", &self.exported.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// The error a group gets for a service it did not declare.
pub fn not_declared(kind: &str, name: &str) -> ServiceError {
    ServiceError::new(
        service_error_kind::NOT_DECLARED,
        name,
        format!("this group did not declare {kind} service `{name}`; add `{kind}(\"{name}\")` to `services` in berth::group!"),
    )
}

impl GroupServices {
    /// Adds the handle of a `[services.*]` service, under the name the group declared.
    pub fn insert(&mut self, declared_as: &str, handle: berth_core::provider::ServiceHandle) {
        use berth_core::provider::ServiceHandle;
        let name = declared_as.to_owned();
        match handle {
            ServiceHandle::Sql(h) => drop(self.sql.insert(name, h)),
            ServiceHandle::Kv(h) => drop(self.kv.insert(name, h)),
            ServiceHandle::Redis(h) => drop(self.redis.insert(name, h)),
            ServiceHandle::Blob(h) => drop(self.blob.insert(name, h)),
        }
    }

    fn pick<T: Clone>(map: &BTreeMap<String, T>, kind: &str, name: &str) -> Result<T, ServiceError> {
        map.get(name).cloned().ok_or_else(|| not_declared(kind, name))
    }
    pub fn sql(&self, name: &str) -> Result<SqlHandle, ServiceError> {
        Self::pick(&self.sql, "sql", name)
    }
    pub fn kv(&self, name: &str) -> Result<KvHandle, ServiceError> {
        Self::pick(&self.kv, "kv", name)
    }
    pub fn redis(&self, name: &str) -> Result<RedisHandle, ServiceError> {
        Self::pick(&self.redis, "redis", name)
    }
    pub fn blob(&self, name: &str) -> Result<BlobHandle, ServiceError> {
        Self::pick(&self.blob, "blob", name)
    }
    pub fn queue(&self, name: &str) -> Result<QueueHandle, ServiceError> {
        Self::pick(&self.queues, "queue", name)
    }
    pub fn exported(&self, name: &str) -> Result<ServiceClientHandle, ServiceError> {
        Self::pick(&self.exported, "service", name)
    }
    pub fn http(&self) -> Result<HttpClientHandle, ServiceError> {
        self.http.clone().ok_or_else(|| not_declared("http", "http"))
    }
    pub fn secret(&self, name: &str) -> Result<Secret, ServiceError> {
        Self::pick(&self.secrets, "secret", name)
    }
}
