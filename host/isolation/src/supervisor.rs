//! The host side of an isolated group: starts its worker (`berth worker`), forwards calls and
//! exports to it, answers its service calls, and supervises it. A worker that dies is replaced
//! (its in-flight calls fail with 502 naming the signal); repeated crashes open a circuit (503
//! with `retry-after`); a call that does not give up within `kill_grace` of its deadline gets
//! its worker killed and replaced.

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::{Duration, Instant};

use berth_core::isolation::{BoxFuture, Isolated, WorkerCallHead, WorkerStatus};
use berth_core::CallError;
use berth_loader::GroupManifest;
use berth_plugin_api::{
    log_level, service_error_kind, CallContext, HostHandle, Input, LogRecord, RResult, RStr, RString, RVec, Response,
    ServiceError, ServiceResult,
};
use futures_util::StreamExt as _;
use prometheus::{IntCounterVec, Opts};
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::codec::Framed;

use berth_core::host_future::FutureExt as _;

use crate::serve::{self, Transactions};
use crate::wire::{self, FromWorker, Meta, ToWorker, WireInput, WirePluginError, WireServiceError};

/// How a group's worker runs (`[groups.worker]` in berth.toml).
#[derive(Debug, Clone)]
pub struct WorkerSettings {
    /// The `berth` executable that runs `berth worker`.
    pub binary: PathBuf,
    pub memory: Option<u64>,
    pub open_files: Option<u64>,
    pub cpu_time: Option<Duration>,
    /// How long a call past its deadline may take to give up before its worker is killed.
    pub kill_grace: Duration,
    /// Crashes within `crash_window` that open the circuit.
    pub max_crashes: u32,
    pub crash_window: Duration,
    /// How long an open circuit refuses calls before a new worker is tried.
    pub circuit_open: Duration,
    /// The worker's runtime threads (1: one thread serves everything).
    pub threads: u16,
}

#[derive(Debug, thiserror::Error)]
pub enum IsolationError {
    #[error("group from `{file}`: cannot start its worker `{binary}`: {source}; set `[workers] binary` to the berth executable")]
    Spawn { file: PathBuf, binary: PathBuf, source: std::io::Error },
    #[error("group from `{file}`: its worker {detail}")]
    Start { file: PathBuf, detail: String },
    /// The loader's own message, from the worker.
    #[error("{0}")]
    Refused(String),
}

struct Waiter {
    function: Arc<str>,
    request_id: String,
    reply: Reply,
}

enum Reply {
    Call(oneshot::Sender<Result<Response, WirePluginError>>),
    Export(oneshot::Sender<Result<RVec<u8>, WireServiceError>>),
}

/// A worker's answers during its handshake, owned (they go to the task that started it).
#[derive(Debug)]
enum Control {
    Opened { manifest: GroupManifest, sha256: String },
    Failed { message: String },
    Ready,
    Stopped,
}

/// One worker process and its socket.
struct Conn {
    pid: u32,
    out: wire::Out,
    pending: Mutex<HashMap<u64, Waiter>>,
    next: AtomicU64,
    /// How it ended, once it has.
    exit: OnceLock<String>,
    killed_by_watchdog: AtomicBool,
    served: AtomicBool,
    /// Handshake answers (`Opened`, `Ready`, `Failed`); the sender goes when the worker ends.
    control: Mutex<Option<mpsc::UnboundedSender<Control>>>,
    control_rx: tokio::sync::Mutex<mpsc::UnboundedReceiver<Control>>,
    /// The group this worker serves (set once the group exists: after its first `Open`).
    group: OnceLock<Weak<WorkerGroup>>,
}

impl Conn {
    fn kill(&self) {
        if self.exit.get().is_none() {
            let _ =
                nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.pid as i32), nix::sys::signal::Signal::SIGKILL);
        }
    }

    fn died(&self) -> String {
        self.exit.get().cloned().unwrap_or_else(|| format!("(pid {}) stopped answering", self.pid))
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    Starting,
    Running,
    Restarting,
    CircuitOpen(Instant),
    Stopped,
}

struct Inner {
    conn: Option<Arc<Conn>>,
    state: State,
    restarts: u64,
    crashes: VecDeque<Instant>,
    /// Crashes since a worker last answered a call (the restart backoff).
    consecutive: u32,
    last_exit: Option<String>,
}

#[derive(Clone)]
struct WorkerMetrics {
    restarts: IntCounterVec,
    crashes: IntCounterVec,
    kills: IntCounterVec,
}

impl WorkerMetrics {
    fn new(m: &berth_core::Metrics) -> Self {
        let family = |name: &str, help: &str, labels: &[&str]| {
            m.register_once(|| IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric"))
        };
        WorkerMetrics {
            restarts: family(
                "berth_worker_restarts_total",
                "Workers of isolated groups started again after one ended",
                &["group"],
            ),
            crashes: family(
                "berth_worker_crashes_total",
                "Workers of isolated groups that ended unasked, by how (signal name, exit, killed)",
                &["group", "reason"],
            ),
            kills: family(
                "berth_worker_watchdog_kills_total",
                "Workers killed because a call did not give up within its grace after its deadline",
                &["group"],
            ),
        }
    }
}

/// An isolated group: its worker and its supervision.
pub struct WorkerGroup {
    group: String,
    file: PathBuf,
    copy_dir: PathBuf,
    settings: WorkerSettings,
    manifest: GroupManifest,
    sha256: String,
    host: OnceLock<HostHandle>,
    inner: Mutex<Inner>,
    changed: watch::Sender<u64>,
    metrics: WorkerMetrics,
    me: Weak<WorkerGroup>,
}

static NEXT_SOCKET: AtomicU64 = AtomicU64::new(0);

fn describe_exit(status: std::process::ExitStatus) -> (String, String) {
    use std::os::unix::process::ExitStatusExt as _;
    if let Some(sig) = status.signal() {
        let name = nix::sys::signal::Signal::try_from(sig).map(|s| s.as_str()).unwrap_or("unknown");
        (format!("was killed by signal {sig} ({name})"), name.to_owned())
    } else {
        let code = status.code().unwrap_or(-1);
        (format!("exited with status {code}"), format!("exit_{code}"))
    }
}

impl WorkerGroup {
    /// Starts a worker for the plugin at `file` and opens it there (nothing is instantiated
    /// yet): the manifest and sha256 come back from the worker.
    pub async fn open(
        file: PathBuf,
        copy_dir: PathBuf,
        settings: WorkerSettings,
        metrics: &berth_core::Metrics,
    ) -> Result<Arc<WorkerGroup>, IsolationError> {
        let conn = start(&file, &settings, None).await?;
        send(&conn, &ToWorker::Open { file: file.clone(), copy_dir: copy_dir.clone() });
        let (manifest, sha256) = match next_control(&conn, &file).await? {
            Control::Opened { manifest, sha256 } => (manifest, sha256),
            Control::Failed { message } => {
                send(&conn, &ToWorker::Shutdown);
                return Err(IsolationError::Refused(message));
            }
            other => return Err(unexpected(&file, &other)),
        };
        let (changed, _) = watch::channel(0);
        let group = Arc::new_cyclic(|me| WorkerGroup {
            group: manifest.name.clone(),
            file,
            copy_dir,
            settings,
            manifest,
            sha256,
            host: OnceLock::new(),
            inner: Mutex::new(Inner {
                conn: Some(conn.clone()),
                state: State::Starting,
                restarts: 0,
                crashes: VecDeque::new(),
                consecutive: 0,
                last_exit: None,
            }),
            changed,
            metrics: WorkerMetrics::new(metrics),
            me: me.clone(),
        });
        let _ = conn.group.set(Arc::downgrade(&group));
        Ok(group)
    }

    /// Instantiates the group in its worker with `host` (its resolved services); from then on
    /// it serves.
    pub async fn instantiate(self: &Arc<Self>, host: HostHandle) -> Result<(), IsolationError> {
        let _ = self.host.set(host);
        let conn = self.inner.lock().expect("inner lock").conn.clone();
        let Some(conn) = conn else {
            return Err(IsolationError::Start {
                file: self.file.clone(),
                detail: "ended before it was instantiated".into(),
            });
        };
        self.instantiate_on(&conn).await?;
        self.set_state(State::Running, Some(conn));
        Ok(())
    }

    async fn instantiate_on(&self, conn: &Arc<Conn>) -> Result<(), IsolationError> {
        let host = self.host.get().expect("host set before instantiate");
        send(conn, &ToWorker::Instantiate(serve::boot(&self.group, host, &self.manifest.services)));
        match next_control(conn, &self.file).await? {
            Control::Ready => Ok(()),
            Control::Failed { message } => {
                send(conn, &ToWorker::Shutdown);
                Err(IsolationError::Refused(message))
            }
            other => Err(unexpected(&self.file, &other)),
        }
    }

    fn set_state(&self, state: State, conn: Option<Arc<Conn>>) {
        let mut inner = self.inner.lock().expect("inner lock");
        if inner.state == State::Stopped {
            if let Some(c) = conn {
                send(&c, &ToWorker::Shutdown);
            }
            return;
        }
        inner.state = state;
        if conn.is_some() {
            inner.conn = conn;
        }
        drop(inner);
        self.changed.send_modify(|g| *g += 1);
    }

    /// The worker `conn` ended (`exit` says how): fail its calls, then restart (with backoff) or
    /// open the circuit.
    fn on_exit(&self, conn: &Arc<Conn>, exit: String, reason: String) {
        let pending: Vec<Waiter> = conn.pending.lock().expect("pending lock").drain().map(|(_, w)| w).collect();
        let mut inner = self.inner.lock().expect("inner lock");
        let current = inner.conn.as_ref().is_some_and(|c| Arc::ptr_eq(c, conn));
        if !current || inner.state == State::Stopped {
            return;
        }
        let watchdog = conn.killed_by_watchdog.load(Ordering::Relaxed);
        tracing::error!(
            group = %self.group,
            pid = conn.pid,
            exit = %exit,
            watchdog,
            in_flight = pending.len(),
            "worker of isolated group ended; its calls in flight fail with 502 and it is restarted"
        );
        for w in &pending {
            tracing::error!(group = %self.group, function = %w.function, request_id = %w.request_id, pid = conn.pid, exit = %exit, "call lost with its worker");
        }
        drop(pending);
        self.metrics
            .crashes
            .with_label_values(&[self.group.as_str(), if watchdog { "watchdog" } else { reason.as_str() }])
            .inc();
        let now = Instant::now();
        inner.crashes.push_back(now);
        while inner.crashes.front().is_some_and(|t| now.duration_since(*t) > self.settings.crash_window) {
            inner.crashes.pop_front();
        }
        if conn.served.load(Ordering::Relaxed) {
            inner.consecutive = 0;
        }
        inner.consecutive += 1;
        inner.last_exit = Some(format!("(pid {}) {exit}", conn.pid));
        inner.conn = None;
        let delay = if inner.crashes.len() as u32 >= self.settings.max_crashes {
            let until = now + self.settings.circuit_open;
            inner.state = State::CircuitOpen(until);
            tracing::error!(group = %self.group, crashes = inner.crashes.len(), window_s = self.settings.crash_window.as_secs(),
                open_s = self.settings.circuit_open.as_secs(), "isolated group keeps crashing: circuit open, calls answer 503");
            self.settings.circuit_open
        } else {
            inner.state = State::Restarting;
            match inner.consecutive {
                0 | 1 => Duration::ZERO,
                n => Duration::from_millis(50 << (n - 2).min(7)).min(Duration::from_secs(5)),
            }
        };
        drop(inner);
        self.changed.send_modify(|g| *g += 1);
        if let Some(me) = self.me.upgrade() {
            tokio::spawn(async move { me.restart_after(delay).await });
        }
    }

    async fn restart_after(self: Arc<Self>, mut delay: Duration) {
        loop {
            tokio::time::sleep(delay).await;
            if self.inner.lock().expect("inner lock").state == State::Stopped {
                return;
            }
            match self.respawn().await {
                Ok(conn) => {
                    let mut inner = self.inner.lock().expect("inner lock");
                    inner.restarts += 1;
                    drop(inner);
                    self.metrics.restarts.with_label_values(&[&self.group]).inc();
                    tracing::info!(group = %self.group, pid = conn.pid, "worker of isolated group restarted");
                    self.set_state(State::Running, Some(conn));
                    return;
                }
                Err(e) => {
                    tracing::error!(group = %self.group, error = %e, "worker of isolated group could not be restarted; trying again");
                    delay = (delay * 2).clamp(Duration::from_millis(100), Duration::from_secs(5));
                }
            }
        }
    }

    async fn respawn(&self) -> Result<Arc<Conn>, IsolationError> {
        let conn = start(&self.file, &self.settings, Some(self)).await?;
        send(&conn, &ToWorker::Open { file: self.file.clone(), copy_dir: self.copy_dir.clone() });
        match next_control(&conn, &self.file).await? {
            Control::Opened { sha256, .. } if sha256 == self.sha256 => {}
            Control::Opened { sha256, .. } => {
                send(&conn, &ToWorker::Shutdown);
                return Err(IsolationError::Start {
                    file: self.file.clone(),
                    detail: format!("loaded sha256 {sha256}, not the {} this group serves", self.sha256),
                });
            }
            Control::Failed { message } => return Err(IsolationError::Refused(message)),
            other => return Err(unexpected(&self.file, &other)),
        }
        self.instantiate_on(&conn).await?;
        Ok(conn)
    }

    /// The worker to send a call to, waiting while one restarts.
    async fn current(&self) -> Result<Arc<Conn>, CallError> {
        let mut changes = self.changed.subscribe();
        loop {
            {
                let inner = self.inner.lock().expect("inner lock");
                match (inner.state, &inner.conn) {
                    (State::Running, Some(c)) => return Ok(c.clone()),
                    (State::CircuitOpen(until), _) => {
                        let left = until.saturating_duration_since(Instant::now()).as_secs().max(1);
                        return Err(CallError::Unavailable {
                            group: self.group.clone(),
                            detail: format!(
                                "its worker crashed {} times within {} s (last: {})",
                                inner.crashes.len(),
                                self.settings.crash_window.as_secs(),
                                inner.last_exit.as_deref().unwrap_or("unknown")
                            ),
                            retry_after_s: left,
                        });
                    }
                    (State::Stopped, _) => {
                        return Err(CallError::Unavailable {
                            group: self.group.clone(),
                            detail: "it is stopping".into(),
                            retry_after_s: 1,
                        })
                    }
                    _ => {}
                }
            }
            if changes.changed().await.is_err() {
                return Err(CallError::Unavailable {
                    group: self.group.clone(),
                    detail: "it stopped".into(),
                    retry_after_s: 1,
                });
            }
        }
    }

    fn watchdog(&self, conn: Arc<Conn>, id: u64) {
        let (grace, group, kills) = (self.settings.kill_grace, self.group.clone(), self.metrics.kills.clone());
        tokio::spawn(async move {
            tokio::time::sleep(grace).await;
            let stuck =
                conn.pending.lock().expect("pending lock").get(&id).map(|w| (w.function.clone(), w.request_id.clone()));
            if let Some((function, request_id)) = stuck {
                if conn.exit.get().is_none() {
                    tracing::error!(group = %group, function = %function, request_id = %request_id, pid = conn.pid,
                        grace_ms = grace.as_millis() as u64,
                        "call did not give up after its deadline (a handler that never awaits?): killing its worker");
                    conn.killed_by_watchdog.store(true, Ordering::Relaxed);
                    kills.with_label_values(&[&group]).inc();
                    conn.kill();
                }
            }
        });
    }
}

/// Gives a call up when its future is dropped before the worker answered.
struct CallGuard<'a> {
    group: &'a WorkerGroup,
    conn: Arc<Conn>,
    id: u64,
    done: bool,
}

impl Drop for CallGuard<'_> {
    fn drop(&mut self) {
        if !self.done && self.conn.exit.get().is_none() {
            send(&self.conn, &ToWorker::Cancel { id: self.id });
            self.group.watchdog(self.conn.clone(), self.id);
        }
    }
}

impl Isolated for WorkerGroup {
    fn call(&self, head: WorkerCallHead, input: Input) -> BoxFuture<'static, Result<Response, CallError>> {
        let me = self.me.upgrade().expect("a worker group is called through its Arc");
        Box::pin(async move {
            let wire_input = WireInput::from_input(&input).ok_or_else(|| CallError::Plugin {
                message: "an input kind the worker protocol does not carry".into(),
            })?;
            let conn = me.current().await?;
            let id = conn.next.fetch_add(1, Ordering::Relaxed);
            let (tx, rx) = oneshot::channel();
            conn.pending.lock().expect("pending lock").insert(
                id,
                Waiter {
                    function: head.function_name.clone(),
                    request_id: head.request_id.clone(),
                    reply: Reply::Call(tx),
                },
            );
            let mut guard = CallGuard { group: &me, conn: conn.clone(), id, done: false };
            send(
                &conn,
                &ToWorker::Call {
                    id,
                    function: head.function,
                    meta: Meta {
                        request_id: &head.request_id,
                        deadline_unix_ms: head.deadline_unix_ms,
                        trigger: head.trigger,
                        caller: None,
                    },
                    input: wire_input,
                },
            );
            drop(input);
            let answer = rx.await;
            guard.done = true;
            match answer {
                Ok(Ok(r)) => {
                    conn.served.store(true, Ordering::Relaxed);
                    Ok(r)
                }
                Ok(Err(e)) => {
                    conn.served.store(true, Ordering::Relaxed);
                    Err(match e {
                        WirePluginError::Handler { status, code, message } => CallError::Handler {
                            status: http::StatusCode::from_u16(status)
                                .unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR),
                            code,
                            message,
                        },
                        WirePluginError::Panicked { message } => CallError::Panicked { message },
                        WirePluginError::Other { message } => CallError::Plugin { message },
                    })
                }
                Err(_) => Err(CallError::WorkerCrashed { group: me.group.clone(), detail: conn.died() }),
            }
        })
    }

    fn call_export(
        &self,
        service: RString,
        method: RString,
        payload: RVec<u8>,
        ctx: CallContext,
    ) -> ServiceResult<RVec<u8>> {
        let me = self.me.upgrade().expect("a worker group is called through its Arc");
        let call = async move {
            let name = service.to_string();
            let unavailable = |m: String| ServiceError::new(service_error_kind::UNAVAILABLE, &name, m);
            let conn = me.current().await.map_err(|e| unavailable(berth_core::HttpError::public_message(&e)))?;
            let id = conn.next.fetch_add(1, Ordering::Relaxed);
            let (tx, rx) = oneshot::channel();
            let request_id = ctx.request_id.to_string();
            conn.pending.lock().expect("pending lock").insert(
                id,
                Waiter {
                    function: format!("export {name}").into(),
                    request_id: request_id.clone(),
                    reply: Reply::Export(tx),
                },
            );
            let mut guard = CallGuard { group: &me, conn: conn.clone(), id, done: false };
            send(
                &conn,
                &ToWorker::Export {
                    id,
                    service: &name,
                    method: &method,
                    payload: &payload,
                    meta: Meta {
                        request_id: &request_id,
                        deadline_unix_ms: ctx.deadline_unix_ms,
                        trigger: "service",
                        caller: ctx.caller.as_ref().map(RString::as_str).into_option(),
                    },
                },
            );
            let answer = rx.await;
            guard.done = true;
            match answer {
                Ok(r) => r.map_err(Into::into),
                Err(_) => Err(unavailable(format!("the provider's worker {} during the call", conn.died()))),
            }
        };
        async move { RResult::from(call.await) }.into_ffi()
    }

    fn shutdown(&self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            let conn = {
                let mut inner = self.inner.lock().expect("inner lock");
                inner.state = State::Stopped;
                inner.conn.clone()
            };
            self.changed.send_modify(|g| *g += 1);
            let Some(conn) = conn else { return };
            send(&conn, &ToWorker::Shutdown);
            let mut waited = Duration::ZERO;
            while conn.exit.get().is_none() && waited < Duration::from_secs(10) {
                tokio::time::sleep(Duration::from_millis(5)).await;
                waited += Duration::from_millis(5);
            }
            if conn.exit.get().is_none() {
                tracing::warn!(group = %self.group, pid = conn.pid, "worker did not stop within 10 s of its stop hook; killing it");
                conn.kill();
            }
        })
    }

    fn manifest(&self) -> &GroupManifest {
        &self.manifest
    }

    fn sha256(&self) -> &str {
        &self.sha256
    }

    fn source(&self) -> &std::path::Path {
        &self.file
    }

    fn status(&self) -> WorkerStatus {
        let inner = self.inner.lock().expect("inner lock");
        let state = match inner.state {
            State::Starting => "starting",
            State::Running => "running",
            State::Restarting => "restarting",
            State::CircuitOpen(_) => "circuit_open",
            State::Stopped => "stopped",
        };
        WorkerStatus {
            pid: inner.conn.as_ref().filter(|c| c.exit.get().is_none()).map_or(0, |c| c.pid),
            state: state.into(),
            restarts: inner.restarts,
            last_exit: inner.last_exit.clone(),
        }
    }
}

fn send(conn: &Conn, msg: &ToWorker<'_>) {
    wire::send(&conn.out, msg);
}

fn unexpected(file: &std::path::Path, msg: &Control) -> IsolationError {
    IsolationError::Start { file: file.to_owned(), detail: format!("answered out of turn ({msg:?})") }
}

/// The next handshake answer, or how the worker ended.
async fn next_control(conn: &Conn, file: &std::path::Path) -> Result<Control, IsolationError> {
    let got = conn.control_rx.lock().await.recv().await;
    got.ok_or_else(|| IsolationError::Start {
        file: file.to_owned(),
        detail: format!("{} while starting", conn.died()),
    })
}

/// Spawns a worker process and connects to it; `group` is set for a restart (its host handle
/// answers service calls).
async fn start(
    file: &std::path::Path,
    settings: &WorkerSettings,
    group: Option<&WorkerGroup>,
) -> Result<Arc<Conn>, IsolationError> {
    use std::os::linux::net::SocketAddrExt as _;
    let start_err = |detail: String| IsolationError::Start { file: file.to_owned(), detail };
    let n = NEXT_SOCKET.fetch_add(1, Ordering::Relaxed);
    let nonce =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
    let name = format!("berth-worker-{}-{n}-{nonce:08x}", std::process::id());
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())
        .map_err(|e| start_err(format!("socket name: {e}")))?;
    let listener =
        std::os::unix::net::UnixListener::bind_addr(&addr).map_err(|e| start_err(format!("cannot listen: {e}")))?;
    listener.set_nonblocking(true).map_err(|e| start_err(e.to_string()))?;
    let listener = tokio::net::UnixListener::from_std(listener).map_err(|e| start_err(e.to_string()))?;
    let mut cmd = tokio::process::Command::new(&settings.binary);
    cmd.arg("worker").arg("--connect").arg(&name).stdin(std::process::Stdio::null()).kill_on_drop(true);
    if let Some(m) = settings.memory {
        cmd.arg("--memory").arg(m.to_string());
    }
    if let Some(f) = settings.open_files {
        cmd.arg("--open-files").arg(f.to_string());
    }
    if settings.threads > 1 {
        cmd.arg("--threads").arg(settings.threads.to_string());
    }
    if let Some(c) = settings.cpu_time {
        cmd.arg("--cpu-seconds").arg(c.as_secs().max(1).to_string());
    }
    let mut child = cmd.spawn().map_err(|source| IsolationError::Spawn {
        file: file.to_owned(),
        binary: settings.binary.clone(),
        source,
    })?;
    let pid = child.id().unwrap_or(0);
    let stream = tokio::select! {
        a = listener.accept() => a.map_err(|e| start_err(format!("(pid {pid}) could not connect: {e}")))?.0,
        status = child.wait() => {
            let detail = status.map(|s| describe_exit(s).0).unwrap_or_else(|e| e.to_string());
            return Err(start_err(format!("(pid {pid}) {detail} before it connected")));
        }
        _ = tokio::time::sleep(Duration::from_secs(10)) => {
            return Err(start_err(format!("(pid {pid}) did not connect within 10 s")));
        }
    };
    drop(listener);
    // Only our child may speak for the group.
    match stream.peer_cred().map(|c| c.pid()) {
        Ok(Some(p)) if p as u32 == pid => {}
        other => return Err(start_err(format!("a process other than the worker connected ({other:?})"))),
    }
    let (sink, frames) = Framed::new(stream, wire::codec()).split();
    let (out, outq) = mpsc::unbounded_channel();
    tokio::spawn(wire::pump(outq, sink));
    let (control_tx, control_rx) = mpsc::unbounded_channel();
    let conn = Arc::new(Conn {
        pid,
        out,
        pending: Mutex::default(),
        next: AtomicU64::new(1),
        exit: OnceLock::new(),
        killed_by_watchdog: AtomicBool::new(false),
        served: AtomicBool::new(false),
        control: Mutex::new(Some(control_tx)),
        control_rx: tokio::sync::Mutex::new(control_rx),
        group: OnceLock::new(),
    });
    if let Some(g) = group {
        let _ = conn.group.set(g.me.clone());
    }
    tokio::spawn(read(conn.clone(), frames, child));
    Ok(conn)
}

type Frames =
    futures_util::stream::SplitStream<Framed<tokio::net::UnixStream, tokio_util::codec::LengthDelimitedCodec>>;

/// Reads one worker's frames until it ends, then reaps it and reports how it ended.
async fn read(conn: Arc<Conn>, mut frames: Frames, mut child: tokio::process::Child) {
    let group = || conn.group.get().and_then(Weak::upgrade);
    let txs = Arc::new(Transactions::default());
    while let Some(Ok(frame)) = frames.next().await {
        let msg: FromWorker = match wire::decode(&frame) {
            Ok(m) => m,
            Err(e) => {
                tracing::error!(pid = conn.pid, error = %e, "worker sent a frame that could not be read; killing it");
                conn.kill();
                break;
            }
        };
        match msg {
            FromWorker::Done { id, result } => {
                if let Some(Waiter { reply: Reply::Call(tx), .. }) =
                    conn.pending.lock().expect("pending lock").remove(&id)
                {
                    let _ = tx.send(result.map(|r| r.to_response()));
                }
            }
            FromWorker::ExportDone { id, result } => {
                if let Some(Waiter { reply: Reply::Export(tx), .. }) =
                    conn.pending.lock().expect("pending lock").remove(&id)
                {
                    let _ = tx.send(result.map(|b| RVec::from_slice(b.0)));
                }
            }
            FromWorker::Cancelled { id } => {
                conn.pending.lock().expect("pending lock").remove(&id);
            }
            FromWorker::Service { id, call } => {
                let Some(host) = group().and_then(|g| g.host.get().cloned()) else {
                    send(
                        &conn,
                        &ToWorker::Reply {
                            id,
                            result: Err(WireServiceError {
                                kind: service_error_kind::UNAVAILABLE,
                                service: String::new(),
                                message: "services are not resolved yet".into(),
                            }),
                        },
                    );
                    continue;
                };
                let (out, txs) = (conn.out.clone(), txs.clone());
                tokio::spawn(async move {
                    let result = serve::serve(&host, &txs, call).await;
                    wire::send(&out, &ToWorker::Reply { id, result });
                });
            }
            FromWorker::Log { level, target, request_id, message } => {
                if let Some(host) = group().and_then(|g| g.host.get().cloned()) {
                    let span = tracing::info_span!("worker", request_id = %request_id, pid = conn.pid);
                    let _entered = span.enter();
                    host.log(LogRecord {
                        level: level.clamp(log_level::ERROR, log_level::TRACE),
                        target: RStr::from_str(target),
                        request_id: RStr::from_str(request_id),
                        message: RStr::from_str(message),
                    });
                }
            }
            FromWorker::Opened { manifest, sha256 } => control(&conn, Control::Opened { manifest, sha256 }),
            FromWorker::Failed { message } => control(&conn, Control::Failed { message }),
            FromWorker::Ready => control(&conn, Control::Ready),
            FromWorker::Stopped => control(&conn, Control::Stopped),
        }
    }
    // The socket closed: the worker exited or is about to.
    let status = match tokio::time::timeout(Duration::from_secs(2), child.wait()).await {
        Ok(s) => s.ok(),
        Err(_) => {
            let _ = child.start_kill();
            child.wait().await.ok()
        }
    };
    let (exit, reason) = match status {
        Some(s) if s.success() => ("exited".to_owned(), "exit_0".to_owned()),
        Some(s) => describe_exit(s),
        None => ("ended (its status could not be read)".to_owned(), "unknown".to_owned()),
    };
    let exit = if conn.killed_by_watchdog.load(Ordering::Relaxed) {
        "was killed by the watchdog (a call did not give up after its deadline)".to_owned()
    } else {
        exit
    };
    let _ = conn.exit.set(format!("(pid {}) {exit}", conn.pid));
    txs.clear();
    *conn.control.lock().expect("control lock") = None;
    match group() {
        Some(g) => g.on_exit(&conn, exit, reason),
        None => {
            conn.pending.lock().expect("pending lock").clear();
        }
    }
}

fn control(conn: &Conn, msg: Control) {
    let control = conn.control.lock().expect("control lock").clone();
    if let Some(c) = control {
        let _ = c.send(msg);
    }
}

impl Drop for WorkerGroup {
    fn drop(&mut self) {
        if let Some(c) = self.inner.get_mut().map(|i| i.conn.take()).ok().flatten() {
            c.kill();
        }
    }
}
