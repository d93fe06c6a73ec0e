//! `berth-isolation`: groups that run in a supervised worker process (`isolation =
//! "process"`), so that a segfault, an abort, an exit, a stack overflow, a leak past its limit
//! or a handler that never yields takes down one worker, not the host.
//!
//! - [`wire`]: the framing and messages between host and worker;
//! - [`supervisor`]: the host side ([`supervisor::WorkerGroup`], an [`berth_core::isolation::Isolated`]);
//! - [`serve`]: the host side of a worker's service calls;
//! - [`worker`]: `berth worker`, the child process; [`proxy`]: its plugin's host handle.
#![forbid(unsafe_code)]

pub mod proxy;
pub mod serve;
pub mod supervisor;
pub mod wire;
pub mod worker;

pub use supervisor::{IsolationError, WorkerGroup, WorkerSettings};
