//! What every platform test shares: the one fixture plugin (built once, the same `.so` for every
//! target), `berth package` run as a user runs it, the packaged entry binary started with a
//! platform's environment, and a fake runtime API (Lambda's, SCF's) for what no emulator covers.

use std::collections::HashMap;
use std::convert::Infallible;
use std::io::BufRead;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use tokio::sync::mpsc;

use crate::support::workspace;

/// The fixture group every target's test loads (built once, dev profile).
pub fn fixture_plugin() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            berth_host::builder::build_group_crate_with(&workspace().join("host/fixtures/platform-events"), "dev", true)
                .expect("the platform-events fixture builds")
        })
        .clone()
}

/// The berth.toml the packages are made from.
fn project_config(dir: &Path) -> PathBuf {
    let text = format!(
        r#"log = "info"
[[groups]]
file = "{plugin}"

[platform]
invoke = "platform-events/direct"

[platform.schedules]
"ExampleRule" = "platform-events/tick"
"nightly" = "platform-events/tick"

[platform.events]
"com.example.order.created" = "platform-events/order_created"

# Knative: what functions publish goes to $K_SINK.
[queues.events]
kind = "sink"
"#,
        plugin = fixture_plugin().display()
    );
    let path = dir.join("berth.toml");
    std::fs::write(&path, text).expect("write the project config");
    path
}

/// What `berth package` printed and wrote.
pub struct Packaged {
    /// The zip, or the container build context directory.
    pub artifact: PathBuf,
    /// Where the zip was unpacked (the build context itself for container targets).
    pub root: PathBuf,
    pub stdout: String,
}

/// `berth package --target <target>` (dev profile, the test's own host binary), once per target;
/// the zip is unpacked next to it.
pub fn package(target: &str) -> Arc<Packaged> {
    static DONE: OnceLock<Mutex<HashMap<String, Arc<Packaged>>>> = OnceLock::new();
    let done = DONE.get_or_init(Default::default);
    let mut done = done.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(p) = done.get(target) {
        return p.clone();
    }
    let dir = workspace().join("target/platform-tests").join(target);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create the package directory");
    let config = project_config(&dir);
    let out = Command::new(env!("CARGO_BIN_EXE_berth"))
        .args([
            "package",
            "--target",
            target,
            "--profile",
            "dev",
            "--quiet",
            "--host-binary",
            env!("CARGO_BIN_EXE_berth"),
        ])
        .arg("--config")
        .arg(&config)
        .arg("--out")
        .arg(dir.join("out"))
        .env("NO_COLOR", "1")
        .output()
        .expect("run berth package");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "berth package --target {target} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let zip = dir.join("out").join(format!("berth-{target}.zip"));
    let (artifact, root) = if zip.is_file() {
        let root = dir.join("unpacked");
        let mut archive = zip::ZipArchive::new(std::fs::File::open(&zip).expect("open the zip")).expect("a zip");
        archive.extract(&root).expect("unpack the zip");
        (zip, root)
    } else {
        let context = dir.join("out").join(format!("berth-{target}"));
        (context.clone(), context)
    };
    let p = Arc::new(Packaged { artifact, root, stdout });
    done.insert(target.to_owned(), p.clone());
    p
}

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind port 0").local_addr().expect("local addr").port()
}

/// A packaged entry binary running with a platform's environment; its output lines collected.
pub struct Running {
    pub child: Child,
    pub lines: Arc<Mutex<Vec<String>>>,
    _data: tempfile::TempDir,
}

impl Running {
    /// Starts `root/entry` in `root` with `env` (and a data directory of its own).
    pub fn start(root: &Path, entry: &str, env: &[(&str, String)]) -> Running {
        let data = tempfile::tempdir().expect("temp dir");
        let mut cmd = Command::new(root.join(entry));
        cmd.current_dir(root)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("NO_COLOR", "1")
            .env("BERTH_DATA_DIR", data.path())
            // Where a package keeps its admin API (kubeless, Knative), tests run side by side.
            .env("BERTH_ADMIN__LISTEN", "127.0.0.1:0")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Ok(filter) = std::env::var("RUST_LOG") {
            cmd.env("RUST_LOG", filter);
        }
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("start {}: {e}", root.join(entry).display()));
        let lines = Arc::new(Mutex::new(Vec::new()));
        for stream in [
            Box::new(child.stdout.take().expect("stdout")) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().expect("stderr")),
        ] {
            let lines = lines.clone();
            std::thread::spawn(move || {
                for line in std::io::BufReader::new(stream).lines().map_while(Result::ok) {
                    if std::env::var_os("BERTH_TEST_ECHO").is_some() {
                        eprintln!("[bootstrap] {line}");
                    }
                    lines.lock().unwrap_or_else(|p| p.into_inner()).push(line);
                }
            });
        }
        Running { child, lines, _data: data }
    }

    /// Everything printed so far.
    pub fn output(&self) -> String {
        self.lines.lock().unwrap_or_else(|p| p.into_inner()).join("\n")
    }

    /// Waits until a line contains `needle`.
    pub async fn wait_for(&self, needle: &str, within: Duration) {
        let until = tokio::time::Instant::now() + within;
        while !self.output().contains(needle) {
            assert!(
                tokio::time::Instant::now() < until,
                "no line with `{needle}` within {within:?}; output:\n{}",
                self.output()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until `addr` accepts connections.
    pub async fn wait_listening(&mut self, addr: SocketAddr) {
        let until = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            if tokio::net::TcpStream::connect(addr).await.is_ok() {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("the bootstrap exited ({status}) before listening:\n{}", self.output());
            }
            assert!(tokio::time::Instant::now() < until, "not listening on {addr}:\n{}", self.output());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits for the process to exit; its status.
    pub async fn wait_exit(&mut self, within: Duration) -> std::process::ExitStatus {
        let until = tokio::time::Instant::now() + within;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status;
            }
            assert!(tokio::time::Instant::now() < until, "still running after {within:?}:\n{}", self.output());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub fn terminate(&self) {
        let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One event the fake runtime API hands out on `next`.
pub struct FakeEvent {
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
}

/// What the runtime posted.
#[derive(Debug, Clone)]
pub struct Posted {
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Posted {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// A runtime API played exactly as the platform's contract says: `next` hands out the events
/// queued with [`FakeApi::push`], every post is recorded ([`FakeApi::posted`]), and a path
/// ending may be made to answer another status ([`FakeApi::answer_status`]).
pub struct FakeApi {
    pub addr: SocketAddr,
    events: mpsc::UnboundedSender<FakeEvent>,
    posted: tokio::sync::Mutex<mpsc::UnboundedReceiver<Posted>>,
    statuses: Arc<Mutex<Vec<(String, u16)>>>,
    server: tokio::task::JoinHandle<()>,
    connections: Arc<Mutex<Vec<tokio::task::AbortHandle>>>,
}

impl FakeApi {
    pub async fn start() -> FakeApi {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind the fake runtime API");
        let addr = listener.local_addr().expect("local addr");
        let (events_tx, events_rx) = mpsc::unbounded_channel::<FakeEvent>();
        let (posted_tx, posted_rx) = mpsc::unbounded_channel::<Posted>();
        let events_rx = Arc::new(tokio::sync::Mutex::new(events_rx));
        let statuses: Arc<Mutex<Vec<(String, u16)>>> = Arc::default();
        let st = statuses.clone();
        let connections: Arc<Mutex<Vec<tokio::task::AbortHandle>>> = Arc::default();
        let conns = connections.clone();
        let server = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else { continue };
                let (events_rx, posted_tx, st) = (events_rx.clone(), posted_tx.clone(), st.clone());
                let conn = tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                        let (events_rx, posted_tx, st) = (events_rx.clone(), posted_tx.clone(), st.clone());
                        async move {
                            let path = req.uri().path().to_owned();
                            let headers: Vec<(String, String)> = req
                                .headers()
                                .iter()
                                .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
                                .collect();
                            let is_get = req.method() == hyper::Method::GET;
                            let body =
                                req.into_body().collect().await.map(|b| b.to_bytes().to_vec()).unwrap_or_default();
                            let mut res = hyper::Response::new(Full::new(Bytes::new()));
                            if is_get && path.ends_with("/invocation/next") {
                                let next = events_rx.lock().await.recv().await;
                                let Some(ev) = next else {
                                    *res.status_mut() = hyper::StatusCode::INTERNAL_SERVER_ERROR;
                                    return Ok::<_, Infallible>(res);
                                };
                                for (k, v) in ev.headers {
                                    res.headers_mut().insert(k, v.parse().expect("header value"));
                                }
                                *res.body_mut() = Full::new(Bytes::from(ev.body));
                                return Ok(res);
                            }
                            let status = st
                                .lock()
                                .unwrap()
                                .iter()
                                .find(|(end, _)| path.ends_with(end.as_str()))
                                .map(|(_, s)| *s);
                            let _ = posted_tx.send(Posted { path, headers, body });
                            *res.status_mut() = hyper::StatusCode::from_u16(status.unwrap_or(202)).expect("status");
                            *res.body_mut() = Full::new(Bytes::from_static(b"{\"status\":\"OK\"}"));
                            Ok(res)
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                        .await;
                });
                conns.lock().unwrap().push(conn.abort_handle());
            }
        });
        FakeApi { addr, events: events_tx, posted: tokio::sync::Mutex::new(posted_rx), statuses, server, connections }
    }

    /// Queues an event for `next`.
    pub fn push(&self, event: FakeEvent) {
        self.events.send(event).expect("the fake runtime API is running");
    }

    /// The next post the runtime made (within 30 s).
    pub async fn posted(&self) -> Posted {
        tokio::time::timeout(Duration::from_secs(30), self.posted.lock().await.recv())
            .await
            .expect("the runtime posted within 30 s")
            .expect("the fake runtime API is running")
    }

    /// Posts to paths ending in `end` are answered `status` from now on.
    pub fn answer_status(&self, end: &str, status: u16) {
        self.statuses.lock().unwrap().push((end.to_owned(), status));
    }

    /// The API goes away: its listener closes.
    pub fn vanish(&self) {
        self.server.abort();
        for c in self.connections.lock().unwrap().drain(..) {
            c.abort();
        }
    }
}

impl Drop for FakeApi {
    fn drop(&mut self) {
        self.vanish();
    }
}
