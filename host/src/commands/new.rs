//! `berth new <dir>`: a new function-group crate, outside any workspace, ready for `berth up`
//! and `cargo test`.

use std::path::PathBuf;
use std::process::ExitCode;

use berth_host::scaffold::{self, Sources, Template};

#[derive(Debug, clap::Args)]
pub struct New {
    /// The directory to create (missing or empty); its name is the group's unless --name.
    dir: PathBuf,
    /// What the group starts with.
    #[arg(long, short = 't', value_enum, default_value = "http")]
    template: Template,
    /// The group's name (lowercase letters, digits, `-`); default: the directory's name.
    #[arg(long)]
    name: Option<String>,
    /// The berth SDK to depend on by path [default: the one this binary was built from].
    #[arg(long)]
    sdk: Option<PathBuf>,
}

impl New {
    pub fn run(self) -> anyhow::Result<ExitCode> {
        let mut sources = Sources::built_in();
        if let Some(sdk) = self.sdk {
            sources.sdk = sdk;
        }
        let created = scaffold::create(&self.dir, self.name.as_deref(), self.template, &sources)?;
        println!("created group `{}` ({} template) in {}", created.name, self.template.as_str(), created.dir.display());
        for f in &created.files {
            println!("  {}", f.strip_prefix(&created.dir).unwrap_or(f).display());
        }
        println!("\nnext:\n  cd {}\n  berth up        # build and serve on http://127.0.0.1:8080\n  cargo test      # its tests\n  berth dev       # serve, rebuild and hot-swap on save", created.dir.display());
        Ok(ExitCode::SUCCESS)
    }
}
