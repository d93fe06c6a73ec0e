//! `berth dev`: serve the groups of berth.toml, watch their sources, rebuild on save and
//! hot-swap, with a display made for it: a spinner while cargo builds, one line per swap
//! (`swapped todo 1.0.0+3f2a1b9c → 1.0.0+8d0e4c21 in 480 ms`, build included), a build error as its compiler
//! lines (`src/lib.rs:12:5: error[E0425]: ...`) while the old version keeps serving. Plain lines
//! when stderr is not a terminal (CI logs).

use std::io::IsTerminal as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use berth_host::config::{BerthConfig, ProcessEnv, DEFAULT_CONFIG_FILE};
use berth_host::swap::{SwapError, SwapReport, VersionRecord};
use berth_host::watch::{WatchReport, Watcher};
use indicatif::{ProgressBar, ProgressStyle};

#[derive(Debug, clap::Args)]
pub struct Dev {
    /// Path of the configuration file.
    #[arg(long, short = 'c', env = "BERTH_CONFIG", default_value = DEFAULT_CONFIG_FILE)]
    config: PathBuf,
}

/// Host lines at `warn` (the display says what happens; a refused swap is on it, not logged
/// twice), the groups' own logs at `info`. `RUST_LOG` overrides.
const DEV_LOG: &str = "warn,berth_host::swap=error,berth::plugin=info";

impl Dev {
    pub fn run(self) -> anyhow::Result<ExitCode> {
        let config = BerthConfig::load(&self.config, &ProcessEnv)?;
        berth_host::telemetry::init(DEV_LOG);
        super::raise_open_file_limit();
        for warning in &config.warnings {
            tracing::warn!("{warning}");
        }
        berth_host::builder::set_compact_diagnostics(true);
        let display = Arc::new(Display::new(std::io::stderr().is_terminal()));
        let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
        rt.block_on(async move {
            let names: Vec<String> = config.groups.iter().map(shown).collect();
            display.building(&names.join(", "));
            let started = std::time::Instant::now();
            let host = berth_host::server::start_on(config, berth_host::platform::Platform::Standalone).await?;
            display.finish();
            let readiness = host.runtime.readiness();
            let serving: Vec<String> = readiness.serving.iter().map(|v| format!("{} {}", v.group, v.version)).collect();
            display.line(&format!(
                "berth dev: serving {} on http://{} (built in {:.1} s); watching for changes, Ctrl-C stops",
                if serving.is_empty() { "nothing".to_owned() } else { serving.join(", ") },
                host.addr,
                started.elapsed().as_secs_f64()
            ));
            for problem in &readiness.problems {
                display.line(&format!("  ✗ {problem}"));
            }
            let _watcher = Watcher::start_reporting(host.deployments.clone(), Some(display.clone()))?;
            berth_host::server::shutdown_signal().await;
            display.line("berth dev: stopping (in-flight requests finish first)");
            host.shutdown().await;
            Ok(ExitCode::SUCCESS)
        })
    }
}

/// How a configured group is named before it is loaded: its `name`, else its crate directory
/// or file.
fn shown(g: &berth_host::config::GroupConfig) -> String {
    let base = |p: &std::path::Path| {
        let p = if p.as_os_str() == "." { std::env::current_dir().unwrap_or_default() } else { p.to_owned() };
        p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| p.display().to_string())
    };
    g.name
        .clone()
        .or_else(|| g.path.as_deref().map(base))
        .or_else(|| g.file.as_deref().map(base))
        .or_else(|| g.url.clone())
        .unwrap_or_default()
}

/// The terminal display: one spinner at a time, lines printed above it.
struct Display {
    terminal: bool,
    spinner: Mutex<Option<ProgressBar>>,
}

impl Display {
    fn new(terminal: bool) -> Self {
        Display { terminal, spinner: Mutex::new(None) }
    }

    fn line(&self, text: &str) {
        match &*self.spinner.lock().expect("display lock") {
            Some(pb) => pb.println(text),
            None => eprintln!("{text}"),
        }
    }

    fn building(&self, what: &str) {
        let text = format!("building {what}…");
        if !self.terminal {
            eprintln!("{text}");
            return;
        }
        let pb = ProgressBar::new_spinner();
        pb.set_style(
            ProgressStyle::with_template("{spinner} {msg} {elapsed}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        pb.set_message(text);
        pb.enable_steady_tick(Duration::from_millis(100));
        if let Some(old) = self.spinner.lock().expect("display lock").replace(pb) {
            old.finish_and_clear();
        }
    }

    fn finish(&self) {
        if let Some(pb) = self.spinner.lock().expect("display lock").take() {
            pb.finish_and_clear();
        }
    }
}

/// `1.0.0+3f2a1b9c`: the version and the start of the sha256 (a rebuild keeps the version).
fn version(v: &VersionRecord) -> String {
    format!("{}+{}", v.version, v.sha256.get(..8).unwrap_or(&v.sha256))
}

impl WatchReport for Display {
    fn building(&self, group: &str) {
        Display::building(self, group);
    }

    fn done(&self, group: &str, result: &Result<SwapReport, SwapError>, elapsed: Duration) {
        self.finish();
        let text = match result {
            Ok(r) if r.outcome == "unchanged" => format!("{group}: rebuilt, nothing changed"),
            Ok(r) => format!(
                "swapped {group} {} → {} in {:.0} ms",
                r.previous.as_ref().map(version).unwrap_or_else(|| "(none)".into()),
                r.current.as_ref().map(version).unwrap_or_else(|| "(none)".into()),
                elapsed.as_secs_f64() * 1000.0
            ),
            Err(e) => format!("✗ {group}: {e}\n  the serving version of {group} keeps serving; save again to retry"),
        };
        self.line(&text);
    }
}
