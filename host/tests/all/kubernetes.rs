//! Berth on Kubernetes, played offline: the kubelet's ConfigMap update (a new timestamped
//! directory, then an atomic rename of the `..data` symlink) under load against `berth up`,
//! groups fetched by URL and pinned by sha256, and timers across three replicas sharing Redis.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;

use crate::support::{fixture, metric, request, BerthProcess};

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    format!("{:x}", sha2::Sha256::digest(bytes))
}

/// An artifact server: plugin files by path, with a count of the downloads of each.
struct Artifacts {
    addr: SocketAddr,
    files: Arc<Mutex<BTreeMap<String, Bytes>>>,
    hits: Arc<Mutex<BTreeMap<String, u64>>>,
}

impl Artifacts {
    async fn start() -> Artifacts {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let files: Arc<Mutex<BTreeMap<String, Bytes>>> = Default::default();
        let hits: Arc<Mutex<BTreeMap<String, u64>>> = Default::default();
        let (f, h) = (files.clone(), hits.clone());
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else { break };
                let (f, h) = (f.clone(), h.clone());
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
                        let path = req.uri().path().to_owned();
                        *h.lock().unwrap().entry(path.clone()).or_default() += 1;
                        let body = f.lock().unwrap().get(&path).cloned();
                        async move {
                            let res = match body {
                                Some(b) => http::Response::new(Full::new(b)),
                                None => http::Response::builder().status(404).body(Full::new(Bytes::new())).unwrap(),
                            };
                            Ok::<_, std::convert::Infallible>(res)
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Artifacts { addr, files, hits }
    }

    /// Publishes `file` as `/name`; returns its URL and sha256.
    fn publish(&self, name: &str, file: &Path) -> (String, String) {
        let bytes = Bytes::from(std::fs::read(file).unwrap());
        let sha = sha256_hex(&bytes);
        self.files.lock().unwrap().insert(format!("/{name}"), bytes);
        (format!("http://{}/{name}", self.addr), sha)
    }

    fn hits(&self, name: &str) -> u64 {
        self.hits.lock().unwrap().get(&format!("/{name}")).copied().unwrap_or(0)
    }
}

/// A ConfigMap volume as the kubelet lays it out: `<dir>/..<timestamp>/<files>`, a `..data`
/// symlink to the current one, and each visible name a symlink through `..data`.
struct ConfigMapVolume {
    dir: PathBuf,
    generation: u32,
}

impl ConfigMapVolume {
    fn create(dir: &Path, files: &[(&str, &str)]) -> ConfigMapVolume {
        std::fs::create_dir_all(dir).unwrap();
        let mut volume = ConfigMapVolume { dir: dir.to_owned(), generation: 0 };
        volume.update(files);
        for (name, _) in files {
            std::os::unix::fs::symlink(format!("..data/{name}"), dir.join(name)).unwrap();
        }
        volume
    }

    /// The kubelet's atomic update: write a new timestamped directory, point a temporary
    /// symlink at it, rename that over `..data`, remove the old directory.
    fn update(&mut self, files: &[(&str, &str)]) {
        let old = std::fs::read_link(self.dir.join("..data")).ok();
        self.generation += 1;
        let stamp = format!("..2026_12_02_04_{:02}_00.{:09}", self.generation, self.generation);
        let fresh = self.dir.join(&stamp);
        std::fs::create_dir(&fresh).unwrap();
        for (name, text) in files {
            std::fs::write(fresh.join(name), text).unwrap();
        }
        let tmp = self.dir.join("..data_tmp");
        std::os::unix::fs::symlink(&stamp, &tmp).unwrap();
        std::fs::rename(&tmp, self.dir.join("..data")).unwrap();
        if let Some(old) = old {
            std::fs::remove_dir_all(self.dir.join(old)).unwrap();
        }
    }
}

fn group_list(entries: &[(&str, &str, &str)]) -> String {
    entries
        .iter()
        .map(|(name, url, sha)| format!("[[groups]]\nname = \"{name}\"\nurl = \"{url}\"\nsha256 = \"{sha}\"\n"))
        .collect()
}

/// Keep-alive clients calling `GET /swap/version` until stopped; every answer must be 200 `v1`
/// or `v2`.
#[derive(Default)]
struct Load {
    stop: AtomicBool,
    requests: AtomicU64,
    failures: AtomicU64,
    first_failure: Mutex<Option<String>>,
}

fn start_load(addr: SocketAddr, clients: usize, load: Arc<Load>) -> Vec<tokio::task::JoinHandle<()>> {
    (0..clients)
        .map(|_| {
            let load = load.clone();
            tokio::spawn(async move {
                let mut sender: Option<hyper::client::conn::http1::SendRequest<Full<Bytes>>> = None;
                while !load.stop.load(Ordering::Acquire) {
                    let answer = async {
                        if sender.as_ref().is_none_or(|s| s.is_closed()) {
                            let stream = tokio::net::TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
                            let (s, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
                                .await
                                .map_err(|e| e.to_string())?;
                            tokio::spawn(conn);
                            sender = Some(s);
                        }
                        let s = sender.as_mut().expect("connected");
                        s.ready().await.map_err(|e| e.to_string())?;
                        let req = http::Request::get("/swap/version")
                            .header("host", "berth")
                            .body(Full::new(Bytes::new()))
                            .unwrap();
                        let res = s.send_request(req).await.map_err(|e| e.to_string())?;
                        let status = res.status().as_u16();
                        let body = res.into_body().collect().await.map_err(|e| e.to_string())?.to_bytes();
                        Ok::<_, String>((status, String::from_utf8_lossy(&body).into_owned()))
                    }
                    .await;
                    load.requests.fetch_add(1, Ordering::Relaxed);
                    match answer {
                        Ok((200, body)) if body == "v1" || body == "v2" => {}
                        other => {
                            sender = None;
                            load.failures.fetch_add(1, Ordering::Relaxed);
                            load.first_failure.lock().unwrap().get_or_insert(format!("{other:?}"));
                        }
                    }
                }
            })
        })
        .collect()
}

/// Polls `check` every 50 ms until it holds or `within` passes.
async fn eventually<F: std::future::Future<Output = bool>>(within: Duration, mut check: impl FnMut() -> F) -> bool {
    let until = Instant::now() + within;
    while Instant::now() < until {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

/// `berth up` serving the group list of `volume` (the swap fixtures need a `state` bucket).
async fn serve_the_list(volume: &ConfigMapVolume) -> BerthProcess {
    let list = volume.dir.join("groups.toml").display().to_string();
    tokio::task::spawn_blocking(move || {
        BerthProcess::start_with_env("", "[services.state]\nkind = \"blob\"\n", &[("BERTH_GROUPS_FILE", &list)])
    })
    .await
    .unwrap()
}

async fn version(addr: SocketAddr) -> String {
    request(addr, "GET", "/swap/version", &[], b"").await.text()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_configmap_update_swaps_the_group_under_load_and_a_wrong_sha256_leaves_the_old_version_serving() {
    let (v1, v2) = (fixture("swap-v1").await, fixture("swap-v2").await);
    let artifacts = Artifacts::start().await;
    let (url1, sha1) = artifacts.publish("swap-1.so", &v1);
    let (url2, sha2) = artifacts.publish("swap-2.so", &v2);
    let (url1_copy, _) = artifacts.publish("swap-1-copy.so", &v1);
    let work = tempfile::tempdir().unwrap();
    let mut volume = ConfigMapVolume::create(
        &work.path().join("groups"),
        &[("groups.toml", &group_list(&[("swap", &url1, &sha1)]))],
    );
    let host = serve_the_list(&volume).await;
    let addr = host.addr;
    assert_eq!(version(addr).await, "v1", "the group list's version serves at start");
    assert_eq!(artifacts.hits("swap-1.so"), 1, "fetched once at start");
    let ready = request(addr, "GET", "/readyz", &[], b"").await;
    assert_eq!(ready.status, 200, "{}", ready.text());
    assert_eq!(ready.json()["serving"][0]["sha256"], sha1.as_str(), "{}", ready.text());

    let load = Arc::new(Load::default());
    let clients = start_load(addr, 4, load.clone());
    tokio::time::sleep(Duration::from_millis(300)).await;

    // `kubectl apply` of the ConfigMap: the kubelet swaps `..data`.
    volume.update(&[("groups.toml", &group_list(&[("swap", &url2, &sha2)]))]);
    assert!(
        eventually(Duration::from_secs(30), || async { version(addr).await == "v2" }).await,
        "the new version serves after the ConfigMap update"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let metrics = request(addr, "GET", "/metrics", &[], b"").await.text();
    let info = format!(r#"berth_group_info{{group="swap",sha256="{sha2}",version="2.0.0"}}"#);
    assert_eq!(metric(&metrics, &info), Some(1.0), "{metrics}");
    assert_eq!(
        metric(&metrics, &format!(r#"berth_group_info{{group="swap",sha256="{sha1}",version="1.0.0"}}"#)),
        None,
        "the old version's info is gone"
    );

    // A list whose pin does not match the published file: refused, v2 keeps serving.
    let wrong = sha256_hex(b"not the plugin");
    volume.update(&[("groups.toml", &group_list(&[("swap", &url1_copy, &wrong)]))]);
    let refused = eventually(Duration::from_secs(30), || async {
        request(addr, "GET", "/readyz", &[], b"").await.json()["deploys"][0]["wanted_sha256"] == wrong.as_str()
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    load.stop.store(true, Ordering::Release);
    for c in clients {
        c.await.unwrap();
    }
    assert!(refused, "/readyz reports the refused deploy");
    let ready = request(addr, "GET", "/readyz", &[], b"").await;
    assert_eq!(ready.status, 200, "a refused deploy leaves the replica ready on its version: {}", ready.text());
    let detail = ready.json();
    let error = detail["deploys"][0]["error"].as_str().unwrap_or_default().to_owned();
    assert!(error.contains(&sha1) && error.contains(&wrong), "the refusal names both hashes: {detail}");
    assert_eq!(detail["serving"][0]["sha256"], sha2.as_str(), "{detail}");
    assert_eq!(version(addr).await, "v2");
    let metrics = request(addr, "GET", "/metrics", &[], b"").await.text();
    assert_eq!(metric(&metrics, r#"berth_group_deploy_failing{group="swap"}"#), Some(1.0), "{metrics}");
    assert!(
        metric(&metrics, r#"berth_swap_total{group="swap",outcome="sha256_mismatch"}"#).unwrap_or(0.0) >= 1.0,
        "{metrics}"
    );

    let (requests, failures) = (load.requests.load(Ordering::Relaxed), load.failures.load(Ordering::Relaxed));
    assert_eq!(failures, 0, "{failures} of {requests} requests failed: {:?}", load.first_failure.lock().unwrap());
    assert!(requests > 200, "the load ran ({requests} requests)");

    // Back to a good list: the refusal clears, and v1 is not fetched again (it is cached).
    volume.update(&[("groups.toml", &group_list(&[("swap", &url1, &sha1)]))]);
    assert!(eventually(Duration::from_secs(30), || async { version(addr).await == "v1" }).await);
    let detail = request(addr, "GET", "/readyz", &[], b"").await.json();
    assert_eq!(detail["deploys"], serde_json::json!([]), "{detail}");
    assert_eq!(artifacts.hits("swap-1.so"), 1, "fetched at start only: the version is cached by its sha256");
    assert!(artifacts.hits("swap-1-copy.so") >= 1);
    drop(host);
}

/// Every `tick` run (its scheduled time in ms) a replica reports.
async fn ticks_of(addr: SocketAddr) -> Vec<i64> {
    let t = request(addr, "GET", "/ticks", &[], b"").await.json();
    t["tick_ids"]
        .as_array()
        .unwrap_or_else(|| panic!("no tick_ids in {t}"))
        .iter()
        .filter_map(|id| id.as_str()?.rsplit('.').next()?.parse().ok())
        .collect()
}

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64
}

/// The 100 ms ticks in `[from, to]` nobody ran.
fn missing(ran: &BTreeSet<i64>, from: i64, to: i64) -> Vec<i64> {
    let first = (from / 100 + 1) * 100;
    (first..=to).step_by(100).filter(|t| !ran.contains(t)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timers_fire_once_per_tick_across_three_replicas_sharing_redis_and_a_dead_replica_hands_its_ticks_over() {
    let prefix = format!("berth-test-timers-{}-{}", std::process::id(), now_ms());
    three_replicas_share_the_ticks("redis://127.0.0.1:6379", &prefix).await;
    let client = redis::Client::open("redis://127.0.0.1:6379").unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let keys: Vec<String> = redis::cmd("KEYS").arg(format!("{prefix}:*")).query_async(&mut conn).await.unwrap();
    assert!(!keys.is_empty(), "the ticks were claimed under the prefix");
    let _: () = redis::cmd("DEL").arg(&keys).query_async(&mut conn).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timers_fire_once_per_tick_across_three_replicas_sharing_postgresql_and_a_dead_replica_hands_its_ticks_over() {
    use crate::sql::{admin, pg_url, unique_name, with_param, Backend};
    let url = pg_url();
    let schema = unique_name();
    admin(Backend::Postgres, &url, &format!("CREATE SCHEMA {schema}")).expect("PostgreSQL is usable (DATABASE_URL)");
    let lock = with_param(&url, &format!("options[search_path]={schema}"));
    let prefix = format!("berth-test-timers-{}", now_ms());
    three_replicas_share_the_ticks(&lock, &prefix).await;
    admin(Backend::Postgres, &url, &format!("DROP SCHEMA IF EXISTS {schema} CASCADE")).unwrap();
}

/// Three `berth up` replicas of the timer-worker fixture claiming ticks in `lock`: each tick runs
/// once, and after one replica is killed the others run every following tick.
async fn three_replicas_share_the_ticks(lock: &str, prefix: &str) {
    let plugin = fixture("timer-worker").await;
    let extra = format!(
        "[timers]\nlock = \"{lock}\"\nlock_prefix = \"{prefix}\"\n[[groups]]\nfile = \"{}\"\n",
        plugin.display()
    );
    let mut replicas = Vec::new();
    for _ in 0..3 {
        let extra = extra.clone();
        replicas.push(tokio::task::spawn_blocking(move || BerthProcess::start("", &extra)).await.unwrap());
    }
    let all_up = now_ms();
    tokio::time::sleep(Duration::from_millis(2000)).await;

    // Phase 1: three replicas.
    let mut runs: Vec<Vec<i64>> = Vec::new();
    for r in &replicas {
        runs.push(ticks_of(r.addr).await);
    }
    let snapshot = now_ms();
    let dead = replicas.remove(0);
    drop(dead); // SIGKILL (and reaped): no drain, no goodbye.
    let killed = now_ms();
    tokio::time::sleep(Duration::from_millis(2000)).await;
    let end = now_ms();
    let mut after: Vec<Vec<i64>> = Vec::new();
    for r in &replicas {
        after.push(ticks_of(r.addr).await);
    }

    // No tick ran twice: across the replicas, every tick id is unique.
    let mut seen = BTreeMap::new();
    for (i, ticks) in [runs[0].clone(), after[0].clone(), after[1].clone()].iter().enumerate() {
        for t in ticks {
            if let Some(other) = seen.insert(*t, i) {
                panic!("tick {t} ran in replica {other} and replica {i}");
            }
        }
    }
    let ran: BTreeSet<i64> = seen.keys().copied().collect();
    // Every tick ran once while all three served (one claim wins each)...
    let gaps = missing(&ran, all_up + 200, snapshot - 200);
    assert!(gaps.is_empty(), "ticks nobody ran with three replicas: {gaps:?}");
    // ...and after one died, the other two ran every tick from the next one on.
    let gaps = missing(&ran, killed + 100, end - 200);
    assert!(gaps.is_empty(), "ticks nobody ran after a replica died: {gaps:?}");
    let metrics = request(replicas[0].addr, "GET", "/metrics", &[], b"").await.text();
    assert!(
        metric(&metrics, r#"berth_timer_runs_total{function="tick",group="timer-worker",outcome="elsewhere"}"#)
            .unwrap_or(0.0)
            > 0.0,
        "{metrics}"
    );
    drop(replicas);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listed_group_whose_server_fails_at_start_is_refused_clearly_and_served_once_its_file_is_there() {
    let v1 = fixture("swap-v1").await;
    let artifacts = Artifacts::start().await;
    let sha1 = sha256_hex(&std::fs::read(&v1).unwrap());
    let url = format!("http://{}/later.so", artifacts.addr);
    let work = tempfile::tempdir().unwrap();
    let volume =
        ConfigMapVolume::create(&work.path().join("groups"), &[("groups.toml", &group_list(&[("swap", &url, &sha1)]))]);
    let host = serve_the_list(&volume).await;
    let addr = host.addr;
    let ready = request(addr, "GET", "/readyz", &[], b"").await;
    assert_eq!(ready.status, 503, "{}", ready.text());
    let problems = ready.json()["problems"].to_string();
    assert!(
        problems.contains(&url) && problems.contains("404"),
        "the problem names the URL and the answer: {problems}"
    );
    assert_eq!(request(addr, "GET", "/swap/version", &[], b"").await.status, 404);

    // The artifact appears (a CI job finished publishing): the entry is tried again.
    artifacts.publish("later.so", &v1);
    assert!(
        eventually(Duration::from_secs(40), || async { request(addr, "GET", "/readyz", &[], b"").await.status == 200 })
            .await,
        "the replica becomes ready once the file can be fetched"
    );
    assert_eq!(version(addr).await, "v1");
    drop(host);
}

#[tokio::test]
async fn fetching_says_what_failed_and_never_keeps_a_partial_or_unpinned_file() {
    use berth_host::fetch::{fetch, FetchError, Pinned};
    let dir = tempfile::tempdir().unwrap();
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let url = format!("http://{closed}/g.so");
    let sha = sha256_hex(b"plugin bytes");
    let pin = Pinned { group: "g", url: &url, sha256: &sha };
    let err = fetch(dir.path(), pin.clone(), 1 << 20).await.unwrap_err();
    assert!(matches!(err, FetchError::Download { .. }), "{err}");
    assert!(err.to_string().contains(&url) && err.to_string().contains("refused"), "{err}");

    let artifacts = Artifacts::start().await;
    let file = dir.path().join("plugin.bin");
    std::fs::write(&file, b"plugin bytes").unwrap();
    let (url, published) = artifacts.publish("g.so", &file);
    assert_eq!(published, sha);
    let pin = Pinned { group: "g", url: &url, sha256: &sha };
    let err = fetch(dir.path(), pin.clone(), 4).await.unwrap_err();
    assert!(matches!(err, FetchError::TooLarge { .. }) && err.to_string().contains("admin.max_upload"), "{err}");
    let other = sha256_hex(b"another build");
    let err = fetch(dir.path(), Pinned { sha256: &other, ..pin.clone() }, 1 << 20).await.unwrap_err();
    assert_eq!(err.code(), "sha256_mismatch", "{err}");
    let cached = |d: &Path| std::fs::read_dir(d.join("fetched")).map(|r| r.count()).unwrap_or(0);
    assert_eq!(cached(dir.path()), 0, "nothing refused is kept, not even a partial download");

    let path = fetch(dir.path(), pin.clone(), 1 << 20).await.unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), b"plugin bytes");
    assert_eq!(fetch(dir.path(), pin, 1 << 20).await.unwrap(), path);
    assert_eq!(artifacts.hits("g.so"), 3, "the pinned file was downloaded once, then taken from the cache");
}

#[tokio::test]
async fn with_its_claim_store_down_a_replica_runs_no_tick_and_says_why() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let extra =
        format!("[timers]\nlock = \"redis://{closed}\"\n{}", crate::support::group("host/fixtures/timer-worker"));
    let h = crate::support::TestHost::start(&extra).await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    let t = h.get("/ticks").await.json();
    assert_eq!(t["ticks"], 0, "a tick that cannot be claimed is not run (it may run elsewhere): {t}");
    let metrics = h.get("/metrics").await.text();
    let unclaimed =
        metric(&metrics, r#"berth_timer_runs_total{function="tick",group="timer-worker",outcome="unclaimed"}"#);
    assert!(unclaimed.unwrap_or(0.0) >= 1.0, "{metrics}");
    h.stop().await;
}

/// The Helm chart, the kubeless-style example and the image's Dockerfile, checked offline by
/// real engines (`host/tests/peers/helm_check.py`): Helm's own template engine renders the chart
/// with default, full, Knative and kubeless values; every object validates against the
/// Kubernetes schemas and the KEDA, Knative, prometheus-operator and Gateway API models; the
/// refusals refuse; hadolint passes the Dockerfile and its stages are what the image promises.
#[test]
fn the_helm_chart_renders_and_every_object_validates_against_the_real_schemas() {
    let python = crate::peers::python();
    let npm = crate::peers::k8s_models();
    let work = tempfile::tempdir().unwrap();
    let root = crate::support::workspace();
    let out = std::process::Command::new(python)
        .arg(root.join("host/tests/peers/helm_check.py"))
        .arg("--repo")
        .arg(&root)
        .arg("--npm-dir")
        .arg(&npm)
        .arg("--work")
        .arg(work.path())
        .output()
        .expect("run helm_check.py");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "helm_check.py failed:\n{stdout}\n{stderr}");
    let oks = stdout.lines().filter(|l| l.starts_with("ok ")).count();
    assert!(!stdout.lines().any(|l| l.starts_with("FAIL")), "{stdout}");
    assert!(oks >= 100, "every check reports (only {oks} did):\n{stdout}");

    // What the chart renders is what berth reads: each scenario's berth.toml and group list,
    // with the pod's environment (Secrets filled in as the kubelet would), parse.
    for scenario in ["default", "full", "hpa", "knative", "kubeless"] {
        let dir = work.path().join(scenario);
        let text = std::fs::read_to_string(dir.join("berth.toml")).unwrap_or_else(|e| panic!("{scenario}: {e}"));
        let env: BTreeMap<String, Option<String>> =
            serde_json::from_str(&std::fs::read_to_string(dir.join("env.json")).unwrap()).unwrap();
        let doc: toml::Table = text.parse().unwrap();
        let mut vars = BTreeMap::new();
        for (name, value) in env {
            if !name.starts_with("BERTH_") || name == "BERTH_CONFIG" {
                continue;
            }
            let value = value.unwrap_or_else(|| from_secret(&name, &doc));
            vars.insert(name, value);
        }
        vars.insert("BERTH_GROUPS_FILE".into(), dir.join("groups.toml").display().to_string());
        let config = berth_host::config::BerthConfig::parse(&text, &dir, &vars)
            .unwrap_or_else(|e| panic!("{scenario}: berth refuses the chart's config: {e}\n{text}\n{vars:?}"));
        assert!(config.warnings.is_empty(), "{scenario}: {:?}", config.warnings);
        assert!(config.groups.iter().all(|g| g.listed && g.url.is_some()), "{scenario}: {:?}", config.groups);
        if scenario == "full" {
            assert!(!config.allow_embedded && config.groups.len() >= 2 && config.timers.lock.is_some(), "{config:?}");
        }
    }
}

/// A stand-in for what a Secret gives variable `name` in the pod: a URL of the kind its
/// `[services.*]` or `[queues.*]` section names, or a token.
fn from_secret(name: &str, doc: &toml::Table) -> String {
    let key = name.trim_start_matches("BERTH_").to_ascii_lowercase();
    let parts: Vec<&str> = key.split("__").collect();
    let kind = match parts.as_slice() {
        [section @ ("services" | "queues"), entry, "url"] => {
            doc.get(*section).and_then(|s| s.get(*entry)).and_then(|e| e.get("kind")).and_then(|k| k.as_str())
        }
        ["timers", "lock"] => Some("redis"),
        _ => return "token-from-a-secret".into(),
    };
    match kind {
        Some("postgres") => "postgres://berth@db.data.svc/berth".into(),
        Some("mysql") => "mysql://berth@db.data.svc/berth".into(),
        Some("redis" | "redis-kv") => "redis://redis.data.svc:6379".into(),
        Some("nats") => "nats://nats.data.svc:4222".into(),
        Some("rabbitmq") => "amqp://berth:secret@rabbitmq.data.svc:5672/%2f".into(),
        other => panic!("{name}: no stand-in for a secret of kind {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_added_to_the_list_starts_serving_and_one_taken_off_it_is_unloaded() {
    let v1 = fixture("swap-v1").await;
    let hello_dir = crate::support::workspace().join("examples/hello");
    let hello = tokio::task::spawn_blocking(move || berth_host::builder::build_group_crate(&hello_dir, "dev"))
        .await
        .unwrap()
        .expect("examples/hello builds");
    let artifacts = Artifacts::start().await;
    let (url1, sha1) = artifacts.publish("swap-1.so", &v1);
    let (hello_url, hello_sha) = artifacts.publish("hello.so", &hello);
    let work = tempfile::tempdir().unwrap();
    let swap_only = group_list(&[("swap", &url1, &sha1)]);
    let mut volume = ConfigMapVolume::create(&work.path().join("groups"), &[("groups.toml", &swap_only)]);
    let host = serve_the_list(&volume).await;
    let addr = host.addr;
    assert_eq!(request(addr, "GET", "/hello/world", &[], b"").await.status, 404);

    volume.update(&[("groups.toml", &group_list(&[("swap", &url1, &sha1), ("hello", &hello_url, &hello_sha)]))]);
    assert!(
        eventually(Duration::from_secs(30), || async {
            request(addr, "GET", "/hello/world", &[], b"").await.status == 200
        })
        .await,
        "a group added to the list serves"
    );
    let detail = request(addr, "GET", "/readyz", &[], b"").await.json();
    let groups: BTreeSet<String> =
        detail["serving"].as_array().unwrap().iter().map(|g| g["group"].as_str().unwrap().to_owned()).collect();
    assert_eq!(groups, BTreeSet::from(["hello".to_owned(), "swap".to_owned()]), "{detail}");

    volume.update(&[("groups.toml", &swap_only)]);
    assert!(
        eventually(Duration::from_secs(30), || async {
            request(addr, "GET", "/hello/world", &[], b"").await.status == 404
        })
        .await,
        "a group taken off the list is unloaded"
    );
    assert_eq!(version(addr).await, "v1", "the group that stayed keeps serving");
    let ready = request(addr, "GET", "/readyz", &[], b"").await;
    assert_eq!(ready.status, 200, "{}", ready.text());
    let metrics = request(addr, "GET", "/metrics", &[], b"").await.text();
    assert!(!metrics.contains(r#"berth_group_info{group="hello""#), "{metrics}");
    drop(host);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_group_list_changes_nothing_and_says_why() {
    let v1 = fixture("swap-v1").await;
    let artifacts = Artifacts::start().await;
    let (url1, sha1) = artifacts.publish("swap-1.so", &v1);
    let work = tempfile::tempdir().unwrap();
    let good = group_list(&[("swap", &url1, &sha1)]);
    let mut volume = ConfigMapVolume::create(&work.path().join("groups"), &[("groups.toml", &good)]);
    let host = serve_the_list(&volume).await;
    let addr = host.addr;

    volume.update(&[("groups.toml", "[[groups]]\nname = \"swap\"\nurl = \"http://x/s.so\"\nsha256 = \"nope\"\n")]);
    let refused = eventually(Duration::from_secs(30), || async {
        request(addr, "GET", "/readyz", &[], b"").await.json()["deploys"][0]["group"] == "(group list)"
    })
    .await;
    assert!(refused, "the refused list shows in /readyz");
    let detail = request(addr, "GET", "/readyz", &[], b"").await.json();
    let error = detail["deploys"][0]["error"].as_str().unwrap().to_owned();
    assert!(error.contains("groups[0]") && error.contains("sha256"), "{error}");
    assert_eq!(version(addr).await, "v1", "every group keeps its version");

    volume.update(&[("groups.toml", &good)]);
    assert!(
        eventually(Duration::from_secs(30), || async {
            request(addr, "GET", "/readyz", &[], b"").await.json()["deploys"] == serde_json::json!([])
        })
        .await,
        "a good list clears the refusal"
    );
    assert_eq!(artifacts.hits("swap-1.so"), 1, "nothing was fetched again");
    drop(host);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cached_plugin_changed_on_disk_is_refused_removed_and_fetched_again() {
    use crate::support::TestHost;
    let (v1, v2) = (fixture("swap-v1").await, fixture("swap-v2").await);
    let artifacts = Artifacts::start().await;
    let (url1, sha1) = artifacts.publish("swap-1.so", &v1);
    let data = tempfile::tempdir().unwrap();
    let extra = format!(
        "[services.state]\nkind = \"blob\"\n[[groups]]\nname = \"swap\"\nurl = \"{url1}\"\nsha256 = \"{sha1}\"\n"
    );
    let h = TestHost::start_in(data.path(), "", &extra).await;
    assert_eq!(h.get("/swap/version").await.text(), "v1");
    h.stop().await;

    // The cached copy is overwritten behind berth's back (a disk fault, a hand edit).
    let cached = berth_host::fetch::cache_dir(data.path()).join(format!("swap-{sha1}.so"));
    std::fs::copy(&v2, &cached).unwrap();
    let h = TestHost::start_in(data.path(), "", &extra).await;
    let readiness = h.readiness();
    assert!(!readiness.ready, "{readiness:?}");
    let problems = readiness.problems.join("; ");
    assert!(problems.contains("cached copy") && problems.contains(&sha1), "{problems}");
    assert_eq!(h.get("/swap/version").await.status, 404, "the changed file is not served");
    assert!(!cached.exists(), "the changed copy is removed");
    h.stop().await;

    let h = TestHost::start_in(data.path(), "", &extra).await;
    assert_eq!(h.get("/swap/version").await.text(), "v1", "fetched again and served");
    assert_eq!(artifacts.hits("swap-1.so"), 2);
    h.stop().await;
}
