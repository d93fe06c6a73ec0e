//! Test helpers: start a host on port 0 from a TOML snippet, and a minimal HTTP/1.1 client.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use berth_host::config::BerthConfig;
use berth_host::server::{self, RunningHost};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The repository root.
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("host/ has a parent").to_path_buf()
}

/// The config every test host starts from: port 0, its own data dir, dev-profile builds.
/// `server` goes into the `[server]` table; `extra` is appended (groups and their settings).
pub fn base_config(data_dir: &Path, server: &str, extra: &str) -> String {
    format!(
        "log = \"warn\"\ndata_dir = \"{}\"\n[server]\nlisten = \"127.0.0.1:0\"\nshutdown_grace = \"5s\"\n{server}\n[build]\nprofile = \"dev\"\nquiet = true\n[admin]\nlisten = \"127.0.0.1:0\"\n{extra}",
        data_dir.display()
    )
}

/// Host logs in test output when `RUST_LOG` is set (e.g. `RUST_LOG=berth=debug`).
pub fn init_logs() {
    if let Ok(filter) = std::env::var("RUST_LOG") {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_test_writer()
            .try_init();
    }
}

/// Builds a fixture crate of `host/fixtures` (dev profile) and returns its plugin file.
pub async fn fixture(name: &str) -> PathBuf {
    let dir = workspace().join("host/fixtures").join(name);
    tokio::task::spawn_blocking(move || berth_host::builder::build_group_crate(&dir, "dev"))
        .await
        .unwrap()
        .unwrap_or_else(|e| panic!("fixture {name}: {e}"))
}

/// `[[groups]]` entry for a crate under the workspace.
pub fn group(path: &str) -> String {
    format!("[[groups]]\npath = \"{}\"\n", workspace().join(path).display())
}

/// A host started in-process, with its temporary data directory.
pub struct TestHost {
    pub host: Option<RunningHost>,
    pub addr: SocketAddr,
    data_dir: PathBuf,
    _dir: Option<tempfile::TempDir>,
}

impl TestHost {
    /// Starts a host with `extra` appended to the base config (groups, limits...).
    pub async fn start(extra: &str) -> TestHost {
        Self::start_with("", extra).await
    }

    /// Like [`TestHost::start`], with `server` lines added to the `[server]` table.
    pub async fn start_with(server: &str, extra: &str) -> TestHost {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut h = Self::start_in(dir.path(), server, extra).await;
        h._dir = Some(dir);
        h
    }

    /// A host whose data directory is `data_dir` (kept after it stops: restart tests).
    pub async fn start_in(data_dir: &Path, server: &str, extra: &str) -> TestHost {
        init_logs();
        let text = base_config(data_dir, server, extra);
        let config = BerthConfig::parse(&text, &workspace(), &BTreeMap::new()).expect("test config parses");
        let host = server::start(config).await.expect("host starts");
        TestHost { addr: host.addr, host: Some(host), data_dir: data_dir.to_path_buf(), _dir: None }
    }

    pub async fn get(&self, path: &str) -> Res {
        request(self.addr, "GET", path, &[], b"").await
    }

    pub async fn send(&self, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Res {
        request(self.addr, method, path, headers, body).await
    }

    /// The host's data directory.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    pub fn readiness(&self) -> berth_host::core::serving::Readiness {
        self.host.as_ref().expect("running").runtime.readiness()
    }

    pub async fn stop(mut self) {
        if let Some(h) = self.host.take() {
            h.shutdown().await;
        }
    }
}

/// A parsed response.
#[derive(Debug)]
pub struct Res {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Res {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// One HTTP/1.1 request on a fresh connection (`Connection: close`), with a Content-Length body.
pub async fn request(addr: SocketAddr, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Res {
    let mut head =
        format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n", body.len());
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    let mut raw = head.into_bytes();
    raw.extend_from_slice(body);
    raw_request(addr, &raw).await
}

/// Sends raw bytes and parses the response (the server closes the connection after it).
pub async fn raw_request(addr: SocketAddr, raw: &[u8]) -> Res {
    let mut stream = TcpStream::connect(addr).await.expect("connect to the test host");
    stream.write_all(raw).await.expect("write request");
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), stream.read_to_end(&mut buf))
        .await
        .expect("response within 30 s")
        .expect("read response");
    parse_response(&buf)
}

fn parse_response(buf: &[u8]) -> Res {
    let split = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no HTTP response head in {:?}", String::from_utf8_lossy(buf)));
    let head = String::from_utf8_lossy(&buf[..split]).into_owned();
    let mut lines = head.lines();
    let status = lines.next().and_then(|l| l.split(' ').nth(1)).and_then(|s| s.parse().ok()).expect("status line");
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':').map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned())))
        .collect();
    let body = buf[split + 4..].to_vec();
    Res { status, headers, body }
}

/// The value of one sample line in a Prometheus text exposition.
pub fn metric(text: &str, name_and_labels: &str) -> Option<f64> {
    text.lines().find(|l| l.starts_with(name_and_labels)).and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

/// A `berth up` process started from the built binary, with its stderr drained in the background.
pub struct BerthProcess {
    pub child: std::process::Child,
    pub addr: SocketAddr,
    pub _dir: tempfile::TempDir,
}

impl BerthProcess {
    /// Writes a config (base config + `extra`) and runs `berth up` on it; waits until ready.
    pub fn start(server: &str, extra: &str) -> BerthProcess {
        Self::start_with_env(server, extra, &[])
    }

    /// [`BerthProcess::start`] with environment variables (`BERTH_GROUPS_FILE`, …) set.
    pub fn start_with_env(server: &str, extra: &str, env: &[(&str, &str)]) -> BerthProcess {
        let dir = tempfile::tempdir().expect("temp dir");
        let text = base_config(dir.path(), server, extra).replace("log = \"warn\"", "log = \"info\"");
        let config = dir.path().join("berth.toml");
        std::fs::write(&config, text).expect("write config");
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_berth"))
            .args(["up", "--config"])
            .arg(&config)
            .env("NO_COLOR", "1")
            .envs(env.iter().copied())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn berth");
        let addr = wait_ready(&mut child);
        BerthProcess { child, addr, _dir: dir }
    }

    /// Resident set size in KiB, from /proc.
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).expect("read /proc status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS line")
    }

    /// Sends SIGTERM.
    pub fn terminate(&self) {
        let status = std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success());
    }
}

/// Waits until `berth up` (its stderr piped) logs that it is ready; its listening address. The
/// rest of its stderr is drained in the background.
pub fn wait_ready(child: &mut std::process::Child) -> SocketAddr {
    use std::io::BufRead;
    let stderr = child.stderr.take().expect("piped stderr");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut tx = Some(tx);
        for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.contains(" ready ") || line.contains("not every group loaded") {
                if let Some(addr) = line.split("addr=").nth(1).and_then(|s| s.split_whitespace().next()) {
                    if let (Some(tx), Ok(addr)) = (tx.take(), addr.parse::<SocketAddr>()) {
                        let _ = tx.send(addr);
                    }
                }
            }
        }
    });
    rx.recv_timeout(Duration::from_secs(300)).expect("berth up became ready")
}

impl Drop for BerthProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
