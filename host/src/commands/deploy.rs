//! `berth deploy <group> <file>`: swap a new version of a group into a running host, through its
//! admin API. The file is uploaded (or, with `--host-path`, named for the host to read); with
//! `--reload` the host loads the group's own source again (rebuilding a `path` group).
//! `--sha256` pins the file: the host refuses it unless it has that sha256 (and a host with
//! `admin.require_sha256 = true` refuses a deploy without one).

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
    /// The sha256 the file must have (`sha256sum plugin.so`); the host refuses any other file,
    /// and with `admin.require_sha256 = true` refuses a deploy without it.
    #[arg(long, value_name = "HEX", conflicts_with = "reload")]
    sha256: Option<String>,
    #[command(flatten)]
    admin: AdminArgs,
}

impl Deploy {
    pub fn run(self) -> anyhow::Result<ExitCode> {
        let client = self.admin.client()?;
        let group = &self.group;
        let sha256 = match &self.sha256 {
            Some(raw) => {
                Some(berth_host::config::normalize_sha256(raw).map_err(|e| anyhow::anyhow!("--sha256 `{raw}` {e}"))?)
            }
            None => None,
        };
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
                let mut body = serde_json::json!({ "path": path });
                if let Some(sha256) = &sha256 {
                    body["sha256"] = sha256.clone().into();
                }
                let body = serde_json::to_vec(&body)?;
                let uri = format!("/groups/{group}/deploy");
                admin_args::call(&client, http::Method::POST, &uri, Some("application/json"), body.into())?
            }
            (Some(file), false) => {
                let bytes = std::fs::read(file).with_context(|| format!("cannot read `{}`", file.display()))?;
                let uri = match &sha256 {
                    Some(sha256) => format!("/groups/{group}/deploy?sha256={sha256}"),
                    None => format!("/groups/{group}/deploy"),
                };
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
