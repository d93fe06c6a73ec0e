//! Handles to the services the host provides: `ctx.sql("db")`, `ctx.kv("cache")`,
//! `ctx.redis("cache")`, `ctx.blob("uploads")`, `ctx.http()`, `ctx.queue("orders")`,
//! `ctx.service("users")`, `ctx.secret("key")`, `ctx.config()`.
//!
//! A group declares what it uses in `berth::group!{ services: [sql("db"), kv("cache")], .. }`;
//! the host resolves every declared service when the group loads and refuses the group when one
//! is missing, so a handle for a declared service is always there. Asking for an undeclared one is
//! an error (`not_declared`), never a silent fallback.

mod blob;
mod http;
mod kv;
mod queue;
mod redis;
mod sql;

use std::fmt;

use berth_plugin_api::{service_error_kind as kind, HostHandle};

pub use blob::{Blob, BlobInfo};
pub use http::{HttpClient, OutboundResponse};
pub use kv::Kv;
pub use queue::Queue;
pub use redis::Redis;
pub use sql::{sql_bool, Sql, SqlValue, Transaction};

use crate::{Error, StatusCode};

/// A service call that failed. Convert with `?` into [`crate::Error`]: an unavailable or
/// timed-out backend answers 503, a lost compare-and-swap 409, an oversized value 413.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceError {
    kind: u8,
    service: String,
    message: String,
}

impl ServiceError {
    pub(crate) fn from_abi(e: berth_plugin_api::ServiceError) -> Self {
        ServiceError { kind: e.kind, service: e.service.into_string(), message: e.message.into_string() }
    }
    pub(crate) fn local(kind: u8, service: &str, message: impl Into<String>) -> Self {
        ServiceError { kind, service: service.to_owned(), message: message.into() }
    }
    /// The backend is down or did not answer in time: retrying later may work.
    pub fn is_unavailable(&self) -> bool {
        matches!(self.kind, kind::UNAVAILABLE | kind::TIMEOUT)
    }
    pub fn is_not_found(&self) -> bool {
        self.kind == kind::NOT_FOUND
    }
    pub fn is_conflict(&self) -> bool {
        self.kind == kind::CONFLICT
    }
    pub fn is_too_large(&self) -> bool {
        self.kind == kind::TOO_LARGE
    }
    /// The service name as configured.
    pub fn service(&self) -> &str {
        &self.service
    }
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for ServiceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "service `{}`: {}", self.service, self.message)
    }
}

impl From<ServiceError> for Error {
    fn from(e: ServiceError) -> Self {
        let (status, code) = match e.kind {
            kind::UNAVAILABLE | kind::TIMEOUT => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            kind::NOT_FOUND => (StatusCode::NOT_FOUND, "not_found"),
            kind::CONFLICT => (StatusCode::CONFLICT, "conflict"),
            kind::TOO_LARGE => (StatusCode::PAYLOAD_TOO_LARGE, "too_large"),
            _ => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        };
        Error::new(status, code, e.to_string())
    }
}

/// The result of a service call.
pub type ServiceResult<T> = Result<T, ServiceError>;

pub(crate) fn lift<T>(r: berth_plugin_api::RResult<T, berth_plugin_api::ServiceError>) -> ServiceResult<T> {
    r.into_result().map_err(ServiceError::from_abi)
}

/// A service another group exports, called through its interface crate's client.
#[derive(Clone)]
pub struct ServiceClient {
    name: String,
    handle: berth_plugin_api::ServiceClientHandle,
}

impl fmt::Debug for ServiceClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServiceClient").field("name", &self.name).finish()
    }
}

impl ServiceClient {
    /// Calls `method` with a JSON-encoded request and decodes the JSON answer.
    pub async fn call<Req: serde::Serialize, Resp: serde::de::DeserializeOwned>(
        &self,
        method: &str,
        request: &Req,
    ) -> ServiceResult<Resp> {
        let payload = serde_json::to_vec(request)
            .map_err(|e| ServiceError::local(kind::INVALID, &self.name, format!("encoding `{method}` request: {e}")))?;
        let request_id = crate::context::with_current(|c| c.map(|c| c.request_id.clone()).unwrap_or_default());
        let raw = lift(self.handle.call(method.into(), payload.into(), request_id).await)?;
        serde_json::from_slice(&raw)
            .map_err(|e| ServiceError::local(kind::INVALID, &self.name, format!("decoding `{method}` answer: {e}")))
    }
}

/// The service accessors shared by [`crate::Context`] (per call) and [`crate::GroupContext`]
/// (init and stop hooks).
pub(crate) fn sql(host: &HostHandle, name: &str) -> ServiceResult<Sql> {
    lift(host.sql(name.into())).map(|h| Sql::new(name, h))
}
pub(crate) fn kv(host: &HostHandle, name: &str) -> ServiceResult<Kv> {
    lift(host.kv(name.into())).map(|h| Kv::new(name, h))
}
pub(crate) fn redis(host: &HostHandle, name: &str) -> ServiceResult<Redis> {
    lift(host.redis(name.into())).map(|h| Redis::new(name, h))
}
pub(crate) fn blob(host: &HostHandle, name: &str) -> ServiceResult<Blob> {
    lift(host.blob(name.into())).map(|h| Blob::new(name, h))
}
pub(crate) fn http(host: &HostHandle) -> ServiceResult<HttpClient> {
    lift(host.http_client()).map(HttpClient::new)
}
pub(crate) fn queue(host: &HostHandle, name: &str) -> ServiceResult<Queue> {
    lift(host.queue(name.into())).map(|h| Queue::new(name, h))
}
pub(crate) fn service(host: &HostHandle, name: &str) -> ServiceResult<ServiceClient> {
    lift(host.service(name.into())).map(|handle| ServiceClient { name: name.to_owned(), handle })
}
pub(crate) fn secret(host: &HostHandle, name: &str) -> ServiceResult<String> {
    lift(host.secret(name.into())).map(|s| s.into_string())
}
pub(crate) fn config(host: &HostHandle) -> serde_json::Value {
    serde_json::from_str(host.config_json().as_str()).unwrap_or_else(|_| serde_json::json!({}))
}

/// Adds the service accessors to a type that holds a host handle.
macro_rules! service_accessors {
    ($ty:ty, |$s:ident| $host:expr) => {
        impl $ty {
            /// A SQL database declared as `sql("name")`.
            pub fn sql(&self, name: &str) -> $crate::services::ServiceResult<$crate::services::Sql> {
                let $s = self;
                $crate::services::sql($host, name)
            }
            /// A key-value store declared as `kv("name")`.
            pub fn kv(&self, name: &str) -> $crate::services::ServiceResult<$crate::services::Kv> {
                let $s = self;
                $crate::services::kv($host, name)
            }
            /// Direct Redis access declared as `redis("name")`.
            pub fn redis(&self, name: &str) -> $crate::services::ServiceResult<$crate::services::Redis> {
                let $s = self;
                $crate::services::redis($host, name)
            }
            /// A blob bucket declared as `blob("name")`.
            pub fn blob(&self, name: &str) -> $crate::services::ServiceResult<$crate::services::Blob> {
                let $s = self;
                $crate::services::blob($host, name)
            }
            /// The outbound HTTP client, declared as `http()`.
            pub fn http(&self) -> $crate::services::ServiceResult<$crate::services::HttpClient> {
                let $s = self;
                $crate::services::http($host)
            }
            /// A queue to publish to, declared as `queue("name")`.
            pub fn queue(&self, name: &str) -> $crate::services::ServiceResult<$crate::services::Queue> {
                let $s = self;
                $crate::services::queue($host, name)
            }
            /// A service another group exports, declared through its interface crate.
            pub fn service(&self, name: &str) -> $crate::services::ServiceResult<$crate::services::ServiceClient> {
                let $s = self;
                $crate::services::service($host, name)
            }
            /// A secret declared as `secret("name")`. Keep it out of logs and responses.
            pub fn secret(&self, name: &str) -> $crate::services::ServiceResult<String> {
                let $s = self;
                $crate::services::secret($host, name)
            }
            /// The group's `[groups.config]` table (with environment overrides) as JSON.
            pub fn config(&self) -> serde_json::Value {
                let $s = self;
                $crate::services::config($host)
            }
        }
    };
}
pub(crate) use service_accessors;

/// Service declarations for `berth::group!{ services: [...] }`.
pub mod decl {
    /// One declared service.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct ServiceDecl {
        pub kind: &'static str,
        pub name: String,
        pub interface: &'static str,
        pub version: &'static str,
    }

    fn plain(kind: &'static str, name: &str) -> ServiceDecl {
        ServiceDecl { kind, name: name.to_owned(), interface: "", version: "" }
    }
    /// A SQL database (`[services.<name>] kind = "sqlite" | "postgres" | "mysql"`).
    pub fn sql(name: &str) -> ServiceDecl {
        plain("sql", name)
    }
    /// A key-value store (`kind = "kv"` embedded, or `"redis-kv"`).
    pub fn kv(name: &str) -> ServiceDecl {
        plain("kv", name)
    }
    /// Direct Redis (`kind = "redis"`).
    pub fn redis(name: &str) -> ServiceDecl {
        plain("redis", name)
    }
    /// A blob bucket (`kind = "blob"`).
    pub fn blob(name: &str) -> ServiceDecl {
        plain("blob", name)
    }
    /// The outbound HTTP client.
    pub fn http() -> ServiceDecl {
        plain("http", "http")
    }
    /// A secret (`[groups.secrets] name = { env = "VAR" }` or `{ file = "path" }`).
    pub fn secret(name: &str) -> ServiceDecl {
        plain("secret", name)
    }
    /// A queue to publish to (`[queues.<name>]`).
    pub fn queue(name: &str) -> ServiceDecl {
        plain("queue", name)
    }
    /// A service exported by another group, through its interface crate.
    pub fn service(name: &str, interface: &'static str, version: &'static str) -> ServiceDecl {
        ServiceDecl { kind: "service", name: name.to_owned(), interface, version }
    }
}
