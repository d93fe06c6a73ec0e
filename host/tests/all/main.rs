//! Integration tests of the berth host: real HTTP against a host with the real cdylib example
//! groups (and one fixture plugin per loader failure) loaded. One binary, a module per area.

mod auth_limits;
mod axum_app;
mod cli;
mod client;
mod faults;
mod http;
mod isolation;
mod kubernetes;
mod limits;
mod loading;
mod middleware;
mod openapi;
#[cfg(feature = "http-client")]
mod outbound;
mod panics;
mod peers;
mod pinning;
mod platforms;
mod queue;
mod scaffold;
mod shutdown;
mod sql;
mod static_files;
mod support;
mod swap;
mod todo;
mod triggers;
