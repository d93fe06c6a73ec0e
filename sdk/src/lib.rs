//! # berth: write serverless function groups in Rust
//!
//! A function group is one crate, built as a `cdylib`, holding several functions. The `berth`
//! host loads it through a stable ABI and serves its functions through triggers.
//!
//! ```ignore
//! use berth::{Json, Path, Result};
//! use serde::Serialize;
//!
//! #[derive(Serialize)]
//! struct Greeting { message: String }
//!
//! #[berth::http(GET, "/hello/{name}")]
//! async fn hello(Path(name): Path<String>) -> Result<Json<Greeting>> {
//!     tracing::info!(%name, "greeting");            // reaches the host's log with the request id
//!     Ok(Json(Greeting { message: format!("Hello, {name}!") }))
//! }
//!
//! berth::group!(hello);
//! ```
//!
//! with, in `Cargo.toml`, `crate-type = ["cdylib", "rlib"]` (the `rlib` lets the crate's own tests
//! call it through [`testing::TestGroup`]).
//!
//! Handler arguments are extractors ([`FromCall`]): [`Request`], [`Context`], [`Json`], [`Path`],
//! [`Query`], [`Headers`], [`Bytes`], `String`. Return anything that is [`IntoResponse`]: [`Json`],
//! `String`, `()`, [`StatusCode`], `(StatusCode, T)`, [`Response`], or a `Result` of those with an
//! [`Error`] (or any `std::error::Error`, which maps to 500).
//!
//! A plugin has no async runtime of its own: await only what the host gives you
//! ([`Context::sleep`], [`sleep`], and the services). A panic in a handler is caught at the
//! boundary and answered with a 500 that carries the request id.
#![deny(unsafe_code)]

// The SDK's own tests declare groups with its macros, which name the crate `::berth`.
#[cfg(test)]
extern crate self as berth;

#[cfg(feature = "axum")]
pub mod axum;
mod context;
mod error;
mod event;
mod export;
mod log;
pub mod middleware;
pub mod openapi;
mod request;
mod response;
pub mod services;
pub mod testing;

pub use berth_macros::{blob, group, http, queue, timer};
pub use berth_plugin_api::SqlExecuted;
pub use context::{sleep, Context};
pub use error::{Error, FieldError, Result};
pub use event::Event;
pub use export::ExportDef;
pub use http::{Method, StatusCode};
pub use middleware::Next;
#[cfg(feature = "validate")]
pub use request::{validate, Valid};
pub use request::{Bytes, FromCall, Headers, Json, Path, Query, Request};
pub use response::{IntoResponse, Response};
pub use services::{
    sql_bool, Blob, HttpClient, Kv, Queue, Redis, ServiceClient, ServiceError, ServiceResult, Sql, SqlValue,
    Transaction,
};

/// What an init or stop hook receives: the host, with the group's services and configuration.
#[derive(Clone)]
pub struct GroupContext {
    pub(crate) host: berth_plugin_api::HostHandle,
}

impl std::fmt::Debug for GroupContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupContext").finish_non_exhaustive()
    }
}

impl GroupContext {
    /// Sleeps on the host's runtime.
    pub fn sleep(&self, duration: std::time::Duration) -> impl std::future::Future<Output = ()> + Send + 'static {
        self.host.sleep(u64::try_from(duration.as_millis()).unwrap_or(u64::MAX))
    }
}

services::service_accessors!(GroupContext, |s| &s.host);

/// Used by the macros. Not a stable API.
#[doc(hidden)]
pub mod __private {
    pub use crate::export::*;
    pub use crate::openapi;
    pub use crate::services::decl;
    pub use berth_plugin_api::PluginModuleRef;
}
