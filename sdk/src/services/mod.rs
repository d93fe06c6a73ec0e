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
/// timed-out backend answers 503, a lost compare-and-swap 409, an oversized value 413, and an
/// error a method of another group's exported service answered keeps that method's status,
/// code and message (a provider's 422 reaches the consumer's caller as a 422).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceError {
    kind: u8,
    service: String,
    message: String,
    /// For an exported service's own error: the status and code its method answered.
    answered: Option<(StatusCode, String)>,
    /// And the fields of its validation error.
    fields: Vec<crate::FieldError>,
}

/// The JSON of a [`kind::HANDLER`] error: what a provider's method answered.
#[derive(serde::Serialize, serde::Deserialize)]
struct HandlerError<'a> {
    status: u16,
    #[serde(borrow)]
    code: std::borrow::Cow<'a, str>,
    #[serde(borrow)]
    message: std::borrow::Cow<'a, str>,
    /// A validation error's fields.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    fields: Vec<crate::FieldError>,
}

/// The message of a [`kind::HANDLER`] error for `e`.
pub(crate) fn handler_error_json(e: &Error) -> String {
    let answered = HandlerError {
        status: e.status().as_u16(),
        code: e.code().into(),
        message: e.message().into(),
        fields: e.fields().to_vec(),
    };
    serde_json::to_string(&answered).unwrap_or_else(|_| e.message().to_owned())
}

impl ServiceError {
    pub(crate) fn from_abi(e: berth_plugin_api::ServiceError) -> Self {
        let service = e.service.into_string();
        if e.kind == kind::HANDLER {
            if let Ok(h) = serde_json::from_str::<HandlerError<'_>>(e.message.as_str()) {
                if let Ok(status) = StatusCode::from_u16(h.status) {
                    let message = h.message.into_owned();
                    return ServiceError {
                        kind: e.kind,
                        service,
                        message,
                        answered: Some((status, h.code.into_owned())),
                        fields: h.fields,
                    };
                }
            }
            // Not the shape this SDK writes: an error like any other.
            return ServiceError {
                kind: kind::OTHER,
                service,
                message: e.message.into_string(),
                answered: None,
                fields: Vec::new(),
            };
        }
        ServiceError { kind: e.kind, service, message: e.message.into_string(), answered: None, fields: Vec::new() }
    }
    pub(crate) fn local(kind: u8, service: &str, message: impl Into<String>) -> Self {
        ServiceError { kind, service: service.to_owned(), message: message.into(), answered: None, fields: Vec::new() }
    }
    fn answered_status(&self) -> Option<u16> {
        self.answered.as_ref().map(|(s, _)| s.as_u16())
    }
    /// The backend is down or did not answer in time (or a provider answered 503 or 504):
    /// retrying later may work.
    pub fn is_unavailable(&self) -> bool {
        matches!(self.kind, kind::UNAVAILABLE | kind::TIMEOUT) || matches!(self.answered_status(), Some(503 | 504))
    }
    /// Not there (or a provider answered 404).
    pub fn is_not_found(&self) -> bool {
        self.kind == kind::NOT_FOUND || self.answered_status() == Some(404)
    }
    /// A conflicting change (or a provider answered 409).
    pub fn is_conflict(&self) -> bool {
        self.kind == kind::CONFLICT || self.answered_status() == Some(409)
    }
    /// Over a limit (or a provider answered 413).
    pub fn is_too_large(&self) -> bool {
        self.kind == kind::TOO_LARGE || self.answered_status() == Some(413)
    }
    /// Refused as invalid: bad SQL or parameters, or a provider answered 400 or 422.
    pub fn is_invalid(&self) -> bool {
        self.kind == kind::INVALID || matches!(self.answered_status(), Some(400 | 422))
    }
    /// For an error a method of another group's exported service answered: its status and code
    /// (`(422, "invalid")`). `None` for every other failure (the backend, the host, the call).
    pub fn answered(&self) -> Option<(StatusCode, &str)> {
        self.answered.as_ref().map(|(s, c)| (*s, c.as_str()))
    }
    /// The fields of a provider's validation error (empty otherwise).
    pub fn fields(&self) -> &[crate::FieldError] {
        &self.fields
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
        match &self.answered {
            Some((status, code)) => {
                write!(f, "service `{}` answered {} {code}: {}", self.service, status.as_u16(), self.message)
            }
            None => write!(f, "service `{}`: {}", self.service, self.message),
        }
    }
}

impl From<ServiceError> for Error {
    fn from(e: ServiceError) -> Self {
        if let Some((status, code)) = e.answered {
            // A client error is the caller's to fix: its message as the provider wrote it. A
            // server error says which service failed.
            let message = if status.is_client_error() {
                e.message
            } else {
                format!("service `{}` answered {}: {}", e.service, status.as_u16(), e.message)
            };
            return Error::new(status, code, message).with_fields(e.fields);
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn abi(kind: u8, message: &str) -> berth_plugin_api::ServiceError {
        berth_plugin_api::ServiceError::new(kind, "accounts", message)
    }

    #[test]
    fn a_providers_answer_keeps_its_status_code_and_message() {
        let json = handler_error_json(&Error::unprocessable("`name` must not be empty"));
        let e = ServiceError::from_abi(abi(kind::HANDLER, &json));
        assert_eq!(e.answered(), Some((StatusCode::UNPROCESSABLE_ENTITY, "unprocessable")));
        assert!(e.is_invalid() && !e.is_not_found());
        let answered = Error::from(e);
        assert_eq!(answered.status(), StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(answered.code(), "unprocessable");
        assert_eq!(answered.message(), "`name` must not be empty");

        let gone = ServiceError::from_abi(abi(kind::HANDLER, &handler_error_json(&Error::not_found("no user 7"))));
        assert!(gone.is_not_found());
    }

    #[test]
    fn a_handler_error_of_another_shape_is_an_internal_error_with_its_text() {
        let e = ServiceError::from_abi(abi(kind::HANDLER, "not json"));
        assert_eq!(e.answered(), None);
        let answered = Error::from(e);
        assert_eq!(answered.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert!(answered.message().contains("not json"), "{}", answered.message());
        let e = ServiceError::from_abi(abi(kind::HANDLER, r#"{"status": 99, "code": "x", "message": "m"}"#));
        assert_eq!(e.answered(), None, "not an HTTP status");
    }

    #[test]
    fn a_backends_invalid_is_the_functions_bug_not_the_callers() {
        let e = ServiceError::from_abi(abi(kind::INVALID, "syntax error at or near SELEC"));
        assert!(e.is_invalid());
        assert_eq!(Error::from(e).status(), StatusCode::INTERNAL_SERVER_ERROR);
    }
}
