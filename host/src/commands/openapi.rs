//! `berth openapi [--group g]`: the OpenAPI 3.1 document of the configured groups' HTTP
//! functions, as `GET /openapi.json` serves it, without starting a server.

use std::path::Path;
use std::process::ExitCode;

use anyhow::bail;
use berth_host::install::{self, Plugin};

use super::ConfigArg;

#[derive(Debug, clap::Args)]
pub struct Openapi {
    #[command(flatten)]
    config: ConfigArg,
    /// Only this group's functions.
    #[arg(long)]
    group: Option<String>,
}

impl Openapi {
    pub fn run(self) -> anyhow::Result<ExitCode> {
        let (doc, complete) = document(&self.config, self.group.as_deref())?;
        println!("{}", serde_json::to_string_pretty(&doc)?);
        Ok(if complete { ExitCode::SUCCESS } else { ExitCode::FAILURE })
    }
}

/// The document of the groups in the config file (or only `group`), built by opening their
/// plugins; `false` beside it when a group was refused (and is missing from it).
pub(super) fn document(config_arg: &ConfigArg, group: Option<&str>) -> anyhow::Result<(serde_json::Value, bool)> {
    let config = config_arg.load()?;
    let file: &Path = &config_arg.config;
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    rt.block_on(async {
        let metrics = berth_host::core::Metrics::new();
        let mut opened: Vec<Plugin> = Vec::new();
        let mut refused = 0;
        for gc in &config.groups {
            match install::open_plugin(&config, gc, &metrics).await {
                Ok(p) => opened.push(p),
                Err(e) => {
                    eprintln!("berth: group refused: {e}");
                    refused += 1;
                }
            }
        }
        let wanted: Vec<&berth_host::loader::GroupManifest> =
            opened.iter().map(Plugin::manifest).filter(|m| group.is_none_or(|g| m.name == g)).collect();
        if let Some(g) = group {
            if wanted.is_empty() {
                let names: Vec<&str> = opened.iter().map(|p| p.manifest().name.as_str()).collect();
                let names = if names.is_empty() { "none".to_owned() } else { names.join(", ") };
                for p in opened {
                    install::stop_unused(p).await;
                }
                bail!("no group `{g}` in {}; the groups are: {names}", file.display());
            }
        }
        let doc = berth_host::triggers::http::openapi::document(&wanted, &config.openapi);
        for p in opened {
            install::stop_unused(p).await;
        }
        Ok((doc, refused == 0))
    })
}
