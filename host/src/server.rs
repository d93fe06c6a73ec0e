//! Serving: [`start`] binds the HTTP and admin listeners, builds the [`Runtime`], loads the
//! configured groups and serves in the background until [`RunningHost::shutdown`] (or a signal,
//! for `berth up`).

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::oneshot;

use berth_platforms::Platform;
use berth_triggers::http::server::Timeouts;

use crate::config::BerthConfig;
use crate::runtime::Runtime;
use crate::swap::Deployments;

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot listen on {addr}: {source}; is another process using the port? (set server.listen or BERTH_SERVER__LISTEN)")]
    Bind { addr: SocketAddr, source: std::io::Error },
    #[error(transparent)]
    Admin(#[from] crate::admin::AdminError),
    #[error(transparent)]
    Static(#[from] berth_triggers::http::static_files::StaticError),
    #[error(transparent)]
    Middleware(#[from] berth_triggers::http::middleware::MiddlewareError),
    #[error(transparent)]
    Invoke(#[from] crate::runtime::InvokeRefusal),
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
    start_on(config, Platform::Standalone).await
}

/// [`start`] on `platform`: FC, SCF web functions, kubeless and Knative get their shim in front
/// of the router (the listen address is theirs, set through [`crate::platform::layers`]).
pub async fn start_on(config: BerthConfig, platform: Platform) -> Result<RunningHost, ServeError> {
    // A mount whose directory is missing refuses the start, before anything is bound.
    let statics = berth_triggers::http::static_files::StaticFiles::new(&config.statics)?;
    // So does `/invoke/` reachable off loopback without a token.
    if let berth_triggers::http::invoke::InvokeAccess::Off { why } =
        crate::runtime::invoke_access(&config.server, platform)?
    {
        tracing::info!(%platform, "{why}");
    }
    let runtime = Arc::new(Runtime::on(config, platform));
    let config = &runtime.config;
    // So are middleware settings that cannot work (a token variable unset): before any route serves.
    let layers = berth_triggers::http::middleware::Layers::new(
        &config.middleware,
        config.groups.iter().filter_map(|g| Some((g.name.as_deref()?, &g.middleware))),
        &|var| std::env::var(var).ok(),
        Some(&runtime.auth_limiter),
    )?;
    let listen = config.server.listen;
    let listener = TcpListener::bind(listen).await.map_err(|source| ServeError::Bind { addr: listen, source })?;
    let addr = listener.local_addr().map_err(|source| ServeError::Bind { addr: listen, source })?;
    let admin = crate::admin::bind(config).await?;
    let admin_addr = admin.as_ref().map(|a| a.addr);
    let grace = config.server.shutdown_grace;
    runtime.http.statics.store(Arc::new(statics));
    runtime.http.layers.store(Arc::new(layers));
    let _ = runtime.http.openapi.set(runtime.config.openapi.clone());
    let deployments = Deployments::new(runtime.clone());
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let (admin_tx, admin_rx) = oneshot::channel::<crate::admin::AdminServer>();
    let (serving, swaps) = (runtime.clone(), deployments.clone());
    let stopped = async {
        let _ = stop_rx.await;
    };
    let serve: std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> = if platform == Platform::Standalone {
        let http = runtime.http.clone();
        let handler = move |req, peer| berth_triggers::http::handle(http.clone(), req, peer);
        Box::pin(berth_triggers::http::server::serve("http", listener, handler, Timeouts::with_grace(grace), stopped))
    } else {
        let shim = Arc::new(runtime.shim());
        let handler = move |req, peer| berth_platforms::serve_http(shim.clone(), req, peer);
        Box::pin(berth_triggers::http::server::serve("http", listener, handler, Timeouts::with_grace(grace), stopped))
    };
    // On a platform, a request is a call the platform has already counted: the listener is
    // bound now (a taken port fails at once) but accepts once the groups are loaded, so early
    // requests wait instead of meeting a 503 (FC and SCF send them as soon as the port is open,
    // Knative's default probe is a TCP connect).
    let (loaded_tx, loaded_rx) = oneshot::channel::<()>();
    let wait_for_load = platform != Platform::Standalone;
    let done = tokio::spawn(async move {
        if wait_for_load {
            let _ = loaded_rx.await;
        }
        serve.await;
        if let Ok(admin) = admin_rx.await {
            admin.shutdown().await;
        }
        swaps.close().await;
        swaps.wait_retired(grace).await;
        serving.stop_groups().await;
    });
    tracing::info!(%addr, %platform, "listening");
    for (gc, group) in runtime.load_groups(None).await.groups {
        deployments.record_loaded(&gc, &group);
    }
    runtime.triggers.reconcile().await;
    runtime.serving.set_ready();
    let _ = loaded_tx.send(());
    // Swaps start once the configured groups are loaded.
    if let Some(admin) = admin {
        let _ = admin_tx.send(admin.serve(deployments.clone()));
    }
    // Serving already: the mapped-libraries gauge follows.
    let census = deployments.refresh_census().await;
    deployments.remember_census(&census);
    Ok(RunningHost { addr, admin_addr, runtime, deployments, stop: Some(stop_tx), done })
}

/// Why a runtime API loop ended badly.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeApiError {
    #[error("{platform}: cannot start: {message}")]
    Setup { platform: Platform, message: String },
    #[error("{platform}: groups failed to load (reported to the runtime API): {message}")]
    Init { platform: Platform, message: String },
    #[error("{platform}: {source}")]
    Loop { platform: Platform, source: berth_platforms::lambda::LoopError },
}

/// Serves on a platform that hands out invocations through a runtime API (Lambda, SCF event
/// functions): loads the groups — a group that fails is an init error, reported to the
/// platform, and the process exits — then runs the loop until the API goes away or a signal.
pub async fn run_runtime_api(config: BerthConfig, platform: Platform) -> Result<(), RuntimeApiError> {
    use berth_platforms::{lambda, scf};
    let env = crate::platform::process_env;
    let setup = |message: String| RuntimeApiError::Setup { platform, message };
    let needed = match platform {
        Platform::Lambda => "AWS_LAMBDA_RUNTIME_API",
        Platform::Scf => "SCF_RUNTIME_API",
        other => return Err(setup(format!("{other} has no runtime API"))),
    };
    if env(needed).is_none_or(|v| v.trim().is_empty()) {
        return Err(setup(format!(
            "{needed} is not set: the platform sets it when it starts the runtime; to serve over HTTP instead, use \
             --platform standalone"
        )));
    }
    let api = match platform {
        Platform::Lambda => berth_platforms::runtime_api::RuntimeApi::new(&env(needed).unwrap_or_default()),
        _ => scf::runtime_api(&env),
    }
    .map_err(|e| setup(e.to_string()))?;
    let runtime = Arc::new(Runtime::on(config, platform));
    let loaded = runtime.load_groups(None).await;
    if !loaded.errors.is_empty() || loaded.groups.is_empty() {
        let mut problems: Vec<String> = loaded.errors.iter().map(ToString::to_string).collect();
        if problems.is_empty() {
            problems.push("berth.toml lists no [[groups]]; nothing to serve".into());
        }
        let message = problems.join("; ");
        if platform == Platform::Lambda {
            if let Err(e) = lambda::init_error(&api, &message).await {
                tracing::error!(error = %e, "could not report the init error to the Runtime API");
            }
        }
        runtime.stop_groups().await;
        return Err(RuntimeApiError::Init { platform, message });
    }
    runtime.serving.set_ready();
    let readiness = runtime.readiness();
    tracing::info!(groups = ?readiness.groups, "ready");
    let shim = Arc::new(runtime.shim());
    let outcome = match platform {
        Platform::Lambda => lambda::run(shim, api, shutdown_signal()).await,
        _ => scf::run(shim, api, shutdown_signal()).await,
    };
    runtime.stop_groups().await;
    outcome.map_err(|source| RuntimeApiError::Loop { platform, source })
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
