//! `berth up`: serve the groups of berth.toml until SIGTERM or Ctrl-C — standalone, or on the
//! platform it finds itself started on (the same binary is a platform's `bootstrap`).

use std::path::PathBuf;
use std::process::ExitCode;

use berth_host::config::{BerthConfig, ProcessEnv, DEFAULT_CONFIG_FILE};
use berth_host::platform::{self, Platform};

#[derive(Debug, Default, clap::Args)]
pub struct Up {
    /// Path of the configuration file [default: berth.toml here, else next to the executable]
    #[arg(long, short = 'c', env = "BERTH_CONFIG")]
    config: Option<PathBuf>,
    /// Swap a group when its source changes: a `file` group's plugin file, or any file of a
    /// `path` group's crate (rebuilt with cargo).
    #[arg(long)]
    watch: bool,
    /// The platform to serve on: auto (detect from the environment), standalone, lambda, fc,
    /// scf, scf-web, kubeless or knative.
    #[arg(long, env = "BERTH_PLATFORM", default_value = "auto")]
    platform: String,
}

impl Up {
    /// `berth up` as a platform's `bootstrap` runs it: every option from the environment.
    pub fn from_env() -> Self {
        Up {
            config: std::env::var_os("BERTH_CONFIG").map(PathBuf::from),
            watch: false,
            platform: std::env::var("BERTH_PLATFORM").unwrap_or_else(|_| "auto".into()),
        }
    }

    /// The config file: the one given, else `berth.toml` in the working directory, else the
    /// one next to the executable (a packaged `bootstrap`, whatever directory it starts in).
    fn config_path(&self) -> PathBuf {
        if let Some(p) = &self.config {
            return p.clone();
        }
        let here = PathBuf::from(DEFAULT_CONFIG_FILE);
        if here.is_file() {
            return here;
        }
        let beside = std::env::current_exe().ok().and_then(|exe| Some(exe.parent()?.join(DEFAULT_CONFIG_FILE)));
        beside.filter(|p| p.is_file()).unwrap_or(here)
    }

    pub fn run(self) -> anyhow::Result<ExitCode> {
        let exe = std::env::current_exe().ok();
        let exe_name = exe.as_ref().and_then(|e| e.file_name()).and_then(|n| n.to_str());
        let path = self.config_path();
        // `[platform] name` in the file counts when neither the flag nor the variable is given.
        let (forced, from_file) = match self.platform.as_str() {
            "auto" => (file_platform(&path), true),
            other => (Some(other.to_owned()), false),
        };
        let mut detected =
            platform::detect(forced.as_deref(), &platform::process_env, exe_name).map_err(anyhow::Error::msg)?;
        if let (Some(name), true) = (&forced, from_file) {
            detected.reason = format!("[platform] name in {} is `{name}`", path.display());
        }
        let layers = platform::layers(detected.platform, &platform::process_env);
        let config = BerthConfig::load_layered(&path, &ProcessEnv, &layers)?;
        berth_host::telemetry::init(&config.log);
        super::raise_open_file_limit();
        tracing::info!(platform = %detected.platform, reason = %detected.reason, config = %path.display(), "platform chosen");
        for warning in &config.warnings {
            tracing::warn!("{warning}");
        }
        let mut rt = tokio::runtime::Builder::new_multi_thread();
        if let Some(workers) = config.server.workers {
            rt.worker_threads(workers);
        }
        let rt = rt.enable_all().build()?;
        if detected.platform.polls() {
            return rt.block_on(async move {
                berth_host::server::run_runtime_api(config, detected.platform).await?;
                tracing::info!("stopped");
                Ok(ExitCode::SUCCESS)
            });
        }
        rt.block_on(async move {
            let host = berth_host::server::start_on(config, detected.platform).await?;
            let _watcher = if self.watch { Some(berth_host::watch::Watcher::start(host.deployments.clone())?) } else { None };
            let _list = match host.runtime.config.groups_file.clone() {
                Some(list) => Some(berth_host::group_list::GroupListWatcher::start(host.deployments.clone(), list)?),
                None => None,
            };
            let readiness = host.runtime.readiness();
            if readiness.ready {
                tracing::info!(addr = %host.addr, groups = ?readiness.groups, "ready");
            } else {
                tracing::warn!(addr = %host.addr, problems = ?readiness.problems, "serving, but not every group loaded (see /readyz)");
            }
            berth_host::server::shutdown_signal().await;
            host.shutdown().await;
            tracing::info!("stopped");
            Ok(ExitCode::SUCCESS)
        })
    }
}

/// `[platform] name` of the file, when it sets one (read before the platform's layers apply).
fn file_platform(path: &std::path::Path) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    let config = BerthConfig::parse(&text, path.parent()?, &ProcessEnv).ok()?;
    config.platform.name.filter(|n| n != "auto")
}

/// Whether a platform's environment is set, or the executable is named as a platform starts
/// it: then `berth` with no command serves (`berth up`).
pub fn started_by_platform() -> bool {
    let exe = std::env::current_exe().ok();
    let name = exe.as_ref().and_then(|e| e.file_name()).and_then(|n| n.to_str());
    if matches!(name, Some("bootstrap" | "scf_bootstrap")) {
        return true;
    }
    platform::detect(None, &platform::process_env, name).is_ok_and(|d| d.platform != Platform::Standalone)
}
