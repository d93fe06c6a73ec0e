//! Integration tests of the berth host: real HTTP against a host with the real cdylib example
//! groups (and one fixture plugin per loader failure) loaded. One binary, a module per area.

mod cli;
mod http;
mod limits;
mod loading;
mod panics;
mod shutdown;
mod support;
mod triggers;
