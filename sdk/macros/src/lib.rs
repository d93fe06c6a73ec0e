//! Proc macros of the berth SDK. Use them through the `berth` crate:
//! `#[berth::http(GET, "/hello/{name}")]` on an async fn, and `berth::group!(...)` once per crate.
//!
//! One module per macro (`http`, `event` for the timer, queue and blob triggers, `group`), the
//! `key = value` option parser they share (`options`), and what every function macro generates
//! (`function`). Every error is spanned at the token it is about; the
//! compile-fail tests in `tests/fail` pin each message.
#![forbid(unsafe_code)]

mod event;
mod function;
mod group;
mod http;
mod options;

use proc_macro::TokenStream;

/// Marks an async fn as an HTTP-triggered function of this group.
///
/// Each argument is an extractor implementing `berth::FromCall` (`Request`, `Context`,
/// `Json<T>`, `Path<T>`, `Query<T>`, `Headers`, `Bytes`); the return type implements
/// `berth::IntoResponse`. The function stays callable as written.
#[proc_macro_attribute]
pub fn http(attr: TokenStream, item: TokenStream) -> TokenStream {
    http::http(attr.into(), item.into()).unwrap_or_else(syn::Error::into_compile_error).into()
}

/// Runs an async fn on a schedule: `#[berth::timer("0 */5 * * * *")]` (cron with seconds),
/// `#[berth::timer(every = "30s")]`; options `timezone = "Europe/Paris"`, `overlap = true`,
/// `timeout = "1m"`. The function receives a `berth::Event` (type `berth.timer.fired`).
#[proc_macro_attribute]
pub fn timer(attr: TokenStream, item: TokenStream) -> TokenStream {
    event::timer(attr.into(), item.into()).unwrap_or_else(syn::Error::into_compile_error).into()
}

/// Consumes a queue binding of `berth.toml`: `#[berth::queue(stream = "orders")]` (or
/// `queue = "orders"`); options `concurrency = 4`, `max_attempts = 5`, `timeout = "30s"`. The
/// function receives a `berth::Event`; returning an error retries the message with backoff.
#[proc_macro_attribute]
pub fn queue(attr: TokenStream, item: TokenStream) -> TokenStream {
    event::queue(attr.into(), item.into()).unwrap_or_else(syn::Error::into_compile_error).into()
}

/// Receives object events of a blob bucket: `#[berth::blob(bucket = "uploads", events = ["created"])]`
/// (`created`, `deleted`; default both). The event data is shaped like an S3/OSS notification.
#[proc_macro_attribute]
pub fn blob(attr: TokenStream, item: TokenStream) -> TokenStream {
    event::blob(attr.into(), item.into()).unwrap_or_else(syn::Error::into_compile_error).into()
}

/// Exports this crate as a Berth function group. Use once, at the crate root:
/// `berth::group!(f1, f2)` or
/// `berth::group!{ name: "x", functions: [f1, f2], init: setup, stop: teardown, services: [...], exports: [...] }`.
#[proc_macro]
pub fn group(input: TokenStream) -> TokenStream {
    group::group(input.into()).unwrap_or_else(syn::Error::into_compile_error).into()
}
