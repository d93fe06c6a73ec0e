//! `berth rollback <group>`: swap a running host's group back to the version it served before.

use std::process::ExitCode;

use bytes::Bytes;

use super::admin_args::{self, AdminArgs};

#[derive(Debug, clap::Args)]
pub struct Rollback {
    /// The group to roll back.
    group: String,
    #[command(flatten)]
    admin: AdminArgs,
}

impl Rollback {
    pub fn run(self) -> anyhow::Result<ExitCode> {
        let client = self.admin.client()?;
        let uri = format!("/groups/{}/rollback", self.group);
        let answer = admin_args::call(&client, http::Method::POST, &uri, None, Bytes::new())?;
        if answer.status != 200 {
            let code = answer.body["error"].as_str().unwrap_or("error");
            eprintln!("rollback refused ({code}): {}", answer.message());
            eprintln!("the serving version of `{}` is unchanged", self.group);
            return Ok(ExitCode::FAILURE);
        }
        println!("{}", admin_args::describe_swap(&answer));
        Ok(ExitCode::SUCCESS)
    }
}
