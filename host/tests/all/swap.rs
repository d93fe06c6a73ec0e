//! Hot swap through the admin API, under load: no failed request, no request reaching the old
//! version once a swap has returned, refusals that leave the old version serving and say why,
//! drained stop hooks, unloaded libraries, the CLI, and `--watch`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use berth_host::config::BerthConfig;
use berth_host::server::{self, RunningHost};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;

use crate::support::{base_config, fixture, group, metric, request, workspace, Res};

const TOKEN: &str = "swap-test-token";

/// A host serving group `swap` (v1 from `file`), with the admin API on port 0.
struct SwapHost {
    host: Option<RunningHost>,
    addr: SocketAddr,
    admin: SocketAddr,
    dir: tempfile::TempDir,
}

impl SwapHost {
    /// `token`: configured through `BERTH_ADMIN__TOKEN`, or generated when `None`.
    async fn start(file: &Path, token: Option<&str>, extra: &str) -> SwapHost {
        Self::start_with_env(file, token, extra, &[]).await
    }

    async fn start_with_env(file: &Path, token: Option<&str>, extra: &str, env: &[(&str, &str)]) -> SwapHost {
        crate::support::init_logs();
        let dir = tempfile::tempdir().unwrap();
        let groups = format!("[services.state]\nkind = \"blob\"\n[[groups]]\nfile = \"{}\"\n{extra}", file.display());
        let text = base_config(dir.path(), "", &groups);
        std::fs::write(dir.path().join("berth.toml"), &text).unwrap();
        let mut env: BTreeMap<String, String> = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        if let Some(t) = token {
            env.insert("BERTH_ADMIN__TOKEN".to_owned(), t.to_owned());
        }
        let config = BerthConfig::parse(&text, &workspace(), &env).expect("test config parses");
        let host = server::start(config).await.expect("host starts");
        assert!(host.runtime.readiness().ready, "{:?}", host.runtime.readiness());
        let admin = host.admin_addr.expect("admin API enabled");
        SwapHost { addr: host.addr, admin, host: Some(host), dir }
    }

    async fn admin(&self, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Res {
        request(self.admin, method, path, headers, body).await
    }

    async fn authed(&self, method: &str, path: &str, content_type: &str, body: &[u8]) -> Res {
        let auth = format!("Bearer {TOKEN}");
        self.admin(method, path, &[("authorization", &auth), ("content-type", content_type)], body).await
    }

    /// Deploys the plugin at `file` (by path) as group `group`.
    async fn deploy(&self, group: &str, file: &Path) -> Res {
        let body = serde_json::json!({ "path": file }).to_string();
        self.authed("POST", &format!("/groups/{group}/deploy"), "application/json", body.as_bytes()).await
    }

    async fn status(&self) -> serde_json::Value {
        let res = self.authed("GET", "/groups", "application/json", b"").await;
        assert_eq!(res.status, 200, "{}", res.text());
        res.json()
    }

    async fn metrics(&self) -> String {
        request(self.addr, "GET", "/metrics", &[], b"").await.text()
    }

    /// Waits until every replaced version has retired and returns the final status.
    async fn retired(&self) -> serde_json::Value {
        for _ in 0..500 {
            let status = self.status().await;
            if status["retiring"].as_array().is_some_and(|r| r.is_empty()) {
                return status;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("old versions still retiring after 10 s: {}", self.status().await);
    }

    async fn stop(mut self) {
        if let Some(h) = self.host.take() {
            h.shutdown().await;
        }
    }
}

/// A keep-alive HTTP/1.1 client on one connection (reconnects after an error).
struct Client {
    addr: SocketAddr,
    sender: Option<hyper::client::conn::http1::SendRequest<Full<Bytes>>>,
}

impl Client {
    fn new(addr: SocketAddr) -> Self {
        Client { addr, sender: None }
    }

    async fn get(&mut self, path: &str) -> Result<(u16, String), String> {
        if self.sender.as_ref().is_none_or(|s| s.is_closed()) {
            let stream = tokio::net::TcpStream::connect(self.addr).await.map_err(|e| format!("connect: {e}"))?;
            let _ = stream.set_nodelay(true);
            let (sender, conn) =
                hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.map_err(|e| e.to_string())?;
            tokio::spawn(conn);
            self.sender = Some(sender);
        }
        let sender = self.sender.as_mut().expect("connected");
        sender.ready().await.map_err(|e| e.to_string())?;
        let req = http::Request::get(path).header("host", "berth").body(Full::new(Bytes::new())).unwrap();
        let res = match sender.send_request(req).await {
            Ok(r) => r,
            Err(e) => {
                self.sender = None;
                return Err(e.to_string());
            }
        };
        let status = res.status().as_u16();
        let body = res.into_body().collect().await.map_err(|e| e.to_string())?.to_bytes();
        Ok((status, String::from_utf8_lossy(&body).into_owned()))
    }
}

/// The swap sequence as clients see it: `seq << 1 | swapping`. After `seq` completed swaps the
/// serving version is `expected(seq)`.
#[derive(Default)]
struct Load {
    epoch: AtomicU64,
    stop: AtomicBool,
    requests: AtomicU64,
    failures: AtomicU64,
    /// Requests that started after a swap returned and ended before the next one began.
    checked: AtomicU64,
    stale: AtomicU64,
    first_problem: std::sync::Mutex<Option<String>>,
}

impl Load {
    fn problem(&self, what: String) {
        self.first_problem.lock().unwrap().get_or_insert(what);
    }
}

/// `clients` tasks calling `GET /swap/version` until `load.stop`.
fn start_load(
    addr: SocketAddr,
    clients: usize,
    load: Arc<Load>,
    expected: fn(u64) -> &'static str,
) -> Vec<tokio::task::JoinHandle<()>> {
    (0..clients)
        .map(|_| {
            let load = load.clone();
            tokio::spawn(async move {
                let mut client = Client::new(addr);
                while !load.stop.load(Ordering::Acquire) {
                    let before = load.epoch.load(Ordering::Acquire);
                    let answer = client.get("/swap/version").await;
                    let after = load.epoch.load(Ordering::Acquire);
                    load.requests.fetch_add(1, Ordering::Relaxed);
                    match answer {
                        Ok((200, body)) if body == "v1" || body == "v2" => {
                            if before == after && before & 1 == 0 {
                                load.checked.fetch_add(1, Ordering::Relaxed);
                                let want = expected(before >> 1);
                                if body != want {
                                    load.stale.fetch_add(1, Ordering::Relaxed);
                                    load.problem(format!("after swap {}: got {body}, want {want}", before >> 1));
                                }
                            }
                        }
                        other => {
                            load.failures.fetch_add(1, Ordering::Relaxed);
                            load.problem(format!("failed request: {other:?}"));
                        }
                    }
                }
            })
        })
        .collect()
}

async fn stop_load(load: &Load, tasks: Vec<tokio::task::JoinHandle<()>>) {
    load.stop.store(true, Ordering::Release);
    for t in tasks {
        t.await.unwrap();
    }
}

fn alternating(seq: u64) -> &'static str {
    if seq.is_multiple_of(2) {
        "v1"
    } else {
        "v2"
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_hundred_swaps_under_load_fail_no_request_and_never_serve_the_old_version_after_returning() {
    let (v1, v2) = (fixture("swap-v1").await, fixture("swap-v2").await);
    // The swap worker at normal priority: a debug build under 16 looping clients would otherwise
    // starve it (the default nice 10 favours requests; ops/bench/swap.sh measures that).
    let h = SwapHost::start_with_env(&v1, Some(TOKEN), "", &[("BERTH_ADMIN__SWAP_NICE", "0")]).await;
    let load = Arc::new(Load::default());
    let clients = start_load(h.addr, 16, load.clone(), alternating);
    tokio::time::sleep(Duration::from_millis(100)).await;

    const SWAPS: u64 = 200;
    let mut slowest = Duration::ZERO;
    for seq in 1..=SWAPS {
        load.epoch.store(((seq - 1) << 1) | 1, Ordering::Release);
        let (file, version) = if seq % 2 == 1 { (&v2, "2.0.0") } else { (&v1, "1.0.0") };
        let started = std::time::Instant::now();
        let res = h.deploy("swap", file).await;
        slowest = slowest.max(started.elapsed());
        assert_eq!(res.status, 200, "swap {seq}: {}", res.text());
        assert_eq!(res.json()["current"]["version"], version, "swap {seq}");
        load.epoch.store(seq << 1, Ordering::Release);
        tokio::time::sleep(Duration::from_millis(3)).await;
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    stop_load(&load, clients).await;

    let (requests, failures, checked, stale) = (
        load.requests.load(Ordering::Relaxed),
        load.failures.load(Ordering::Relaxed),
        load.checked.load(Ordering::Relaxed),
        load.stale.load(Ordering::Relaxed),
    );
    let problem = load.first_problem.lock().unwrap().clone();
    assert_eq!(failures, 0, "{failures} of {requests} requests failed; first: {problem:?}");
    assert_eq!(stale, 0, "{stale} requests reached the old version after a swap returned; first: {problem:?}");
    assert!(checked > 200, "too few requests between swaps to check anything: {checked} of {requests}");
    eprintln!(
        "{SWAPS} swaps, {requests} requests ({checked} checked against the serving version), slowest swap {slowest:?}"
    );

    // Every replaced version drained, stopped and unloaded: one library left, the serving one.
    let status = h.retired().await;
    assert_eq!(status["groups"][0]["version"], "1.0.0");
    assert_eq!(status["libraries"]["stuck"], serde_json::json!([]), "{status:#}");
    assert_eq!(status["libraries"]["mapped"], 1, "{status:#}");
    let metrics = h.metrics().await;
    assert_eq!(metric(&metrics, r#"berth_swap_total{group="swap",outcome="ok"}"#), Some(SWAPS as f64), "{metrics}");
    assert_eq!(metric(&metrics, "berth_plugin_versions_loaded"), Some(1.0), "{metrics}");
    assert_eq!(metric(&metrics, "berth_plugin_libraries_mapped"), Some(1.0), "{metrics}");
    assert_eq!(metric(&metrics, "berth_swap_duration_seconds_count"), Some(SWAPS as f64), "{metrics}");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn failed_swaps_under_load_leave_the_old_version_serving_and_say_why() {
    let v1 = fixture("swap-v1").await;
    let v2 = fixture("swap-v2").await;
    let init_fails = fixture("swap-init-fails").await;
    let abi_mismatch = fixture("abi-mismatch").await;
    let needs_db = fixture("swap-needs-db").await;
    let conflict = fixture("conflict").await;
    let h =
        SwapHost::start_with_env(&v1, Some(TOKEN), &group("examples/hello"), &[("BERTH_ADMIN__SWAP_NICE", "0")]).await;
    let before = h.status().await;
    let load = Arc::new(Load::default());
    let clients = start_load(h.addr, 16, load.clone(), |_| "v1");
    tokio::time::sleep(Duration::from_millis(100)).await;

    let refused = |res: Res, status: u16, code: &str, needle: &str| {
        assert_eq!(res.status, status, "{}", res.text());
        let body = res.json();
        assert_eq!(body["error"], code, "{body}");
        let message = body["message"].as_str().unwrap();
        assert!(message.contains(needle), "`{needle}` not in: {message}");
    };
    refused(h.deploy("swap", &init_fails).await, 422, "init_failed", "fixture: this version refuses to start");
    let speaks = format!("built for plugin ABI 999, this host speaks {}", berth_plugin_api::ABI_VERSION);
    refused(h.deploy("swap", &abi_mismatch).await, 422, "abi_mismatch", &speaks);
    refused(h.deploy("swap", &needs_db).await, 422, "services_unresolved", "sql service `nosuchdb` is not configured");
    let bytes = std::fs::read(&v2).unwrap();
    let half = &bytes[..bytes.len() / 2];
    let res = h.authed("POST", "/groups/swap/deploy", "application/octet-stream", half).await;
    refused(res, 422, "truncated", "truncated");
    refused(h.deploy("swap", &conflict).await, 422, "wrong_group", "is group `conflict`, not `swap`");
    refused(h.deploy("conflict", &conflict).await, 409, "route_conflict", "already served by group `hello`");
    refused(h.authed("POST", "/groups/swap/rollback", "", b"").await, 409, "no_previous", "no previous version");
    refused(h.deploy("swap", Path::new("/nonexistent/plugin.so")).await, 422, "unreadable", "/nonexistent/plugin.so");
    tokio::time::sleep(Duration::from_millis(100)).await;
    stop_load(&load, clients).await;

    let (requests, failures) = (load.requests.load(Ordering::Relaxed), load.failures.load(Ordering::Relaxed));
    let problem = load.first_problem.lock().unwrap().clone();
    assert_eq!(failures, 0, "{failures} of {requests} requests failed; first: {problem:?}");
    assert_eq!(load.stale.load(Ordering::Relaxed), 0, "a request reached a refused version: {problem:?}");
    assert!(requests > 100, "{requests}");

    let identity = |status: &serde_json::Value| -> Vec<String> {
        let groups = status["groups"].as_array().unwrap();
        groups
            .iter()
            .map(|g| format!("{} {} {} {}", g["name"], g["version"], g["sha256"], g["loaded_at_unix_ms"]))
            .collect()
    };
    assert_eq!(identity(&h.status().await), identity(&before), "nothing about the serving groups changed");
    assert_eq!(h.get("/hello/x").await.status, 200);
    let metrics = h.metrics().await;
    for outcome in ["init_failed", "abi_mismatch", "services_unresolved", "truncated", "wrong_group"] {
        let line = format!(r#"berth_swap_total{{group="swap",outcome="{outcome}"}}"#);
        assert_eq!(metric(&metrics, &line), Some(1.0), "{line}\n{metrics}");
    }
    assert_eq!(metric(&metrics, "berth_plugin_versions_loaded"), Some(2.0), "swap and hello: {metrics}");
    // The refused libraries were closed again: only the serving ones stay mapped.
    let status = h.retired().await;
    assert_eq!(status["libraries"]["mapped"], 2, "{status:#}");
    h.stop().await;
}

impl SwapHost {
    async fn get(&self, path: &str) -> Res {
        request(self.addr, "GET", path, &[], b"").await
    }
}

#[tokio::test]
async fn the_admin_api_without_or_with_a_wrong_token_answers_401_and_changes_nothing() {
    let (v1, v2) = (fixture("swap-v1").await, fixture("swap-v2").await);
    // 18 refusals from one address: past the default failure limit (tested in auth_limits).
    let h = SwapHost::start(&v1, Some(TOKEN), "[auth_limit]\nfailures = 0\n").await;
    let bytes = std::fs::read(&v2).unwrap();
    let wrong = [vec![], vec![("authorization", "Bearer nope")], vec![("authorization", "Basic c3dhcC10ZXN0LXRva2Vu")]];
    for headers in &wrong {
        for (method, path, body) in [
            ("GET", "/groups", &b""[..]),
            // A 401 answers before the body is read: a client still writing a large body gets
            // a reset instead, so the refused upload here fits in the socket buffers.
            ("POST", "/groups/swap/deploy", &bytes[..16 * 1024]),
            ("POST", "/groups/swap/reload", b""),
            ("POST", "/groups/swap/rollback", b""),
            ("DELETE", "/groups/swap", b""),
            ("GET", "/nonexistent", b""),
        ] {
            let res = h.admin(method, path, headers, body).await;
            assert_eq!(res.status, 401, "{method} {path} with {headers:?}: {}", res.text());
            assert_eq!(res.header("www-authenticate"), Some("Bearer"));
            assert_eq!(res.json()["error"], "unauthorized");
        }
    }
    assert_eq!(h.get("/swap/version").await.text(), "v1");
    assert!(!h.dir.path().join("uploads").exists(), "a refused upload is never written");
    let metrics = h.metrics().await;
    assert!(!metrics.contains("berth_swap_total{"), "no swap was even attempted: {metrics}");
    // The right token works.
    let res = h.authed("POST", "/groups/swap/deploy", "application/octet-stream", &bytes).await;
    assert_eq!(res.status, 200, "{}", res.text());
    assert_eq!(h.get("/swap/version").await.text(), "v2");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_flight_calls_finish_on_the_old_version_whose_stop_hook_runs_after_they_drain() {
    let (v1, v2) = (fixture("swap-v1").await, fixture("swap-v2").await);
    let h = SwapHost::start(&v1, Some(TOKEN), "").await;
    let put = request(h.addr, "PUT", "/swap/note/kept", &[], b"written by v1").await;
    assert_eq!(put.status, 204, "{}", put.text());

    let addr = h.addr;
    let slow = tokio::spawn(async move { request(addr, "GET", "/swap/slow/1500", &[], b"").await });
    let mut inflight = 0;
    for _ in 0..100 {
        inflight = h.status().await["groups"][0]["inflight"].as_u64().unwrap();
        if inflight == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(inflight, 1, "the slow call is in flight on v1");

    let res = h.deploy("swap", &v2).await;
    assert_eq!(res.status, 200, "{}", res.text());
    let report = res.json();
    assert_eq!(report["retiring"], "1.0.0");
    assert_eq!(report["previous"]["version"], "1.0.0");
    assert_eq!(h.get("/swap/version").await.text(), "v2", "new requests reach v2 at once");
    let status = h.status().await;
    assert_eq!(status["retiring"][0]["version"], "1.0.0", "{status:#}");
    assert_eq!(status["retiring"][0]["inflight"], 1, "{status:#}");
    assert_eq!(h.get("/swap/note/last-stop").await.status, 404, "v1's stop hook waits for its call");

    let slow = slow.await.unwrap();
    assert_eq!((slow.status, slow.text().as_str()), (200, "v1"), "the in-flight call finished on v1");
    let status = h.retired().await;
    assert_eq!(status["libraries"]["mapped"], 1, "v1's library was unloaded: {status:#}");
    assert_eq!(h.get("/swap/note/last-stop").await.text(), "v1", "v1's stop hook ran, once drained");
    assert_eq!(h.get("/swap/note/kept").await.text(), "written by v1", "stored data survives the swap");

    // Rollback toggles between the two last versions; an upload works like a path.
    let res = h.authed("POST", "/groups/swap/rollback", "", b"").await;
    assert_eq!(res.status, 200, "{}", res.text());
    assert_eq!(res.json()["current"]["via"], "rollback");
    assert_eq!(h.get("/swap/version").await.text(), "v1");
    let res = h.authed("POST", "/groups/swap/rollback", "", b"").await;
    assert_eq!(res.json()["current"]["version"], "2.0.0", "{}", res.text());
    assert_eq!(h.get("/swap/version").await.text(), "v2");
    let res = h.authed("POST", "/groups/swap/deploy", "application/octet-stream", &std::fs::read(&v1).unwrap()).await;
    assert_eq!(res.json()["current"]["via"], "upload", "{}", res.text());
    assert!(h.dir.path().join("uploads/swap.so").is_file());
    assert_eq!(h.get("/swap/version").await.text(), "v1");

    // Reload the configured file; unload; roll back to serve again.
    let res = h.authed("POST", "/groups/swap/reload", "", b"").await;
    assert_eq!(res.status, 200, "{}", res.text());
    let res = h.authed("DELETE", "/groups/swap", "", b"").await;
    assert_eq!(res.status, 200, "{}", res.text());
    assert_eq!(res.json()["outcome"], "unloaded");
    assert_eq!(h.get("/swap/version").await.status, 404);
    let status = h.retired().await;
    assert_eq!(status["unloaded"][0]["name"], "swap", "{status:#}");
    assert_eq!(status["libraries"]["mapped"], 0, "{status:#}");
    let metrics = h.metrics().await;
    assert_eq!(metric(&metrics, "berth_plugin_groups_loaded"), Some(0.0), "{metrics}");
    assert_eq!(metric(&metrics, "berth_plugin_versions_loaded"), Some(0.0), "{metrics}");
    let res = h.authed("POST", "/groups/swap/rollback", "", b"").await;
    assert_eq!(res.status, 200, "{}", res.text());
    assert_eq!(h.get("/swap/version").await.text(), "v1");
    h.stop().await;
}

fn berth(args: &[&str]) -> (i32, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_berth"))
        .args(args)
        .env("NO_COLOR", "1")
        .env_remove("BERTH_ADMIN__TOKEN")
        .output()
        .expect("run berth");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploy_rollback_and_groups_commands_use_the_generated_token() {
    let (v1, v2, init_fails) = (fixture("swap-v1").await, fixture("swap-v2").await, fixture("swap-init-fails").await);
    let h = SwapHost::start(&v1, None, "").await;
    let token_file = h.dir.path().join("admin.token");
    assert!(token_file.is_file(), "a loopback admin API without a token generates one");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&token_file).unwrap().permissions().mode() & 0o777, 0o600);
    }
    let config = h.dir.path().join("berth.toml").display().to_string();
    let admin = h.admin.to_string();
    let run = move |args: Vec<String>| {
        tokio::task::spawn_blocking(move || berth(&args.iter().map(String::as_str).collect::<Vec<_>>()))
    };
    let with = |cmd: &[&str]| -> Vec<String> {
        let mut args: Vec<String> = cmd.iter().map(|s| s.to_string()).collect();
        args.extend(["--admin".into(), admin.clone(), "--config".into(), config.clone()]);
        args
    };

    let (code, out, err) = run(with(&["groups"])).await.unwrap();
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("swap") && out.contains("1.0.0") && out.contains("version, slow"), "{out}");
    assert!(out.contains("plugin libraries mapped: 1, stuck: 0"), "{out}");

    let (code, out, err) = run(with(&["deploy", "swap", v2.to_str().unwrap()])).await.unwrap();
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("swap 1.0.0 -> 2.0.0") && out.contains("via upload"), "{out}");
    assert_eq!(h.get("/swap/version").await.text(), "v2");

    let (code, out, err) = run(with(&["rollback", "swap"])).await.unwrap();
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("swap 2.0.0 -> 1.0.0") && out.contains("via rollback"), "{out}");
    assert_eq!(h.get("/swap/version").await.text(), "v1");

    let (code, _, err) = run(with(&["deploy", "swap", init_fails.to_str().unwrap(), "--host-path"])).await.unwrap();
    assert_eq!(code, 1);
    assert!(err.contains("deploy refused (init_failed)") && err.contains("refuses to start"), "{err}");
    assert!(err.contains("serving version of `swap` is unchanged"), "{err}");

    let (code, out, err) = run(with(&["groups", "--json"])).await.unwrap();
    assert_eq!(code, 0, "{err}");
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(doc["groups"][0]["previous"]["version"], "2.0.0");

    let (code, _, err) = run(with(&["groups", "--token", "wrong"])).await.unwrap();
    assert_eq!(code, 1);
    assert!(err.contains("missing or wrong token"), "{err}");
    assert_eq!(h.get("/swap/version").await.text(), "v1");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_swaps_a_file_group_when_its_file_changes_and_keeps_it_when_the_file_is_broken() {
    let (v1, v2) = (fixture("swap-v1").await, fixture("swap-v2").await);
    let plugins = tempfile::tempdir().unwrap();
    let file = plugins.path().join("libswap.so");
    let replace = |from: &[u8]| {
        let tmp = plugins.path().join("libswap.so.tmp");
        std::fs::write(&tmp, from).unwrap();
        std::fs::rename(&tmp, &file).unwrap();
    };
    replace(&std::fs::read(&v1).unwrap());
    let h = SwapHost::start(&file, Some(TOKEN), "").await;
    let state = h.host.as_ref().unwrap().deployments.clone();
    let _watcher = berth_host::watch::Watcher::start(state).expect("watch starts");

    let until = |want: &'static str| {
        let h = &h;
        async move {
            for _ in 0..250 {
                if h.get("/swap/version").await.text() == want {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            panic!("still not {want} after 5 s: {}", h.status().await);
        }
    };
    replace(&std::fs::read(&v2).unwrap());
    until("v2").await;

    let bytes = std::fs::read(&v1).unwrap();
    replace(&bytes[..bytes.len() / 2]);
    let line = r#"berth_swap_total{group="swap",outcome="truncated"}"#;
    for _ in 0..250 {
        if metric(&h.metrics().await, line) == Some(1.0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(metric(&h.metrics().await, line), Some(1.0), "the truncated file was refused");
    assert_eq!(h.get("/swap/version").await.text(), "v2", "v2 keeps serving");

    replace(&bytes);
    until("v1").await;
    assert_eq!(h.status().await["groups"][0]["via"], "watch");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_follows_a_swap() {
    let (v1, v2) = (fixture("swap-v1").await, fixture("swap-v2").await);
    let h = SwapHost::start(&v1, Some(TOKEN), "").await;
    let tag = |doc: serde_json::Value| doc["tags"][0]["description"].as_str().map(str::to_owned);
    assert_eq!(tag(h.get("/openapi.json").await.json()).as_deref(), Some("group swap 1.0.0"));
    // Served again from the cache: the same document.
    assert_eq!(tag(h.get("/openapi.json").await.json()).as_deref(), Some("group swap 1.0.0"));
    assert_eq!(h.deploy("swap", &v2).await.status, 200);
    assert_eq!(tag(h.get("/openapi.json").await.json()).as_deref(), Some("group swap 2.0.0"), "rebuilt for v2");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_library_that_cannot_unload_is_reported_reused_and_bounded() {
    let (v1, v2, tls) = (fixture("swap-v1").await, fixture("swap-v2").await, fixture("swap-tls").await);
    let env = [("BERTH_ADMIN__MAX_STUCK_LIBRARIES", "1")];
    let h = SwapHost::start_with_env(&v1, Some(TOKEN), "", &env).await;
    let serve_tls = || async {
        let res = h.deploy("swap", &tls).await;
        assert_eq!(res.status, 200, "{}", res.text());
        // Touch the thread-local on the host's worker threads.
        for _ in 0..20 {
            assert_eq!(h.get("/swap/version").await.text(), "v5");
        }
    };
    serve_tls().await;
    assert_eq!(h.deploy("swap", &v1).await.status, 200);
    let status = h.retired().await;
    let stuck = status["libraries"]["stuck"].as_array().unwrap().clone();
    assert_eq!(stuck.len(), 1, "{status:#}");
    assert!(stuck[0]["path"].as_str().unwrap().contains("libfixture_swap_tls-"), "{status:#}");
    let reason = stuck[0]["reason"].as_str().unwrap();
    assert!(reason.contains("thread-local destructor") && reason.contains("__cxa_thread_atexit_impl"), "{reason}");
    assert_eq!(status["libraries"]["mapped"], 2, "{status:#}");
    assert_eq!(metric(&h.metrics().await, "berth_plugin_libraries_mapped"), Some(2.0));

    // Deploying the stuck version again reuses its mapping: flipping costs no more memory.
    for _ in 0..3 {
        serve_tls().await;
        assert_eq!(h.deploy("swap", &v1).await.status, 200);
    }
    let status = h.retired().await;
    assert_eq!(status["libraries"]["mapped"], 2, "still v1 and the one stuck library: {status:#}");
    assert_eq!(status["libraries"]["stuck"].as_array().unwrap().len(), 1, "{status:#}");

    // At the limit, a version that would map another library is refused; v1 keeps serving.
    let res = h.deploy("swap", &v2).await;
    assert_eq!(res.status, 503, "{}", res.text());
    assert_eq!(res.json()["error"], "too_many_stuck");
    assert!(res.json()["message"].as_str().unwrap().contains("admin.max_stuck_libraries = 1"), "{}", res.text());
    assert_eq!(h.get("/swap/version").await.text(), "v1");
    assert_eq!(h.retired().await["libraries"]["mapped"], 2, "the refused library was closed again");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hello_example_unloads_after_every_kind_of_call_including_a_panic() {
    let (v1, hello) = (fixture("swap-v1").await, workspace().join("examples/hello"));
    let hello = tokio::task::spawn_blocking(move || berth_host::builder::build_group_crate(&hello, "dev"))
        .await
        .unwrap()
        .unwrap();
    let h = SwapHost::start(&v1, Some(TOKEN), "").await;
    assert_eq!(h.deploy("hello", &hello).await.status, 200, "a deploy creates a new group");
    for (method, path, body) in [
        ("GET", "/hello/world", &b""[..]),
        ("GET", "/text", b""),
        ("POST", "/echo", br#"{"message":"m","times":2}"#),
        ("GET", "/divide?a=7&b=0", b""),
        ("GET", "/panic", b""),
        ("GET", "/slow?ms=5", b""),
        ("POST", "/upload", b"data"),
    ] {
        let res = request(h.addr, method, path, &[("content-type", "application/json")], body).await;
        assert!(res.status < 600, "{method} {path}");
    }
    let res = h.authed("DELETE", "/groups/hello", "", b"").await;
    assert_eq!(res.status, 200, "{}", res.text());
    let status = h.retired().await;
    assert_eq!(status["libraries"]["stuck"], serde_json::json!([]), "{status:#}");
    assert_eq!(status["libraries"]["mapped"], 1, "only the swap group's library is left: {status:#}");
    h.stop().await;
}

#[tokio::test]
async fn reloading_a_path_group_rebuilds_it_and_serves_the_build() {
    let dir = tempfile::tempdir().unwrap();
    let text =
        base_config(dir.path(), "", &format!("[services.state]\nkind = \"blob\"\n{}", group("host/fixtures/swap-v1")));
    let env: BTreeMap<String, String> = [("BERTH_ADMIN__TOKEN".to_owned(), TOKEN.to_owned())].into();
    let host = server::start(BerthConfig::parse(&text, &workspace(), &env).unwrap()).await.unwrap();
    let admin = host.admin_addr.unwrap();
    let auth = format!("Bearer {TOKEN}");
    let res = request(admin, "POST", "/groups/swap/reload", &[("authorization", &auth)], b"").await;
    assert_eq!(res.status, 200, "{}", res.text());
    let report = res.json();
    assert_eq!(report["current"]["via"], "reload");
    assert_eq!(report["current"]["version"], "1.0.0");
    assert!(report["current"]["file"].as_str().unwrap().ends_with("libfixture_swap_v1.so"), "{report}");
    assert_eq!(request(host.addr, "GET", "/swap/version", &[], b"").await.text(), "v1");
    host.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn swaps_of_an_isolated_group_start_a_fresh_worker_and_drain_the_old_one_without_a_failed_request() {
    let (v1, v2) = (fixture("swap-v1").await, fixture("swap-v2").await);
    let extra = format!("isolation = \"process\"\n[workers]\nbinary = \"{}\"\n", env!("CARGO_BIN_EXE_berth"));
    let h = SwapHost::start_with_env(&v1, Some(TOKEN), &extra, &[("BERTH_ADMIN__SWAP_NICE", "0")]).await;
    let load = Arc::new(Load::default());
    let clients = start_load(h.addr, 8, load.clone(), alternating);
    tokio::time::sleep(Duration::from_millis(100)).await;

    const SWAPS: u64 = 20;
    let mut pids = vec![h.status().await["groups"][0]["worker"]["pid"].as_u64().unwrap()];
    for seq in 1..=SWAPS {
        load.epoch.store(((seq - 1) << 1) | 1, Ordering::Release);
        let (file, version) = if seq % 2 == 1 { (&v2, "2.0.0") } else { (&v1, "1.0.0") };
        let res = h.deploy("swap", file).await;
        assert_eq!(res.status, 200, "swap {seq}: {}", res.text());
        assert_eq!(res.json()["current"]["version"], version, "swap {seq}");
        load.epoch.store(seq << 1, Ordering::Release);
        pids.push(h.status().await["groups"][0]["worker"]["pid"].as_u64().unwrap());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    stop_load(&load, clients).await;
    let (requests, failures, stale) = (
        load.requests.load(Ordering::Relaxed),
        load.failures.load(Ordering::Relaxed),
        load.stale.load(Ordering::Relaxed),
    );
    let problem = load.first_problem.lock().unwrap().clone();
    assert_eq!(failures, 0, "{failures} of {requests} requests failed; first: {problem:?}");
    assert_eq!(stale, 0, "{stale} requests reached the old version after a swap returned; first: {problem:?}");

    let status = h.retired().await;
    assert_eq!(status["groups"][0]["isolation"], "process", "{status:#}");
    assert_eq!(status["libraries"]["mapped"], 0, "nothing of an isolated group is mapped in the host: {status:#}");
    let mut distinct = pids.clone();
    distinct.dedup();
    assert_eq!(distinct.len(), pids.len(), "every version ran in a worker of its own: {pids:?}");
    // Every replaced worker has exited (its pid no longer a `berth worker`); the serving one runs.
    let is_worker = |pid: &u64| {
        std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| c.split(|b| *b == 0).any(|a| a == b"worker"))
    };
    let (serving, replaced) = pids.split_last().unwrap();
    for pid in replaced {
        assert!(!is_worker(pid), "worker {pid} of a replaced version still runs");
    }
    assert!(is_worker(serving));
    h.stop().await;
    // SIGTERM's path (shutdown) stops the serving worker too.
    let mut gone = false;
    for _ in 0..100 {
        if !is_worker(serving) {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(gone, "the serving worker {serving} exited with its host");
}
