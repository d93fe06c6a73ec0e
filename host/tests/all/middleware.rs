//! Host layers from `berth.toml` around the groups' routes: bearer auth (checked before the
//! function runs), CORS (preflights and headers, on refusals too), a group's own layer replacing
//! the host's, and a start refused when a token cannot be read.

use std::path::Path;

use crate::support::{metric, workspace, TestHost};

const TOKEN: &str = "mw-test-token-0123456789";
const ORIGIN: &str = "https://app.example.com";

fn layers(token_file: &Path, group_layers: &str) -> String {
    format!(
        "[middleware]\naccess_log = true\n[middleware.cors]\nallow_origins = [\"{ORIGIN}\"]\nmax_age = \"5m\"\n\
         [middleware.auth]\nkind = \"bearer\"\ntokens = [{{ file = \"{}\" }}]\n\n\
         [[groups]]\nname = \"hello\"\npath = \"{}\"\n{group_layers}",
        token_file.display(),
        workspace().join("examples/hello").display()
    )
}

fn token_file(dir: &Path) -> std::path::PathBuf {
    let file = dir.join("token");
    std::fs::write(&file, format!("{TOKEN}\n")).unwrap();
    file
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bearer_token_is_required_before_the_function_runs_and_cors_headers_come_on_every_answer() {
    let dir = tempfile::tempdir().unwrap();
    let h = TestHost::start(&layers(&token_file(dir.path()), "")).await;
    let bearer = format!("Bearer {TOKEN}");

    let refused = h.send("GET", "/hello/world", &[("origin", ORIGIN)], b"").await;
    assert_eq!(refused.status, 401, "{}", refused.text());
    assert_eq!(refused.json()["error"], "unauthorized");
    assert_eq!(refused.header("www-authenticate"), Some("Bearer"));
    assert_eq!(refused.header("access-control-allow-origin"), Some(ORIGIN), "the page can read the 401");
    assert!(refused.header("x-request-id").is_some());
    let wrong = h.send("GET", "/hello/world", &[("authorization", "Bearer mw-test-token-0123456780")], b"").await;
    assert_eq!(wrong.status, 401);

    let ok = h.send("GET", "/hello/world", &[("authorization", &bearer), ("origin", ORIGIN)], b"").await;
    assert_eq!(ok.status, 200, "{}", ok.text());
    assert_eq!(ok.json()["message"], "Hello, world!");
    assert_eq!(ok.header("access-control-allow-origin"), Some(ORIGIN));
    assert!(ok.header("access-control-expose-headers").unwrap().contains("x-request-id"));
    let other =
        h.send("GET", "/hello/world", &[("authorization", &bearer), ("origin", "https://evil.example")], b"").await;
    assert_eq!(other.status, 200);
    assert_eq!(other.header("access-control-allow-origin"), None, "another origin gets no CORS headers");

    // A preflight needs no token, and is answered for the route's method.
    let preflight = [
        ("origin", ORIGIN),
        ("access-control-request-method", "GET"),
        ("access-control-request-headers", "authorization"),
    ];
    let pre = h.send("OPTIONS", "/hello/world", &preflight, b"").await;
    assert_eq!(pre.status, 204, "{}", pre.text());
    assert_eq!(pre.header("access-control-allow-origin"), Some(ORIGIN));
    assert_eq!(pre.header("access-control-max-age"), Some("300"));
    assert!(pre.header("access-control-allow-headers").unwrap().contains("authorization"));
    let no_route = h.send("OPTIONS", "/nothing", &preflight, b"").await;
    assert_eq!(no_route.status, 404);

    // The host's own endpoints are not behind the groups' layers.
    assert_eq!(h.get("/healthz").await.status, 200);
    // Refused calls never reached the function: one 2xx per accepted call, nothing else.
    let metrics = h.get("/metrics").await.text();
    let line = |class: &str| {
        format!("berth_function_invocations_total{{function=\"hello\",group=\"hello\",status_class=\"{class}\"}}")
    };
    assert_eq!(metric(&metrics, &line("2xx")), Some(2.0), "{metrics}");
    assert_eq!(metric(&metrics, &line("4xx")), Some(0.0), "{metrics}");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_can_opt_out_of_the_hosts_auth() {
    let dir = tempfile::tempdir().unwrap();
    let h = TestHost::start(&layers(&token_file(dir.path()), "[groups.middleware.auth]\nkind = \"none\"\n")).await;
    let res = h.send("GET", "/hello/world", &[("origin", ORIGIN)], b"").await;
    assert_eq!(res.status, 200, "{}", res.text());
    assert_eq!(res.header("access-control-allow-origin"), Some(ORIGIN), "the host's CORS still applies");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_that_cannot_be_read_or_a_layer_without_a_group_name_refuses_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-token");
    let text = crate::support::base_config(dir.path(), "", &layers(&missing, ""));
    let config = berth_host::config::BerthConfig::parse(&text, &workspace(), &std::collections::BTreeMap::new())
        .expect("parses");
    let err = berth_host::server::start(config).await.err().expect("refused").to_string();
    assert!(err.contains("cannot read token file") && err.contains("no-such-token"), "{err}");

    let unnamed = format!(
        "[[groups]]\npath = \"{}\"\n[groups.middleware]\naccess_log = true\n",
        workspace().join("examples/hello").display()
    );
    let text = crate::support::base_config(dir.path(), "", &unnamed);
    let err = berth_host::config::BerthConfig::parse(&text, &workspace(), &std::collections::BTreeMap::new())
        .map_err(|e| e.to_string())
        .expect_err("refused");
    assert!(err.contains("no `name`"), "{err}");
}
