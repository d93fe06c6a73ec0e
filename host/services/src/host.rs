//! The host side of the plugin ABI's `Host` trait: logging, timers, the clock, and the services
//! a group reached through its declarations.

use std::sync::Arc;
use std::time::Duration;

use berth_plugin_api::abi_stable::sabi_trait::TD_Opaque;
use berth_plugin_api::abi_stable::std_types::RArc;
use berth_plugin_api::{
    log_level, BlobHandle, FfiFuture, Host, HostHandle, Host_TO, HttpClientHandle, KvHandle, LogRecord, QueueHandle,
    RResult, RStr, RString, RedisHandle, ServiceClientHandle, ServiceError, SqlHandle,
};

use crate::GroupServices;
use berth_core::host_future::FutureExt as _;
use tracing::level_filters::LevelFilter;

/// What one group sees as its host. One per loaded group.
#[derive(Clone)]
pub struct GroupHost {
    group: Arc<str>,
    max_level: u8,
    services: Arc<GroupServices>,
}

impl GroupHost {
    /// A host handle for group `group` with no services (tools and tests).
    pub fn handle(group: &str) -> HostHandle {
        Self::with_services(group, GroupServices::default())
    }

    /// A host handle for group `group`, logging up to the currently configured level, reaching
    /// exactly `services`.
    pub fn with_services(group: &str, services: GroupServices) -> HostHandle {
        let max_level = match LevelFilter::current() {
            LevelFilter::OFF => 0,
            LevelFilter::ERROR => log_level::ERROR,
            LevelFilter::WARN => log_level::WARN,
            LevelFilter::INFO => log_level::INFO,
            LevelFilter::DEBUG => log_level::DEBUG,
            _ => log_level::TRACE,
        };
        Host_TO::from_ptr(
            RArc::new(GroupHost { group: group.into(), max_level, services: Arc::new(services) }),
            TD_Opaque,
        )
    }
}

impl Host for GroupHost {
    fn max_log_level(&self) -> u8 {
        self.max_level
    }

    fn log(&self, r: LogRecord<'_>) {
        // The call's span (request id, group, function) is current: the host polls the plugin's
        // future inside it, so the record's own request id is not repeated here.
        let (group, target, msg) = (&*self.group, r.target.as_str(), r.message.as_str());
        match r.level {
            log_level::ERROR => {
                tracing::error!(target: "berth::plugin", group, plugin_target = target, "{msg}")
            }
            log_level::WARN => {
                tracing::warn!(target: "berth::plugin", group, plugin_target = target, "{msg}")
            }
            log_level::INFO => {
                tracing::info!(target: "berth::plugin", group, plugin_target = target, "{msg}")
            }
            log_level::DEBUG => {
                tracing::debug!(target: "berth::plugin", group, plugin_target = target, "{msg}")
            }
            _ => tracing::trace!(target: "berth::plugin", group, plugin_target = target, "{msg}"),
        }
    }

    fn sleep(&self, millis: u64) -> FfiFuture<()> {
        tokio::time::sleep(Duration::from_millis(millis)).into_ffi()
    }

    fn now_unix_ms(&self) -> u64 {
        berth_core::clock::now_unix_ms()
    }

    fn config_json(&self) -> RString {
        self.services.config_json.as_str().into()
    }

    fn secret(&self, name: RStr<'_>) -> RResult<RString, ServiceError> {
        self.services.secret(name.as_str()).map(|s| RString::from(&*s.0)).into()
    }

    fn sql(&self, name: RStr<'_>) -> RResult<SqlHandle, ServiceError> {
        self.services.sql(name.as_str()).into()
    }

    fn kv(&self, name: RStr<'_>) -> RResult<KvHandle, ServiceError> {
        self.services.kv(name.as_str()).into()
    }

    fn redis(&self, name: RStr<'_>) -> RResult<RedisHandle, ServiceError> {
        self.services.redis(name.as_str()).into()
    }

    fn blob(&self, name: RStr<'_>) -> RResult<BlobHandle, ServiceError> {
        self.services.blob(name.as_str()).into()
    }

    fn http_client(&self) -> RResult<HttpClientHandle, ServiceError> {
        self.services.http().into()
    }

    fn queue(&self, name: RStr<'_>) -> RResult<QueueHandle, ServiceError> {
        self.services.queue(name.as_str()).into()
    }

    fn service(&self, name: RStr<'_>) -> RResult<ServiceClientHandle, ServiceError> {
        self.services.exported(name.as_str()).into()
    }
}
