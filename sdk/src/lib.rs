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

mod context;
mod error;
mod export;
mod log;
mod request;
mod response;
pub mod testing;

use std::sync::Arc;

pub use berth_macros::{group, http};
pub use context::{sleep, Context};
pub use error::{Error, Result};
pub use http::{Method, StatusCode};
pub use request::{Bytes, FromCall, Headers, Json, Path, Query, Request};
pub use response::{IntoResponse, Response};

/// What an init or stop hook receives: the host and the group's configuration.
#[derive(Clone)]
pub struct GroupContext {
    pub(crate) host: berth_plugin_api::HostHandle,
    pub(crate) config: Arc<serde_json::Value>,
}

impl std::fmt::Debug for GroupContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupContext")
            .field("config", &self.config)
            .finish()
    }
}

impl GroupContext {
    /// The group's `[groups.config]` table from `berth.toml`, as JSON.
    pub fn config(&self) -> &serde_json::Value {
        &self.config
    }
    /// Sleeps on the host's runtime.
    pub fn sleep(
        &self,
        duration: std::time::Duration,
    ) -> impl std::future::Future<Output = ()> + Send + 'static {
        self.host
            .sleep(u64::try_from(duration.as_millis()).unwrap_or(u64::MAX))
    }
}

/// Used by the macros. Not a stable API.
#[doc(hidden)]
pub mod __private {
    pub use crate::export::*;
    pub use berth_plugin_api::PluginModuleRef;
}
