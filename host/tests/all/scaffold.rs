//! `berth new`: every template, created in a temporary directory outside the repository, passes
//! its own `cargo test` and is served by `berth up` run inside it, answering the curl lines its
//! README documents — the queue template consuming a message from real Redis Streams.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{self, request, workspace};

const TEMPLATES: [&str; 6] = ["http", "timer", "queue", "blob", "service", "consumer"];

/// One target directory for every generated crate's `cargo test`, so their dependencies build
/// once.
fn target_dir() -> PathBuf {
    workspace().join("target/new-groups")
}

/// Where `berth up` and `berth dev` build. Not [`target_dir`]: they build the consumer's provider
/// (`plugins/users`) as a member of Berth's workspace, and cargo must not take that build of it
/// for the one the consumer's tests link (the same package built in two workspaces).
fn serve_target_dir() -> PathBuf {
    workspace().join("target/new-groups-serve")
}

fn berth_new(parent: &Path, name: &str, template: &str) -> PathBuf {
    let dir = parent.join(name);
    let out = Command::new(env!("CARGO_BIN_EXE_berth"))
        .args(["new", "--template", template])
        .arg(&dir)
        .output()
        .expect("run berth new");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "berth new {template}: {stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains(&format!("created group `{name}` ({template} template)")), "{stdout}");
    dir
}

fn cargo_test(dir: &Path) {
    let out = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(["test", "--quiet"])
        .current_dir(dir)
        .env("CARGO_TARGET_DIR", target_dir())
        .output()
        .expect("run cargo test");
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "cargo test in {}:\n{stdout}\n{stderr}", dir.display());
    // The lib and doc test sections pass 0 tests; the group's own test file passes some.
    let passed: u32 = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("test result: ok. ")?.split(' ').next()?.parse::<u32>().ok())
        .sum();
    assert!(passed > 0 && !stdout.contains("FAILED"), "{stdout}");
}

/// `berth up` in `dir`, on a free port, admin off; stopped on drop.
struct Up(std::process::Child, SocketAddr);

impl Drop for Up {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn berth_up(dir: &Path, env: &[(&str, &str)]) -> Up {
    let mut child = Command::new(env!("CARGO_BIN_EXE_berth"))
        .arg("up")
        .current_dir(dir)
        .env("BERTH_SERVER__LISTEN", "127.0.0.1:0")
        .env("BERTH_ADMIN__ENABLED", "false")
        .env("CARGO_TARGET_DIR", serve_target_dir())
        .env("NO_COLOR", "1")
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn berth up");
    let addr = support::wait_ready(&mut child);
    Up(child, addr)
}

/// Polls `path` until it answers 200 (a trigger's work shows up); its body.
async fn eventually(addr: SocketAddr, path: &str) -> serde_json::Value {
    let started = Instant::now();
    loop {
        let r = request(addr, "GET", path, &[], b"").await;
        if r.status == 200 {
            return r.json();
        }
        assert!(started.elapsed() < Duration::from_secs(30), "GET {path}: still {} {}", r.status, r.text());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

const JSON: [(&str, &str); 1] = [("content-type", "application/json")];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_template_makes_a_group_that_passes_its_tests_and_serves_its_readme() {
    support::init_logs();
    let parent = tempfile::tempdir().unwrap();
    assert!(!parent.path().starts_with(workspace()), "outside the repository");
    let stream = format!("berth-new-test-{}", std::process::id());
    for template in TEMPLATES {
        let name = format!("my-{template}");
        let dir = berth_new(parent.path(), &name, template);
        tokio::task::spawn_blocking({
            let dir = dir.clone();
            move || cargo_test(&dir)
        })
        .await
        .unwrap();

        let env: Vec<(&str, &str)> = if template == "queue" {
            vec![("BERTH_QUEUES__JOBS__URL", "redis://127.0.0.1:6379"), ("BERTH_QUEUES__JOBS__STREAM", &stream)]
        } else {
            Vec::new()
        };
        let up = tokio::task::spawn_blocking({
            let (dir, env) = (dir.clone(), env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<Vec<_>>());
            move || {
                let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
                berth_up(&dir, &env)
            }
        })
        .await
        .unwrap();
        let addr = up.1;
        match template {
            "http" => {
                let r = request(addr, "GET", "/my-http/hello/world", &[], b"").await;
                assert_eq!((r.status, r.text().as_str()), (200, r#"{"message":"Hello, world!"}"#));
            }
            "timer" => {
                let r = request(addr, "GET", "/my-timer/ticks", &[], b"").await;
                assert_eq!(r.status, 200, "{}", r.text());
                assert!(r.json()["ticks"].as_i64().is_some(), "{}", r.text());
            }
            "queue" => {
                let body = br#"{"id":"j1","text":"hello queue world"}"#;
                let r = request(addr, "POST", "/my-queue/jobs", &JSON, body).await;
                assert_eq!(r.status, 202, "{}", r.text());
                // Published to the real stream, consumed from it by `work`.
                let done = eventually(addr, "/my-queue/jobs/j1").await;
                assert_eq!(done, serde_json::json!({ "id": "j1", "words": 3, "attempt": 1 }));
            }
            "blob" => {
                let r = request(addr, "PUT", "/my-blob/inbox/notes.txt", &[], b"one\ntwo\nthree\n").await;
                assert_eq!(r.status, 201, "{}", r.text());
                let entry = eventually(addr, "/my-blob/index/notes.txt").await;
                assert_eq!(entry, serde_json::json!({ "object": "notes.txt", "size": 14, "lines": 3 }));
            }
            "service" => {
                let r = request(addr, "POST", "/my-service/notes", &JSON, br#"{"text":"buy milk"}"#).await;
                assert_eq!(r.status, 201, "{}", r.text());
                let r = request(addr, "GET", &format!("/my-service/notes/{}", r.json()["id"]), &[], b"").await;
                assert_eq!(r.json()["text"], "buy milk", "{}", r.text());
            }
            "consumer" => {
                let body = br#"{"name":"Ann","email":"ann@example.com"}"#;
                let r = request(addr, "POST", "/my-consumer/signup", &JSON, body).await;
                assert_eq!(r.status, 201, "{}", r.text());
                let r = request(addr, "GET", &format!("/my-consumer/greet/{}", r.json()["id"]), &[], b"").await;
                assert_eq!(r.json()["message"], "Hello, Ann!", "{}", r.text());
            }
            other => unreachable!("{other}"),
        }
        drop(up);
    }
    let client = redis::Client::open("redis://127.0.0.1:6379").unwrap();
    let mut c = client.get_multiplexed_async_connection().await.unwrap();
    let _: () = redis::cmd("DEL").arg(&stream).query_async(&mut c).await.unwrap();
}

#[test]
fn berth_new_refuses_a_bad_name_and_a_directory_with_files() {
    let parent = tempfile::tempdir().unwrap();
    let out =
        Command::new(env!("CARGO_BIN_EXE_berth")).arg("new").arg(parent.path().join("My_Group")).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("group name `My_Group`") && err.contains("lowercase"), "{err}");
    assert!(!parent.path().join("My_Group").exists());

    let full = parent.path().join("full");
    std::fs::create_dir(&full).unwrap();
    std::fs::write(full.join("main.rs"), "mine").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_berth")).arg("new").arg(&full).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("not empty"), "{err}");
    assert_eq!(std::fs::read_dir(&full).unwrap().count(), 1, "nothing was written");
}

/// `berth dev` in a project of two new groups with one `berth.toml`: an edit of one saved while a
/// client calls both is live after one build with no failed request, and the other group is
/// untouched; a syntax error is shown as the compiler's file and line, and an init hook that
/// fails with its reason, while the serving versions keep serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn berth_dev_swaps_an_edit_without_a_failed_request_and_survives_a_syntax_error() {
    use std::io::BufRead;
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::sync::{Arc, Mutex};

    support::init_logs();
    let parent = tempfile::tempdir().unwrap();
    let dir = berth_new(parent.path(), "my-dev", "http");
    let other = berth_new(parent.path(), "my-other", "http");
    std::fs::write(
        parent.path().join("berth.toml"),
        "version = 1\ndata_dir = \".berth\"\n[build]\nprofile = \"dev\"\n\n\
         [[groups]]\npath = \"my-dev\"\n\n[[groups]]\npath = \"my-other\"\n",
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_berth"))
        .arg("dev")
        .current_dir(parent.path())
        .env("BERTH_SERVER__LISTEN", "127.0.0.1:0")
        .env("BERTH_ADMIN__ENABLED", "false")
        .env("CARGO_TARGET_DIR", serve_target_dir())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn berth dev");
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let stderr = child.stderr.take().unwrap();
    let _child = Kill(child);
    let lines: Arc<Mutex<Vec<String>>> = Arc::default();
    std::thread::spawn({
        let lines = lines.clone();
        move || {
            for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
                lines.lock().unwrap().push(line);
            }
        }
    });
    let wait_line = |what: &'static str, timeout: Duration| {
        let lines = lines.clone();
        async move {
            let started = Instant::now();
            loop {
                if let Some(l) = lines.lock().unwrap().iter().find(|l| l.contains(what)) {
                    return l.clone();
                }
                assert!(
                    started.elapsed() < timeout,
                    "no `{what}` from berth dev:\n{}",
                    lines.lock().unwrap().join("\n")
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    let serving = wait_line("berth dev: serving", Duration::from_secs(300)).await;
    assert!(serving.contains("my-dev 0.1.0") && serving.contains("my-other 0.1.0"), "{serving}");
    let addr: SocketAddr =
        serving.split("http://").nth(1).and_then(|s| s.split_whitespace().next()).unwrap().parse().unwrap();

    let (stop, ok, failed) =
        (Arc::new(AtomicBool::new(false)), Arc::new(AtomicU64::new(0)), Arc::new(Mutex::new(Vec::new())));
    let last = Arc::new(Mutex::new(String::new()));
    let client = tokio::spawn({
        let (stop, ok, failed, last) = (stop.clone(), ok.clone(), failed.clone(), last.clone());
        async move {
            while !stop.load(Ordering::Relaxed) {
                let r = request(addr, "GET", "/my-dev/hello/world", &[], b"").await;
                if r.status == 200 {
                    ok.fetch_add(1, Ordering::Relaxed);
                    *last.lock().unwrap() = r.text();
                } else {
                    failed.lock().unwrap().push(format!("my-dev: {} {}", r.status, r.text()));
                }
                let r = request(addr, "GET", "/my-other/hello/world", &[], b"").await;
                if r.status != 200 || !r.text().contains("Hello, world!") {
                    failed.lock().unwrap().push(format!("my-other: {} {}", r.status, r.text()));
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    });
    let lib = dir.join("src/lib.rs");
    let source = std::fs::read_to_string(&lib).unwrap();
    assert!(source.contains("format!(\"Hello, {who}!\")"));
    std::fs::write(&lib, source.replace("format!(\"Hello, {who}!\")", "format!(\"Howdy, {who}!\")")).unwrap();
    let swapped = wait_line("swapped my-dev", Duration::from_secs(300)).await;
    assert!(swapped.contains("0.1.0+") && swapped.contains(" → "), "{swapped}");
    let started = Instant::now();
    while !last.lock().unwrap().contains("Howdy, world!") {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the swapped version is not answering: {}",
            last.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // A syntax error: the compiler's file and line, and the edited version serves on.
    let edited = std::fs::read_to_string(&lib).unwrap();
    let lines_before = edited.lines().count();
    std::fs::write(&lib, format!("{edited}\nfn broken( {{\n")).unwrap();
    wait_line("✗ my-dev", Duration::from_secs(300)).await;
    let text = lines.lock().unwrap().join("\n");
    assert!(text.contains("cargo failed to build"), "{text}");
    // `src/lib.rs:LINE:COL: error: ...`, LINE in what was appended.
    let line: usize = text
        .split("src/lib.rs:")
        .nth(1)
        .and_then(|rest| rest.split(':').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no src/lib.rs:LINE in:\n{text}"));
    assert!(line > lines_before, "line {line} is not in the appended text:\n{text}");
    assert!(text.contains("keeps serving"), "{text}");

    // The other group's init hook fails: its reason is shown, and its serving version serves on.
    let other_lib = other.join("src/lib.rs");
    let other_source = std::fs::read_to_string(&other_lib).unwrap();
    let failing = other_source.replace("functions: [hello, shout],", "functions: [hello, shout],\n    init: setup,")
        + "\nasync fn setup(_ctx: berth::GroupContext) -> berth::Result<()> {\n    \
           Err(berth::Error::unavailable(\"the ledger is not reachable\"))\n}\n";
    assert_ne!(failing, other_source, "the template's group! has `functions: [hello, shout],`");
    std::fs::write(&other_lib, failing).unwrap();
    let refused = wait_line("✗ my-other", Duration::from_secs(300)).await;
    let text = lines.lock().unwrap().join("\n");
    assert!(refused.contains("the ledger is not reachable"), "{text}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    client.await.unwrap();
    assert!(last.lock().unwrap().contains("Howdy, world!"), "{}", last.lock().unwrap());
    let failed = failed.lock().unwrap().clone();
    assert!(
        failed.is_empty(),
        "{} failed requests during the swaps: {:?}",
        failed.len(),
        &failed[..failed.len().min(5)]
    );
    assert!(ok.load(Ordering::Relaxed) > 10);
}
