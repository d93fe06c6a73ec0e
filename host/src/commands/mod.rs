//! One module per subcommand, each a clap struct with a `run()`.

mod admin_args;
mod client;
mod deploy;
mod dev;
mod groups;
mod inspect;
mod invoke;
mod new;
mod openapi;
mod package;
mod rollback;
mod up;
mod worker;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Berth: a serverless function platform for Rust function groups.
#[derive(Debug, Parser)]
#[command(name = "berth", version, about)]
pub struct Cli {
    /// Without a command, `berth` serves (`berth up`) when started as a platform's `bootstrap`
    /// or with a platform's environment, and prints this help otherwise.
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create a new function-group crate from a template (http, timer, queue, blob, service,
    /// consumer).
    New(new::New),
    /// Build and load the groups in berth.toml and serve them over HTTP.
    Up(up::Up),
    /// Serve, watch the sources, rebuild on save and hot-swap, with a progress display.
    Dev(dev::Dev),
    /// Call one function of a group directly, without a server.
    Invoke(invoke::Invoke),
    /// Print a plugin file's manifest and ABI version, or why it cannot be loaded.
    Inspect(inspect::Inspect),
    /// Print the OpenAPI 3.1 document of the configured groups' HTTP functions.
    Openapi(openapi::Openapi),
    /// Write a typed client (TypeScript) of the configured groups' HTTP functions.
    Client(client::Client),
    /// Swap a new version of a group into a running host (admin API).
    Deploy(deploy::Deploy),
    /// Swap a running host's group back to its previous version (admin API).
    Rollback(rollback::Rollback),
    /// List what a running host serves: versions, files, in-flight calls (admin API).
    Groups(groups::Groups),
    /// Build the groups and the host for a platform and write the deployable artifact.
    Package(package::Package),
    /// Run one process-isolated group for a host (started by the host itself).
    #[command(hide = true)]
    Worker(worker::Worker),
}

/// The `--config` option shared by commands that read berth.toml.
#[derive(Debug, clap::Args)]
struct ConfigArg {
    /// Path of the configuration file.
    #[arg(long, short = 'c', default_value = berth_host::config::DEFAULT_CONFIG_FILE)]
    config: PathBuf,
}

impl ConfigArg {
    fn load(&self) -> anyhow::Result<berth_host::config::BerthConfig> {
        Ok(berth_host::config::BerthConfig::load(&self.config, &berth_host::config::ProcessEnv)?)
    }
}

impl Cli {
    pub fn run(self) -> anyhow::Result<ExitCode> {
        let Some(command) = self.command else {
            if up::started_by_platform() {
                return up::Up::from_env().run();
            }
            use clap::CommandFactory;
            Cli::command().print_help()?;
            return Ok(ExitCode::from(2));
        };
        match command {
            Command::New(c) => c.run(),
            Command::Up(c) => c.run(),
            Command::Dev(c) => c.run(),
            Command::Invoke(c) => c.run(),
            Command::Inspect(c) => c.run(),
            Command::Openapi(c) => c.run(),
            Command::Client(c) => c.run(),
            Command::Deploy(c) => c.run(),
            Command::Rollback(c) => c.run(),
            Command::Groups(c) => c.run(),
            Command::Package(c) => c.run(),
            Command::Worker(c) => c.run(),
        }
    }
}

/// Raises the soft open-file limit to the hard one, as servers do (`berth up`, `berth dev`): each
/// connection takes two descriptors (the socket, and the header-read watch's handle on it), and
/// the default soft limit of 1,024 would cap a listener at about 500 connections.
pub(crate) fn raise_open_file_limit() {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok((soft, hard)) if soft < hard => match setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
            Ok(()) => tracing::debug!(from = soft, to = hard, "raised the open-file limit"),
            Err(e) => {
                tracing::warn!(soft, hard, error = %e, "could not raise the open-file limit; connections are limited by the soft one")
            }
        },
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "could not read the open-file limit"),
    }
}
