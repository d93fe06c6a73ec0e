//! `berth up`: serve the groups of berth.toml until SIGTERM or Ctrl-C.

use std::process::ExitCode;

use super::ConfigArg;

#[derive(Debug, clap::Args)]
pub struct Up {
    #[command(flatten)]
    config: ConfigArg,
    /// Swap a group when its source changes: a `file` group's plugin file, or any file of a
    /// `path` group's crate (rebuilt with cargo).
    #[arg(long)]
    watch: bool,
}

impl Up {
    pub fn run(self) -> anyhow::Result<ExitCode> {
        let config = self.config.load()?;
        berth_host::telemetry::init(&config.log);
        for warning in &config.warnings {
            tracing::warn!("{warning}");
        }
        let mut rt = tokio::runtime::Builder::new_multi_thread();
        if let Some(workers) = config.server.workers {
            rt.worker_threads(workers);
        }
        let rt = rt.enable_all().build()?;
        rt.block_on(async move {
            let host = berth_host::server::start(config).await?;
            let _watcher = if self.watch { Some(berth_host::watch::Watcher::start(host.deployments.clone())?) } else { None };
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
