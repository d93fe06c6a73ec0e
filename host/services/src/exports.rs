//! Services that groups export to each other (Midway's reuse through dependency injection).
//!
//! A provider group lists exports in its manifest (name, interface crate, interface version); a
//! consumer declares `service(name, interface, version)`. When the consumer loads, the provider
//! must already serve, implement the same interface, with the same major version (same minor for
//! 0.x) and at least the consumer's version. The consumer's handle is a host-made proxy that looks
//! the provider up on every call, so a provider can be swapped without touching its consumers.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use berth_plugin_api::{
    service_error_kind as kind, CallContext, ROption, RStr, RString, RVec, ServiceClient, ServiceError, ServiceResult,
};

use berth_core::clock::now_unix_ms;
use berth_core::host_future::FutureExt as _;
use berth_core::loader::{ExportInfo, ServiceNeed};
use berth_core::metrics::ServiceMetrics;
use berth_core::GroupInstance;

/// One export of a serving group.
#[derive(Clone)]
struct Provider {
    group: Arc<GroupInstance>,
    interface: String,
    version: semver::Version,
}

/// Which group serves which export, right now.
#[derive(Default)]
pub struct ExportDirectory {
    providers: RwLock<BTreeMap<String, Provider>>,
}

/// Whether a provider built with interface `provided` satisfies a consumer built with `wanted`.
pub fn compatible(provided: &semver::Version, wanted: &semver::Version) -> bool {
    let same_line = if provided.major == 0 && wanted.major == 0 {
        provided.minor == wanted.minor
    } else {
        provided.major == wanted.major
    };
    same_line && provided >= wanted
}

impl ExportDirectory {
    /// Checks a group's exports before it serves: versions parse, names are not taken by
    /// another group.
    pub fn check_exports(&self, group: &str, exports: &[ExportInfo]) -> Result<(), String> {
        let providers = self.providers.read().expect("export directory lock");
        for e in exports {
            semver::Version::parse(&e.version)
                .map_err(|err| format!("export `{}` has interface version `{}`: {err}", e.name, e.version))?;
            if let Some(p) = providers.get(&e.name) {
                if &*p.group.name != group {
                    return Err(format!("export `{}` is already provided by group `{}`", e.name, p.group.name));
                }
            }
        }
        Ok(())
    }

    /// Makes `group` the provider of its exports (replacing an older version of the same group).
    pub fn publish(&self, group: &Arc<GroupInstance>, exports: &[ExportInfo]) {
        let mut providers = self.providers.write().expect("export directory lock");
        providers.retain(|_, p| p.group.name != group.name);
        for e in exports {
            if let Ok(version) = semver::Version::parse(&e.version) {
                providers
                    .insert(e.name.clone(), Provider { group: group.clone(), interface: e.interface.clone(), version });
            }
        }
    }

    /// Removes every export of `group`.
    pub fn withdraw(&self, group: &str) {
        self.providers.write().expect("export directory lock").retain(|_, p| &*p.group.name != group);
    }

    /// Resolves a consumer's `service` declaration into a handle, or says why not.
    pub fn resolve(
        self: &Arc<Self>,
        consumer: &str,
        need: &ServiceNeed,
        metrics: ServiceMetrics,
    ) -> Result<berth_plugin_api::ServiceClientHandle, String> {
        let wanted = semver::Version::parse(&need.version).map_err(|e| {
            format!("service `{}` is declared with interface version `{}`: {e}", need.name, need.version)
        })?;
        let providers = self.providers.read().expect("export directory lock");
        let Some(p) = providers.get(&need.name) else {
            return Err(format!(
                "no loaded group exports service `{}` ({} {}); add the group that provides it to berth.toml",
                need.name, need.interface, need.version
            ));
        };
        if p.interface != need.interface {
            return Err(format!(
                "service `{}` is provided by group `{}` as interface `{}`, but this group was built against `{}`",
                need.name, p.group.name, p.interface, need.interface
            ));
        }
        if !compatible(&p.version, &wanted) {
            return Err(format!(
                "service `{}`: group `{}` provides {} {}, incompatible with {} {} this group was built against; rebuild one side against the same major version",
                need.name, p.group.name, p.interface, p.version, need.interface, wanted
            ));
        }
        drop(providers);
        let proxy = ExportProxy {
            directory: self.clone(),
            export: need.name.clone(),
            interface: need.interface.clone(),
            wanted,
            consumer: consumer.into(),
            metrics,
        };
        Ok(berth_plugin_api::ServiceClient_TO::from_ptr(
            berth_plugin_api::abi_stable::std_types::RArc::new(proxy),
            berth_plugin_api::abi_stable::sabi_trait::TD_Opaque,
        ))
    }

    fn current(&self, export: &str) -> Option<Provider> {
        self.providers.read().expect("export directory lock").get(export).cloned()
    }
}

/// A consumer's handle to an export: resolves the provider at every call.
#[derive(Clone)]
struct ExportProxy {
    directory: Arc<ExportDirectory>,
    export: String,
    interface: String,
    wanted: semver::Version,
    consumer: Arc<str>,
    metrics: ServiceMetrics,
}

/// How long a provider may take for one call.
const EXPORT_CALL_TIMEOUT_MS: u64 = 30_000;

impl ServiceClient for ExportProxy {
    fn call(&self, method: RString, payload: RVec<u8>, request_id: RString) -> ServiceResult<RVec<u8>> {
        let me = self.clone();
        async move {
            let call = async {
                let unavailable = |m: String| ServiceError::new(kind::UNAVAILABLE, &me.export, m);
                let p = me
                    .directory
                    .current(&me.export)
                    .ok_or_else(|| unavailable(format!("no group provides `{}` right now (unloaded?)", me.export)))?;
                if p.interface != me.interface || !compatible(&p.version, &me.wanted) {
                    return Err(unavailable(format!(
                        "the provider of `{}` changed to an incompatible version ({} {})",
                        me.export, p.interface, p.version
                    )));
                }
                let ctx = CallContext {
                    request_id,
                    deadline_unix_ms: now_unix_ms() + EXPORT_CALL_TIMEOUT_MS,
                    host: p.group.host.clone(),
                    trigger: RStr::from_str("service"),
                    caller: ROption::RSome((&*me.consumer).into()),
                };
                let fut = p.group.call_export(me.export.as_str().into(), method, payload, ctx);
                match tokio::time::timeout(std::time::Duration::from_millis(EXPORT_CALL_TIMEOUT_MS), fut).await {
                    Ok(r) => r.into_result(),
                    Err(_) => Err(ServiceError::new(
                        kind::TIMEOUT,
                        &me.export,
                        format!("the provider did not answer within {EXPORT_CALL_TIMEOUT_MS} ms"),
                    )),
                }
            };
            me.metrics.observe("call", call).await
        }
        .into_ffi()
    }
}

#[cfg(test)]
mod tests {
    use super::compatible;
    use semver::Version;

    #[test]
    fn interface_versions_follow_semver() {
        let v = |s| Version::parse(s).unwrap();
        assert!(compatible(&v("1.4.0"), &v("1.2.0")));
        assert!(compatible(&v("1.2.0"), &v("1.2.0")));
        assert!(!compatible(&v("1.1.0"), &v("1.2.0")), "provider older than the consumer");
        assert!(!compatible(&v("2.0.0"), &v("1.2.0")), "another major");
        assert!(compatible(&v("0.3.2"), &v("0.3.0")));
        assert!(!compatible(&v("0.4.0"), &v("0.3.0")), "0.x minors are breaking");
    }
}
