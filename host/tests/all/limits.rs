//! Body limits (413), timeouts (504) and the concurrency limit (503).

use std::time::{Duration, Instant};

use crate::support::{group, raw_request, TestHost};

#[tokio::test]
async fn bodies_over_the_function_limit_get_413_and_under_it_pass() {
    let h = TestHost::start(&group("examples/hello")).await;
    // `upload` declares body_limit = "1KiB".
    let res = h.send("POST", "/upload", &[], &[b'x'; 1024]).await;
    assert_eq!(res.status, 200, "{}", res.text());
    assert_eq!(res.json()["bytes"], 1024);
    let res = h.send("POST", "/upload", &[], &[b'x'; 1025]).await;
    assert_eq!(res.status, 413);
    assert_eq!(res.json()["error"], "body_too_large");

    // Chunked, with no Content-Length to check up front: the streaming limit catches it.
    let chunk = vec![b'y'; 2048];
    let mut raw = format!(
        "POST /upload HTTP/1.1\r\nHost: t\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n",
        chunk.len()
    )
    .into_bytes();
    raw.extend_from_slice(&chunk);
    raw.extend_from_slice(b"\r\n0\r\n\r\n");
    let res = raw_request(h.addr, &raw).await;
    assert_eq!(res.status, 413, "{}", res.text());

    // The default limit (6 MiB) applies to functions without their own. A declared length over
    // the limit is refused before any of the body is read (so only the head is sent here).
    let head = format!(
        "POST /echo HTTP/1.1\r\nHost: t\r\nConnection: close\r\nContent-Length: {}\r\n\r\n",
        6 * 1024 * 1024 + 1
    );
    let res = raw_request(h.addr, head.as_bytes()).await;
    assert_eq!(res.status, 413, "{}", res.text());
    assert!(res.json()["message"].as_str().unwrap().contains("6291456 bytes"), "{}", res.text());
    assert_eq!(h.get("/hello/still-serving").await.status, 200);
    h.stop().await;
}

#[tokio::test]
async fn config_overrides_the_body_limit_per_function() {
    let h =
        TestHost::start(&format!("{}[groups.functions.upload]\nbody_limit = \"10B\"\n", group("examples/hello"))).await;
    assert_eq!(h.send("POST", "/upload", &[], b"0123456789").await.status, 200);
    assert_eq!(h.send("POST", "/upload", &[], b"0123456789a").await.status, 413);
    h.stop().await;
}

#[tokio::test]
async fn a_function_past_its_timeout_gets_504_and_the_host_keeps_serving() {
    let h =
        TestHost::start(&format!("{}[groups.functions.slow]\ntimeout = \"200ms\"\n", group("examples/hello"))).await;
    let started = Instant::now();
    let res = h.get("/slow?ms=10000").await;
    assert_eq!(res.status, 504, "{}", res.text());
    assert_eq!(res.json()["error"], "timeout");
    assert!(started.elapsed() < Duration::from_secs(5), "took {:?}", started.elapsed());
    assert_eq!(h.get("/slow?ms=10").await.status, 200);
    let metrics = h.get("/metrics").await.text();
    assert!(
        metrics.contains(r#"berth_function_errors_total{function="slow",group="hello",kind="timeout"} 1"#),
        "{metrics}"
    );
    h.stop().await;
}

#[tokio::test]
async fn the_concurrency_limit_answers_503_at_once_instead_of_queueing() {
    let h = TestHost::start_with("max_concurrency = 2", &group("examples/hello")).await;
    let addr = h.addr;
    let calls: Vec<_> = (0..6)
        .map(|_| tokio::spawn(async move { crate::support::request(addr, "GET", "/slow?ms=800", &[], b"").await }))
        .collect();
    let mut ok = 0;
    let mut rejected = 0;
    for c in calls {
        let res = c.await.unwrap();
        match res.status {
            200 => ok += 1,
            503 => {
                assert_eq!(res.json()["error"], "overloaded");
                rejected += 1;
            }
            other => panic!("unexpected status {other}: {}", res.text()),
        }
    }
    assert_eq!((ok, rejected), (2, 4));
    // Once the slots are free again, calls succeed.
    assert_eq!(h.get("/hello/again").await.status, 200);
    h.stop().await;
}

/// `berth up` raises its soft open-file limit to the hard one: each connection takes two
/// descriptors (the socket and the header-read watch's handle on it), so a host started with a
/// small soft limit (256 here) still serves more keep-alive connections than that at once.
#[tokio::test]
async fn a_small_soft_open_file_limit_is_raised_so_connections_are_not_capped_by_it() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    const SOFT: u64 = 256;
    const CONNECTIONS: usize = 300;
    let hard = std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|l| l.lines().find(|l| l.starts_with("Max open files")).map(str::to_owned))
        .and_then(|l| l.split_whitespace().nth(4).and_then(|h| h.parse::<u64>().ok()));
    let Some(hard) = hard.filter(|h| *h > (CONNECTIONS as u64) * 2 + 100) else {
        eprintln!("skipped: the hard open-file limit here is too low to show the difference");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("berth.toml");
    std::fs::write(
        &config,
        crate::support::base_config(dir.path(), "", &group("examples/hello"))
            .replace("log = \"warn\"", "log = \"info\""),
    )
    .unwrap();
    let mut child = std::process::Command::new("sh")
        .args(["-c", &format!("ulimit -Sn {SOFT} && exec \"$0\" up --config \"$1\"")])
        .arg(env!("CARGO_BIN_EXE_berth"))
        .arg(&config)
        .env("NO_COLOR", "1")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn berth");
    let addr = crate::support::wait_ready(&mut child);
    // Killed however the test ends (a failed assertion must not leave it serving).
    struct KillOnDrop(std::process::Child);
    impl Drop for KillOnDrop {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let child = KillOnDrop(child);
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", child.0.id())).unwrap();
    let soft_now: u64 = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(3)?.parse().ok())
        .expect("open-file limit line");
    assert_eq!(soft_now, hard, "berth kept its soft limit of {SOFT}: {limits}");

    let mut open = Vec::new();
    for i in 0..CONNECTIONS {
        let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
        s.write_all(b"GET /hello/c HTTP/1.1\r\nhost: t\r\n\r\n").await.unwrap();
        let mut buf = [0u8; 512];
        let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf)).await.expect("an answer").unwrap();
        assert!(buf[..n].starts_with(b"HTTP/1.1 200"), "connection {i}: {:?}", String::from_utf8_lossy(&buf[..n]));
        open.push(s);
    }
    drop(child);
}
