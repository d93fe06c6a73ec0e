//! The host's service registry: the providers compiled into this build, one backend per
//! `[services.<name>]` (opened on a group's first declaration of it), and the per-group
//! resolution of what a manifest declares.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use berth_core::loader::ServiceNeed;
use berth_core::metrics::Metrics;
use berth_core::provider::{GroupLoad, OpenContext, OpenedService, ServiceHandle, ServiceProvider};
use berth_plugin_api::{HttpClientHandle, QueueHandle};

use crate::config::{HttpClientConfig, SecretSource, ServiceSection};
use crate::exports::ExportDirectory;
use crate::outbound::{AllowedHosts, GrantSite};
use crate::{GroupServices, Secret};

/// Kinds a build of berth may leave out: (kind, family, the cargo feature that brings it in).
const OPTIONAL_KINDS: &[(&str, &str, &str)] = &[
    ("sqlite", "sql", "sqlite"),
    ("kv", "kv", "sqlite"),
    ("postgres", "sql", "postgres"),
    ("mysql", "sql", "mysql"),
    ("redis-kv", "kv", "redis"),
    ("redis", "redis", "redis"),
];

/// Why a group's services could not be provided.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    #[error("group `{group}` cannot load: {}", problems.join("; "))]
    Unresolved { group: String, problems: Vec<String> },
    /// A service refused the group while preparing it (a migration failed).
    #[error("group `{group}`: {message}")]
    Refused { group: String, message: String },
}

/// The registry's share of `berth.toml`.
#[derive(Debug, Clone, Default)]
pub struct RegistrySettings {
    /// Where embedded backends keep their files.
    pub data_dir: PathBuf,
    /// `[services.<name>]`, by name.
    pub services: BTreeMap<String, ServiceSection>,
    /// `[http_client]`.
    pub http_client: HttpClientConfig,
    /// Where a refused outbound call's message says to grant it (berth.toml, or the test
    /// harness).
    pub outbound_site: GrantSite,
}

/// What one `[[groups]]` entry says about the group's services.
#[derive(Debug, Clone, Copy)]
pub struct GroupSettings<'a> {
    /// `[groups.config]`, handed to the group as JSON.
    pub config: &'a serde_json::Map<String, serde_json::Value>,
    /// `[groups.secrets]`.
    pub secrets: &'a BTreeMap<String, SecretSource>,
    /// `[groups.bind]`: declared name → `[services.*]` name.
    pub bind: &'a BTreeMap<String, String>,
    /// The group's migrations folder, if it has one.
    pub migrations: Option<&'a Path>,
    /// `allowed_outbound_hosts`: what the group's HTTP client may call (empty: nothing).
    pub outbound: &'a AllowedHosts,
}

/// Where queue publish handles come from: `[queues.*]`, whose broker connections the queue
/// trigger owns (it consumes from the same brokers).
pub trait QueueSource: Send + Sync {
    fn handle(&self, queue: &str) -> Result<QueueHandle, String>;
}

/// The service providers compiled into this build. A new backend is registered here.
pub fn providers() -> Vec<Arc<dyn ServiceProvider>> {
    vec![
        #[cfg(feature = "sqlite")]
        Arc::new(crate::sql::sqlite::PROVIDER),
        #[cfg(feature = "sqlite")]
        Arc::new(crate::kv::embedded::PROVIDER),
        Arc::new(crate::kv::memory::PROVIDER),
        #[cfg(feature = "postgres")]
        Arc::new(crate::sql::postgres::PROVIDER),
        #[cfg(feature = "mysql")]
        Arc::new(crate::sql::mysql::PROVIDER),
        #[cfg(feature = "redis")]
        Arc::new(crate::kv::redis::PROVIDER),
        #[cfg(feature = "redis")]
        Arc::new(crate::redis::PROVIDER),
        Arc::new(crate::blob::PROVIDER),
    ]
}

/// The message for a `kind` no provider of this build opens.
fn unknown_kind(name: &str, kind: &str, providers: &[Arc<dyn ServiceProvider>]) -> String {
    if let Some((_, _, feature)) = OPTIONAL_KINDS.iter().find(|(k, _, _)| *k == kind) {
        return format!(
            "`[services.{name}]` is kind = \"{kind}\", which this berth was built without; rebuild it with \
             `--features {feature}` (or `--features full`)"
        );
    }
    let known: Vec<String> = providers.iter().map(|p| format!("\"{}\"", p.kind())).collect();
    format!("`[services.{name}]` has unknown kind = \"{kind}\"; this berth knows {}", known.join(", "))
}

/// Checks every `[services.*]` section against its provider's config type (before the host
/// binds a port). The message names the section and the key.
pub fn check_sections(sections: &BTreeMap<String, ServiceSection>) -> Result<(), String> {
    let providers = providers();
    for (name, section) in sections {
        let provider = providers
            .iter()
            .find(|p| p.kind() == section.kind)
            .ok_or_else(|| unknown_kind(name, &section.kind, &providers))?;
        provider
            .check(&section.settings_value())
            .map_err(|e| format!("`[services.{name}]` (kind = \"{}\"): {e}", section.kind))?;
    }
    Ok(())
}

/// Every backend of the host.
pub struct ServiceRegistry {
    settings: RegistrySettings,
    providers: Vec<Arc<dyn ServiceProvider>>,
    metrics: Metrics,
    opened: Mutex<BTreeMap<String, Arc<dyn OpenedService>>>,
    queues: Option<Arc<dyn QueueSource>>,
    /// Services groups export to each other.
    pub exports: Arc<ExportDirectory>,
}

impl ServiceRegistry {
    /// A registry with the providers of this build; `queues` publishes to `[queues.*]`.
    pub fn new(settings: RegistrySettings, metrics: Metrics, queues: Option<Arc<dyn QueueSource>>) -> Self {
        ServiceRegistry {
            settings,
            providers: providers(),
            metrics,
            opened: Mutex::new(BTreeMap::new()),
            queues,
            exports: Arc::new(ExportDirectory::default()),
        }
    }

    /// The data directory backends keep their files in.
    pub fn data_dir(&self) -> &Path {
        &self.settings.data_dir
    }

    /// The blob bucket configured as `name`, opening it if needed (blob triggers use this).
    pub fn bucket(&self, name: &str) -> Result<crate::blob::Bucket, String> {
        let opened = self.open(name)?;
        opened
            .as_any()
            .downcast_ref::<crate::blob::Bucket>()
            .cloned()
            .ok_or_else(|| format!("`[services.{name}]` is not a blob bucket"))
    }

    fn provider(&self, name: &str, section: &ServiceSection) -> Result<&Arc<dyn ServiceProvider>, String> {
        self.providers
            .iter()
            .find(|p| p.kind() == section.kind)
            .ok_or_else(|| unknown_kind(name, &section.kind, &self.providers))
    }

    fn open(&self, name: &str) -> Result<Arc<dyn OpenedService>, String> {
        let mut opened = self.opened.lock().expect("registry lock");
        if let Some(o) = opened.get(name) {
            return Ok(o.clone());
        }
        let section =
            self.settings.services.get(name).ok_or_else(|| format!("no `[services.{name}]` in berth.toml"))?;
        let provider = self.provider(name, section)?;
        let ctx = OpenContext { name, data_dir: &self.settings.data_dir, metrics: self.metrics.service(name) };
        let o = provider
            .open(&section.settings_value(), ctx)
            .map_err(|e| format!("`[services.{name}]` ({}) could not be set up: {e}", section.kind))?;
        opened.insert(name.to_owned(), o.clone());
        Ok(o)
    }

    /// The group's own outbound client, with its `allowed_outbound_hosts` (built once per
    /// install; a group that declares no `http()` gets none, and pays nothing).
    #[cfg(feature = "http-client")]
    fn http_client(&self, group: &str, outbound: &AllowedHosts) -> Result<HttpClientHandle, String> {
        use berth_plugin_api::abi_stable::{sabi_trait::TD_Opaque, std_types::RArc};
        let policy = crate::outbound::OutboundPolicy {
            group: group.into(),
            hosts: outbound.clone(),
            site: self.settings.outbound_site,
        };
        let client = crate::http_client::OutboundClient::new(&self.settings.http_client, &self.metrics, policy);
        Ok(berth_plugin_api::HttpClient_TO::from_ptr(RArc::new(client), TD_Opaque))
    }

    #[cfg(not(feature = "http-client"))]
    fn http_client(&self, _group: &str, _outbound: &AllowedHosts) -> Result<HttpClientHandle, String> {
        Err("it declares the outbound HTTP client, which this berth was built without; rebuild it with \
             `--features http-client` (or `--features full`)"
            .into())
    }

    /// An example section for a family, from the providers that serve it.
    fn example(&self, family: &str) -> String {
        let kinds: Vec<&str> = self.providers.iter().filter(|p| p.family() == family).map(|p| p.kind()).collect();
        match kinds.split_first() {
            None => format!("a kind of the `{family}` family (none is compiled into this berth)"),
            Some((first, [])) => format!("kind = \"{first}\""),
            Some((first, rest)) => {
                let rest: Vec<String> = rest.iter().map(|k| format!("\"{k}\"")).collect();
                format!("kind = \"{first}\" (or {})", rest.join("/"))
            }
        }
    }

    /// Binds a declaration of a `[services.*]` family (sql, kv, redis, blob).
    fn bind_configured(&self, group: &str, need: &ServiceNeed, target: &str) -> Result<ServiceHandle, String> {
        let Some(section) = self.settings.services.get(target) else {
            let known_family = self.providers.iter().any(|p| p.family() == need.kind)
                || OPTIONAL_KINDS.iter().any(|(_, family, _)| *family == need.kind);
            if !known_family {
                return Err(format!(
                    "{} service `{}` cannot be provided by this host (unknown service kind, or not yet bound)",
                    need.kind, need.name
                ));
            }
            return Err(format!(
                "{} service `{}` is not configured: add `[services.{target}]` with {} to berth.toml",
                need.kind,
                need.name,
                self.example(&need.kind)
            ));
        };
        let provider = self.provider(target, section)?;
        if provider.family() != need.kind {
            return Err(format!(
                "it declares {} service `{}`, but `[services.{target}]` is kind = \"{}\" (a {} service)",
                need.kind,
                need.name,
                section.kind,
                provider.family()
            ));
        }
        Ok(self.open(target)?.bind(group, &need.name))
    }

    /// Resolves everything `group` declares and prepares the group (migrations). Every problem
    /// is reported at once, each with the `berth.toml` section that would fix it.
    pub async fn resolve(
        &self,
        group: &str,
        needs: &[ServiceNeed],
        settings: GroupSettings<'_>,
    ) -> Result<GroupServices, ResolveError> {
        let mut out = GroupServices {
            config_json: serde_json::Value::Object(settings.config.clone()).to_string(),
            ..GroupServices::default()
        };
        let mut problems = Vec::new();
        let mut configured = Vec::new();
        for need in needs {
            let target = settings.bind.get(&need.name).cloned().unwrap_or_else(|| need.name.clone());
            let bound = match need.kind.as_str() {
                "http" => self.http_client(group, settings.outbound).map(|h| out.http = Some(h)),
                "secret" => self.secret(&need.name, settings.secrets).map(|s| {
                    out.secrets.insert(need.name.clone(), s);
                }),
                "queue" => self.queue(&target).map(|h| {
                    out.queues.insert(need.name.clone(), h);
                }),
                "service" => self.exports.resolve(group, need, self.metrics.service(&need.name)).map(|h| {
                    out.exported.insert(need.name.clone(), h);
                }),
                _ => self.bind_configured(group, need, &target).map(|handle| {
                    out.insert(&need.name, handle);
                    configured.push((need, target.clone()));
                }),
            };
            if let Err(problem) = bound {
                problems.push(problem);
            }
        }
        if !problems.is_empty() {
            return Err(ResolveError::Unresolved { group: group.to_owned(), problems });
        }
        for (need, target) in &configured {
            let load = GroupLoad {
                group,
                declared_as: &need.name,
                declared_of_family: configured.iter().filter(|(n, _)| n.kind == need.kind).count(),
                migrations: settings.migrations,
            };
            let refused = |message: String| ResolveError::Refused { group: group.to_owned(), message };
            let opened = self.open(target).map_err(refused)?;
            let done = opened.on_group_load(load).await.map_err(refused)?;
            if !done.is_empty() {
                tracing::info!(group, service = %target, done = ?done, "service prepared the group");
            }
        }
        Ok(out)
    }

    fn queue(&self, target: &str) -> Result<QueueHandle, String> {
        match &self.queues {
            Some(q) => q.handle(target),
            None => Err(format!("queue `{target}` cannot be published to: this host serves no queues")),
        }
    }

    fn secret(&self, name: &str, secrets: &BTreeMap<String, SecretSource>) -> Result<Secret, String> {
        match secrets.get(name) {
            None => Err(format!(
                "secret `{name}` has no source: add `{name} = {{ env = \"VAR\" }}` (or `{{ file = \"path\" }}`) under this group's `[groups.secrets]`"
            )),
            Some(src) => read_secret(src).map_err(|e| format!("secret `{name}`: {e}")),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn section(text: &str) -> ServiceSection {
        serde_json::from_str(text).unwrap()
    }

    #[test]
    fn a_kind_left_out_of_the_build_names_the_feature_to_enable() {
        let e = unknown_kind("db", "postgres", &[]);
        assert!(e.contains("[services.db]") && e.contains("--features postgres"), "{e}");
        let e = unknown_kind("db", "oracle", &providers());
        assert!(e.contains("unknown kind = \"oracle\"") && e.contains("\"blob\""), "{e}");
    }

    #[test]
    fn sections_are_checked_by_their_provider() {
        let ok: BTreeMap<String, ServiceSection> = [("files".into(), section(r#"{"kind": "blob"}"#))].into();
        assert!(check_sections(&ok).is_ok());
        let typo: BTreeMap<String, ServiceSection> =
            [("files".into(), section(r#"{"kind": "blob", "max_objetc_size": "1MiB"}"#))].into();
        let e = check_sections(&typo).unwrap_err();
        assert!(e.contains("[services.files]") && e.contains("max_objetc_size"), "{e}");
    }
}
