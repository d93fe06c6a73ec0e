//! The running host: its shared state, group loading, the HTTP listener and graceful shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use serde::Serialize;
use tokio::net::TcpListener;
use tokio::sync::{oneshot, Semaphore};

use crate::config::BerthConfig;
use crate::groups::{self, GroupError, ServedGroup};
use crate::metrics::Metrics;
use crate::routes::RouteTable;
use crate::services::registry::ServiceRegistry;
use crate::triggers::blob::BlobTrigger;
use crate::triggers::http::{self as http_trigger, RequestIds};
use crate::triggers::invoke::AsyncResults;
use crate::triggers::queue::QueueTrigger;
use crate::triggers::supervisor::{TriggerKind, TriggerSupervisor};
use crate::triggers::timer::{SystemClock, TimerTrigger};
use crate::triggers::Dispatcher;

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot listen on {addr}: {source}; is another process using the port? (set server.listen or BERTH_SERVER__LISTEN)")]
    Bind { addr: SocketAddr, source: std::io::Error },
    #[error(transparent)]
    Admin(#[from] crate::admin::AdminError),
}

/// State shared by every request.
pub struct AppState {
    pub routes: ArcSwap<RouteTable>,
    /// Every function by (group, name), for triggers other than HTTP.
    pub dispatcher: Arc<Dispatcher>,
    /// Runners of timer, queue and blob triggers.
    pub triggers: Arc<TriggerSupervisor>,
    /// Outcomes of asynchronous direct invokes.
    pub invoke_results: Arc<AsyncResults>,
    pub invoke_token: Option<String>,
    pub services: Arc<ServiceRegistry>,
    pub limiter: Arc<Semaphore>,
    pub metrics: Metrics,
    pub request_ids: RequestIds,
    /// Per-group versions and the swap lock (hot swap).
    pub deployments: crate::swap::Deployments,
    ready: AtomicBool,
    groups: Mutex<Vec<Arc<ServedGroup>>>,
    problems: Mutex<Vec<String>>,
}

/// What `/readyz` answers.
#[derive(Debug, Serialize)]
pub struct Readiness {
    pub ready: bool,
    pub groups: Vec<String>,
    pub problems: Vec<String>,
}

impl AppState {
    fn new(config: &BerthConfig) -> Self {
        let metrics = Metrics::new();
        let dispatcher = Arc::new(Dispatcher::default());
        dispatcher.set_extra_bindings(crate::triggers::queue::config_bindings(config));
        let services = Arc::new(ServiceRegistry::new(config, metrics.clone()));
        AppState {
            routes: ArcSwap::from_pointee(RouteTable::new()),
            dispatcher: dispatcher.clone(),
            triggers: Arc::new(TriggerSupervisor::new(
                dispatcher,
                vec![
                    Arc::new(TimerTrigger::new(Arc::new(SystemClock), &metrics)) as Arc<dyn TriggerKind>,
                    Arc::new(BlobTrigger::new(services.clone(), &metrics)),
                    Arc::new(QueueTrigger::new(config, &metrics)),
                ],
            )),
            invoke_results: Arc::new(AsyncResults::default()),
            invoke_token: config.server.invoke_token.clone(),
            services,
            limiter: Arc::new(Semaphore::new(config.server.max_concurrency)),
            deployments: crate::swap::Deployments::new(config, &metrics),
            metrics,
            request_ids: RequestIds::default(),
            ready: AtomicBool::new(false),
            groups: Mutex::new(Vec::new()),
            problems: Mutex::new(Vec::new()),
        }
    }

    /// True once every configured group loaded.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    pub fn readiness(&self) -> Readiness {
        let problems = self.problems.lock().expect("problems lock").clone();
        let groups =
            self.groups.lock().expect("groups lock").iter().map(|g| format!("{}@{}", g.name, g.version)).collect();
        Readiness { ready: self.is_ready() && problems.is_empty(), groups, problems }
    }

    /// Builds and loads every configured group: all plugins are opened first, then served in
    /// dependency order (a group exporting a service before the groups that use it). A group
    /// that fails is refused (and reported by `/readyz` and the log); the others serve.
    pub async fn load_groups(&self, config: &BerthConfig) -> Vec<GroupError> {
        let mut errors = Vec::new();
        let mut opened = Vec::new();
        for gc in &config.groups {
            match groups::open_plugin(config, gc).await {
                Ok(plugin) => opened.push((gc, plugin)),
                Err(e) => errors.push(e),
            }
        }
        let (ordered, refused) = groups::dependency_order(opened);
        errors.extend(refused);
        for (gc, plugin) in ordered {
            if let Err(e) = self.add_group(config, gc, plugin).await {
                errors.push(e);
            }
        }
        for e in &errors {
            tracing::error!(error = %e, "group refused");
            self.problems.lock().expect("problems lock").push(e.to_string());
        }
        self.triggers.reconcile().await;
        self.ready.store(true, Ordering::Release);
        errors
    }

    async fn add_group(
        &self,
        config: &BerthConfig,
        gc: &crate::config::GroupConfig,
        plugin: Arc<crate::loader::LoadedPlugin>,
    ) -> Result<(), GroupError> {
        let name = plugin.manifest.name.clone();
        if self.groups.lock().expect("groups lock").iter().any(|g| *g.name == *name) {
            return Err(GroupError::Duplicate { group: name, source_label: gc.label() });
        }
        self.services
            .exports
            .check_exports(&name, &plugin.manifest.exports)
            .map_err(|message| GroupError::Exports { group: name.clone(), message })?;
        let exports = plugin.manifest.exports.clone();
        let groups::LoadedGroup { group, routes, functions } =
            groups::serve_plugin(config, gc, plugin, &self.services, &self.metrics).await?;
        let table = self.routes.load().with_group(&group.name, routes);
        match table {
            Ok(table) => {
                self.routes.store(Arc::new(table));
                self.dispatcher.replace_group(&group.name, functions);
                self.services.exports.publish(&group, &exports);
                self.deployments.record_loaded(gc, &group);
                self.groups.lock().expect("groups lock").push(group);
                self.metrics.groups_loaded.inc();
                Ok(())
            }
            Err(source) => {
                group.shutdown().await;
                Err(GroupError::Routes { group: group.name.to_string(), source_label: gc.label(), source })
            }
        }
    }

    /// The groups serving now, in the order they started.
    pub fn served_groups(&self) -> Vec<Arc<ServedGroup>> {
        self.groups.lock().expect("groups lock").clone()
    }

    /// True when a group named `name` is serving.
    pub fn serves_group(&self, name: &str) -> bool {
        self.groups.lock().expect("groups lock").iter().any(|g| *g.name == *name)
    }

    /// Puts `new` in the place of the serving group named `name` (or appends it; or removes the
    /// group when `new` is `None`) and returns the group it replaced. Used by hot swap.
    pub(crate) fn replace_served_group(&self, name: &str, new: Option<Arc<ServedGroup>>) -> Option<Arc<ServedGroup>> {
        let mut groups = self.groups.lock().expect("groups lock");
        let at = groups.iter().position(|g| *g.name == *name);
        match (at, new) {
            (Some(i), Some(new)) => Some(std::mem::replace(&mut groups[i], new)),
            (Some(i), None) => Some(groups.remove(i)),
            (None, Some(new)) => {
                groups.push(new);
                None
            }
            (None, None) => None,
        }
    }

    /// Runs every group's stop hook.
    pub async fn stop_groups(&self) {
        self.triggers.stop_all().await;
        let groups: Vec<_> = self.groups.lock().expect("groups lock").drain(..).collect();
        self.routes.store(Arc::new(RouteTable::new()));
        // Consumers first: stop in the reverse of the order groups started in.
        for g in groups.into_iter().rev() {
            self.services.exports.withdraw(&g.name);
            self.dispatcher.remove_group(&g.name);
            g.shutdown().await;
        }
    }
}

/// A host serving in the background (for tests and embedding).
pub struct RunningHost {
    pub addr: SocketAddr,
    /// The admin API's address, when it is enabled.
    pub admin_addr: Option<SocketAddr>,
    pub state: Arc<AppState>,
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

/// Binds the listener, loads the groups and serves in the background until shut down.
pub async fn start(config: BerthConfig) -> Result<RunningHost, ServeError> {
    let listener = TcpListener::bind(config.server.listen)
        .await
        .map_err(|source| ServeError::Bind { addr: config.server.listen, source })?;
    let addr = listener.local_addr().map_err(|source| ServeError::Bind { addr: config.server.listen, source })?;
    let admin = crate::admin::bind(&config).await?;
    let admin_addr = admin.as_ref().map(|a| a.addr);
    let state = Arc::new(AppState::new(&config));
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let (admin_tx, admin_rx) = oneshot::channel::<crate::admin::AdminServer>();
    let grace = config.server.shutdown_grace;
    let serve_state = state.clone();
    let done = tokio::spawn(async move {
        serve(listener, serve_state.clone(), grace, async {
            let _ = stop_rx.await;
        })
        .await;
        if let Ok(admin) = admin_rx.await {
            admin.shutdown().await;
        }
        serve_state.deployments.close().await;
        serve_state.deployments.wait_retired(grace).await;
        serve_state.stop_groups().await;
    });
    tracing::info!(%addr, "listening");
    state.load_groups(&config).await;
    // Swaps start once the configured groups are loaded.
    if let Some(admin) = admin {
        let _ = admin_tx.send(admin.serve(state.clone()));
    }
    Ok(RunningHost { addr, admin_addr, state, stop: Some(stop_tx), done })
}

/// Accepts connections until `shutdown` resolves, then drains for at most `grace`.
pub async fn serve(listener: TcpListener, state: Arc<AppState>, grace: Duration, shutdown: impl Future<Output = ()>) {
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    let mut builder = http1::Builder::new();
    builder.timer(TokioTimer::new()).header_read_timeout(Duration::from_secs(30));
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(s) => s,
                    Err(e) => {
                        // Out of file descriptors and the like: back off instead of spinning.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let state = state.clone();
                let svc = service_fn(move |req| http_trigger::handle(state.clone(), req, peer));
                let conn = builder.serve_connection(TokioIo::new(stream), svc);
                let conn = graceful.watch(conn);
                tokio::spawn(async move {
                    if let Err(e) = conn.await {
                        tracing::debug!(error = %e, "connection ended with an error");
                    }
                });
            }
            _ = &mut shutdown => break,
        }
    }
    drop(listener);
    tracing::info!(grace_secs = grace.as_secs_f64(), "shutting down: no new connections; draining in-flight requests");
    tokio::select! {
        _ = graceful.shutdown() => tracing::info!("all connections drained"),
        _ = tokio::time::sleep(grace) => tracing::warn!("grace period over with requests still in flight; closing them"),
    }
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
