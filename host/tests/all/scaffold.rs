//! `berth new`: every template, created in a temporary directory outside the repository, passes
//! its own `cargo test` and is served by `berth up` run inside it, answering the curl lines its
//! README documents — the queue template consuming a message from real Redis Streams.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{self, request, workspace};

const TEMPLATES: [&str; 6] = ["http", "timer", "queue", "blob", "service", "consumer"];

/// One target directory for every generated crate, so their dependencies build once.
fn target_dir() -> PathBuf {
    workspace().join("target/new-groups")
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
    assert!(stdout.contains("test result: ok") && !stdout.contains(" 0 passed"), "{stdout}");
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
        .env("CARGO_TARGET_DIR", target_dir())
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
