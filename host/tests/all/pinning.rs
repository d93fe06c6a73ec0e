//! Pinned plugins: a group's `sha256` (on `file` and `path` groups as on `url` ones), a
//! deploy's own pin, `admin.require_sha256`, and what `berth package` pins. A plugin that does
//! not have its pinned sha256 is refused before it is opened, with both hashes in the message,
//! and whatever served before keeps serving.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use berth_host::config::BerthConfig;
use berth_host::server::{self, RunningHost};

use crate::support::{base_config, fixture, metric, request, workspace, Res, TestHost};

const TOKEN: &str = "pinning-test-token";
const WRONG: &str = "0000000000000000000000000000000000000000000000000000000000000000";

fn sha(path: &Path) -> String {
    berth_host::install::sha256_of_file(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// The private plugin copies the host made (a plugin refused before it was opened has none).
fn copies(data_dir: &Path) -> Vec<PathBuf> {
    match std::fs::read_dir(data_dir.join("plugins")) {
        Ok(dir) => dir.filter_map(|e| Some(e.ok()?.path())).collect(),
        Err(_) => Vec::new(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_group_with_a_wrong_pin_is_refused_at_start_before_it_is_opened() {
    let v1 = fixture("swap-v1").await;
    let actual = sha(&v1);
    let groups = format!(
        "[services.state]\nkind = \"blob\"\n[[groups]]\nname = \"swap\"\nfile = \"{}\"\nsha256 = \"{WRONG}\"\n",
        v1.display()
    );
    let h = TestHost::start(&groups).await;
    let ready = h.readiness();
    assert!(!ready.ready, "{ready:?}");
    let problem = ready.problems.join("\n");
    for part in ["group `swap`", &v1.display().to_string(), &actual, WRONG, "its [[groups]] entry pins"] {
        assert!(problem.contains(part), "`{part}` missing from: {problem}");
    }
    assert!(problem.contains(&format!("sha256 = \"{actual}\"")), "the message says what to do: {problem}");
    assert_eq!(h.get("/swap/version").await.status, 404, "nothing serves the refused group");
    let readyz = h.get("/readyz").await;
    assert_eq!(readyz.status, 503, "{}", readyz.text());
    assert!(readyz.text().contains(&actual) && readyz.text().contains(WRONG), "{}", readyz.text());
    assert_eq!(copies(h.data_dir()), Vec::<PathBuf>::new(), "the refused plugin was never copied nor opened");
    assert!(v1.is_file(), "the configured file is left where it is");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_right_pin_serves_for_file_and_path_groups() {
    let v1 = fixture("swap-v1").await;
    // Upper case and surrounding spaces are normalised away.
    let pin = format!("  {} ", sha(&v1).to_uppercase());
    let groups =
        format!("[services.state]\nkind = \"blob\"\n[[groups]]\nfile = \"{}\"\nsha256 = \"{pin}\"\n", v1.display());
    let h = TestHost::start(&groups).await;
    assert!(h.readiness().ready, "{:?}", h.readiness());
    assert_eq!(h.get("/swap/version").await.text(), "v1");
    h.stop().await;

    // A `path` group's pin is the plugin file cargo builds (the same build the fixture made).
    let crate_dir = workspace().join("host/fixtures/swap-v2");
    let built = fixture("swap-v2").await;
    let groups = format!(
        "[services.state]\nkind = \"blob\"\n[[groups]]\npath = \"{}\"\nsha256 = \"{}\"\n",
        crate_dir.display(),
        sha(&built)
    );
    let h = TestHost::start(&groups).await;
    assert!(h.readiness().ready, "{:?}", h.readiness());
    assert_eq!(h.get("/swap/version").await.text(), "v2");
    h.stop().await;

    let groups = format!(
        "[services.state]\nkind = \"blob\"\n[[groups]]\npath = \"{}\"\nsha256 = \"{WRONG}\"\n",
        crate_dir.display()
    );
    let h = TestHost::start(&groups).await;
    let problem = h.readiness().problems.join("\n");
    assert!(problem.contains(&sha(&built)) && problem.contains(WRONG), "{problem}");
    assert!(problem.contains(&built.display().to_string()), "names the built file: {problem}");
    assert_eq!(h.get("/swap/version").await.status, 404);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_process_group_with_a_wrong_pin_is_refused_before_a_worker_opens_it() {
    let v1 = fixture("swap-v1").await;
    let groups = format!(
        "[workers]\nbinary = \"{}\"\n[services.state]\nkind = \"blob\"\n[[groups]]\nfile = \"{}\"\nisolation = \"process\"\nsha256 = \"{WRONG}\"\n",
        env!("CARGO_BIN_EXE_berth"),
        v1.display()
    );
    let h = TestHost::start(&groups).await;
    let problem = h.readiness().problems.join("\n");
    assert!(problem.contains(&sha(&v1)) && problem.contains(WRONG), "{problem}");
    assert_eq!(h.get("/swap/version").await.status, 404);
    assert_eq!(copies(h.data_dir()), Vec::<PathBuf>::new(), "no worker copied or opened it");
    h.stop().await;
}

/// A host serving group `swap` from `file` (its `[[groups]]` entry gets `entry` appended), with
/// the admin API on port 0; `admin` goes into the `[admin]` table.
struct PinHost {
    host: Option<RunningHost>,
    addr: SocketAddr,
    admin: SocketAddr,
    dir: tempfile::TempDir,
}

impl PinHost {
    async fn start(file: &Path, entry: &str, admin: &str) -> PinHost {
        crate::support::init_logs();
        let dir = tempfile::tempdir().unwrap();
        let text = base_config(
            dir.path(),
            "",
            &format!(
                "{admin}\n[services.state]\nkind = \"blob\"\n[[groups]]\nfile = \"{}\"\n{entry}\n",
                file.display()
            ),
        );
        std::fs::write(dir.path().join("berth.toml"), &text).unwrap();
        let env = BTreeMap::from([("BERTH_ADMIN__TOKEN".to_owned(), TOKEN.to_owned())]);
        let config = BerthConfig::parse(&text, &workspace(), &env).expect("test config parses");
        let host = server::start(config).await.expect("host starts");
        assert!(host.runtime.readiness().ready, "{:?}", host.runtime.readiness());
        let admin = host.admin_addr.expect("admin API enabled");
        PinHost { addr: host.addr, admin, host: Some(host), dir }
    }

    async fn authed(&self, method: &str, path: &str, content_type: &str, body: &[u8]) -> Res {
        let auth = format!("Bearer {TOKEN}");
        request(self.admin, method, path, &[("authorization", &auth), ("content-type", content_type)], body).await
    }

    /// Deploys `file` by path, with `sha256` in the JSON body when given.
    async fn deploy(&self, file: &Path, sha256: Option<&str>) -> Res {
        let mut body = serde_json::json!({ "path": file });
        if let Some(s) = sha256 {
            body["sha256"] = s.into();
        }
        self.authed("POST", "/groups/swap/deploy", "application/json", body.to_string().as_bytes()).await
    }

    /// Uploads `file`'s bytes, `?sha256=` pinned when given.
    async fn upload(&self, file: &Path, sha256: Option<&str>) -> Res {
        let path = match sha256 {
            Some(s) => format!("/groups/swap/deploy?sha256={s}"),
            None => "/groups/swap/deploy".to_owned(),
        };
        self.authed("POST", &path, "application/octet-stream", &std::fs::read(file).unwrap()).await
    }

    async fn version(&self) -> String {
        request(self.addr, "GET", "/swap/version", &[], b"").await.text()
    }

    async fn metrics(&self) -> String {
        request(self.addr, "GET", "/metrics", &[], b"").await.text()
    }

    async fn stop(mut self) {
        if let Some(h) = self.host.take() {
            h.shutdown().await;
        }
    }
}

fn refused(res: &Res, status: u16, code: &str) -> String {
    assert_eq!(res.status, status, "{}", res.text());
    assert_eq!(res.json()["error"], code, "{}", res.text());
    res.json()["message"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_pin_on_swap_is_refused_and_the_old_version_keeps_serving() {
    let (v1, v2) = (fixture("swap-v1").await, fixture("swap-v2").await);
    let (sha1, sha2) = (sha(&v1), sha(&v2));
    let h = PinHost::start(&v1, &format!("sha256 = \"{sha1}\""), "").await;
    assert_eq!(h.version().await, "v1");

    // A deploy pinned to another hash than the file's: refused, v1 serves on.
    let message = refused(&h.deploy(&v2, Some(WRONG)).await, 422, "sha256_mismatch");
    for part in ["group `swap`", &v2.display().to_string(), &sha2, WRONG, "the deploy pins"] {
        assert!(message.contains(part), "`{part}` missing from: {message}");
    }
    assert_eq!(h.version().await, "v1");
    let message = refused(&h.upload(&v2, Some(WRONG)).await, 422, "sha256_mismatch");
    assert!(message.contains(&sha2) && message.contains(WRONG), "{message}");
    assert_eq!(h.version().await, "v1");

    // Without a pin of its own, a deploy of a pinned group must be the pinned file.
    let message = refused(&h.deploy(&v2, None).await, 422, "sha256_mismatch");
    assert!(message.contains(&sha1) && message.contains(&sha2) && message.contains("[[groups]] entry"), "{message}");
    assert_eq!(h.version().await, "v1");
    let metrics = h.metrics().await;
    assert_eq!(metric(&metrics, r#"berth_swap_total{group="swap",outcome="sha256_mismatch"}"#), Some(3.0), "{metrics}");

    // A malformed pin is a bad request, refused before anything is read.
    let message = refused(&h.upload(&v2, Some("abc")).await, 400, "bad_sha256");
    assert!(message.contains("64 hex digits"), "{message}");

    // The right pin swaps; a rollback is checked against the sha256 the version served with.
    let res = h.upload(&v2, Some(&sha2.to_uppercase())).await;
    assert_eq!(res.status, 200, "{}", res.text());
    assert_eq!(h.version().await, "v2");
    let res = h.authed("POST", "/groups/swap/rollback", "", b"").await;
    assert_eq!(res.status, 200, "{}", res.text());
    assert_eq!(h.version().await, "v1");
    let metrics = h.metrics().await;
    assert_eq!(metric(&metrics, r#"berth_swap_total{group="swap",outcome="ok"}"#), Some(2.0), "{metrics}");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_pin_on_watch_is_refused_and_the_old_version_keeps_serving() {
    let (v1, v2) = (fixture("swap-v1").await, fixture("swap-v2").await);
    let plugins = tempfile::tempdir().unwrap();
    let file = plugins.path().join("libswap.so");
    let replace = |from: &Path| {
        let tmp = plugins.path().join("libswap.so.tmp");
        std::fs::copy(from, &tmp).unwrap();
        std::fs::rename(&tmp, &file).unwrap();
    };
    replace(&v1);
    let h = PinHost::start(&file, &format!("sha256 = \"{}\"", sha(&v1)), "").await;
    let deployments = h.host.as_ref().unwrap().deployments.clone();
    let _watcher = berth_host::watch::Watcher::start(deployments).expect("watch starts");

    replace(&v2);
    let line = r#"berth_swap_total{group="swap",outcome="sha256_mismatch"}"#;
    for _ in 0..250 {
        if metric(&h.metrics().await, line) == Some(1.0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(metric(&h.metrics().await, line), Some(1.0), "the changed file was refused");
    assert_eq!(h.version().await, "v1", "v1 keeps serving");
    assert!(file.is_file(), "the watched file is left where it is");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn require_sha256_refuses_an_unpinned_deploy() {
    let (v1, v2) = (fixture("swap-v1").await, fixture("swap-v2").await);
    let h = PinHost::start(&v1, "", "require_sha256 = true").await;
    let message = refused(&h.deploy(&v2, None).await, 422, "sha256_required");
    assert!(message.contains("admin.require_sha256") && message.contains("--sha256"), "{message}");
    refused(&h.upload(&v2, None).await, 422, "sha256_required");
    assert_eq!(h.version().await, "v1");
    let metrics = h.metrics().await;
    assert_eq!(metric(&metrics, r#"berth_swap_total{group="swap",outcome="sha256_required"}"#), Some(2.0), "{metrics}");

    // `berth deploy --sha256` pins an upload.
    let config = h.dir.path().join("berth.toml");
    let deploy = |sha256: &str| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_berth"))
            .args(["deploy", "swap"])
            .arg(&v2)
            .args(["--sha256", sha256, "--admin", &h.admin.to_string(), "--token", TOKEN, "--config"])
            .arg(&config)
            .env("NO_COLOR", "1")
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, _, err) = tokio::task::block_in_place(|| deploy(WRONG));
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("deploy refused (sha256_mismatch)") && err.contains(WRONG), "{err}");
    assert_eq!(h.version().await, "v1");
    let (code, out, err) = tokio::task::block_in_place(|| deploy(&sha(&v2)));
    assert_eq!(code, Some(0), "{out}{err}");
    assert_eq!(h.version().await, "v2");
    // Reload and rollback bring back what served before: not deploys.
    let res = h.authed("POST", "/groups/swap/rollback", "", b"").await;
    assert_eq!(res.status, 200, "{}", res.text());
    assert_eq!(h.version().await, "v1");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn package_refuses_a_group_whose_pin_does_not_match() {
    let v1 = fixture("swap-v1").await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("berth.toml");
    std::fs::write(
        &config,
        format!("[[groups]]\nname = \"swap\"\nfile = \"{}\"\nsha256 = \"{WRONG}\"\n", v1.display()),
    )
    .unwrap();
    let opts = berth_host::package::Options {
        config,
        target: berth_host::package::Target::Knative,
        profile: "dev".into(),
        out: dir.path().join("out"),
        host_binary: Some(PathBuf::from(env!("CARGO_BIN_EXE_berth"))),
        quiet: true,
    };
    let err = berth_host::package::package(&opts).unwrap_err().to_string();
    assert!(err.contains("group `swap`") && err.contains(&sha(&v1)) && err.contains(WRONG), "{err}");
    assert!(!dir.path().join("out/berth-knative").exists(), "nothing was packaged");
}
