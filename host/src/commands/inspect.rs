//! `berth inspect <file>`: what a plugin file is, or why it is not a loadable Berth plugin.

use std::path::PathBuf;
use std::process::ExitCode;

use berth_host::loader::{self, TriggerSpec};

#[derive(Debug, clap::Args)]
pub struct Inspect {
    /// The plugin file (a `.so` built from a group crate).
    file: PathBuf,
    /// Print the manifest as JSON.
    #[arg(long)]
    json: bool,
}

impl Inspect {
    pub fn run(self) -> anyhow::Result<ExitCode> {
        let scratch = std::env::temp_dir().join(format!("berth-inspect-{}", std::process::id()));
        let loaded = loader::load(&self.file, &scratch);
        let _ = std::fs::remove_dir_all(&scratch);
        let plugin = match loaded {
            Ok(p) => p,
            Err(e) => {
                eprintln!("not loadable: {e}");
                return Ok(ExitCode::FAILURE);
            }
        };
        let m = &plugin.manifest;
        if self.json {
            let functions: Vec<_> = m
                .functions
                .iter()
                .map(|f| {
                    serde_json::json!({
                        "name": f.name,
                        "triggers": f.triggers.iter().map(|t| serde_json::json!({"kind": t.kind(), "description": t.describe()})).collect::<Vec<_>>(),
                        "timeout_ms": f.timeout.map(|d| d.as_millis() as u64),
                        "body_limit": f.body_limit,
                        "services": f.services,
                    })
                })
                .collect();
            let doc = serde_json::json!({
                "file": self.file, "sha256": plugin.sha256, "abi_version": berth_plugin_api::ABI_VERSION,
                "group": m.name, "version": m.version, "sdk_version": m.sdk_version, "functions": functions,
                "services": m.services.iter().map(|s| serde_json::json!({"kind": s.kind, "name": s.name, "interface": s.interface, "version": s.version})).collect::<Vec<_>>(),
                "exports": m.exports.iter().map(|e| serde_json::json!({"name": e.name, "interface": e.interface, "version": e.version})).collect::<Vec<_>>(),
            });
            println!("{}", serde_json::to_string_pretty(&doc)?);
            return Ok(ExitCode::SUCCESS);
        }
        println!("file:        {}", self.file.display());
        println!("sha256:      {}", plugin.sha256);
        println!("plugin ABI:  {} (this host speaks {})", berth_plugin_api::ABI_VERSION, berth_plugin_api::ABI_VERSION);
        println!("group:       {} {}", m.name, m.version);
        println!("built with:  berth {}", m.sdk_version);
        println!("functions:");
        for f in &m.functions {
            let triggers: Vec<String> = f.triggers.iter().map(TriggerSpec::describe).collect();
            let mut limits = Vec::new();
            if let Some(t) = f.timeout {
                limits.push(format!("timeout {}", humantime_serde::re::humantime::format_duration(t)));
            }
            if let Some(b) = f.body_limit {
                limits.push(format!("body limit {}", bytesize::ByteSize::b(b)));
            }
            let limits = if limits.is_empty() { String::new() } else { format!("  ({})", limits.join(", ")) };
            println!("  {:<12} {}{limits}", f.name, triggers.join(", "));
        }
        if !m.services.is_empty() {
            println!("services:");
            for s in &m.services {
                let iface =
                    if s.interface.is_empty() { String::new() } else { format!(" ({} {})", s.interface, s.version) };
                println!("  {:<8} {}{iface}", s.kind, s.name);
            }
        }
        if !m.exports.is_empty() {
            println!("exports:");
            for e in &m.exports {
                println!("  {} ({} {})", e.name, e.interface, e.version);
            }
        }
        Ok(ExitCode::SUCCESS)
    }
}
