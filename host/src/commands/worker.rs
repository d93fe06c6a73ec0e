//! `berth worker`: runs one `isolation = "process"` group for the host that started it (not
//! for people to run; the host passes its socket and the group's limits).

use std::process::ExitCode;

/// Arguments the host passes.
#[derive(Debug, clap::Args)]
pub struct Worker {
    /// The host's abstract socket name.
    #[arg(long)]
    connect: String,
    /// Memory limit in bytes (RLIMIT_DATA).
    #[arg(long)]
    memory: Option<u64>,
    /// Open-file limit (RLIMIT_NOFILE).
    #[arg(long)]
    open_files: Option<u64>,
    /// CPU-time limit in seconds (RLIMIT_CPU).
    #[arg(long)]
    cpu_seconds: Option<u64>,
    /// Runtime threads.
    #[arg(long, default_value_t = 1)]
    threads: u16,
}

impl Worker {
    pub fn run(self) -> anyhow::Result<ExitCode> {
        berth_host::telemetry::init_worker();
        berth_isolation::worker::run(berth_isolation::worker::WorkerArgs {
            connect: self.connect,
            memory: self.memory,
            open_files: self.open_files,
            cpu_seconds: self.cpu_seconds,
            threads: self.threads,
        })?;
        Ok(ExitCode::SUCCESS)
    }
}
