//! `berth worker`: the child process that runs one isolated group. It loads the group's plugin
//! through the same loader as the host, instantiates it with a host handle that forwards to the
//! host ([`crate::proxy`]), and serves the calls the host sends. It applies its own limits
//! before it opens the plugin, and dies with its host (`PR_SET_PDEATHSIG`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use berth_plugin_api::{CallContext, Input_NE, RResult, RStr};
use futures_util::StreamExt as _;
use tokio::sync::mpsc;
use tokio_util::codec::Framed;

use crate::proxy::{Link, WorkerHost};
use crate::wire::{self, FromWorker, ToWorker, WirePluginError, WireResponse};

/// What `berth worker` is started with.
#[derive(Debug, Clone, Default)]
pub struct WorkerArgs {
    /// The host's abstract socket name.
    pub connect: String,
    /// RLIMIT_DATA in bytes.
    pub memory: Option<u64>,
    /// RLIMIT_NOFILE.
    pub open_files: Option<u64>,
    /// RLIMIT_CPU in seconds.
    pub cpu_seconds: Option<u64>,
    /// Runtime threads: 1 runs everything on this thread (no cross-thread wake-ups per call).
    pub threads: u16,
}

#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error("worker: cannot reach the host at `{name}`: {source}")]
    Connect { name: String, source: std::io::Error },
    #[error("worker: cannot apply limit {what}: {source}")]
    Limit { what: &'static str, source: nix::Error },
    #[error("worker: cannot start its runtime: {0}")]
    Runtime(std::io::Error),
}

fn limits(args: &WorkerArgs) -> Result<(), WorkerError> {
    use nix::sys::resource::{setrlimit, Resource};
    let set = |what, r, v: u64| setrlimit(r, v, v).map_err(|source| WorkerError::Limit { what, source });
    if let Some(m) = args.memory {
        set("memory (RLIMIT_DATA)", Resource::RLIMIT_DATA, m)?;
    }
    if let Some(n) = args.open_files {
        set("open files (RLIMIT_NOFILE)", Resource::RLIMIT_NOFILE, n)?;
    }
    if let Some(s) = args.cpu_seconds {
        set("CPU time (RLIMIT_CPU)", Resource::RLIMIT_CPU, s)?;
    }
    Ok(())
}

/// Runs the worker until the host says stop or goes away.
pub fn run(args: WorkerArgs) -> Result<(), WorkerError> {
    // Die with the host, even when a handler spins and nothing reads the socket.
    let _ = nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL);
    limits(&args)?;
    let mut rt = if args.threads > 1 {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        b.worker_threads(args.threads.into());
        b
    } else {
        tokio::runtime::Builder::new_current_thread()
    };
    let rt = rt.thread_name("berth-worker").enable_all().build().map_err(WorkerError::Runtime)?;
    rt.block_on(serve(args))?;
    // Leave without dropping the runtime: its tasks hold objects the plugin made, and the
    // process is the unit that ends here.
    std::process::exit(0)
}

fn connect(name: &str) -> std::io::Result<tokio::net::UnixStream> {
    use std::os::linux::net::SocketAddrExt as _;
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())?;
    let std = std::os::unix::net::UnixStream::connect_addr(&addr)?;
    std.set_nonblocking(true)?;
    tokio::net::UnixStream::from_std(std)
}

type Serving = Arc<Mutex<HashMap<u64, futures_util::future::AbortHandle>>>;

/// The instantiated group and the host handle its calls get.
type Instance = Arc<(berth_loader::PluginInstance, berth_plugin_api::HostHandle)>;

async fn serve(args: WorkerArgs) -> Result<(), WorkerError> {
    let stream =
        connect(&args.connect).map_err(|source| WorkerError::Connect { name: args.connect.clone(), source })?;
    let (sink, mut frames) = Framed::new(stream, wire::codec()).split();
    let (out, outq) = mpsc::unbounded_channel();
    let writer = tokio::spawn(wire::pump(outq, sink));
    let link = Link::new(out.clone());
    let mut plugin: Option<Arc<berth_loader::LoadedPlugin>> = None;
    // Set by the instantiating task; taken by the stopping one. The init and stop hooks run in
    // tasks of their own: both may call services, whose replies this loop must go on reading.
    let instance: Arc<Mutex<Option<Instance>>> = Arc::default();
    let (stopped_tx, mut stopped) = tokio::sync::oneshot::channel::<()>();
    let mut stopped_tx = Some(stopped_tx);
    let calls: Serving = Arc::default();
    loop {
        let frame = tokio::select! {
            f = frames.next() => f,
            _ = &mut stopped => break,
        };
        let Some(Ok(frame)) = frame else { break };
        let group = instance.lock().expect("instance lock").clone();
        let msg: ToWorker = match wire::decode(&frame) {
            Ok(m) => m,
            Err(e) => {
                tracing::error!(error = %e, "worker: a frame from the host could not be read; stopping");
                break;
            }
        };
        match msg {
            ToWorker::Open { file, copy_dir } => match berth_loader::load(&file, &copy_dir) {
                Ok(p) => {
                    wire::send(&out, &FromWorker::Opened { manifest: p.manifest.clone(), sha256: p.sha256.clone() });
                    plugin = Some(Arc::new(p));
                }
                Err(e) => {
                    wire::send(&out, &FromWorker::Failed { message: e.to_string() });
                }
            },
            ToWorker::Instantiate(boot) => {
                let Some(p) = &plugin else {
                    wire::send(&out, &FromWorker::Failed { message: "instantiate before open".into() });
                    continue;
                };
                let host = WorkerHost::handle(link.clone(), boot);
                let (p, out, instance) = (p.clone(), out.clone(), instance.clone());
                tokio::spawn(async move {
                    match p.instantiate(host.clone()).await {
                        Ok(g) => {
                            *instance.lock().expect("instance lock") = Some(Arc::new((g, host)));
                            wire::send(&out, &FromWorker::Ready);
                        }
                        Err(e) => {
                            wire::send(&out, &FromWorker::Failed { message: e.to_string() });
                        }
                    }
                });
            }
            ToWorker::Call { id, function, meta, input } => {
                let Some(g) = group.clone() else { continue };
                let ctx = CallContext {
                    request_id: meta.request_id.into(),
                    deadline_unix_ms: meta.deadline_unix_ms,
                    host: g.1.clone(),
                    trigger: RStr::from_str(trigger_name(meta.trigger)),
                    caller: meta.caller.map(Into::into).into(),
                };
                let fut = g.0.group.call(function, ctx, Input_NE::new(input.to_input()));
                serve_call(id, fut, &calls, out.clone(), |id, answer| {
                    let result = match &answer {
                        RResult::ROk(r) => Ok(WireResponse::from_response(r)),
                        RResult::RErr(e) => Err(WirePluginError::from_plugin(e)),
                    };
                    FromWorker::Done { id, result }
                });
            }
            ToWorker::Export { id, service, method, payload, meta } => {
                let Some(g) = group.clone() else { continue };
                let ctx = CallContext {
                    request_id: meta.request_id.into(),
                    deadline_unix_ms: meta.deadline_unix_ms,
                    host: g.1.clone(),
                    trigger: RStr::from_str("service"),
                    caller: meta.caller.map(Into::into).into(),
                };
                let fut = g.0.group.call_export(service.into(), method.into(), payload.into(), ctx);
                serve_call(id, fut, &calls, out.clone(), |id, answer| {
                    let result = match &answer {
                        RResult::ROk(b) => Ok(wire::Bytes(b)),
                        RResult::RErr(e) => Err(e.clone().into()),
                    };
                    FromWorker::ExportDone { id, result }
                });
            }
            ToWorker::Cancel { id } => {
                if let Some(h) = calls.lock().expect("calls lock").get(&id) {
                    h.abort();
                }
            }
            ToWorker::Reply { id, result } => link.reply(id, result),
            ToWorker::Shutdown => {
                let (out, instance, done) = (out.clone(), instance.clone(), stopped_tx.take());
                tokio::spawn(async move {
                    let g = instance.lock().expect("instance lock").take();
                    if let Some(g) = g {
                        g.0.group.shutdown().await;
                        // Leaked, not dropped: the process ends instead.
                        std::mem::forget(g);
                    }
                    wire::send_last(&out, &FromWorker::Stopped);
                    if let Some(done) = done {
                        let _ = done.send(());
                    }
                });
            }
        }
    }
    drop(out);
    drop(link);
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), writer).await;
    // The library is never closed: the process ends instead (nothing the plugin made can
    // outlive its code).
    std::mem::forget(plugin);
    std::mem::forget(instance);
    Ok(())
}

/// Runs call `id` in a task of its own, abortable through `calls` until it ends, then reports
/// it (`Cancelled` when it was aborted).
fn serve_call<T: Send + 'static>(
    id: u64,
    call: impl std::future::Future<Output = T> + Send + 'static,
    calls: &Serving,
    out: wire::Out,
    done: for<'a> fn(u64, &'a T) -> FromWorker<'a>,
) {
    let (abort, registration) = futures_util::future::AbortHandle::new_pair();
    calls.lock().expect("calls lock").insert(id, abort);
    let calls = calls.clone();
    tokio::spawn(async move {
        let answer = futures_util::future::Abortable::new(call, registration).await;
        calls.lock().expect("calls lock").remove(&id);
        match &answer {
            Ok(v) => wire::send(&out, &done(id, v)),
            Err(_) => wire::send(&out, &FromWorker::Cancelled { id }),
        };
    });
}

/// The host's static trigger names (the ABI wants a `'static` string).
fn trigger_name(t: &str) -> &'static str {
    match t {
        "http" => "http",
        "timer" => "timer",
        "queue" => "queue",
        "blob" => "blob",
        "invoke" => "invoke",
        "service" => "service",
        _ => "other",
    }
}
