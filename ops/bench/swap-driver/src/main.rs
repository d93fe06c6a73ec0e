//! `swap-driver`: the measuring half of `ops/bench/swap.sh`.
//!
//! Against a running `berth up` serving the `swap` fixture group (v1) it runs `--clients`
//! keep-alive clients calling `GET /swap/version` in a closed loop, first for `--steady-secs`
//! without swaps, then while it swaps the group v1 → v2 → v1 … `--swaps` times through the admin
//! API (deploy by path; `--interval-ms` pauses between swaps). It reports:
//! - request latency p50/p99 in steady state and during the swaps, from the same run;
//! - swap latency: from sending the deploy call to the first request (sent after the call
//!   returned) answered by the new version;
//! - the berth process's resident memory after 10 and after all swaps, each taken once every
//!   replaced version has retired (`GET /groups` lists none);
//! - failed requests (errors, non-200, unknown bodies) and stale ones (a request that started after
//!   a swap returned and ended before the next began, answered by the old version).
//!
//! The last line is `swaps: N, failed requests: F, rss growth 10->1000: X MB`.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;

struct Args {
    app: SocketAddr,
    admin: SocketAddr,
    token: String,
    v1: String,
    v2: String,
    pid: u32,
    swaps: u64,
    clients: usize,
    steady_secs: u64,
    warmup_secs: u64,
    interval_ms: u64,
}

fn parse_args() -> Result<Args, String> {
    let mut map = std::collections::BTreeMap::new();
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let k = k.strip_prefix("--").ok_or_else(|| format!("unexpected argument `{k}`"))?.to_owned();
        let v = it.next().ok_or_else(|| format!("--{k} needs a value"))?;
        map.insert(k, v);
    }
    let get = |k: &str| map.get(k).cloned().ok_or_else(|| format!("missing --{k}"));
    let num = |k: &str, d: u64| map.get(k).map_or(Ok(d), |v| v.parse().map_err(|_| format!("--{k}: not a number")));
    Ok(Args {
        app: get("app")?.parse().map_err(|e| format!("--app: {e}"))?,
        admin: get("admin")?.parse().map_err(|e| format!("--admin: {e}"))?,
        token: get("token")?,
        v1: get("v1")?,
        v2: get("v2")?,
        pid: get("pid")?.parse().map_err(|e| format!("--pid: {e}"))?,
        swaps: num("swaps", 1000)?,
        clients: num("clients", 16)? as usize,
        steady_secs: num("steady-secs", 10)?,
        warmup_secs: num("warmup-secs", 2)?,
        interval_ms: num("interval-ms", 0)?,
    })
}

/// A keep-alive HTTP/1.1 connection.
struct Conn {
    addr: SocketAddr,
    sender: Option<hyper::client::conn::http1::SendRequest<Full<Bytes>>>,
}

impl Conn {
    fn new(addr: SocketAddr) -> Self {
        Conn { addr, sender: None }
    }

    async fn send(&mut self, req: hyper::Request<Full<Bytes>>) -> Result<(u16, Bytes), String> {
        if self.sender.as_ref().is_none_or(|s| s.is_closed()) {
            let stream = tokio::net::TcpStream::connect(self.addr).await.map_err(|e| format!("connect: {e}"))?;
            let _ = stream.set_nodelay(true);
            let (sender, conn) =
                hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.map_err(|e| e.to_string())?;
            tokio::spawn(conn);
            self.sender = Some(sender);
        }
        let sender = self.sender.as_mut().expect("connected");
        let outcome = async {
            sender.ready().await.map_err(|e| e.to_string())?;
            let res = sender.send_request(req).await.map_err(|e| e.to_string())?;
            let status = res.status().as_u16();
            let body = res.into_body().collect().await.map_err(|e| e.to_string())?.to_bytes();
            Ok((status, body))
        }
        .await;
        if outcome.is_err() {
            self.sender = None;
        }
        outcome
    }

    async fn get(&mut self, path: &str) -> Result<(u16, Bytes), String> {
        let req = hyper::Request::get(path).header("host", "berth").body(Full::new(Bytes::new())).expect("request");
        self.send(req).await
    }
}

// Phase 0 is the warm-up: not recorded.
const STEADY: u8 = 1;
const SWAPPING: u8 = 2;

#[derive(Default)]
struct Shared {
    phase: AtomicU8,
    /// `completed_swaps << 1 | swap_in_progress`.
    epoch: AtomicU64,
    stop: AtomicBool,
    failures: AtomicU64,
    stale: AtomicU64,
    first_problem: Mutex<Option<String>>,
}

fn version_after(swaps: u64) -> &'static str {
    if swaps.is_multiple_of(2) {
        "v1"
    } else {
        "v2"
    }
}

/// One closed-loop client; returns (steady, swapping) latencies in µs.
async fn client(addr: SocketAddr, shared: Arc<Shared>) -> (Vec<u32>, Vec<u32>) {
    let (mut steady, mut swapping) = (Vec::new(), Vec::new());
    let mut conn = Conn::new(addr);
    while !shared.stop.load(Ordering::Acquire) {
        let phase = shared.phase.load(Ordering::Acquire);
        let before = shared.epoch.load(Ordering::Acquire);
        let started = Instant::now();
        let answer = conn.get("/swap/version").await;
        let us = started.elapsed().as_micros().min(u32::MAX as u128) as u32;
        let after = shared.epoch.load(Ordering::Acquire);
        match &answer {
            Ok((200, body)) if &body[..] == b"v1" || &body[..] == b"v2" => {
                let want = version_after(before >> 1);
                if before == after && before & 1 == 0 && &body[..] != want.as_bytes() {
                    shared.stale.fetch_add(1, Ordering::Relaxed);
                    shared.first_problem.lock().expect("lock").get_or_insert(format!(
                        "stale: after swap {} got {}",
                        before >> 1,
                        String::from_utf8_lossy(body)
                    ));
                }
            }
            other => {
                shared.failures.fetch_add(1, Ordering::Relaxed);
                shared.first_problem.lock().expect("lock").get_or_insert(format!("failed request: {other:?}"));
            }
        }
        match phase {
            STEADY => steady.push(us),
            SWAPPING => swapping.push(us),
            _ => {}
        }
    }
    (steady, swapping)
}

fn admin_request(args: &Args, method: &str, path: &str, body: String) -> hyper::Request<Full<Bytes>> {
    hyper::Request::builder()
        .method(method)
        .uri(path)
        .header("host", "berth-admin")
        .header("authorization", format!("Bearer {}", args.token))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body)))
        .expect("request")
}

/// Waits until no replaced version is retiring; returns the final `GET /groups`.
async fn settle(args: &Args, admin: &mut Conn) -> Result<serde_json::Value, String> {
    for _ in 0..3000 {
        let (status, body) = admin.send(admin_request(args, "GET", "/groups", String::new())).await?;
        let doc: serde_json::Value = serde_json::from_slice(&body).map_err(|e| e.to_string())?;
        if status == 200 && doc["retiring"].as_array().is_some_and(|r| r.is_empty()) {
            return Ok(doc);
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Err("replaced versions still retiring after 30 s".into())
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| l.strip_prefix("VmRSS:")?.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

fn percentile(sorted: &[u32], p: usize) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    f64::from(sorted[(sorted.len() * p / 100).min(sorted.len() - 1)])
}

fn percentile_ms(sorted: &[Duration], p: usize) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[(sorted.len() * p / 100).min(sorted.len() - 1)].as_secs_f64() * 1000.0
}

async fn run(args: Args) -> Result<bool, String> {
    let shared = Arc::new(Shared::default());
    let tasks: Vec<_> = (0..args.clients).map(|_| tokio::spawn(client(args.app, shared.clone()))).collect();
    tokio::time::sleep(Duration::from_secs(args.warmup_secs)).await;
    shared.phase.store(STEADY, Ordering::Release);
    let steady_started = Instant::now();
    tokio::time::sleep(Duration::from_secs(args.steady_secs)).await;
    let steady_secs = steady_started.elapsed().as_secs_f64();

    shared.phase.store(SWAPPING, Ordering::Release);
    let swapping_started = Instant::now();
    let (mut admin, mut probe) = (Conn::new(args.admin), Conn::new(args.app));
    let mut latencies = Vec::with_capacity(args.swaps as usize);
    let mut rss_10 = 0u64;
    for seq in 1..=args.swaps {
        let (file, want) = if seq % 2 == 1 { (&args.v2, "v2") } else { (&args.v1, "v1") };
        shared.epoch.store(((seq - 1) << 1) | 1, Ordering::Release);
        let started = Instant::now();
        let body = serde_json::json!({ "path": file }).to_string();
        let (status, answer) = admin.send(admin_request(&args, "POST", "/groups/swap/deploy", body)).await?;
        if status != 200 {
            return Err(format!("swap {seq} refused ({status}): {}", String::from_utf8_lossy(&answer)));
        }
        shared.epoch.store(seq << 1, Ordering::Release);
        loop {
            match probe.get("/swap/version").await {
                Ok((200, b)) if &b[..] == want.as_bytes() => break,
                Ok(_) | Err(_) if started.elapsed() > Duration::from_secs(10) => {
                    return Err(format!("swap {seq}: {want} not serving 10 s after the deploy call"))
                }
                _ => {}
            }
        }
        latencies.push(started.elapsed());
        if args.interval_ms > 0 {
            tokio::time::sleep(Duration::from_millis(args.interval_ms)).await;
        }
        if seq == 10 {
            settle(&args, &mut admin).await?;
            rss_10 = rss_kib(args.pid);
        }
    }
    let swapping_secs = swapping_started.elapsed().as_secs_f64();
    shared.stop.store(true, Ordering::Release);
    let (mut steady, mut swapping) = (Vec::new(), Vec::new());
    for t in tasks {
        let (s, w) = t.await.map_err(|e| e.to_string())?;
        steady.extend(s);
        swapping.extend(w);
    }
    let end = settle(&args, &mut admin).await?;
    let rss_end = rss_kib(args.pid);

    steady.sort_unstable();
    swapping.sort_unstable();
    latencies.sort_unstable();
    let (s50, s99) = (percentile(&steady, 50), percentile(&steady, 99));
    let (w50, w99) = (percentile(&swapping, 50), percentile(&swapping, 99));
    println!(
        "steady:   {:>8} requests in {steady_secs:5.1} s ({:>6.0} req/s)  p50 {s50:7.0} us  p99 {s99:7.0} us",
        steady.len(),
        steady.len() as f64 / steady_secs
    );
    println!(
        "swapping: {:>8} requests in {swapping_secs:5.1} s ({:>6.0} req/s)  p50 {w50:7.0} us  p99 {w99:7.0} us  \
         (p99 during swaps / steady: {:.2})",
        swapping.len(),
        swapping.len() as f64 / swapping_secs,
        if s99 > 0.0 { w99 / s99 } else { 0.0 }
    );
    println!(
        "swap latency (deploy call -> new version serving), {} swaps: p50 {:.2} ms  p99 {:.2} ms  max {:.2} ms",
        latencies.len(),
        percentile_ms(&latencies, 50),
        percentile_ms(&latencies, 99),
        latencies.last().map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    );
    let mb = |kib: u64| kib as f64 / 1024.0;
    println!(
        "rss of berth (pid {}): after 10 swaps {:.1} MB, after {} swaps {:.1} MB",
        args.pid,
        mb(rss_10),
        args.swaps,
        mb(rss_end)
    );
    let stuck = end["libraries"]["stuck"].as_array().map_or(0, Vec::len);
    println!("plugin libraries mapped at the end: {} (stuck: {stuck})", end["libraries"]["mapped"]);
    let (failures, stale) = (shared.failures.load(Ordering::Relaxed), shared.stale.load(Ordering::Relaxed));
    println!("stale responses (old version after a swap returned): {stale}");
    if let Some(p) = shared.first_problem.lock().expect("lock").as_ref() {
        println!("first problem: {p}");
    }
    println!(
        "swaps: {}, failed requests: {failures}, rss growth 10->{}: {:.1} MB",
        latencies.len(),
        args.swaps,
        mb(rss_end) - mb(rss_10)
    );
    Ok(failures == 0 && stale == 0)
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("swap-driver: {e}");
            eprintln!("usage: swap-driver --app ADDR --admin ADDR --token T --v1 FILE --v2 FILE --pid PID [--swaps 1000] [--clients 16] [--steady-secs 10] [--warmup-secs 2] [--interval-ms 0]");
            return ExitCode::from(2);
        }
    };
    let rt = match tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("swap-driver: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(args)) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("swap-driver: {e}");
            ExitCode::FAILURE
        }
    }
}
