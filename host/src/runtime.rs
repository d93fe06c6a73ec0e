//! The composition root: a [`Runtime`] puts the host's parts together — serving groups,
//! dispatcher, trigger supervisor, service registry, HTTP trigger — and owns the one install path
//! ([`Runtime::install`], [`Runtime::remove`]) that `berth up`, hot swap (`crate::swap`),
//! `berth invoke` and tests all take. `crate::server::start` binds the listeners around it.

use std::net::SocketAddr;
use std::sync::Arc;

use berth_core::auth_limit::AuthLimiter;
use berth_core::serving::{Readiness, ServingGroups};
use berth_core::trigger::TriggerSupervisor;
use berth_core::{Dispatcher, GroupCode, GroupInstance, Metrics, Trigger};
use berth_services::host::GroupHost;
use berth_services::registry::{GroupSettings, RegistrySettings, ServiceRegistry};
use berth_triggers::blob::BlobTrigger;
use berth_triggers::http::invoke::{InvokeAccess, InvokeApi, InvokeToken};
use berth_triggers::http::routes::{Route, RouteConflict, RouteTable};
use berth_triggers::http::HttpTrigger;
use berth_triggers::queue::{Publishers, QueueTrigger};
use berth_triggers::timer::TimerTrigger;

use crate::config::{BerthConfig, GroupConfig, ServerConfig};
use crate::install::{self, GroupError, Instantiated, Plugin};
use crate::worker::LibraryWorker;

/// What [`Runtime::load_groups`] did.
pub struct Loaded {
    /// The groups installed, with the `[[groups]]` entry each came from.
    pub groups: Vec<(GroupConfig, Arc<GroupInstance>)>,
    /// The groups refused, and why.
    pub errors: Vec<GroupError>,
}

/// The running host's parts.
pub struct Runtime {
    pub config: Arc<BerthConfig>,
    pub metrics: Metrics,
    /// The serving groups and readiness.
    pub serving: Arc<ServingGroups>,
    /// Every function by (group, name), for triggers other than HTTP.
    pub dispatcher: Arc<Dispatcher>,
    /// Runners of timer, queue and blob triggers.
    pub triggers: Arc<TriggerSupervisor>,
    pub services: Arc<ServiceRegistry>,
    /// The HTTP listener's state: routing table, limits, direct invoke.
    pub http: Arc<HttpTrigger>,
    /// The low-priority thread libraries are opened and closed on.
    pub worker: LibraryWorker,
    /// The platform this host serves on.
    pub platform: berth_platforms::Platform,
    /// Failed-token counts of the admin API, `/invoke/` and `[middleware.auth]` (`[auth_limit]`).
    pub auth_limiter: Arc<AuthLimiter>,
}

/// Why `/invoke/` may not be served as configured.
#[derive(Debug, thiserror::Error)]
pub enum InvokeRefusal {
    #[error(
        "direct invoke: `server.listen = \"{addr}\"` is not a loopback address and `/invoke/` has no token; set \
         `server.invoke_token` (or BERTH_SERVER__INVOKE_TOKEN), turn it off with `server.direct_invoke = false` \
         (BERTH_SERVER__DIRECT_INVOKE=false), or listen on 127.0.0.1"
    )]
    Unprotected { addr: SocketAddr },
    #[error(
        "direct invoke: loopback callers are not exempt (`server.invoke_loopback_exempt = false`, the default on a \
         platform) and there is no `server.invoke_token`, so nobody could call `/invoke/`; set `server.invoke_token` \
         (or BERTH_SERVER__INVOKE_TOKEN) or `server.direct_invoke = false`"
    )]
    NoCaller,
}

/// Who may call `/invoke/...` on `platform`'s listener (see `server.direct_invoke` and
/// `server.invoke_loopback_exempt`), or why it may not be served as configured.
///
/// Standalone, it is on; loopback callers need no token, others need `server.invoke_token`, and
/// without one a non-loopback `server.listen` is refused (mirroring the admin API). On a
/// platform's listener (FC, SCF web functions, kubeless, Knative: `0.0.0.0` by contract) the
/// platform delivers its events through its own path, so `/invoke/` is on only with a token,
/// which then every caller needs: sidecars such as Knative's queue-proxy connect from loopback.
pub fn invoke_access(
    server: &ServerConfig,
    platform: berth_platforms::Platform,
) -> Result<InvokeAccess, InvokeRefusal> {
    let on_platform = platform != berth_platforms::Platform::Standalone;
    let token =
        server.invoke_token.as_ref().map(|t| t.0.trim()).filter(|t| !t.is_empty()).map(|t| InvokeToken(t.to_owned()));
    match server.direct_invoke {
        Some(false) => {
            return Ok(InvokeAccess::Off {
                why: "direct invoke is turned off on this host (`server.direct_invoke = false`)",
            })
        }
        None if on_platform && token.is_none() => {
            return Ok(InvokeAccess::Off {
                why: "direct invoke is off on a platform's listener until `server.invoke_token` is set",
            })
        }
        _ => {}
    }
    let loopback_exempt = server.invoke_loopback_exempt.unwrap_or(!on_platform);
    if token.is_none() {
        if !server.listen.ip().is_loopback() {
            return Err(InvokeRefusal::Unprotected { addr: server.listen });
        }
        if !loopback_exempt {
            return Err(InvokeRefusal::NoCaller);
        }
    }
    Ok(InvokeAccess::On { token, loopback_exempt })
}

/// The timer trigger, claiming ticks in `[timers] lock` when one is set (checked when the
/// config was parsed).
fn timer_trigger(config: &BerthConfig, metrics: &Metrics) -> TimerTrigger {
    #[cfg(any(feature = "redis", feature = "postgres"))]
    use crate::config::LockTarget;
    let timers = TimerTrigger::new(Arc::new(berth_core::clock::SystemClock), metrics);
    let claims: Result<Arc<dyn berth_triggers::timer::TickClaims>, String> =
        match config.timers.lock_target(&config.services) {
            Ok(None) => return timers,
            #[cfg(feature = "redis")]
            Ok(Some(LockTarget::Redis(url))) => berth_triggers::timer::RedisClaims::new(&url)
                .map(|c| Arc::new(c) as Arc<dyn berth_triggers::timer::TickClaims>),
            #[cfg(feature = "postgres")]
            Ok(Some(LockTarget::Postgres(url))) => berth_triggers::timer::PostgresClaims::new(&url)
                .map(|c| Arc::new(c) as Arc<dyn berth_triggers::timer::TickClaims>),
            #[allow(unreachable_patterns)]
            Ok(Some(_)) => Err("this berth was built without the backend `timers.lock` names".into()),
            Err(e) => Err(e),
        };
    match claims {
        Ok(claims) => timers.with_claims(claims, &config.timers.lock_prefix),
        Err(e) => {
            tracing::error!(error = %e, "timer ticks are not claimed: every replica runs every tick");
            timers
        }
    }
}

impl Runtime {
    /// The host's parts for `config`, standalone; nothing is bound or loaded yet.
    pub fn new(config: BerthConfig) -> Self {
        Self::on(config, berth_platforms::Platform::Standalone)
    }

    /// The host's parts for `config` on `platform`. Where the platform delivers timer, queue
    /// and blob events itself (unless `[platform] run_triggers` says otherwise), no runner of
    /// those starts in the process.
    pub fn on(config: BerthConfig, platform: berth_platforms::Platform) -> Self {
        let config = Arc::new(config);
        let metrics = Metrics::new();
        let dispatcher = Arc::new(Dispatcher::default());
        dispatcher.set_extra_bindings(berth_triggers::queue::config_bindings(&config.triggers));
        let publishers = Arc::new(Publishers::new(&config.queues, metrics.clone()));
        let settings = RegistrySettings {
            data_dir: config.data_dir.clone(),
            services: config.services.clone(),
            http_client: config.http_client.clone(),
            outbound_site: Default::default(),
        };
        let services = Arc::new(ServiceRegistry::new(settings, metrics.clone(), Some(publishers)));
        let kinds: Vec<Arc<dyn Trigger>> = vec![
            Arc::new(timer_trigger(&config, &metrics)),
            Arc::new(BlobTrigger::new(services.clone(), &metrics)),
            Arc::new(QueueTrigger::new(&config.queues, &metrics)),
        ];
        let serving = Arc::new(ServingGroups::default());
        let auth_limiter = Arc::new(AuthLimiter::new(config.auth_limit.settings(), &metrics));
        // `server::start_on` refuses a refused access before anything is built; elsewhere (no
        // listener: `berth invoke`) a refused one is simply off.
        let access = invoke_access(&config.server, platform)
            .unwrap_or(InvokeAccess::Off { why: "direct invoke is refused by this host's settings" });
        let invoke = InvokeApi::with_access(dispatcher.clone(), access, Some(auth_limiter.clone()));
        let triggers = Arc::new(TriggerSupervisor::new(dispatcher.clone(), kinds));
        if !crate::platform::runs_triggers(platform, config.platform.run_triggers) {
            triggers.leave_to_platform(platform.name());
        }
        Runtime {
            http: Arc::new(HttpTrigger::new(serving.clone(), metrics.clone(), config.server.max_concurrency, invoke)),
            triggers,
            platform,
            worker: LibraryWorker::start(config.admin.swap_nice),
            dispatcher,
            services,
            serving,
            metrics,
            config,
            auth_limiter,
        }
    }

    /// The shim that translates this platform's protocol for the runtime.
    pub fn shim(&self) -> berth_platforms::Shim {
        berth_platforms::Shim::new(
            self.platform,
            self.config.platform.clone(),
            self.http.clone(),
            self.dispatcher.clone(),
            self.serving.clone(),
            self.metrics.clone(),
            &crate::platform::process_env,
        )
    }

    /// What `/readyz` answers.
    pub fn readiness(&self) -> Readiness {
        self.serving.readiness()
    }

    /// Builds and opens every configured group (or, with `only`, one group and the groups whose
    /// exports it needs), then installs them in dependency order: a group exporting a service
    /// before the groups that use it. A group that fails is refused (and reported by `/readyz`
    /// and the log); the others serve.
    pub async fn load_groups(&self, only: Option<&str>) -> Loaded {
        let config = self.config.clone();
        let mut opened = Vec::new();
        // Each refusal with the group it is about, when known (what `/readyz` clears once that
        // group serves: a listed group that failed at start may load later).
        let mut refusals: Vec<(Option<String>, GroupError)> = Vec::new();
        let named = |gc: &GroupConfig, e: &GroupError| gc.name.clone().or_else(|| e.group().map(str::to_owned));
        for (gc, result) in config.groups.iter().zip(self.open_all(&config).await) {
            match result {
                Ok(plugin) => opened.push((gc, plugin)),
                Err(e) => refusals.push((named(gc, &e), e)),
            }
        }
        if let Some(name) = only {
            if !opened.iter().any(|(_, p)| p.manifest().name == name) {
                let available: Vec<String> = opened.iter().map(|(_, p)| p.manifest().name.clone()).collect();
                let available = if available.is_empty() { "none".to_owned() } else { available.join(", ") };
                refusals.push((None, GroupError::NotConfigured { group: name.to_owned(), available }));
            }
            opened = install::with_dependencies(opened, name);
        }
        let (ordered, refused) = install::dependency_order(opened);
        refusals.extend(refused.into_iter().map(|e| (e.group().map(str::to_owned), e)));
        let mut groups = Vec::new();
        for (gc, plugin) in ordered {
            let name = plugin.manifest().name.clone();
            if self.serving.contains(&name) {
                install::stop_unused(plugin).await;
                refusals.push((None, GroupError::Duplicate { group: name, source_label: gc.label() }));
                continue;
            }
            match self.install(gc, plugin).await {
                Ok((group, _)) => groups.push((gc.clone(), group)),
                Err(e) => refusals.push((Some(name), e)),
            }
        }
        let mut errors = Vec::with_capacity(refusals.len());
        for (group, e) in refusals {
            tracing::error!(error = %e, "group refused");
            match group {
                Some(group) => self.serving.add_group_problem(&group, e.to_string()),
                None => self.serving.add_problem(e.to_string()),
            }
            errors.push(e);
        }
        Loaded { groups, errors }
    }

    /// Opens every configured group's plugin, in the order of `config.groups`. Prebuilt files
    /// (`file`, `url`) are read, hashed, checked and opened at the same time, one blocking task
    /// per core, all started at once; crates (`path`) are built one after the other, in order,
    /// as cargo would serialise builds of one target directory anyway. Nothing is instantiated
    /// yet: services, migrations and init hooks run in dependency order afterwards.
    async fn open_all(&self, config: &Arc<BerthConfig>) -> Vec<Result<Plugin, GroupError>> {
        // As many at once as there are cores: one blocking thread each (a hundred groups must
        // not start a hundred threads, whose stacks and malloc arenas stay after they exit).
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let permits = Arc::new(tokio::sync::Semaphore::new(cores));
        let tasks: Vec<_> = (0..config.groups.len())
            .map(|i| {
                let (config, metrics, permits) = (config.clone(), self.metrics.clone(), permits.clone());
                config.groups[i].path.is_none().then(|| {
                    tokio::spawn(async move {
                        let _permit = permits.acquire_owned().await;
                        install::open_plugin(&config, &config.groups[i], &metrics).await
                    })
                })
            })
            .collect();
        let mut results = Vec::with_capacity(tasks.len());
        for (gc, task) in config.groups.iter().zip(tasks) {
            results.push(match task {
                Some(task) => task
                    .await
                    .unwrap_or_else(|e| Err(GroupError::Internal { source_label: gc.label(), message: e.to_string() })),
                None => install::open_plugin(config, gc, &self.metrics).await,
            });
        }
        results
    }

    /// Installs an opened plugin as the serving version of its group: instantiates it and
    /// switches it in. Returns the new instance and the one it replaced (which the caller
    /// retires or stops).
    pub async fn install(
        &self,
        group_config: &GroupConfig,
        plugin: Plugin,
    ) -> Result<(Arc<GroupInstance>, Option<Arc<GroupInstance>>), GroupError> {
        let instantiated = self.instantiate(group_config, plugin).await?;
        let group = instantiated.group.clone();
        let old = self.activate(instantiated).await?;
        Ok((group, old))
    }

    /// Checks an opened plugin against its `[[groups]]` entry, resolves its services (running
    /// its migrations), runs its init hook and builds its function entries and routes. Nothing
    /// serves it yet.
    pub async fn instantiate(&self, group_config: &GroupConfig, plugin: Plugin) -> Result<Instantiated, GroupError> {
        let label = group_config.label();
        let manifest = plugin.manifest().clone();
        let refused = |e: GroupError| async {
            install::stop_unused(plugin.clone()).await;
            Err(e)
        };
        if let Err(e) = install::check_overrides(group_config, &plugin) {
            return refused(e).await;
        }
        if let Err(message) = self.services.exports.check_exports(&manifest.name, &manifest.exports) {
            return refused(GroupError::Exports { group: manifest.name.clone(), message }).await;
        }
        let migrations = install::migrations_dir(group_config);
        let settings = GroupSettings {
            config: &group_config.config,
            secrets: &group_config.secrets,
            bind: &group_config.bind,
            migrations: migrations.as_deref(),
            outbound: &group_config.allowed_outbound_hosts,
        };
        let services = match self.services.resolve(&manifest.name, &manifest.services, settings).await {
            Ok(s) => s,
            Err(berth_services::ResolveError::Refused { group, message }) => {
                return refused(GroupError::Migrations { group, source_label: label.clone(), message }).await
            }
            Err(other) => return refused(GroupError::Services(other)).await,
        };
        let host = GroupHost::with_services(&manifest.name, services);
        let code = match &plugin {
            Plugin::Library(p) => GroupCode::Library(p.instantiate(host.clone()).await?),
            Plugin::Worker(w) => {
                if let Err(e) = w.instantiate(host.clone()).await {
                    return refused(e.into()).await;
                }
                GroupCode::Worker(w.clone())
            }
        };
        let group = Arc::new(GroupInstance {
            name: manifest.name.as_str().into(),
            version: manifest.version.clone(),
            host,
            code,
            calls: Default::default(),
        });
        let (functions, routes) = install::function_entries(&self.config, group_config, &group, &self.metrics);
        tracing::info!(
            group = %group.name,
            version = %group.version,
            functions = manifest.functions.len(),
            file = %group.source().display(),
            sha256 = %&group.sha256()[..16],
            isolation = group.isolation(),
            "group loaded"
        );
        Ok(Instantiated { group, routes, functions, source_label: label })
    }

    /// Switches an instantiated group in: routing table (refused on a route conflict, which
    /// stops the new instance), dispatcher, exports and serving list, each one atomic store.
    /// Returns the instance it replaced.
    pub async fn activate(&self, new: Instantiated) -> Result<Option<Arc<GroupInstance>>, GroupError> {
        let Instantiated { group, routes, functions, source_label } = new;
        let name = group.name.clone();
        let table = match self.table_with_group(&name, routes).await {
            Ok(table) => table,
            Err(source) => {
                group.shutdown().await;
                drop(functions);
                let group_name = name.to_string();
                self.close_quietly(group).await;
                return Err(GroupError::Routes { group: group_name, source_label, source: Box::new(source) });
            }
        };
        let exports = group.manifest().exports.clone();
        self.http.routes.store(Arc::new(table));
        self.dispatcher.replace_group(&name, functions);
        self.services.exports.publish(&group, &exports);
        let old = self.serving.replace(&name, Some(group));
        if old.is_none() {
            self.metrics.groups_loaded.inc();
        }
        Ok(old)
    }

    /// The routing table with `group`'s routes replaced by `routes`. The table is built whole
    /// (`cargo bench --bench routing`: 0.78 ms at 1,000 routes, 30 ms at 10,000): a large one is
    /// built on the swap worker, so that a swap does not stall the requests of a serving worker;
    /// a small one in place, where the hop to that (low-priority) thread would cost more than the
    /// build. Swaps are serialised, so the table cannot change meanwhile.
    async fn table_with_group(&self, group: &str, routes: Vec<Route>) -> Result<RouteTable, RouteConflict> {
        /// Routes above which the table is built off the async workers (~0.2 ms of building).
        const BUILD_OFF_WORKERS: usize = 256;
        let current = self.http.routes.load_full();
        if current.routes().len() + routes.len() <= BUILD_OFF_WORKERS {
            return current.with_group(group, routes);
        }
        let (name, kept) = (group.to_owned(), routes.clone());
        match self.worker.run(move || current.with_group(&name, routes)).await {
            Ok(built) => built,
            // The worker is gone (the host is stopping): build in place.
            Err(_) => self.http.routes.load().with_group(group, kept),
        }
    }

    /// Drops `value` (a plugin, an instance that never served) on the library worker: closing a
    /// library takes the dynamic loader's lock and runs its finalizers, off the async workers.
    pub async fn close_quietly<T: Send + 'static>(&self, value: T) {
        let _ = self.worker.run(move || drop(value)).await;
    }

    /// Takes group `name` out of service: its routes, functions and exports go. Returns the
    /// instance, for the caller to retire or stop.
    pub fn remove(&self, name: &str) -> Option<Arc<GroupInstance>> {
        if let Ok(table) = self.http.routes.load().with_group(name, Vec::new()) {
            self.http.routes.store(Arc::new(table));
        }
        self.dispatcher.remove_group(name);
        self.services.exports.withdraw(name);
        let old = self.serving.replace(name, None);
        if old.is_some() {
            self.metrics.groups_loaded.dec();
        }
        old
    }

    /// Stops every trigger runner, then every group (consumers before the groups whose exports
    /// they use), running their stop hooks.
    pub async fn stop_groups(&self) {
        self.triggers.stop_all().await;
        for g in self.serving.all().into_iter().rev() {
            if let Some(g) = self.remove(&g.name) {
                g.shutdown().await;
            }
        }
    }
}
