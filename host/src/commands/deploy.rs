//! `berth deploy <group> <file>`: swap a new version of a group into a running host, through its
//! admin API. The file is uploaded (or, with `--host-path`, named for the host to read); with
//! `--reload` the host loads the group's own source again (rebuilding a `path` group).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context as _};
use bytes::Bytes;

use super::admin_args::{self, AdminArgs};

#[derive(Debug, clap::Args)]
pub struct Deploy {
    /// The group to swap (the plugin's group name must match).
    group: String,
    /// The new version's plugin file (`.so`).
    #[arg(required_unless_present = "reload", conflicts_with = "reload")]
    file: Option<PathBuf>,
    /// Send the file's path instead of its bytes: the host reads it (same machine or shared disk).
    #[arg(long)]
    host_path: bool,
    /// Load the group's configured source again instead of a new file.
    #[arg(long)]
    reload: bool,
    #[command(flatten)]
    admin: AdminArgs,
}

impl Deploy {
    pub fn run(self) -> anyhow::Result<ExitCode> {
        let client = self.admin.client()?;
        let group = &self.group;
        // The API answers a wrong token before reading a body: ask first rather than upload a
        // whole plugin into a closed connection.
        let check = admin_args::call(&client, http::Method::GET, "/groups", None, Bytes::new())?;
        if check.status == 401 {
            bail!("the admin API refused: {}", check.message());
        }
        let answer = match (&self.file, self.reload) {
            (_, true) => {
                admin_args::call(&client, http::Method::POST, &format!("/groups/{group}/reload"), None, Bytes::new())?
            }
            (Some(file), false) if self.host_path => {
                let path = std::path::absolute(file).with_context(|| format!("`{}`", file.display()))?;
                let body = serde_json::to_vec(&serde_json::json!({ "path": path }))?;
                let uri = format!("/groups/{group}/deploy");
                admin_args::call(&client, http::Method::POST, &uri, Some("application/json"), body.into())?
            }
            (Some(file), false) => {
                let bytes = std::fs::read(file).with_context(|| format!("cannot read `{}`", file.display()))?;
                let uri = format!("/groups/{group}/deploy");
                admin_args::call(&client, http::Method::POST, &uri, Some("application/octet-stream"), bytes.into())?
            }
            (None, false) => bail!("name the plugin file to deploy, or pass --reload"),
        };
        if answer.status != 200 {
            let code = answer.body["error"].as_str().unwrap_or("error");
            eprintln!("deploy refused ({code}): {}", answer.message());
            eprintln!("the serving version of `{group}` is unchanged");
            return Ok(ExitCode::FAILURE);
        }
        println!("{}", admin_args::describe_swap(&answer));
        Ok(ExitCode::SUCCESS)
    }
}
