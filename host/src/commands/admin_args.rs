//! How `berth deploy`, `berth rollback` and `berth groups` reach the admin API: its address and
//! token, from flags, the environment, or the berth.toml the host runs with.

use anyhow::{bail, Context as _};
use berth_host::admin::client::{AdminClient, Answer};
use bytes::Bytes;

use super::ConfigArg;

#[derive(Debug, clap::Args)]
pub struct AdminArgs {
    /// The admin API, `host:port` (default: `admin.listen` of the config file, else 127.0.0.1:8081).
    #[arg(long)]
    admin: Option<String>,
    /// Bearer token (default: `admin.token` of the config file, else the one `berth up` generated in
    /// `<data_dir>/admin.token`).
    #[arg(long, env = "BERTH_ADMIN__TOKEN", hide_env_values = true)]
    token: Option<String>,
    #[command(flatten)]
    config: ConfigArg,
}

impl AdminArgs {
    /// A client for the admin API these arguments name.
    pub fn client(&self) -> anyhow::Result<AdminClient> {
        let config = if self.config.config.is_file() { Some(self.config.load()?) } else { None };
        let address = match (&self.admin, &config) {
            (Some(a), _) => a.clone(),
            (None, Some(c)) => c.admin.listen.to_string(),
            (None, None) => "127.0.0.1:8081".into(),
        };
        let token = match (&self.token, &config) {
            (Some(t), _) => t.clone(),
            (None, Some(c)) => match &c.admin.token {
                Some(t) => t.0.clone(),
                None => {
                    let file = c.data_dir.join(berth_host::admin::TOKEN_FILE);
                    std::fs::read_to_string(&file)
                        .with_context(|| {
                            format!(
                                "no admin token: pass --token or set BERTH_ADMIN__TOKEN (`{}` has none, and `{}` \
                                 could not be read; is `berth up` running with this config?)",
                                self.config.config.display(),
                                file.display()
                            )
                        })?
                        .trim()
                        .to_owned()
                }
            },
            (None, None) => bail!(
                "no admin token: pass --token, set BERTH_ADMIN__TOKEN, or run next to the berth.toml of the running host \
                 (`{}` not found)",
                self.config.config.display()
            ),
        };
        Ok(AdminClient::new(&address, &token)?)
    }
}

/// Runs one admin request on a small runtime.
pub fn call(
    client: &AdminClient,
    method: http::Method,
    path: &str,
    content_type: Option<&str>,
    body: Bytes,
) -> anyhow::Result<Answer> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    Ok(rt.block_on(client.request(method, path, content_type, body))?)
}

/// One line about a swap's outcome: `swap 1.0.0 -> 2.0.0 (sha256 3f2a9c1b0d4e, via upload) in 4.1 ms`.
pub fn describe_swap(answer: &Answer) -> String {
    let b = &answer.body;
    let s = |v: &serde_json::Value| v.as_str().unwrap_or("-").to_owned();
    let group = s(&b["group"]);
    let ms = b["swap_ms"].as_f64().unwrap_or(0.0);
    match b["outcome"].as_str() {
        Some("unloaded") => format!("{group} unloaded in {ms:.1} ms (roll back or reload to serve it again)"),
        Some("unchanged") => format!("{group} unchanged: the file has the serving version's sha256"),
        _ => {
            let current = &b["current"];
            let sha: String = s(&current["sha256"]).chars().take(12).collect();
            let mut line = format!(
                "{group} {} -> {} (sha256 {sha}, via {}) in {ms:.1} ms",
                b["retiring"].as_str().unwrap_or("(new)"),
                s(&current["version"]),
                s(&current["via"])
            );
            if let Some(old) = b["retiring"].as_str() {
                line.push_str(&format!("; {old} drains and unloads in the background"));
            }
            line
        }
    }
}
