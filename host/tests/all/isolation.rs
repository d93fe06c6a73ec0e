//! Process isolation (`isolation = "process"`): the fixture `crashy` runs in a supervised
//! worker next to `examples/hello` in the host's process. Its handlers segfault, abort, exit,
//! overflow the stack, leak past the worker's memory limit and spin without awaiting; the
//! in-process group sees no failed request throughout, the isolated one answers again after
//! each crash, and the spinning call gets its 504 at its timeout.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::support::{self, group, metric, TestHost};

/// `[workers]` for a host running inside the test binary: workers are `berth worker`.
fn workers() -> String {
    format!("[workers]\nbinary = \"{}\"\n", env!("CARGO_BIN_EXE_berth"))
}

async fn crashy(worker: &str) -> String {
    let file = support::fixture("crashy").await;
    format!(
        "{}[services.state]\nkind = \"memory-kv\"\n[services.seen]\nkind = \"memory-kv\"\n{}[[groups]]\nfile = \"{}\"\nisolation = \"process\"\n[groups.worker]\n{worker}\n",
        workers(),
        group("examples/hello"),
        file.display()
    )
}

async fn pid(h: &TestHost) -> u64 {
    let r = h.get("/crashy/pid").await;
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()["pid"].as_u64().unwrap()
}

/// Polls `/crashy/ok` until the isolated group answers again.
async fn answers_again(h: &TestHost) -> Duration {
    let started = Instant::now();
    loop {
        let r = h.get("/crashy/ok").await;
        if r.status == 200 {
            assert_eq!(r.text(), "ok");
            return started.elapsed();
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the isolated group did not come back: {} {}",
            r.status,
            r.text()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Keeps `GET /hello/world` busy from 4 clients; returns (ok, failed) when `stop` is set.
fn load(addr: std::net::SocketAddr, stop: Arc<AtomicBool>) -> tokio::task::JoinHandle<(u64, Vec<String>)> {
    tokio::spawn(async move {
        let ok = Arc::new(AtomicU64::new(0));
        let mut clients = Vec::new();
        for _ in 0..4 {
            let (stop, ok) = (stop.clone(), ok.clone());
            clients.push(tokio::spawn(async move {
                let mut failed = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    let r = support::request(addr, "GET", "/hello/world", &[], b"").await;
                    if r.status == 200 && r.text() == r#"{"message":"Hello, world!"}"# {
                        ok.fetch_add(1, Ordering::Relaxed);
                    } else {
                        failed.push(format!("{} {}", r.status, r.text()));
                    }
                }
                failed
            }));
        }
        let mut failed = Vec::new();
        for c in clients {
            failed.extend(c.await.unwrap());
        }
        (ok.load(Ordering::Relaxed), failed)
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crashes_and_runaways_of_an_isolated_group_leave_the_host_and_its_other_groups_serving() {
    let h = TestHost::start(&crashy("memory = \"256MiB\"\nmax_crashes = 100\nkill_grace = \"300ms\"").await).await;
    let stop = Arc::new(AtomicBool::new(false));
    let hello = load(h.addr, stop.clone());

    let first = pid(&h).await;
    assert_ne!(first, u64::from(std::process::id()), "the isolated group runs in its own process");
    // Services reach the host's backends from the worker, and their state outlives a crash.
    let count = |h: &TestHost| {
        let addr = h.addr;
        async move { support::request(addr, "POST", "/crashy/count/visits", &[], b"").await.json()["value"].as_i64() }
    };
    assert_eq!(count(&h).await, Some(1));
    assert_eq!(count(&h).await, Some(2));

    let crashes = [
        ("segv", "signal 11 (SIGSEGV)"),
        ("abort", "signal 6 (SIGABRT)"),
        ("exit", "exited with status 3"),
        ("overflow", "(SIGSEGV)|(SIGABRT)"),
        ("leak", "(SIGABRT)|(SIGKILL)|(SIGSEGV)"),
    ];
    let mut last = first;
    for (route, how) in crashes {
        let r = h.get(&format!("/crashy/{route}")).await;
        assert_eq!(r.status, 502, "{route}: {}", r.text());
        let body = r.json();
        assert_eq!(body["error"], "worker_crashed", "{route}: {body}");
        let message = body["message"].as_str().unwrap();
        assert!(message.contains("group `crashy`"), "{route}: {message}");
        assert!(how.split('|').any(|h| message.contains(h)), "{route}: `{message}` should say {how}");
        answers_again(&h).await;
        let now = pid(&h).await;
        assert_ne!(now, last, "{route}: a new worker serves");
        last = now;
    }
    assert_eq!(count(&h).await, Some(3), "the KV store is the host's: its state survived every crash");

    // A handler that spins for 8 s without awaiting gets its 504 at its 1 s timeout, and its
    // worker is replaced once it does not give the call up.
    let started = Instant::now();
    let r = h.get("/crashy/spin?ms=8000").await;
    let took = started.elapsed();
    assert_eq!(r.status, 504, "{}", r.text());
    assert!(
        took >= Duration::from_millis(900) && took <= Duration::from_millis(1100),
        "504 after {took:?}, not at 1 s"
    );
    // Meanwhile the worker's other thread still answers; within the grace the watchdog kills
    // the worker and a new one serves.
    loop {
        let r = h.get("/crashy/pid").await;
        if r.status == 200 && r.json()["pid"].as_u64() != Some(last) {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(5), "the spinning worker was not replaced: {}", r.text());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    stop.store(true, Ordering::Relaxed);
    let (ok, failed) = hello.await.unwrap();
    assert!(
        failed.is_empty(),
        "the in-process group failed {} requests: {:?}",
        failed.len(),
        &failed[..failed.len().min(5)]
    );
    assert!(ok > 100, "the load ran ({ok} requests)");

    let ready = h.readiness();
    let crashy = ready.serving.iter().find(|s| s.group == "crashy").unwrap();
    assert_eq!(crashy.isolation, "process");
    let worker = crashy.worker.as_ref().unwrap();
    assert_eq!((worker.state.as_str(), worker.restarts), ("running", 6), "{worker:?}");
    assert!(worker.pid > 0 && worker.last_exit.as_deref().unwrap().contains("watchdog"), "{worker:?}");
    assert_eq!(ready.serving.iter().find(|s| s.group == "hello").unwrap().isolation, "none");
    let metrics = h.get("/metrics").await.text();
    assert_eq!(metric(&metrics, "berth_worker_restarts_total{group=\"crashy\"}"), Some(6.0));
    assert_eq!(metric(&metrics, "berth_worker_watchdog_kills_total{group=\"crashy\"}"), Some(1.0));
    assert_eq!(
        metric(&metrics, "berth_worker_crashes_total{group=\"crashy\",reason=\"SIGSEGV\"}").map(|v| v >= 1.0),
        Some(true)
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_that_keeps_crashing_opens_the_circuit_instead_of_restarting_in_a_storm() {
    let h = TestHost::start(&crashy("max_crashes = 2\ncrash_window = \"60s\"\ncircuit_open = \"3s\"").await).await;
    assert_eq!(h.get("/crashy/abort").await.status, 502);
    answers_again(&h).await;
    assert_eq!(h.get("/crashy/abort").await.status, 502);
    let r = h.get("/crashy/ok").await;
    assert_eq!(r.status, 503, "{}", r.text());
    assert_eq!(r.json()["error"], "group_unavailable");
    assert!(r.text().contains("SIGABRT"), "{}", r.text());
    let retry: u64 = r.header("retry-after").expect("retry-after").parse().unwrap();
    assert!((1..=3).contains(&retry), "retry-after {retry}");
    assert_eq!(
        h.readiness().serving.iter().find(|s| s.group == "crashy").unwrap().worker.as_ref().unwrap().state,
        "circuit_open"
    );
    // The in-process group is unaffected, and after the circuit's time a new worker serves.
    assert_eq!(h.get("/hello/world").await.status, 200);
    tokio::time::sleep(Duration::from_secs(3)).await;
    answers_again(&h).await;
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queue_message_whose_handler_crashes_its_worker_is_redelivered_and_handled() {
    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let stream = format!("berth-test-isolation-{}-{}", std::process::id(), berth_core_nanos());
    let extra = format!(
        "{}[queues.jobs]\nkind = \"redis\"\nurl = \"{url}\"\nstream = \"{stream}\"\nconcurrency = 4\nmax_attempts = 4\n\
         backoff_base = \"20ms\"\nbackoff_max = \"200ms\"\nvisibility_timeout = \"2s\"\n",
        crashy("max_crashes = 100").await
    );
    let h = TestHost::start(&extra).await;
    let client = redis::Client::open(url.as_str()).unwrap();
    let mut c = client.get_multiplexed_async_connection().await.unwrap();
    let ids: Vec<String> = (0..20).map(|i| format!("m-{i}")).collect();
    for (i, id) in ids.iter().enumerate() {
        let payload = if i % 5 == 0 { r#"{"crash": true}"# } else { "{}" };
        redis::cmd("XADD")
            .arg(&stream)
            .arg("*")
            .arg("data")
            .arg(payload)
            .arg("ce-id")
            .arg(id)
            .query_async::<()>(&mut c)
            .await
            .unwrap();
    }
    let started = Instant::now();
    let report = loop {
        let r = h.get("/crashy/report").await;
        if r.status == 200 && r.json()["seen"].as_array().map_or(0, Vec::len) == ids.len() {
            break r.json();
        }
        assert!(started.elapsed() < Duration::from_secs(60), "not every message was handled: {}", r.text());
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let mut seen: Vec<String> =
        report["seen"].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_owned()).collect();
    seen.sort();
    let mut want = ids.clone();
    want.sort();
    assert_eq!(seen, want, "every message handled, the crashing ones after their redelivery");
    let restarts =
        h.readiness().serving.iter().find(|s| s.group == "crashy").unwrap().worker.as_ref().unwrap().restarts;
    assert!(restarts >= 1, "the crashing messages really crashed the worker");
    h.stop().await;
    let _: () = redis::cmd("DEL").arg(&stream).query_async(&mut c).await.unwrap();
}

fn berth_core_nanos() -> u32 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_in_process_handler_that_runs_past_its_timeout_without_yielding_is_reported() {
    let file = support::fixture("crashy").await;
    let h = TestHost::start(&format!(
        "[services.state]\nkind = \"memory-kv\"\n[services.seen]\nkind = \"memory-kv\"\n[[groups]]\nfile = \"{}\"\n",
        file.display()
    ))
    .await;
    // In the host's process nothing can cut a call off between awaits: it answers late, and
    // the operator is told (log and metric) to isolate the group.
    let r = h.get("/crashy/spin?ms=1300").await;
    assert_eq!((r.status, r.text().as_str()), (200, "spun"));
    let metrics = h.get("/metrics").await.text();
    let runaway = "berth_function_errors_total{function=\"spin\",group=\"crashy\",kind=\"runaway\"}";
    assert_eq!(
        metric(&metrics, runaway),
        Some(1.0),
        "{}",
        metrics.lines().filter(|l| l.contains("runaway")).collect::<Vec<_>>().join("\n")
    );
    assert_eq!(h.readiness().serving[0].isolation, "none");
    h.stop().await;
}

/// Exported services cross the worker boundary both ways: `welcome` calls the `users` service
/// with `users` in a worker and `welcome` in the host, then the other way round. The provider's
/// answers (a user, `None` for an unknown id) and its KV store (scoped to it in the host) are
/// the same as in-process.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exported_services_are_served_from_and_called_from_an_isolated_group() {
    support::init_logs();
    let isolated = "isolation = \"process\"\n";
    for (users, welcome) in [(isolated, ""), ("", isolated)] {
        let extra = format!(
            "{}[services.userstore]\nkind = \"memory-kv\"\n{}{users}{}{welcome}",
            workers(),
            group("plugins/users"),
            group("examples/welcome")
        );
        let h = TestHost::start(&extra).await;
        let which = if users.is_empty() { "welcome" } else { "users" };
        let serving = h.readiness().serving;
        let worker = serving.iter().find(|v| v.group == which).expect("the isolated group serves");
        assert_eq!(worker.isolation, "process", "{serving:?}");
        assert!(worker.worker.as_ref().is_some_and(|w| w.pid > 0), "{serving:?}");

        let r = h
            .send(
                "POST",
                "/users",
                &[("content-type", "application/json")],
                br#"{"name":"Ann","email":"ann@example.com"}"#,
            )
            .await;
        assert!(r.status == 200 || r.status == 201, "{} {}", r.status, r.text());
        let r = h.get("/welcome/1").await;
        assert_eq!(r.status, 200, "{which} isolated: {}", r.text());
        assert_eq!(r.json()["message"], "Welcome back, Ann!", "{which} isolated");
        let r = h.get("/welcome/2").await;
        assert_eq!(r.status, 404, "{which} isolated: {}", r.text());
        assert!(r.text().contains("no user 2"), "{which} isolated: {}", r.text());
        h.stop().await;
    }
}
