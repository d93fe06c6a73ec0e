//! `swap-driver`: the measuring half of `ops/bench/swap.sh`.
//!
//! Against a running `berth up` serving the `swap` fixture group (v1) it runs `--clients`
//! keep-alive clients calling `GET /swap/version` in a closed loop, and alternates, `--rounds`
//! times, a steady window (`--steady-secs`, no swaps) with a swapping window (its share of the
//! `--swaps` swaps v1 → v2 → v1 … through the admin API, deploy by path, back to back or
//! `--interval-ms` apart). With `--rate R` the clients together send R requests per second
//! instead of saturating the server. It reports:
//! - request latency p50/p99 of every window, the CPU other processes took during it, and the
//!   median over the undisturbed windows of each kind (same run, alternated: a neighbour's burst
//!   spoils one window, not the comparison);
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
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
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
    rounds: u64,
    steady_secs: u64,
    warmup_secs: u64,
    interval_ms: u64,
    /// Requests per second over all clients (0: each client sends its next request as soon as
    /// the last one is answered, which saturates the server).
    rate: u64,
    /// `/proc/stat` ticks per second.
    hz: u64,
    /// Other processes' CPU (% of one core) above which a window counts as disturbed.
    disturb_max: f64,
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
        rounds: num("rounds", 4)?.max(1),
        steady_secs: num("steady-secs", 5)?,
        warmup_secs: num("warmup-secs", 2)?,
        interval_ms: num("interval-ms", 0)?,
        rate: num("rate", 0)?,
        hz: num("hz", 100)?.max(1),
        disturb_max: num("disturb-max", 8)? as f64,
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

#[derive(Default)]
struct Shared {
    /// Window 0 is the warm-up (not recorded); then steady and swapping windows alternate.
    window: AtomicUsize,
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

/// One client, closed-loop or paced one request per `pace`; returns its latencies in µs, per
/// window.
async fn client(addr: SocketAddr, shared: Arc<Shared>, windows: usize, pace: Option<Duration>) -> Vec<Vec<u32>> {
    let mut recorded = vec![Vec::new(); windows];
    let mut conn = Conn::new(addr);
    let mut ticks = pace.map(|p| {
        let mut t = tokio::time::interval(p);
        t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        t
    });
    while !shared.stop.load(Ordering::Acquire) {
        if let Some(t) = ticks.as_mut() {
            t.tick().await;
        }
        let window = shared.window.load(Ordering::Acquire);
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
        if window > 0 && window < windows {
            recorded[window].push(us);
        }
    }
    recorded
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

/// (busy ticks of the whole machine, ticks of berth, ticks of this driver).
fn cpu_ticks(pid: u32) -> (u64, u64, u64) {
    let busy = std::fs::read_to_string("/proc/stat")
        .ok()
        .and_then(|s| {
            let f: Vec<u64> = s.lines().next()?.split_whitespace().skip(1).filter_map(|v| v.parse().ok()).collect();
            // user nice system idle iowait irq softirq steal
            Some(f.iter().take(8).enumerate().filter(|(i, _)| *i != 3 && *i != 4).map(|(_, v)| v).sum())
        })
        .unwrap_or(0);
    let proc_ticks = |path: String| {
        std::fs::read_to_string(path)
            .ok()
            .and_then(|s| {
                let rest = &s[s.rfind(')')? + 2..];
                let f: Vec<&str> = rest.split_whitespace().collect();
                Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
            })
            .unwrap_or(0)
    };
    (busy, proc_ticks(format!("/proc/{pid}/stat")), proc_ticks("/proc/self/stat".into()))
}

/// One steady or swapping window.
struct Window {
    label: String,
    started: Instant,
    secs: f64,
    ticks: (u64, u64, u64),
    /// % of one core used by other processes.
    others: f64,
}

impl Window {
    fn start(label: String, pid: u32) -> Self {
        Window { label, started: Instant::now(), secs: 0.0, ticks: cpu_ticks(pid), others: 0.0 }
    }
    fn end(&mut self, args: &Args) {
        self.secs = self.started.elapsed().as_secs_f64();
        let (b, s, d) = cpu_ticks(args.pid);
        let others = b.saturating_sub(self.ticks.0) as f64
            - s.saturating_sub(self.ticks.1) as f64
            - d.saturating_sub(self.ticks.2) as f64;
        self.others = (others.max(0.0) * 100.0 / args.hz as f64 / self.secs.max(0.001)).max(0.0);
    }
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

fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

async fn run(args: Args) -> Result<bool, String> {
    let windows = 1 + 2 * args.rounds as usize;
    let shared = Arc::new(Shared::default());
    let pace = (args.rate > 0).then(|| Duration::from_secs_f64(args.clients as f64 / args.rate as f64));
    let tasks: Vec<_> =
        (0..args.clients).map(|_| tokio::spawn(client(args.app, shared.clone(), windows, pace))).collect();
    tokio::time::sleep(Duration::from_secs(args.warmup_secs)).await;

    let (mut admin, mut probe) = (Conn::new(args.admin), Conn::new(args.app));
    let mut latencies = Vec::with_capacity(args.swaps as usize);
    let mut rss_10 = 0u64;
    let mut done = Vec::new();
    let mut seq = 0u64;
    for round in 0..args.rounds {
        let steady_index = 1 + 2 * round as usize;
        let mut w = Window::start(format!("round {} steady  ", round + 1), args.pid);
        shared.window.store(steady_index, Ordering::Release);
        tokio::time::sleep(Duration::from_secs(args.steady_secs)).await;
        w.end(&args);
        done.push(w);

        let until = (args.swaps * (round + 1)).div_ceil(args.rounds);
        let mut w = Window::start(format!("round {} swapping", round + 1), args.pid);
        shared.window.store(steady_index + 1, Ordering::Release);
        while seq < until {
            seq += 1;
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
            if seq == 10 {
                settle(&args, &mut admin).await?;
                rss_10 = rss_kib(args.pid);
            }
            if args.interval_ms > 0 {
                tokio::time::sleep(Duration::from_millis(args.interval_ms)).await;
            }
        }
        w.end(&args);
        done.push(w);
    }
    shared.stop.store(true, Ordering::Release);
    let mut per_window = vec![Vec::new(); windows];
    for t in tasks {
        for (i, v) in t.await.map_err(|e| e.to_string())?.into_iter().enumerate() {
            per_window[i].extend(v);
        }
    }
    let end = settle(&args, &mut admin).await?;
    let rss_end = rss_kib(args.pid);

    let (mut steady_p99, mut swapping_p99, mut all_steady, mut all_swapping) = (vec![], vec![], vec![], vec![]);
    let mut disturbed = 0;
    let mut steady_rates = Vec::new();
    for (i, w) in done.iter().enumerate() {
        let lat = &mut per_window[i + 1];
        lat.sort_unstable();
        let (p50, p99) = (percentile(lat, 50), percentile(lat, 99));
        let quiet = w.others <= args.disturb_max;
        println!(
            "{}: {:>8} requests in {:5.1} s ({:>6.0} req/s)  p50 {p50:6.0} us  p99 {p99:6.0} us  others {:4.1}% of a core{}",
            w.label,
            lat.len(),
            w.secs,
            lat.len() as f64 / w.secs.max(0.001),
            w.others,
            if quiet { "" } else { "  DISTURBED" }
        );
        disturbed += usize::from(!quiet);
        let steady = i % 2 == 0;
        if steady {
            steady_rates.push(lat.len() as f64 / w.secs.max(0.001));
        }
        let (p99s, all) =
            if steady { (&mut steady_p99, &mut all_steady) } else { (&mut swapping_p99, &mut all_swapping) };
        all.push(p99);
        if quiet {
            p99s.push(p99);
        }
    }
    // Medians over the quiet windows; over all of them when every window of a kind was disturbed.
    let all_disturbed = steady_p99.is_empty() || swapping_p99.is_empty();
    let pick = |quiet: Vec<f64>, all: Vec<f64>| if quiet.is_empty() { median(all) } else { median(quiet) };
    let (s99, w99) = (pick(steady_p99, all_steady), pick(swapping_p99, all_swapping));
    let note = match (disturbed, all_disturbed) {
        (0, _) => String::new(),
        (_, false) => format!("; {disturbed} disturbed window(s) (others > {}% of a core) left out", args.disturb_max),
        (_, true) => format!(
            "; DISTURBED: {disturbed} of {} windows had others > {}% of a core, medians include them",
            done.len(),
            args.disturb_max
        ),
    };
    println!(
        "request p99, median of windows: steady {s99:.0} us, during swaps {w99:.0} us (ratio {:.2}){note}",
        if s99 > 0.0 { w99 / s99 } else { 0.0 }
    );
    println!("steady throughput, median of windows: {:.0} req/s", median(steady_rates));
    latencies.sort_unstable();
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
            eprintln!(
                "usage: swap-driver --app ADDR --admin ADDR --token T --v1 FILE --v2 FILE --pid PID [--swaps 1000] \
                 [--clients 16] [--rounds 4] [--steady-secs 5] [--warmup-secs 2] [--interval-ms 0] [--rate 0] \
                 [--hz 100] [--disturb-max 8]"
            );
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
