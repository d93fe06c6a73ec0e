//! The admin API: a second listener (`[admin] listen`, default 127.0.0.1:8081) to list groups and
//! hot-swap them. Every request needs `Authorization: Bearer <token>`; a wrong or missing token is
//! answered 401 before anything else is read or changed, and counted against the peer's address
//! (`[auth_limit]`): past the limit its requests get 429 `too_many_attempts` unchecked.
//!
//! The token is `[admin] token` (or `BERTH_ADMIN__TOKEN`). Without one the API starts only on a
//! loopback address, with a random token written to `<data_dir>/admin.token` (mode 0600) for the
//! `berth deploy|rollback|groups` commands to read; on any other address the host refuses to start.
//!
//! | request | does |
//! | --- | --- |
//! | `GET /groups` | every serving group (version, sha256, file, loaded at, functions, in-flight calls, previous version), unloaded and retiring versions, mapped libraries |
//! | `GET /groups/{name}` | one group |
//! | `POST /groups/{name}/deploy` | deploy a new version: the plugin file's bytes as the body (`?sha256=<hex>` pins them), or `{"path": "/abs/file.so", "sha256": "<hex>"}` (JSON) naming a file on the host; with `admin.require_sha256` a deploy without a pin is refused |
//! | `POST /groups/{name}/reload` | load the group's source again (rebuilds a `path` group) |
//! | `POST /groups/{name}/rollback` | swap back to the previous version |
//! | `DELETE /groups/{name}` | unload the group |
//! | `GET /libraries` | plugin libraries mapped in the process, and why any that should be gone stayed |

mod api;
pub mod client;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;

use berth_triggers::http::server::Timeouts;

use crate::config::BerthConfig;
use crate::swap::Deployments;

/// How long a stopping admin listener lets open requests finish.
const ADMIN_GRACE: Duration = Duration::from_secs(5);

/// Where a generated token is written, under the data directory.
pub const TOKEN_FILE: &str = "admin.token";

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("admin API: cannot listen on {addr}: {source}; set admin.listen (BERTH_ADMIN__LISTEN) to a free port, or admin.enabled = false")]
    Bind { addr: SocketAddr, source: std::io::Error },
    #[error("admin API: `admin.listen = {addr}` is not a loopback address and no token is configured; set [admin] token (or BERTH_ADMIN__TOKEN), or listen on 127.0.0.1")]
    Unprotected { addr: SocketAddr },
    #[error("admin API: cannot write the generated token to `{path}`: {source}")]
    TokenFile { path: PathBuf, source: std::io::Error },
}

/// What every admin request handler sees.
struct AdminContext {
    deployments: Arc<Deployments>,
    token: String,
    max_upload: u64,
    limiter: Arc<berth_core::auth_limit::AuthLimiter>,
}

/// The admin listener, bound but not serving yet (it serves once the groups are loaded).
pub struct AdminListener {
    listener: TcpListener,
    pub addr: SocketAddr,
    token: String,
    max_upload: u64,
}

/// The admin API serving in the background.
pub struct AdminServer {
    pub addr: SocketAddr,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

/// Binds the admin listener when `[admin] enabled` (the default), settling the token first.
pub async fn bind(config: &BerthConfig) -> Result<Option<AdminListener>, AdminError> {
    let admin = &config.admin;
    if !admin.enabled {
        return Ok(None);
    }
    let token = match admin.token.as_ref().map(|t| t.0.trim()).filter(|t| !t.is_empty()) {
        Some(t) => t.to_owned(),
        None if admin.listen.ip().is_loopback() => generate_token(&config.data_dir)?,
        None => return Err(AdminError::Unprotected { addr: admin.listen }),
    };
    let listener =
        TcpListener::bind(admin.listen).await.map_err(|source| AdminError::Bind { addr: admin.listen, source })?;
    let addr = listener.local_addr().map_err(|source| AdminError::Bind { addr: admin.listen, source })?;
    Ok(Some(AdminListener { listener, addr, token, max_upload: admin.max_upload.as_u64() }))
}

/// A random token, written to `<data_dir>/admin.token` with mode 0600.
fn generate_token(data_dir: &Path) -> Result<String, AdminError> {
    use std::io::{Read, Write};
    let path = data_dir.join(TOKEN_FILE);
    let err = |source| AdminError::TokenFile { path: path.clone(), source };
    let mut raw = [0u8; 24];
    std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut raw)).map_err(err)?;
    let token: String = raw.iter().map(|b| format!("{b:02x}")).collect();
    std::fs::create_dir_all(data_dir).map_err(err)?;
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(&tmp).and_then(|mut f| f.write_all(token.as_bytes())).map_err(err)?;
    std::fs::rename(&tmp, &path).map_err(err)?;
    tracing::info!(file = %path.display(), "admin API token generated (set [admin] token to choose one)");
    Ok(token)
}

impl AdminListener {
    /// Serves the admin API in the background until [`AdminServer::shutdown`].
    pub fn serve(self, deployments: Arc<Deployments>) -> AdminServer {
        let (stop, mut stopped) = watch::channel(false);
        let limiter = deployments.runtime.auth_limiter.clone();
        let ctx = Arc::new(AdminContext { deployments, token: self.token, max_upload: self.max_upload, limiter });
        let listener = self.listener;
        let task = tokio::spawn(async move {
            let handler = move |req, peer| api::handle(ctx.clone(), req, peer);
            berth_triggers::http::server::serve(
                "admin",
                listener,
                handler,
                Timeouts::with_grace(ADMIN_GRACE),
                async move {
                    let _ = stopped.changed().await;
                },
            )
            .await;
        });
        tracing::info!(admin = %self.addr, "admin API listening");
        AdminServer { addr: self.addr, stop, task }
    }
}

impl AdminServer {
    /// Stops accepting admin connections.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}
