//! Failed-token limiting on every token-checked surface (admin API, `/invoke/`,
//! `[middleware.auth]`): after `[auth_limit] failures` wrong tokens from one address the next
//! attempt is 429 `too_many_attempts` with `retry-after` even with the right token; other
//! addresses (a client socket bound to 127.0.0.2: all of 127/8 is loopback on Linux) and other
//! surfaces are unaffected; the window ends on the limiter's own clock (advanced, not waited
//! for); the metrics count. And the start refused when `/invoke/` would be reachable off
//! loopback without `server.invoke_token`.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use berth_host::config::BerthConfig;
use berth_host::platforms::Platform;
use berth_host::server::{self, RunningHost};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::{base_config, init_logs, metric, workspace, Res};

const ADMIN_TOKEN: &str = "admin-limit-token-0123456789";
const INVOKE_TOKEN: &str = "invoke-limit-token-0123456789";
const ROUTE_TOKEN: &str = "route-limit-token-0123456789";

struct Host {
    host: RunningHost,
    _dir: tempfile::TempDir,
}

fn config(dir: &std::path::Path, server: &str, extra: &str) -> BerthConfig {
    let text = base_config(dir, server, extra).replace(
        "[admin]\nlisten = \"127.0.0.1:0\"\n",
        &format!("[admin]\nlisten = \"127.0.0.1:0\"\ntoken = \"{ADMIN_TOKEN}\"\n"),
    );
    BerthConfig::parse(&text, &workspace(), &BTreeMap::new()).expect("test config parses")
}

async fn start(server: &str, extra: &str) -> Host {
    init_logs();
    let dir = tempfile::tempdir().unwrap();
    let host = server::start(config(dir.path(), server, extra)).await.expect("host starts");
    Host { host, _dir: dir }
}

/// One request on a fresh connection whose local address is `from` (a loopback address).
async fn from(from: &str, addr: SocketAddr, method: &str, path: &str, headers: &[(&str, &str)]) -> Res {
    let local: IpAddr = from.parse().unwrap();
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::new(local, 0)).expect("bind the client to a loopback address");
    let mut stream = socket.connect(addr).await.expect("connect to the test host");
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: 0\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), stream.read_to_end(&mut buf)).await.expect("answer").unwrap();
    let split = buf.windows(4).position(|w| w == b"\r\n\r\n").expect("a response head");
    let head = String::from_utf8_lossy(&buf[..split]).into_owned();
    let mut lines = head.lines();
    let status = lines.next().and_then(|l| l.split(' ').nth(1)).and_then(|s| s.parse().ok()).expect("status");
    let headers = lines
        .filter_map(|l| l.split_once(':').map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned())))
        .collect();
    Res { status, headers, body: buf[split + 4..].to_vec() }
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

async fn metrics(h: &Host) -> String {
    from("127.0.0.1", h.host.addr, "GET", "/metrics", &[]).await.text()
}

fn counted(text: &str, name: &str, surface: &str) -> f64 {
    metric(text, &format!("{name}{{surface=\"{surface}\"}}")).unwrap_or(0.0)
}

fn assert_throttled(res: &Res, what: &str) {
    assert_eq!(res.status, 429, "{what}: {}", res.text());
    assert_eq!(res.json()["error"], "too_many_attempts", "{what}");
    let retry: u64 = res.header("retry-after").expect("retry-after").parse().expect("seconds");
    assert!((1..=60).contains(&retry), "{what}: retry-after {retry}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_api_refuses_an_address_after_too_many_wrong_tokens_until_the_window_ends() {
    let h = start(
        &format!("invoke_token = \"{INVOKE_TOKEN}\"\ninvoke_loopback_exempt = false\n"),
        "[auth_limit]\nfailures = 3\nwindow = \"60s\"\n",
    )
    .await;
    let admin = h.host.admin_addr.expect("admin API enabled");
    let (right, wrong) = (bearer(ADMIN_TOKEN), bearer("admin-limit-token-0123456780"));
    for i in 0..3 {
        let res = from("127.0.0.1", admin, "GET", "/groups", &[("authorization", &wrong)]).await;
        assert_eq!(res.status, 401, "attempt {i}: {}", res.text());
    }
    let res = from("127.0.0.1", admin, "GET", "/groups", &[("authorization", &right)]).await;
    assert_throttled(&res, "the right token after 3 wrong ones");
    assert_throttled(&from("127.0.0.1", admin, "GET", "/groups", &[]).await, "still refused");

    let other = from("127.0.0.2", admin, "GET", "/groups", &[("authorization", &right)]).await;
    assert_eq!(other.status, 200, "another address is unaffected: {}", other.text());
    let invoke_token = bearer(INVOKE_TOKEN);
    let invoke = from("127.0.0.1", h.host.addr, "GET", "/invoke/results/x", &[("authorization", &invoke_token)]).await;
    assert_eq!(invoke.status, 404, "another surface is unaffected (authorized, then: no such result)");

    let text = metrics(&h).await;
    assert_eq!(counted(&text, "berth_auth_failures_total", "admin"), 3.0, "{text}");
    assert_eq!(counted(&text, "berth_auth_throttled_total", "admin"), 2.0, "{text}");
    assert_eq!(counted(&text, "berth_auth_failures_total", "invoke"), 0.0, "{text}");

    h.host.runtime.auth_limiter.advance(Duration::from_secs(59));
    assert_throttled(&from("127.0.0.1", admin, "GET", "/groups", &[("authorization", &right)]).await, "at 59 s");
    h.host.runtime.auth_limiter.advance(Duration::from_secs(1));
    let res = from("127.0.0.1", admin, "GET", "/groups", &[("authorization", &right)]).await;
    assert_eq!(res.status, 200, "the window ended: {}", res.text());
    h.host.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn direct_invoke_refuses_an_address_after_too_many_wrong_tokens() {
    let h = start(
        &format!("invoke_token = \"{INVOKE_TOKEN}\"\ninvoke_loopback_exempt = false\n"),
        "[auth_limit]\nfailures = 2\n",
    )
    .await;
    let addr = h.host.addr;
    let right = bearer(INVOKE_TOKEN);
    let missing = from("127.0.0.1", addr, "GET", "/invoke/results/x", &[]).await;
    assert_eq!(missing.status, 401, "{}", missing.text());
    assert_eq!(missing.header("www-authenticate"), Some("Bearer"));
    let wrong = from("127.0.0.1", addr, "GET", "/invoke/results/x", &[("authorization", "Bearer guess")]).await;
    assert_eq!(wrong.status, 401);
    let res = from("127.0.0.1", addr, "GET", "/invoke/results/x", &[("authorization", &right)]).await;
    assert_throttled(&res, "the right token after 2 wrong ones");
    assert!(res.header("x-request-id").is_some(), "a throttled invoke still has its request id");
    let other = from("127.0.0.2", addr, "GET", "/invoke/results/x", &[("authorization", &right)]).await;
    assert_eq!(other.status, 404, "another address gets through: {}", other.text());
    assert_eq!(from("127.0.0.1", addr, "GET", "/healthz", &[]).await.status, 200, "no auth, no limit");
    let admin = h.host.admin_addr.unwrap();
    let res = from("127.0.0.1", admin, "GET", "/groups", &[("authorization", &bearer(ADMIN_TOKEN))]).await;
    assert_eq!(res.status, 200, "the admin API counts apart");

    let text = metrics(&h).await;
    assert_eq!(counted(&text, "berth_auth_failures_total", "invoke"), 2.0, "{text}");
    assert_eq!(counted(&text, "berth_auth_throttled_total", "invoke"), 1.0, "{text}");
    h.host.runtime.auth_limiter.advance(Duration::from_secs(60));
    let res = from("127.0.0.1", addr, "GET", "/invoke/results/x", &[("authorization", &right)]).await;
    assert_eq!(res.status, 404, "the window ended: {}", res.text());
    h.host.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_route_behind_middleware_auth_refuses_an_address_after_too_many_wrong_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("token");
    std::fs::write(&file, ROUTE_TOKEN).unwrap();
    let extra = format!(
        "[auth_limit]\nfailures = 2\n[middleware.auth]\nkind = \"bearer\"\ntokens = [{{ file = \"{}\" }}]\n\
         [[groups]]\nname = \"hello\"\npath = \"{}\"\n",
        file.display(),
        workspace().join("examples/hello").display()
    );
    let h = start("", &extra).await;
    let addr = h.host.addr;
    let right = bearer(ROUTE_TOKEN);
    assert_eq!(from("127.0.0.1", addr, "GET", "/hello/world", &[("authorization", &right)]).await.status, 200);
    for _ in 0..2 {
        assert_eq!(
            from("127.0.0.1", addr, "GET", "/hello/world", &[("authorization", "Bearer nope")]).await.status,
            401
        );
    }
    let res = from("127.0.0.1", addr, "GET", "/hello/world", &[("authorization", &right)]).await;
    assert_throttled(&res, "the right token after 2 wrong ones");
    let other = from("127.0.0.3", addr, "GET", "/hello/world", &[("authorization", &right)]).await;
    assert_eq!(other.status, 200, "another address: {}", other.text());
    let text = metrics(&h).await;
    assert_eq!(counted(&text, "berth_auth_failures_total", "middleware"), 2.0, "{text}");
    assert_eq!(counted(&text, "berth_auth_throttled_total", "middleware"), 1.0, "{text}");
    h.host.runtime.auth_limiter.advance(Duration::from_secs(61));
    assert_eq!(from("127.0.0.1", addr, "GET", "/hello/world", &[("authorization", &right)]).await.status, 200);
    h.host.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invoke_off_loopback_without_a_token_refuses_the_start_and_says_what_to_set() {
    let dir = tempfile::tempdir().unwrap();
    let open = config(dir.path(), "", "").replace_listen("0.0.0.0:0");
    let err = server::start(open).await.err().expect("refused").to_string();
    for key in [
        "server.listen = \"0.0.0.0:0\"",
        "server.invoke_token",
        "BERTH_SERVER__INVOKE_TOKEN",
        "server.direct_invoke = false",
    ] {
        assert!(err.contains(key), "names `{key}`: {err}");
    }
    let mut no_caller = config(dir.path(), "invoke_loopback_exempt = false\n", "");
    no_caller.admin.enabled = false;
    let err = server::start(no_caller).await.err().expect("refused").to_string();
    assert!(err.contains("invoke_loopback_exempt") && err.contains("server.invoke_token"), "{err}");

    // Turned off, or with a token, it starts.
    let off = config(dir.path(), "direct_invoke = false\n", "").replace_listen("0.0.0.0:0");
    let host = server::start(off).await.expect("starts with direct invoke off");
    let local = SocketAddr::from(([127, 0, 0, 1], host.addr.port()));
    let res = from("127.0.0.1", local, "GET", "/invoke/results/x", &[]).await;
    assert_eq!(res.status, 404);
    assert!(res.text().contains("server.direct_invoke = false"), "{}", res.text());
    host.shutdown().await;
    let guarded = config(dir.path(), &format!("invoke_token = \"{INVOKE_TOKEN}\"\n"), "").replace_listen("0.0.0.0:0");
    let host = server::start(guarded).await.expect("starts with a token");
    host.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_platform_listener_invoke_is_off_without_a_token_and_needs_it_from_loopback_too() {
    let dir = tempfile::tempdir().unwrap();
    let plain = config(dir.path(), "", "").replace_listen("0.0.0.0:0");
    let host = server::start_on(plain, Platform::Knative).await.expect("Knative starts without an invoke token");
    let local = SocketAddr::from(([127, 0, 0, 1], host.addr.port()));
    let res = from("127.0.0.1", local, "GET", "/invoke/results/x", &[]).await;
    assert_eq!(res.status, 404, "{}", res.text());
    assert!(res.text().contains("server.invoke_token"), "{}", res.text());
    host.shutdown().await;

    let token = config(dir.path(), &format!("invoke_token = \"{INVOKE_TOKEN}\"\n"), "").replace_listen("0.0.0.0:0");
    let host = server::start_on(token, Platform::Knative).await.expect("starts");
    let local = SocketAddr::from(([127, 0, 0, 1], host.addr.port()));
    let res = from("127.0.0.1", local, "GET", "/invoke/results/x", &[]).await;
    assert_eq!(res.status, 401, "a sidecar connects from loopback: the token is needed: {}", res.text());
    let res = from("127.0.0.1", local, "GET", "/invoke/results/x", &[("authorization", &bearer(INVOKE_TOKEN))]).await;
    assert_eq!(res.status, 404, "{}", res.text());
    host.shutdown().await;

    let forced = config(dir.path(), "direct_invoke = true\n", "").replace_listen("0.0.0.0:0");
    let err = server::start_on(forced, Platform::Knative).await.err().expect("refused").to_string();
    assert!(err.contains("server.invoke_token"), "{err}");
}

trait ReplaceListen {
    fn replace_listen(self, listen: &str) -> Self;
}

impl ReplaceListen for BerthConfig {
    fn replace_listen(mut self, listen: &str) -> Self {
        self.server.listen = listen.parse().unwrap();
        self
    }
}
