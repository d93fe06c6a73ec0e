//! `berth client --lang ts --out web/src/api.ts`: a typed client of the groups' HTTP functions,
//! written from the OpenAPI document `berth openapi` prints (or from a saved document).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context as _};

use super::ConfigArg;

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Lang {
    /// TypeScript: a dependency-free `fetch` client (browsers, Node.js 18+, Deno, Bun).
    #[value(alias = "typescript")]
    Ts,
}

#[derive(Debug, clap::Args)]
pub struct Client {
    #[command(flatten)]
    config: ConfigArg,
    /// The client's language.
    #[arg(long, value_enum, default_value = "ts")]
    lang: Lang,
    /// Where to write it (default: standard output).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Only this group's functions.
    #[arg(long)]
    group: Option<String>,
    /// Read the OpenAPI document from this file (`-` for standard input), e.g. a host's saved
    /// /openapi.json, instead of opening the groups of the config file.
    #[arg(long, conflicts_with = "group")]
    from: Option<PathBuf>,
    /// Write nothing; fail if `--out` is missing or differs from what would be written (for CI).
    #[arg(long, requires = "out")]
    check: bool,
}

impl Client {
    pub fn run(self) -> anyhow::Result<ExitCode> {
        let (doc, complete) = match &self.from {
            Some(path) => {
                let text = if path.as_os_str() == "-" {
                    std::io::read_to_string(std::io::stdin())
                        .context("reading the OpenAPI document from standard input")?
                } else {
                    std::fs::read_to_string(path)
                        .with_context(|| format!("reading the OpenAPI document {}", path.display()))?
                };
                let doc: serde_json::Value = serde_json::from_str(&text)
                    .with_context(|| format!("{} is not JSON; give the output of `berth openapi`", path.display()))?;
                (doc, true)
            }
            None => super::openapi::document(&self.config, self.group.as_deref())?,
        };
        if !complete {
            bail!(
                "a group was refused (above), so its functions would be missing from the client; fix it and run again"
            );
        }
        let berth_host::client::Generated { code, functions } = match self.lang {
            Lang::Ts => berth_host::client::typescript(&doc)?,
        };
        let Some(out) = &self.out else {
            print!("{code}");
            return Ok(ExitCode::SUCCESS);
        };
        let current = std::fs::read_to_string(out).ok();
        if self.check {
            if current.as_deref() == Some(code.as_str()) {
                eprintln!("{} is up to date", out.display());
                return Ok(ExitCode::SUCCESS);
            }
            eprintln!(
                "{} is {}: run `berth client --lang ts --out {}` and commit the result",
                out.display(),
                if current.is_some() { "stale" } else { "missing" },
                out.display()
            );
            return Ok(ExitCode::FAILURE);
        }
        if current.as_deref() != Some(code.as_str()) {
            if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
            }
            // Written whole, then renamed: a dev server watching the file never sees half of it.
            let tmp = out.with_extension("tmp~");
            std::fs::write(&tmp, &code).with_context(|| format!("writing {}", tmp.display()))?;
            std::fs::rename(&tmp, out).with_context(|| format!("replacing {}", out.display()))?;
        }
        eprintln!("wrote {} ({functions} functions)", out.display());
        Ok(ExitCode::SUCCESS)
    }
}
