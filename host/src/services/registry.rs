//! The host's service registry: one backend per `[services.<name>]`, opened on first use by a
//! group's declaration, and the per-group resolution of what a manifest declares.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use berth_plugin_api::abi_stable::{sabi_trait::TD_Opaque, std_types::RArc};
use berth_plugin_api::{HttpClientHandle, HttpClient_TO, KvHandle, RedisHandle};

use super::exports::ExportDirectory;
use super::{blob, http_client, kv, redis, sql, GroupServices, Secret};
use crate::config::{BerthConfig, GroupConfig, HttpClientConfig, SecretSource, ServiceConfig};
use crate::loader::ServiceNeed;
use crate::metrics::Metrics;

/// Why a backend could not be set up.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct SetupError(pub String);

#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    #[error("group `{group}` cannot load: {}", problems.join("; "))]
    Unresolved { group: String, problems: Vec<String> },
}

/// A backend that is open.
#[derive(Clone)]
enum Opened {
    Sql(sql::SqlPool),
    Kv(Arc<dyn kv::KvBackend>, bool),
    Redis(RedisHandle),
    Blob(blob::Bucket),
}

/// Every backend of the host.
pub struct ServiceRegistry {
    data_dir: PathBuf,
    config: BTreeMap<String, ServiceConfig>,
    http_config: HttpClientConfig,
    metrics: Metrics,
    opened: Mutex<BTreeMap<String, Opened>>,
    http: Mutex<Option<HttpClientHandle>>,
    /// Publish handles of `[queues.*]`.
    queues: crate::triggers::queue::Publishers,
    /// Services groups export to each other.
    pub exports: Arc<ExportDirectory>,
}

impl ServiceRegistry {
    pub fn new(config: &BerthConfig, metrics: Metrics) -> Self {
        ServiceRegistry {
            data_dir: config.data_dir.clone(),
            config: config.services.clone(),
            http_config: config.http_client.clone(),
            queues: crate::triggers::queue::Publishers::new(config, metrics.clone()),
            metrics,
            opened: Mutex::new(BTreeMap::new()),
            http: Mutex::new(None),
            exports: Arc::new(ExportDirectory::default()),
        }
    }

    /// The data directory backends keep their files in.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The blob bucket configured as `name`, opening it if needed (blob triggers use this).
    pub fn bucket(&self, name: &str) -> Result<blob::Bucket, String> {
        match self.open(name)? {
            Opened::Blob(b) => Ok(b),
            _ => Err(format!("`[services.{name}]` is not a blob bucket")),
        }
    }

    /// The SQL pool configured as `name`, opening it if needed.
    pub fn sql_pool(&self, name: &str) -> Result<sql::SqlPool, String> {
        match self.open(name)? {
            Opened::Sql(p) => Ok(p),
            _ => Err(format!("`[services.{name}]` is not a SQL database")),
        }
    }

    fn open(&self, name: &str) -> Result<Opened, String> {
        let mut opened = self.opened.lock().expect("registry lock");
        if let Some(o) = opened.get(name) {
            return Ok(o.clone());
        }
        let cfg = self.config.get(name).ok_or_else(|| format!("no `[services.{name}]` in berth.toml"))?;
        let metrics = self.metrics.service(name);
        let setup = |e: SetupError| format!("`[services.{name}]` ({}) could not be set up: {e}", cfg.kind());
        let o = match cfg {
            ServiceConfig::Sqlite(_) | ServiceConfig::Postgres(_) | ServiceConfig::Mysql(_) => {
                Opened::Sql(sql::SqlPool::open(name, cfg, &self.data_dir, metrics).map_err(setup)?)
            }
            ServiceConfig::Kv(c) => {
                Opened::Kv(kv::open_embedded(name, c, &self.data_dir, metrics).map_err(setup)?, c.shared)
            }
            ServiceConfig::RedisKv(c) => Opened::Kv(kv::open_redis(name, c, metrics).map_err(setup)?, c.shared),
            ServiceConfig::Redis(c) => Opened::Redis(redis::open(name, c, metrics).map_err(setup)?),
            ServiceConfig::Blob(c) => {
                Opened::Blob(blob::Bucket::open(name, c, &self.data_dir, metrics).map_err(setup)?)
            }
        };
        opened.insert(name.to_owned(), o.clone());
        Ok(o)
    }

    fn http_client(&self) -> HttpClientHandle {
        let mut http = self.http.lock().expect("registry lock");
        http.get_or_insert_with(|| {
            let client = http_client::OutboundClient::new(&self.http_config, self.metrics.service("http"));
            HttpClient_TO::from_ptr(RArc::new(client), TD_Opaque)
        })
        .clone()
    }

    /// Resolves everything `group` declares. Every problem is reported at once, each with the
    /// `berth.toml` section that would fix it.
    pub fn resolve(&self, group: &str, needs: &[ServiceNeed], gc: &GroupConfig) -> Result<GroupServices, ResolveError> {
        let mut out = GroupServices {
            config_json: serde_json::Value::Object(gc.config.clone()).to_string(),
            ..GroupServices::default()
        };
        let mut problems = Vec::new();
        for need in needs {
            let target = gc.bind.get(&need.name).cloned().unwrap_or_else(|| need.name.clone());
            let wrong_family = |actual: &ServiceConfig| {
                format!(
                    "it declares {} service `{}`, but `[services.{target}]` is kind = \"{}\" (a {} service)",
                    need.kind,
                    need.name,
                    actual.kind(),
                    actual.family()
                )
            };
            let missing = |example: &str| {
                format!(
                    "{} service `{}` is not configured: add `[services.{target}]` with {example} to berth.toml",
                    need.kind, need.name
                )
            };
            match need.kind.as_str() {
                "sql" | "kv" | "redis" | "blob" => {
                    let Some(cfg) = self.config.get(&target) else {
                        let example = match need.kind.as_str() {
                            "sql" => "kind = \"sqlite\" (or \"postgres\"/\"mysql\" with a url)",
                            "kv" => "kind = \"kv\" (or \"redis-kv\" with a url)",
                            "redis" => "kind = \"redis\" and a url",
                            _ => "kind = \"blob\"",
                        };
                        problems.push(missing(example));
                        continue;
                    };
                    if cfg.family() != need.kind {
                        problems.push(wrong_family(cfg));
                        continue;
                    }
                    match self.open(&target) {
                        Err(e) => problems.push(e),
                        Ok(Opened::Sql(pool)) => {
                            out.sql.insert(need.name.clone(), pool.handle());
                        }
                        Ok(Opened::Kv(backend, shared)) => {
                            let namespace = (!shared).then(|| group.to_owned());
                            let handle: KvHandle = kv::handle(backend, namespace, &need.name);
                            out.kv.insert(need.name.clone(), handle);
                        }
                        Ok(Opened::Redis(h)) => {
                            out.redis.insert(need.name.clone(), h);
                        }
                        Ok(Opened::Blob(b)) => {
                            out.blob.insert(need.name.clone(), b.handle());
                        }
                    }
                }
                "http" => out.http = Some(self.http_client()),
                "secret" => match gc.secrets.get(&need.name) {
                    None => problems.push(format!(
                        "secret `{0}` has no source: add `{0} = {{ env = \"VAR\" }}` (or `{{ file = \"path\" }}`) under this group's `[groups.secrets]`",
                        need.name
                    )),
                    Some(src) => match read_secret(src) {
                        Ok(v) => {
                            out.secrets.insert(need.name.clone(), v);
                        }
                        Err(e) => problems.push(format!("secret `{}`: {e}", need.name)),
                    },
                },
                "queue" => match self.queues.handle(&target) {
                    Ok(h) => {
                        out.queues.insert(need.name.clone(), h);
                    }
                    Err(e) => problems.push(e),
                },
                "service" => match self.exports.resolve(group, need, self.metrics.service(&need.name)) {
                    Ok(h) => {
                        out.exported.insert(need.name.clone(), h);
                    }
                    Err(e) => problems.push(e),
                },
                other => problems.push(format!(
                    "{other} service `{}` cannot be provided by this host (unknown service kind, or not yet bound)",
                    need.name
                )),
            }
        }
        if problems.is_empty() {
            Ok(out)
        } else {
            Err(ResolveError::Unresolved { group: group.to_owned(), problems })
        }
    }
}

fn read_secret(src: &SecretSource) -> Result<Secret, String> {
    let value = match src {
        SecretSource::Env(var) => std::env::var(var).map_err(|_| format!("environment variable `{var}` is not set"))?,
        SecretSource::File(path) => std::fs::read_to_string(path)
            .map(|s| s.trim_end_matches(['\n', '\r']).to_owned())
            .map_err(|e| format!("cannot read `{}`: {e}", path.display()))?,
    };
    Ok(Secret(value.into()))
}
