//! `berth package --target <platform>`: builds the groups and the host and writes the
//! deployable artifact.

use std::path::PathBuf;
use std::process::ExitCode;

use berth_host::package::{self, Target};

#[derive(Debug, clap::Args)]
#[command(after_help = "What each target produces:\n  \
    lambda     berth-lambda.zip: bootstrap (the host), plugins/, berth.toml — AWS Lambda, runtime provided.al2023\n  \
    fc         berth-fc.zip: bootstrap, plugins/, berth.toml — Alibaba Cloud FC 3.0 custom runtime (port 9000)\n  \
    scf        berth-scf.zip: bootstrap, plugins/, berth.toml — Tencent SCF event function (custom runtime)\n  \
    scf-web    berth-scf-web.zip: scf_bootstrap, plugins/, berth.toml — Tencent SCF web function (port 9000)\n  \
    kubeless   berth-kubeless/: a container build context (Dockerfile, glibc base, non-root) for the kubeless contract\n  \
    knative    berth-knative/: a container build context for a Knative Service ($PORT, CloudEvents)\n  \
    container  berth-container/: a container build context running Berth standalone on 0.0.0.0:8080")]
pub struct Package {
    /// The platform to package for.
    #[arg(long, short = 't', value_enum)]
    target: Target,
    /// Path of the configuration file whose groups are packaged.
    #[arg(long, short = 'c', default_value = berth_host::config::DEFAULT_CONFIG_FILE)]
    config: PathBuf,
    /// Cargo profile of the host binary: production (whole-program optimised), release or dev.
    /// Groups build with release, or dev for dev.
    #[arg(long, default_value = "production")]
    profile: String,
    /// Directory the artifact is written to.
    #[arg(long, short = 'o', default_value = "target/berth-package")]
    out: PathBuf,
    /// Package this host binary instead of building one.
    #[arg(long)]
    host_binary: Option<PathBuf>,
    /// Less cargo output.
    #[arg(long)]
    quiet: bool,
}

impl Package {
    pub fn run(self) -> anyhow::Result<ExitCode> {
        std::fs::create_dir_all(&self.out)?;
        let opts = package::Options {
            config: self.config,
            target: self.target,
            profile: self.profile,
            out: self.out,
            host_binary: self.host_binary,
            quiet: self.quiet,
        };
        let done = package::package(&opts)?;
        println!(
            "packaged {}: {} ({:.1} MB, {} files)",
            self.target.name(),
            done.path.display(),
            done.bytes as f64 / 1e6,
            done.files.len()
        );
        for f in &done.files {
            println!("  {f}");
        }
        if let Some(glibc) = &done.glibc {
            println!(
                "needs glibc {glibc} or newer on the target (provided.al2023 has 2.34; debian:bookworm-slim 2.36)"
            );
        }
        println!("{}", done.upload);
        Ok(ExitCode::SUCCESS)
    }
}
