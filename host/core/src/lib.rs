//! `berth-core`: what every part of the host shares, and nothing that opens a socket or a
//! backend.
//!
//! - [`call`]: calling one function — deadline, cancellation, panics, metrics ([`call::call`],
//!   [`CallError`]); every trigger goes through it.
//! - [`group`]: a serving [`GroupInstance`] and its [`FunctionEntry`]s; [`drain`] counts their
//!   in-flight calls.
//! - [`dispatcher`]: every serving function by group and name, for triggers other than HTTP.
//! - [`trigger`]: the [`Trigger`] trait every event trigger implements, and the supervisor that
//!   starts and stops their runners as functions come and go.
//! - [`provider`]: the [`ServiceProvider`] trait every `[services.*]` backend implements.
//! - [`serving`]: the serving groups and readiness.
//! - [`isolation`]: the [`isolation::Isolated`] trait of groups that run in a worker process.
//! - [`auth_limit`]: failed-token limiting of the admin API, direct invoke and `[middleware.auth]`.
//! - [`clock`], [`host_future`] (futures handed to plugins), [`metrics`] (Prometheus families),
//!   [`error`] (the [`HttpError`] trait and the one JSON error body).
//!
//! The plugin-facing types come from `berth-loader` (re-exported as [`loader`]), which sits below
//! this crate: a group instance holds the library it runs in.
//!
//! ```
//! use berth_core::error::{json_error, same_secret};
//! use http::StatusCode;
//!
//! let res = json_error(StatusCode::NOT_FOUND, "not_found", "no function serves GET /x", Some("r-1"));
//! assert_eq!(res.status(), StatusCode::NOT_FOUND);
//! assert!(same_secret(b"token", b"token"));
//! ```
#![forbid(unsafe_code)]

pub mod auth_limit;
pub mod call;
pub mod clock;
pub mod dispatcher;
pub mod drain;
pub mod error;
pub mod group;
pub mod host_future;
pub mod isolation;
pub mod metrics;
pub mod provider;
pub mod serving;
pub mod trigger;

pub use berth_loader as loader;
pub use call::CallError;
pub use dispatcher::{DeliveryError, Dispatcher, EventBinding, EventData};
pub use error::HttpError;
pub use group::{FunctionEntry, FunctionLimits, GroupCode, GroupInstance, LinkedGroup};
pub use metrics::Metrics;
pub use provider::ServiceProvider;
pub use trigger::Trigger;
