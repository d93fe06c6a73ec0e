//! The [`ServiceProvider`] trait: one backend kind of `[services.<name>]` (`kind = "postgres"`).
//!
//! A provider owns its configuration type (serde, unknown keys refused), opens its backend once
//! per configured section ([`ServiceProvider::open`], on a group's first declaration of it), binds
//! a handle for each group that declares it ([`OpenedService::bind`]) and may prepare the group
//! when it loads ([`OpenedService::on_group_load`]: SQL migrations). The service registry holds a
//! list of providers and never matches on kind names itself: adding a backend of an existing
//! family is one file with a provider and one registration line.

use std::any::Any;
use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;

use berth_plugin_api::{BlobHandle, KvHandle, RedisHandle, SqlHandle};
use serde::de::DeserializeOwned;

use crate::metrics::ServiceMetrics;

/// A future a provider returns.
pub type ProviderFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What a provider is given to open a backend.
pub struct OpenContext<'a> {
    /// The section's name: `db` of `[services.db]`.
    pub name: &'a str,
    /// Where embedded backends keep their files.
    pub data_dir: &'a Path,
    /// The metrics every call of this service is counted under.
    pub metrics: ServiceMetrics,
}

/// A handle a group gets for a declared service.
#[derive(Clone)]
pub enum ServiceHandle {
    Sql(SqlHandle),
    Kv(KvHandle),
    Redis(RedisHandle),
    Blob(BlobHandle),
}

/// What an opened service is told when a group that declared it loads.
#[derive(Debug, Clone, Copy)]
pub struct GroupLoad<'a> {
    pub group: &'a str,
    /// The name the group declared the service under.
    pub declared_as: &'a str,
    /// How many services of this family the group declared.
    pub declared_of_family: usize,
    /// The group's migrations folder (`[[groups]] migrations`, or its crate's `migrations/`).
    pub migrations: Option<&'a Path>,
}

/// One backend kind of `[services.<name>]`.
pub trait ServiceProvider: Send + Sync + 'static {
    /// The `kind` value it opens: `sqlite`, `postgres`, `redis-kv`.
    fn kind(&self) -> &'static str;
    /// The family a group declares it as: `sql`, `kv`, `redis` or `blob`.
    fn family(&self) -> &'static str;
    /// Checks a section's settings (everything but `kind`) against the provider's config type.
    /// Called for every section before the host binds a port.
    fn check(&self, settings: &serde_json::Value) -> Result<(), String>;
    /// Opens the backend of one section. Connections are made lazily: a server that is down
    /// does not refuse a group, its calls fail until it is back.
    fn open(&self, settings: &serde_json::Value, ctx: OpenContext<'_>) -> Result<Arc<dyn OpenedService>, String>;
}

/// A backend that is open, shared by every group that declares it.
pub trait OpenedService: Send + Sync + 'static {
    /// The handle group `group` gets when it declares this service as `declared_as`.
    fn bind(&self, group: &str, declared_as: &str) -> ServiceHandle;
    /// Runs when a group that declares this service loads, before its init hook; an error
    /// refuses the group. Returns what was done, for the log (migrations applied).
    fn on_group_load<'a>(&'a self, load: GroupLoad<'a>) -> ProviderFuture<'a, Result<Vec<String>, String>> {
        let _ = load;
        Box::pin(async { Ok(Vec::new()) })
    }
    /// The concrete backend, for host code that needs more than a handle (blob triggers
    /// subscribe to a bucket's events).
    fn as_any(&self) -> &dyn Any;
}

/// Parses a provider's typed config from a section's settings; the message names the key.
pub fn parse_settings<T: DeserializeOwned>(settings: &serde_json::Value) -> Result<T, String> {
    serde_json::from_value(settings.clone()).map_err(|e| e.to_string())
}

/// A provider made of its kind, its family and a function that opens the backend from the
/// provider's own config type `C` (parsed from the section; unknown keys refused by `C`'s serde).
/// Most backends are one of these:
///
/// ```
/// use std::sync::Arc;
/// use berth_core::provider::{OpenedService, TypedProvider};
///
/// #[derive(serde::Deserialize)]
/// #[serde(deny_unknown_fields)]
/// struct MemoryConfig { capacity: usize }
///
/// fn open(_cfg: &MemoryConfig, _ctx: berth_core::provider::OpenContext<'_>) -> Result<Arc<dyn OpenedService>, String> {
///     Err("not in this example".into())
/// }
///
/// const MEMORY: TypedProvider<MemoryConfig> = TypedProvider::new("memory-kv", "kv", open);
/// # use berth_core::ServiceProvider as _;
/// assert!(MEMORY.check(&serde_json::json!({ "capacity": 3 })).is_ok());
/// assert!(MEMORY.check(&serde_json::json!({ "capcity": 3 })).unwrap_err().contains("capcity"));
/// ```
pub struct TypedProvider<C> {
    kind: &'static str,
    family: &'static str,
    open: OpenFn<C>,
}

/// How a [`TypedProvider`] opens its backend.
pub type OpenFn<C> = fn(&C, OpenContext<'_>) -> Result<Arc<dyn OpenedService>, String>;

impl<C> TypedProvider<C> {
    pub const fn new(kind: &'static str, family: &'static str, open: OpenFn<C>) -> Self {
        TypedProvider { kind, family, open }
    }
}

impl<C: DeserializeOwned + 'static> ServiceProvider for TypedProvider<C> {
    fn kind(&self) -> &'static str {
        self.kind
    }
    fn family(&self) -> &'static str {
        self.family
    }
    fn check(&self, settings: &serde_json::Value) -> Result<(), String> {
        parse_settings::<C>(settings).map(drop)
    }
    fn open(&self, settings: &serde_json::Value, ctx: OpenContext<'_>) -> Result<Arc<dyn OpenedService>, String> {
        (self.open)(&parse_settings::<C>(settings)?, ctx)
    }
}
