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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::BerthConfig;

    fn parse(platform: Platform, env: &[(&str, &str)], text: &str) -> BerthConfig {
        let lookup = |k: &str| env.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string());
        let layers = layers(platform, &lookup);
        let no_env = std::collections::BTreeMap::<String, String>::new();
        BerthConfig::parse_layered(text, std::path::Path::new("/srv"), &no_env, &layers).expect("parses")
    }

    #[test]
    fn each_platform_puts_its_contract_around_the_file() {
        let file = "[server]\nlisten = \"127.0.0.1:8080\"\n";
        let fc = parse(Platform::Fc, &[("FC_CUSTOM_LISTEN_PORT", "9100")], file);
        assert_eq!(fc.server.listen, "0.0.0.0:9100".parse().unwrap(), "FC's port wins over the file");
        assert_eq!(fc.data_dir, std::path::Path::new("/tmp/berth"));
        assert!(!fc.admin.enabled, "no admin API on a frozen instance");
        let lambda = parse(Platform::Lambda, &[], "data_dir = \"state\"\n[admin]\nenabled = true\n");
        assert_eq!(
            lambda.data_dir,
            std::path::Path::new("/srv/state"),
            "the file's own data_dir wins over the default"
        );
        assert!(lambda.admin.enabled);
        let kubeless = parse(Platform::Kubeless, &[("FUNC_PORT", "8089"), ("FUNC_TIMEOUT", "7")], "");
        assert_eq!(kubeless.server.listen, "0.0.0.0:8089".parse().unwrap());
        assert_eq!(kubeless.defaults.timeout, std::time::Duration::from_secs(7));
        assert_eq!(kubeless.data_dir, std::path::Path::new("/srv/.berth"));
        let standalone = parse(Platform::Standalone, &[("PORT", "1")], file);
        assert_eq!(standalone.server.listen, "127.0.0.1:8080".parse().unwrap());
        assert!(runs_triggers(Platform::Knative, None) && !runs_triggers(Platform::Lambda, None));
        assert!(runs_triggers(Platform::Lambda, Some(true)));
    }
}
