//! Running on a platform: what each one changes in `berth.toml` (its [`layers`]) and how the
//! host is started there (a listener for FC, SCF web functions, kubeless and Knative; the
//! runtime API loop for Lambda and SCF event functions: [`crate::server::run_runtime_api`]).

pub use berth_platforms::{detect, Detected, Platform};

use crate::config::Layers;

/// The settings `platform` puts around `berth.toml`: the address its contract sends requests
/// to (over the file), a writable data directory and no admin API where instances are frozen
/// (under the file), and kubeless's `FUNC_TIMEOUT` as the default timeout.
pub fn layers(platform: Platform, env: &dyn Fn(&str) -> Option<String>) -> Layers {
    let mut layers = Layers::default();
    if let Some(addr) = platform.listen(env) {
        layers.overrides.push(("server.listen".into(), Layers::string(&addr.to_string())));
    }
    if let Some(dir) = platform.data_dir() {
        layers.defaults.push(("data_dir".into(), Layers::string(dir)));
    }
    if platform.freezes() {
        layers.defaults.push(("admin.enabled".into(), "false".into()));
    }
    if platform == Platform::Kubeless {
        if let Some(secs) = env("FUNC_TIMEOUT").and_then(|t| t.trim().parse::<u64>().ok()).filter(|s| *s > 0) {
            layers.overrides.push(("defaults.timeout".into(), Layers::string(&format!("{secs}s"))));
        }
    }
    layers
}

/// Whether timers, queue consumers and blob watchers run inside the process on `platform`.
pub fn runs_triggers(platform: Platform, configured: Option<bool>) -> bool {
    configured.unwrap_or(!platform.freezes())
}

/// The process environment, as the platform modules read it.
pub fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}
