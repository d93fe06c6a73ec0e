//! The Berth host: loads function-group plugins through the stable ABI of `berth-plugin-api`
//! and serves their functions through triggers.
//!
//! The `berth` binary is a thin CLI over this library; tests and embedders use it directly:
//!
//! ```no_run
//! # async fn run() -> anyhow::Result<()> {
//! let config = berth_host::config::BerthConfig::load("berth.toml".as_ref(), &berth_host::config::ProcessEnv)?;
//! let host = berth_host::app::start(config).await?;
//! println!("serving on {}", host.addr);
//! host.shutdown().await;
//! # Ok(()) }
//! ```
#![deny(unsafe_code)]

pub mod admin;
pub mod app;
pub mod builder;
pub mod config;
pub mod elf;
pub mod groups;
pub mod host_api;
pub mod host_future;
pub mod invoke;
pub mod loader;
pub mod metrics;
pub mod routes;
pub mod services;
pub mod swap;
pub mod telemetry;
pub mod triggers;
pub mod watch;
