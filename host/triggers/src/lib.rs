//! `berth-triggers`: what calls a function.
//!
//! - [`http`]: the HTTP listener — routes by method and path, limits, `/healthz`, `/readyz`,
//!   `/metrics` — with its accept loop ([`http::server`], shared with the admin API) and the
//!   direct-invoke API ([`http::invoke`]) under `/invoke/`.
//! - [`timer`], [`queue`] and [`blob`]: event triggers, each a [`berth_core::Trigger`] whose
//!   runners the core's supervisor starts and stops as functions come and go. They deliver
//!   CloudEvents through the dispatcher, which looks the function up anew for every delivery,
//!   so a trigger keeps working across a hot swap.
//!
//! Queue brokers are cargo features (`redis`, `nats`, `rabbitmq`; `full` for all): a
//! `[queues.*]` naming a broker this build left out is refused with the feature to enable.
//!
//! ```
//! use berth_triggers::http::routes::RouteTable;
//! let table: RouteTable = RouteTable::new();
//! assert!(table.routes().is_empty());
//! ```
#![forbid(unsafe_code)]

pub mod blob;
pub mod http;
#[cfg_attr(
    not(any(feature = "redis", feature = "nats", feature = "rabbitmq")),
    allow(
        dead_code,
        unused_imports,
        unused_variables,
        unused_mut,
        unreachable_code,
        reason = "a build without any queue broker keeps the queue config and refuses bindings clearly"
    )
)]
pub mod queue;
pub mod timer;
