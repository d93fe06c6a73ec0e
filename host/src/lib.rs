//! `berth-host`: the composition root of the Berth host and the `berth` binary.
//!
//! The host is split into one-way crates (`berth-host → berth-platforms → berth-triggers →
//! berth-services → berth-core → berth-loader → berth-plugin-api`, and `berth-isolation →
//! berth-core` for groups in worker processes); this crate puts them together:
//!
//! - [`config`]: `berth.toml`, composed of the sections each crate owns;
//! - [`runtime`]: the [`Runtime`](runtime::Runtime) with the one install path
//!   (`install`/`remove`) that `berth up`, hot swap, `berth invoke` and tests all use;
//! - [`server`]: [`start`](server::start), which binds the listeners around a runtime and serves
//!   (standalone or on a platform: [`start_on`](server::start_on),
//!   [`run_runtime_api`](server::run_runtime_api));
//! - [`platform`]: what each platform changes in `berth.toml`; [`package`]: `berth package`;
//! - [`install`]: opening plugins, dependency order, the group errors;
//! - [`swap`], [`admin`], [`watch`]: hot swap, the admin API and `--watch`;
//! - [`fetch`], [`group_list`]: `url` groups and the watched group list (a Kubernetes ConfigMap);
//! - [`builder`]: building group crates with cargo; [`client`]: `berth client`'s typed clients.
//!
//! Embedders and tests use it directly:
//!
//! ```no_run
//! # async fn run() -> anyhow::Result<()> {
//! let config = berth_host::config::BerthConfig::load("berth.toml".as_ref(), &berth_host::config::ProcessEnv)?;
//! let host = berth_host::server::start(config).await?;
//! println!("serving on {}", host.addr);
//! host.shutdown().await;
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]

pub mod admin;
pub mod builder;
pub mod client;
pub mod config;
pub mod event_file;
pub mod fetch;
pub mod group_list;
pub mod install;
pub mod package;
pub mod platform;
pub mod runtime;
pub mod scaffold;
pub mod server;
pub mod swap;
pub mod telemetry;
pub mod watch;
pub mod worker;

pub use berth_core as core;
pub use berth_isolation as isolation;
pub use berth_loader as loader;
pub use berth_platforms as platforms;
pub use berth_services as services;
pub use berth_triggers as triggers;
