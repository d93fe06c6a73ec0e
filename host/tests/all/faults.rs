//! Backends that go down mid-traffic and come back: requests get clear errors (503 with the
//! request id) within the function timeout, never a hang or a crash, and succeed again after the
//! backend returns, without restarting the host. The test runs its own Redis and PostgreSQL on
//! free ports so it can stop them.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::support::{group, request, TestHost};

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn wait_for_port(port: u16, up: bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() == up {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("port {port} did not become {}", if up { "reachable" } else { "closed" });
}

/// A Redis server of our own.
struct PrivateRedis {
    port: u16,
    child: Option<Child>,
}

impl PrivateRedis {
    fn start() -> Self {
        let mut r = PrivateRedis { port: free_port(), child: None };
        r.up();
        r
    }
    fn up(&mut self) {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server is installed (Debian package redis-server)");
        self.child = Some(child);
        wait_for_port(self.port, true);
    }
    fn down(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        wait_for_port(self.port, false);
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A PostgreSQL cluster of our own, run as the `postgres` OS user.
struct PrivatePostgres {
    port: u16,
    dir: PathBuf,
    bin: PathBuf,
    _tmp: tempfile::TempDir,
}

fn as_postgres(cmd: &Path, args: &[&str]) -> std::process::Output {
    Command::new("runuser").arg("-u").arg("postgres").arg("--").arg(cmd).args(args).output().expect("runuser")
}

impl PrivatePostgres {
    fn start() -> Self {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .expect("PostgreSQL server binaries under /usr/lib/postgresql")
            .flatten()
            .map(|e| e.path().join("bin"))
            .find(|p| p.join("initdb").exists())
            .expect("initdb");
        let tmp = tempfile::Builder::new().prefix("berth-pg").tempdir_in("/tmp").unwrap();
        let dir = tmp.path().join("data");
        Command::new("chown").args(["-R", "postgres:postgres"]).arg(tmp.path()).status().unwrap();
        let out = as_postgres(&bin.join("initdb"), &["-D", dir.to_str().unwrap(), "-A", "trust", "-U", "postgres"]);
        assert!(out.status.success(), "initdb: {}", String::from_utf8_lossy(&out.stderr));
        let pg = PrivatePostgres { port: free_port(), dir, bin, _tmp: tmp };
        pg.up();
        pg
    }
    fn up(&self) {
        let opts = format!("-p {} -k {} -c listen_addresses=127.0.0.1", self.port, self.dir.display());
        let log = self.dir.join("log");
        let out = as_postgres(
            &self.bin.join("pg_ctl"),
            &["-D", self.dir.to_str().unwrap(), "-o", &opts, "-l", log.to_str().unwrap(), "-w", "start"],
        );
        assert!(out.status.success(), "pg_ctl start: {}", String::from_utf8_lossy(&out.stderr));
        wait_for_port(self.port, true);
    }
    fn down(&self) {
        let out =
            as_postgres(&self.bin.join("pg_ctl"), &["-D", self.dir.to_str().unwrap(), "-m", "immediate", "-w", "stop"]);
        assert!(out.status.success(), "pg_ctl stop: {}", String::from_utf8_lossy(&out.stderr));
        wait_for_port(self.port, false);
    }
    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        let _ = as_postgres(&self.bin.join("pg_ctl"), &["-D", self.dir.to_str().unwrap(), "-m", "immediate", "stop"]);
    }
}

#[derive(Debug, Default)]
struct Seen {
    statuses: Vec<(u16, Duration)>,
    bad: Vec<String>,
}

/// Keeps reading and writing todos until told to stop.
fn traffic(
    addr: std::net::SocketAddr,
    id: i64,
    stop: Arc<AtomicBool>,
    seen: Arc<Mutex<Seen>>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut n = 0u64;
        while !stop.load(Ordering::Relaxed) {
            n += 1;
            let started = Instant::now();
            let res = if n.is_multiple_of(2) {
                request(addr, "GET", &format!("/todos/{id}"), &[], b"").await
            } else {
                request(addr, "POST", "/todos", &[], format!(r#"{{"title":"t{n}"}}"#).as_bytes()).await
            };
            let took = started.elapsed();
            {
                let mut s = seen.lock().unwrap();
                s.statuses.push((res.status, took));
                match res.status {
                    200 | 201 => {}
                    503 => {
                        let body = res.json();
                        if body["error"] != "unavailable" || body["request_id"].as_str().is_none_or(str::is_empty) {
                            s.bad.push(format!("unclear 503: {}", res.text()));
                        }
                    }
                    other => s.bad.push(format!("status {other}: {}", res.text())),
                }
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
}

#[tokio::test]
async fn requests_fail_clearly_while_postgres_and_redis_are_down_and_recover_after() {
    let pg = PrivatePostgres::start();
    let mut redis = PrivateRedis::start();
    let services = format!(
        "[services.db]\nkind = \"postgres\"\nurl = \"{}\"\nacquire_timeout = \"1s\"\n\
         [services.cache]\nkind = \"redis-kv\"\nurl = \"redis://127.0.0.1:{}\"\ntimeout = \"500ms\"\n\
         [services.userstore]\nkind = \"kv\"\n",
        pg.url(),
        redis.port
    );
    let config = format!(
        "{services}{}{}[groups.functions.create]\ntimeout = \"5s\"\n[groups.functions.read]\ntimeout = \"5s\"\n",
        group("plugins/users"),
        group("examples/todo")
    );
    let h = TestHost::start(&config).await;
    assert!(h.readiness().ready, "{:?}", h.readiness());
    let created = h.send("POST", "/todos", &[], br#"{"title":"survivor"}"#).await;
    assert_eq!(created.status, 201, "{}", created.text());
    let id = created.json()["id"].as_i64().unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let seen = Arc::new(Mutex::new(Seen::default()));
    let load = traffic(h.addr, id, stop.clone(), seen.clone());
    tokio::time::sleep(Duration::from_millis(300)).await;

    // Redis down: reads fall back to the database, writes still succeed.
    redis = tokio::task::spawn_blocking(move || {
        redis.down();
        redis
    })
    .await
    .unwrap();
    let mark = seen.lock().unwrap().statuses.len();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    {
        let s = seen.lock().unwrap();
        let during: Vec<u16> = s.statuses[mark..].iter().map(|(st, _)| *st).collect();
        assert!(
            !during.is_empty() && during.iter().all(|st| matches!(st, 200 | 201)),
            "cache outage must not fail requests: {during:?}"
        );
    }

    // PostgreSQL down too: writes answer 503 with the request id, quickly.
    let pg = tokio::task::spawn_blocking(move || {
        pg.down();
        pg
    })
    .await
    .unwrap();
    let mark = seen.lock().unwrap().statuses.len();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    {
        let s = seen.lock().unwrap();
        let during = &s.statuses[mark..];
        assert!(during.iter().any(|(st, _)| *st == 503), "writes must fail while the database is down: {during:?}");
    }

    // Both back: everything succeeds again, same host, same pools.
    let (pg, redis) = tokio::task::spawn_blocking(move || {
        pg.up();
        redis.up();
        (pg, redis)
    })
    .await
    .unwrap();
    let mut recovered = false;
    for _ in 0..100 {
        let w = h.send("POST", "/todos", &[], br#"{"title":"after"}"#).await;
        let r = h.get(&format!("/todos/{id}")).await;
        if w.status == 201 && r.status == 200 {
            recovered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop.store(true, Ordering::Relaxed);
    load.await.unwrap();
    assert!(recovered, "requests must succeed again after the backends return");

    {
        let s = seen.lock().unwrap();
        assert!(s.bad.is_empty(), "unclear failures: {:#?}", s.bad);
        let slowest = s.statuses.iter().map(|(_, d)| *d).max().unwrap();
        assert!(slowest < Duration::from_secs(5), "a request hung for {slowest:?} (function timeout 5s)");
        assert!(s.statuses.len() > 50, "only {} requests made", s.statuses.len());
    }
    h.stop().await;
    drop((pg, redis));
}
