//! `berth.toml` text → the host's configuration, validated (with no environment overrides and a
//! base directory that does not exist, so nothing on this machine is read).
//!
//! The oracle: a refusal has a message that names what is wrong; an accepted configuration has
//! only valid group names and a positive concurrency limit (what the host relies on later).

use std::collections::BTreeMap;
use std::path::Path;

use berth_host::config::{valid_group_name, BerthConfig};

pub fn run(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let env: BTreeMap<String, String> = BTreeMap::new();
    match BerthConfig::parse(text, Path::new("/nonexistent/berth-fuzz"), &env) {
        Ok(config) => {
            assert!(config.server.max_concurrency >= 1, "max_concurrency 0 accepted");
            for g in &config.groups {
                if let Some(name) = &g.name {
                    assert!(valid_group_name(name), "group name {name:?} accepted");
                }
            }
        }
        Err(e) => assert!(!e.to_string().trim().is_empty(), "a refusal with no message"),
    }
}
