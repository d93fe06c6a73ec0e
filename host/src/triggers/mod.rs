//! Triggers: what calls a function. Each owns its listener or consumer and goes through
//! [`crate::invoke::call`].

pub mod http;
