//! `berth groups`: what a running host serves, through its admin API.

use std::process::ExitCode;

use anyhow::bail;
use bytes::Bytes;

use super::admin_args::{self, AdminArgs};

#[derive(Debug, clap::Args)]
pub struct Groups {
    /// Print the admin API's JSON as is.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    admin: AdminArgs,
}

impl Groups {
    pub fn run(self) -> anyhow::Result<ExitCode> {
        let client = self.admin.client()?;
        let answer = admin_args::call(&client, http::Method::GET, "/groups", None, Bytes::new())?;
        if answer.status != 200 {
            bail!("the admin API refused: {}", answer.message());
        }
        if self.json {
            println!("{}", serde_json::to_string_pretty(&answer.body)?);
            return Ok(ExitCode::SUCCESS);
        }
        let b = &answer.body;
        let s = |v: &serde_json::Value| v.as_str().unwrap_or("-").to_owned();
        let empty = Vec::new();
        println!(
            "{:<16} {:<10} {:<12} {:<20} {:>9}  {:<8} FUNCTIONS",
            "GROUP", "VERSION", "SHA256", "LOADED AT", "IN-FLIGHT", "VIA"
        );
        for g in b["groups"].as_array().unwrap_or(&empty) {
            let functions: Vec<String> =
                g["functions"].as_array().unwrap_or(&empty).iter().map(|f| s(&f["name"])).collect();
            println!(
                "{:<16} {:<10} {:<12} {:<20} {:>9}  {:<8} {}",
                s(&g["name"]),
                s(&g["version"]),
                s(&g["sha256"]).chars().take(12).collect::<String>(),
                s(&g["loaded_at"]),
                g["inflight"].as_u64().unwrap_or(0),
                s(&g["via"]),
                functions.join(", ")
            );
            if let Some(w) = g["worker"].as_object() {
                let field = |k: &str| w.get(k).cloned().unwrap_or_default();
                println!(
                    "{:<16} isolation: process, worker pid {} ({}), {} restarts{}",
                    "",
                    field("pid").as_u64().unwrap_or(0),
                    s(&field("state")),
                    field("restarts").as_u64().unwrap_or(0),
                    field("last_exit").as_str().map(|e| format!("; last {e}")).unwrap_or_default()
                );
            }
            if let Some(p) = g["previous"].as_object() {
                let sha: String = p.get("sha256").and_then(|v| v.as_str()).unwrap_or("-").chars().take(12).collect();
                println!(
                    "{:<16} previous: {} ({sha}); `berth rollback {}` returns to it",
                    "",
                    p.get("version").and_then(|v| v.as_str()).unwrap_or("-"),
                    s(&g["name"])
                );
            }
        }
        for u in b["unloaded"].as_array().unwrap_or(&empty) {
            println!("{:<16} (unloaded; last version {})", s(&u["name"]), s(&u["previous"]["version"]));
        }
        for r in b["retiring"].as_array().unwrap_or(&empty) {
            println!(
                "retiring: {} {} ({} in flight, for {} ms)",
                s(&r["name"]),
                s(&r["version"]),
                r["inflight"].as_u64().unwrap_or(0),
                r["retiring_for_ms"].as_u64().unwrap_or(0)
            );
        }
        let libs = &b["libraries"];
        let stuck = libs["stuck"].as_array().unwrap_or(&empty);
        println!("plugin libraries mapped: {}, stuck: {}", libs["mapped"].as_u64().unwrap_or(0), stuck.len());
        for l in stuck {
            println!("  stuck {}: {}", s(&l["path"]), s(&l["reason"]));
        }
        Ok(ExitCode::SUCCESS)
    }
}
