//! Serving: [`start`] binds the HTTP and admin listeners, builds the [`Runtime`], loads the
//! configured groups and serves in the background until [`RunningHost::shutdown`] (or a signal,
//! for `berth up`).

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::oneshot;

use crate::config::BerthConfig;
use crate::runtime::Runtime;
use crate::swap::Deployments;

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot listen on {addr}: {source}; is another process using the port? (set server.listen or BERTH_SERVER__LISTEN)")]
    Bind { addr: SocketAddr, source: std::io::Error },
    #[error(transparent)]
    Admin(#[from] crate::admin::AdminError),
}

/// A host serving in the background (for tests and embedding).
pub struct RunningHost {
    pub addr: SocketAddr,
    /// The admin API's address, when it is enabled.
    pub admin_addr: Option<SocketAddr>,
    pub runtime: Arc<Runtime>,
    /// Versions, swaps and their bookkeeping.
    pub deployments: Arc<Deployments>,
    stop: Option<oneshot::Sender<()>>,
    done: tokio::task::JoinHandle<()>,
}

impl RunningHost {
    /// Stops accepting, drains in-flight requests (up to the grace period) and waits.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = (&mut self.done).await;
    }
}

/// Binds the listeners, loads the groups and serves in the background until shut down.
pub async fn start(config: BerthConfig) -> Result<RunningHost, ServeError> {
    let listen = config.server.listen;
    let listener = TcpListener::bind(listen).await.map_err(|source| ServeError::Bind { addr: listen, source })?;
    let addr = listener.local_addr().map_err(|source| ServeError::Bind { addr: listen, source })?;
    let admin = crate::admin::bind(&config).await?;
    let admin_addr = admin.as_ref().map(|a| a.addr);
    let grace = config.server.shutdown_grace;
    let runtime = Arc::new(Runtime::new(config));
    let deployments = Deployments::new(runtime.clone());
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let (admin_tx, admin_rx) = oneshot::channel::<crate::admin::AdminServer>();
    let (serving, swaps) = (runtime.clone(), deployments.clone());
    let http = runtime.http.clone();
    let done = tokio::spawn(async move {
        let handler = move |req, peer| berth_triggers::http::handle(http.clone(), req, peer);
        berth_triggers::http::server::serve("http", listener, handler, grace, async {
            let _ = stop_rx.await;
        })
        .await;
        if let Ok(admin) = admin_rx.await {
            admin.shutdown().await;
        }
        swaps.close().await;
        swaps.wait_retired(grace).await;
        serving.stop_groups().await;
    });
    tracing::info!(%addr, "listening");
    for (gc, group) in runtime.load_groups(None).await.groups {
        deployments.record_loaded(&gc, &group);
    }
    runtime.triggers.reconcile().await;
    runtime.serving.set_ready();
    // Swaps start once the configured groups are loaded.
    if let Some(admin) = admin {
        let _ = admin_tx.send(admin.serve(deployments.clone()));
    }
    Ok(RunningHost { addr, admin_addr, runtime, deployments, stop: Some(stop_tx), done })
}

/// Resolves on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => tracing::info!("Ctrl-C received"),
        _ = term => tracing::info!("SIGTERM received"),
    }
}
