//! `berth invoke` and `berth inspect`, run as a user would.

use std::process::Command;

use crate::support::{base_config, group, workspace};

fn berth(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_berth")).args(args).env("NO_COLOR", "1").output().expect("run berth");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn config_file(dir: &tempfile::TempDir) -> String {
    let path = dir.path().join("berth.toml");
    std::fs::write(&path, base_config(dir.path(), "", &[group("examples/todo"), group("examples/hello")].concat()))
        .unwrap();
    path.display().to_string()
}

#[test]
fn invoke_calls_a_function_without_a_server() {
    let dir = tempfile::tempdir().unwrap();
    let config = config_file(&dir);
    let (code, out, err) = berth(&["invoke", "hello/hello", "--path", "/hello/cli", "--config", &config]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(serde_json::from_str::<serde_json::Value>(&out).unwrap(), serde_json::json!({"message": "Hello, cli!"}));

    let (code, out, err) =
        berth(&["invoke", "hello/echo", "--data", r#"{"message":"m","times":2}"#, "--config", &config]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(serde_json::from_str::<serde_json::Value>(&out).unwrap()["echoed"], serde_json::json!(["m", "m"]));

    let (code, out, err) = berth(&["invoke", "hello/panic", "--config", &config]);
    assert_eq!(code, 1);
    assert!(out.contains("\"panic\"") && err.contains("deliberate panic"), "{out}\n{err}");

    let (code, _, err) = berth(&["invoke", "hello/hello", "--config", &config]);
    assert_eq!(code, 1);
    assert!(err.contains("pass --path"), "{err}");

    let (code, _, err) = berth(&["invoke", "nosuch/fn", "--config", &config]);
    assert_eq!(code, 1);
    assert!(err.contains("no group named `nosuch`") && err.contains("todo") && err.contains("hello"), "{err}");
}

/// `berth invoke` installs groups the way `berth up` does: a consumer of an exported service
/// gets the provider group loaded first (it used to fail with "no loaded group exports service
/// `users`").
#[test]
fn invoke_loads_the_groups_whose_exports_the_function_needs() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("berth.toml");
    let groups = [group("plugins/users"), group("examples/welcome"), group("examples/hello")].concat();
    let text = base_config(dir.path(), "", &format!("{groups}[services.userstore]\nkind = \"kv\"\n"));
    std::fs::write(&path, text).unwrap();
    let config = path.display().to_string();

    let data = r#"{"name":"Ann","email":"ann@example.com"}"#;
    let (code, out, err) = berth(&["invoke", "users/create_user", "--data", data, "--config", &config]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert_eq!(serde_json::from_str::<serde_json::Value>(&out).unwrap()["name"], "Ann", "{out}");

    let (code, out, err) = berth(&["invoke", "welcome/welcome", "--path", "/welcome/1", "--config", &config]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert_eq!(serde_json::from_str::<serde_json::Value>(&out).unwrap()["message"], "Welcome back, Ann!", "{out}");

    let (code, out, err) = berth(&["invoke", "welcome/welcome", "--path", "/welcome/2", "--config", &config]);
    assert_eq!(code, 1, "{out}\n{err}");
    assert!(out.contains("no user 2") && err.contains("status 404"), "{out}\n{err}");
}

#[test]
fn inspect_prints_the_manifest_or_why_a_file_is_not_a_plugin() {
    let so = berth_host::builder::build_group_crate(&workspace().join("examples/hello"), "dev").unwrap();
    let (code, out, err) = berth(&["inspect", so.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("group:       hello 1.0.0"), "{out}");
    assert!(out.contains(&format!("plugin ABI:  {}", berth_plugin_api::ABI_VERSION)), "{out}");
    assert!(out.contains("http GET /hello/{name}"), "{out}");
    assert!(out.contains("upload") && out.contains("body limit 1.0 KiB"), "{out}");

    let (code, out, _) = berth(&["inspect", "--json", so.to_str().unwrap()]);
    assert_eq!(code, 0);
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(doc["group"], "hello");
    assert_eq!(doc["functions"].as_array().unwrap().len(), 7);

    let dir = tempfile::tempdir().unwrap();
    let text = dir.path().join("readme.so");
    std::fs::write(&text, "hello").unwrap();
    let (code, _, err) = berth(&["inspect", text.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(err.contains("readme.so") && err.contains("a text file"), "{err}");

    let abi = berth_host::builder::build_group_crate(&workspace().join("host/fixtures/abi-mismatch"), "dev").unwrap();
    let (code, _, err) = berth(&["inspect", abi.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(
        err.contains(&format!("built for plugin ABI 999, this host speaks {}", berth_plugin_api::ABI_VERSION)),
        "{err}"
    );

    let (code, _, err) = berth(&["inspect", "/nonexistent/plugin.so"]);
    assert_eq!(code, 1);
    assert!(err.contains("/nonexistent/plugin.so") && err.contains("cannot read"), "{err}");
}

#[test]
fn invoke_remote_calls_a_running_host() {
    let host = crate::support::BerthProcess::start("", &group("examples/hello"));
    let remote = format!("http://{}", host.addr);
    let (code, out, err) =
        berth(&["invoke", "hello/echo", "--remote", &remote, "--data", r#"{"message":"over the wire","times":1}"#]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&out).unwrap()["echoed"],
        serde_json::json!(["over the wire"])
    );
    let (code, out, err) = berth(&["invoke", "hello/nope", "--remote", &remote]);
    assert_eq!(code, 1);
    assert!(out.contains("not_found") && err.contains("status 404"), "{out}\n{err}");
}

/// `berth invoke --event`: a queue message as a CloudEvent file is handled by the queue
/// function (what it recorded is read back by the next invoke), and the S3 sample of
/// examples/unzip reaches its blob function with the object's name decoded.
#[test]
fn invoke_delivers_the_events_of_a_file_to_queue_and_blob_functions() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("berth.toml");
    let groups = [group("host/fixtures/queue-worker"), group("examples/unzip")].concat();
    let text = base_config(
        dir.path(),
        "",
        &format!(
            "{groups}[services.seen]\nkind = \"kv\"\n[services.uploads]\nkind = \"blob\"\n[services.extracted]\nkind = \"blob\"\n\
             [queues.jobs]\nkind = \"redis\"\nurl = \"redis://127.0.0.1:6379\"\nstream = \"berth-cli-{}\"\n",
            std::process::id()
        ),
    );
    std::fs::write(&path, text).unwrap();
    let config = path.display().to_string();

    let event = dir.path().join("message.json");
    std::fs::write(
        &event,
        r#"{"specversion":"1.0","id":"from-a-file","source":"berth/queue/jobs","type":"berth.queue.message","attempt":"1","data":{}}"#,
    )
    .unwrap();
    let event = event.display().to_string();
    let (code, out, err) = berth(&["invoke", "queue-worker/work", "--event", &event, "--config", &config]);
    assert_eq!(code, 0, "{out}\n{err}");
    let (code, out, err) = berth(&["invoke", "queue-worker/report", "--config", &config]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert_eq!(serde_json::from_str::<serde_json::Value>(&out).unwrap()["seen"], serde_json::json!(["from-a-file"]));

    // The sample's object was never uploaded: the blob function says so, naming it.
    let sample = workspace().join("examples/unzip/events/s3-put.json").display().to_string();
    let (code, out, err) = berth(&["invoke", "unzip/unzip", "--event", &sample, "--config", &config]);
    assert_eq!(code, 1, "{out}\n{err}");
    assert!(err.contains("`site.zip` is gone") && err.contains("blob trigger"), "{err}");

    let (code, _, err) = berth(&["invoke", "unzip/unzip", "--event", "/nonexistent.json", "--config", &config]);
    assert_eq!(code, 1);
    assert!(err.contains("cannot read event file `/nonexistent.json`"), "{err}");
    let (code, _, err) = berth(&["invoke", "unzip/unzip", "--event", &sample, "--data", "x", "--config", &config]);
    assert_eq!(code, 2, "clap refuses --event with --data: {err}");
}
