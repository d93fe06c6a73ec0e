//! Load driver for `ops/bench/shims.sh`: one measured run of one Lambda `bootstrap` under
//! cargo-lambda's emulator (already started by the script, with no bootstrap attached).
//!
//! 1. Cold start: queues one invocation through the Invoke API (`POST
//!    /2015-03-31/functions/_/invocations` blocks until the function answers), waits `--queue-ms`
//!    so the emulator holds it, then spawns the bootstrap (pinned to `--boot-core` between fork
//!    and exec) and times spawn → the complete answer with `Instant`.
//! 2. Warm-up: `--warmup` seconds of back-to-back invocations, `--concurrency` in flight, each on
//!    its own keep-alive HTTP/1.1 connection.
//! 3. Measured: `--duration` seconds of the same; CPU (utime+stime) of the bootstrap, the emulator
//!    and this driver, and the machine's process, irq and steal time, from /proc before and after.
//!
//! Every answer must be byte for byte `--expect`'s content; any other answer fails the run (exit 1).
//! Prints one line of `key=value` pairs on stdout.
//!
//! Usage: lambda-driver --port P --emu-pid PID --root DIR --event FILE --expect FILE
//!        [--env K=V]... [--boot-core 0] [--warmup 3] [--duration 10] [--concurrency 1]
//!        [--queue-ms 200] [--log FILE]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The bootstrap's pid once started: killed when the run fails, so that none is left behind.
static CHILD: AtomicU32 = AtomicU32::new(0);

struct Args {
    port: u16,
    emu_pid: u32,
    root: PathBuf,
    event: Vec<u8>,
    expect: Vec<u8>,
    env: Vec<(String, String)>,
    boot_core: usize,
    warmup: f64,
    duration: f64,
    concurrency: usize,
    queue_ms: u64,
    log: Option<PathBuf>,
}

fn die(msg: impl std::fmt::Display) -> ! {
    eprintln!("lambda-driver: {msg}");
    let pid = CHILD.load(Ordering::SeqCst);
    if pid != 0 {
        // SAFETY: kill(2) on the pid of our own child, not yet reaped.
        unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
    }
    std::process::exit(1);
}

fn parse_args() -> Args {
    let mut it = std::env::args().skip(1);
    let (mut port, mut emu_pid, mut root, mut event, mut expect) = (None, None, None, None, None);
    let mut a = Args {
        port: 0,
        emu_pid: 0,
        root: PathBuf::new(),
        event: Vec::new(),
        expect: Vec::new(),
        env: Vec::new(),
        boot_core: 0,
        warmup: 3.0,
        duration: 10.0,
        concurrency: 1,
        queue_ms: 200,
        log: None,
    };
    while let Some(flag) = it.next() {
        let mut val = || it.next().unwrap_or_else(|| die(format!("{flag} needs a value")));
        let num = |v: String| v.parse::<f64>().unwrap_or_else(|_| die(format!("not a number: {v}")));
        match flag.as_str() {
            "--port" => port = Some(num(val()) as u16),
            "--emu-pid" => emu_pid = Some(num(val()) as u32),
            "--root" => root = Some(PathBuf::from(val())),
            "--event" => event = Some(read(val())),
            "--expect" => expect = Some(read(val())),
            "--env" => {
                let kv = val();
                let (k, v) = kv.split_once('=').unwrap_or_else(|| die(format!("--env wants K=V, got {kv}")));
                a.env.push((k.to_owned(), v.to_owned()));
            }
            "--boot-core" => a.boot_core = num(val()) as usize,
            "--warmup" => a.warmup = num(val()),
            "--duration" => a.duration = num(val()),
            "--concurrency" => a.concurrency = (num(val()) as usize).max(1),
            "--queue-ms" => a.queue_ms = num(val()) as u64,
            "--log" => a.log = Some(PathBuf::from(val())),
            _ => die(format!("unknown argument {flag}")),
        }
    }
    a.port = port.unwrap_or_else(|| die("--port is required"));
    a.emu_pid = emu_pid.unwrap_or_else(|| die("--emu-pid is required"));
    a.root = root.unwrap_or_else(|| die("--root is required"));
    a.event = event.unwrap_or_else(|| die("--event is required"));
    a.expect = expect.unwrap_or_else(|| die("--expect is required"));
    // The files end with a newline when written by a shell; the wire has none.
    while a.expect.last().is_some_and(u8::is_ascii_whitespace) {
        a.expect.pop();
    }
    a
}

fn read(path: String) -> Vec<u8> {
    std::fs::read(&path).unwrap_or_else(|e| die(format!("reading {path}: {e}")))
}

/// A keep-alive HTTP/1.1 connection to the emulator's Invoke API.
struct Conn {
    reader: BufReader<TcpStream>,
    request: Arc<Vec<u8>>,
    line: String,
    body: Vec<u8>,
}

impl Conn {
    fn open(port: u16, request: Arc<Vec<u8>>) -> Conn {
        let stream = TcpStream::connect(("127.0.0.1", port))
            .unwrap_or_else(|e| die(format!("connecting to the emulator on port {port}: {e}")));
        stream.set_nodelay(true).ok();
        stream.set_read_timeout(Some(Duration::from_secs(70))).ok();
        Conn { reader: BufReader::with_capacity(16 * 1024, stream), request, line: String::new(), body: Vec::new() }
    }

    fn send(&mut self) {
        self.reader.get_mut().write_all(&self.request).unwrap_or_else(|e| die(format!("sending an invocation: {e}")));
    }

    /// Reads one response; returns its status (the body is in `self.body`).
    fn receive(&mut self) -> u16 {
        self.line.clear();
        self.reader.read_line(&mut self.line).unwrap_or_else(|e| die(format!("reading the answer: {e}")));
        if self.line.is_empty() {
            die("the emulator closed the connection");
        }
        let status: u16 = self
            .line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| die(format!("bad status line {:?}", self.line)));
        let (mut length, mut chunked, mut close) = (None, false, false);
        loop {
            self.line.clear();
            self.reader.read_line(&mut self.line).unwrap_or_else(|e| die(format!("reading the answer: {e}")));
            let h = self.line.trim_end();
            if h.is_empty() {
                break;
            }
            let Some((name, value)) = h.split_once(':') else { continue };
            let value = value.trim();
            if name.eq_ignore_ascii_case("content-length") {
                length = value.parse::<usize>().ok();
            } else if name.eq_ignore_ascii_case("transfer-encoding") && value.eq_ignore_ascii_case("chunked") {
                chunked = true;
            } else if name.eq_ignore_ascii_case("connection") && value.eq_ignore_ascii_case("close") {
                close = true;
            }
        }
        self.body.clear();
        if chunked {
            loop {
                self.line.clear();
                self.reader.read_line(&mut self.line).unwrap_or_else(|e| die(format!("reading a chunk: {e}")));
                let size = usize::from_str_radix(self.line.trim().split(';').next().unwrap_or(""), 16)
                    .unwrap_or_else(|_| die(format!("bad chunk size {:?}", self.line)));
                let start = self.body.len();
                self.body.resize(start + size + 2, 0);
                self.reader
                    .read_exact(&mut self.body[start..])
                    .unwrap_or_else(|e| die(format!("reading a chunk: {e}")));
                self.body.truncate(start + size);
                if size == 0 {
                    break;
                }
            }
        } else if let Some(n) = length {
            self.body.resize(n, 0);
            self.reader.read_exact(&mut self.body).unwrap_or_else(|e| die(format!("reading the body: {e}")));
        } else {
            die("an answer with neither content-length nor chunked encoding");
        }
        if close {
            die("the emulator closed the keep-alive connection");
        }
        status
    }

    fn check(&self, status: u16, expect: &[u8]) {
        if status != 200 || self.body != expect {
            die(format!(
                "unexpected answer (status {status}): {}\nexpected: {}",
                String::from_utf8_lossy(&self.body),
                String::from_utf8_lossy(expect)
            ));
        }
    }

    /// One invocation; its latency.
    fn invoke(&mut self, expect: &[u8]) -> Duration {
        let t = Instant::now();
        self.send();
        let status = self.receive();
        let took = t.elapsed();
        self.check(status, expect);
        took
    }
}

/// utime + stime of a process (all its threads), in clock ticks.
fn proc_cpu(pid: &str) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .unwrap_or_else(|e| die(format!("reading /proc/{pid}/stat: {e}")));
    let rest = &stat[stat.rfind(')').map_or(0, |i| i + 2)..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // Fields 14 and 15 of the file; `rest` starts at field 3.
    f[11].parse::<u64>().unwrap_or(0) + f[12].parse::<u64>().unwrap_or(0)
}

/// Clock ticks of the whole machine: (user + nice + system, irq + softirq, steal). Processes'
/// utime + stime add up to the first; softirq (loopback TCP here) and steal (the hypervisor, which
/// on this VM grows with every cross-core wake-up) belong to no process.
fn machine_ticks() -> (u64, u64, u64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_else(|e| die(format!("reading /proc/stat: {e}")));
    let line = stat.lines().next().unwrap_or_default();
    let v: Vec<u64> = line.split_whitespace().skip(1).map(|x| x.parse().unwrap_or(0)).collect();
    (v[0] + v[1] + v[2], v[5] + v[6], v[7])
}

fn status_kb(pid: u32, key: &str) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    s.lines().find_map(|l| l.strip_prefix(key)?.trim().trim_end_matches("kB").trim().parse().ok()).unwrap_or(0)
}

fn spawn_bootstrap(a: &Args) -> Child {
    let boot = a.root.join("bootstrap");
    let mut cmd = Command::new(&boot);
    cmd.current_dir(&a.root).env_clear().stdin(Stdio::null());
    cmd.env("PATH", std::env::var("PATH").unwrap_or_default());
    for (k, v) in &a.env {
        cmd.env(k, v);
    }
    match &a.log {
        Some(p) => {
            let f = std::fs::File::create(p).unwrap_or_else(|e| die(format!("creating {}: {e}", p.display())));
            let g = f.try_clone().unwrap_or_else(|e| die(e));
            cmd.stdout(f).stderr(g);
        }
        None => {
            cmd.stdout(Stdio::null()).stderr(Stdio::null());
        }
    }
    let core = a.boot_core;
    // SAFETY: only sched_setaffinity (async-signal-safe) runs between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            libc::CPU_SET(core, &mut set);
            if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = cmd.spawn().unwrap_or_else(|e| die(format!("starting {}: {e}", boot.display())));
    CHILD.store(child.id(), Ordering::SeqCst);
    child
}

/// `secs` of back-to-back invocations on `conns`, one thread each; the latencies (µs).
fn drive(conns: Vec<Conn>, secs: f64, expect: &Arc<Vec<u8>>) -> (Vec<Conn>, Vec<u32>) {
    let until = Instant::now() + Duration::from_secs_f64(secs);
    let handles: Vec<_> = conns
        .into_iter()
        .map(|mut c| {
            let expect = Arc::clone(expect);
            std::thread::spawn(move || {
                let mut lat = Vec::with_capacity(1 << 16);
                while Instant::now() < until {
                    lat.push(c.invoke(&expect).as_micros().min(u32::MAX as u128) as u32);
                }
                (c, lat)
            })
        })
        .collect();
    let mut conns = Vec::new();
    let mut all = Vec::new();
    for h in handles {
        let (c, lat) = h.join().unwrap_or_else(|_| die("a load thread panicked"));
        conns.push(c);
        all.extend(lat);
    }
    (conns, all)
}

fn main() {
    let a = parse_args();
    let request = {
        let mut r = format!(
            "POST /2015-03-31/functions/_/invocations HTTP/1.1\r\nhost: 127.0.0.1:{}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
            a.port,
            a.event.len()
        )
        .into_bytes();
        r.extend_from_slice(&a.event);
        Arc::new(r)
    };
    let expect = Arc::new(a.expect.clone());
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;

    // 1. Cold start: the invocation waits in the emulator before the bootstrap exists.
    let mut first = Conn::open(a.port, Arc::clone(&request));
    first.send();
    std::thread::sleep(Duration::from_millis(a.queue_ms));
    let t0 = Instant::now();
    let mut child = spawn_bootstrap(&a);
    let status = first.receive();
    let cold = t0.elapsed();
    if let Ok(Some(st)) = child.try_wait() {
        die(format!("the bootstrap exited ({st}) during its cold start"));
    }
    first.check(status, &expect);
    // A second invocation on the fresh process: the first warm one.
    let second = first.invoke(&expect);
    let pid = child.id();
    let boot_pid = pid.to_string();
    let emu_pid = a.emu_pid.to_string();
    let rss_idle = status_kb(pid, "VmRSS:");

    // 2. Warm-up.
    let mut conns = vec![first];
    conns.extend((1..a.concurrency).map(|_| Conn::open(a.port, Arc::clone(&request))));
    let (conns, _) = drive(conns, a.warmup, &expect);

    // 3. Measured.
    let (b0, e0, s0, m0) = (proc_cpu(&boot_pid), proc_cpu(&emu_pid), proc_cpu("self"), machine_ticks());
    let t = Instant::now();
    let (conns, mut lat) = drive(conns, a.duration, &expect);
    let secs = t.elapsed().as_secs_f64();
    let (b1, e1, s1, m1) = (proc_cpu(&boot_pid), proc_cpu(&emu_pid), proc_cpu("self"), machine_ticks());
    let rss = status_kb(pid, "VmRSS:");
    let hwm = status_kb(pid, "VmHWM:");
    if let Ok(Some(st)) = child.try_wait() {
        die(format!("the bootstrap exited ({st}) during the run"));
    }
    let _ = child.kill();
    let _ = child.wait();
    CHILD.store(0, Ordering::SeqCst);
    drop(conns);

    let n = lat.len();
    if n == 0 {
        die("no invocation was answered in the measured window");
    }
    lat.sort_unstable();
    let pct = |p: f64| lat[((n as f64 * p) as usize).min(n - 1)];
    let per_inv = |ticks: u64| ticks as f64 * 1e6 / hz / n as f64;
    println!(
        "cold_ms={:.3} second_us={} invocations={n} secs={secs:.3} ips={:.1} p50_us={} p99_us={} max_us={} \
         boot_us_per_inv={:.2} emu_us_per_inv={:.2} driver_us_per_inv={:.2} \
         boot_ticks={} emu_ticks={} driver_ticks={} proc_ticks={} irq_ticks={} steal_ticks={} hz={hz} rss_idle_kb={rss_idle} rss_kb={rss} hwm_kb={hwm}",
        cold.as_secs_f64() * 1e3,
        second.as_micros(),
        n as f64 / secs,
        pct(0.5),
        pct(0.99),
        lat[n - 1],
        per_inv(b1 - b0),
        per_inv(e1 - e0),
        per_inv(s1 - s0),
        b1 - b0,
        e1 - e0,
        s1 - s0,
        m1.0 - m0.0,
        m1.1 - m0.1,
        m1.2 - m0.2,
    );
}
