//! Bad plugin files and conflicting groups are refused with clear messages; the others serve.

use crate::support::{group, TestHost};

fn file_group(path: &std::path::Path) -> String {
    format!("[[groups]]\nfile = \"{}\"\n", path.display())
}

#[tokio::test]
async fn bad_plugins_are_refused_by_name_while_the_other_groups_serve() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.so");
    std::fs::write(&empty, b"").unwrap();
    let text = dir.path().join("notes.so");
    std::fs::write(&text, "this is a text file, not a plugin\n").unwrap();
    let config = [
        group("examples/hello"),
        file_group(&empty),
        file_group(&text),
        group("host/fixtures/not-berth"),
        group("host/fixtures/abi-mismatch"),
        group("host/fixtures/layout-mismatch"),
        group("host/fixtures/panic-init"),
        group("host/fixtures/init-fails"),
    ]
    .concat();
    let h = TestHost::start(&config).await;

    assert_eq!(h.get("/hello/world").await.status, 200, "hello keeps serving");
    assert_eq!(h.get("/never").await.status, 404, "a refused group serves nothing");

    let ready = h.get("/readyz").await;
    assert_eq!(ready.status, 503);
    let problems: Vec<String> =
        ready.json()["problems"].as_array().unwrap().iter().map(|p| p.as_str().unwrap().to_owned()).collect();
    assert_eq!(problems.len(), 7, "{problems:#?}");
    let expect = |needle_file: &str, needle_msg: &str| {
        assert!(
            problems.iter().any(|p| p.contains(needle_file) && p.contains(needle_msg)),
            "no problem mentions `{needle_file}` with `{needle_msg}`: {problems:#?}"
        );
    };
    expect("empty.so", "the file is empty");
    expect("notes.so", "a text file, not a shared library");
    expect("libfixture_not_berth.so", "not a Berth plugin");
    expect(
        "libfixture_abi_mismatch.so",
        &format!("built for plugin ABI 999, this host speaks {}", berth_plugin_api::ABI_VERSION),
    );
    expect("libfixture_layout_mismatch.so", "incompatible with this host's plugin API");
    expect("libfixture_panic_init.so", "init hook panicked: fixture: init hook panicked on purpose");
    expect("libfixture_init_fails.so", "`required_setting` is missing");
    h.stop().await;
}

#[tokio::test]
async fn an_init_hook_sees_its_group_config() {
    let config = format!("{}[groups.config]\nrequired_setting = \"present\"\n", group("host/fixtures/init-fails"));
    let h = TestHost::start(&config).await;
    assert!(h.readiness().ready, "{:?}", h.readiness());
    assert_eq!(h.get("/never-either").await.status, 200);
    h.stop().await;
}

#[tokio::test]
async fn a_route_conflict_between_groups_is_refused_at_load() {
    let h = TestHost::start(&[group("examples/hello"), group("host/fixtures/conflict")].concat()).await;
    let readiness = h.readiness();
    assert!(!readiness.ready);
    assert_eq!(readiness.problems.len(), 1, "{readiness:?}");
    let problem = &readiness.problems[0];
    assert!(
        problem.contains("group `conflict`")
            && problem.contains("route `GET /hello/{name}`")
            && problem.contains("already served by group `hello`"),
        "{problem}"
    );
    // The first group keeps its route.
    assert_eq!(h.get("/hello/world").await.json()["message"], "Hello, world!");
    h.stop().await;
}

#[tokio::test]
async fn the_same_group_twice_and_unknown_function_overrides_are_refused() {
    let config = [
        group("examples/hello"),
        group("examples/hello"),
        group("examples/todo"),
        "[groups.functions.lsit]\ntimeout = \"1s\"\n".into(),
    ]
    .concat();
    let h = TestHost::start(&config).await;
    let problems = h.readiness().problems;
    assert!(problems.iter().any(|p| p.contains("group `hello` is configured twice")), "{problems:#?}");
    assert!(
        problems.iter().any(|p| p.contains("`[groups.functions.lsit]`") && p.contains("it has: list, create")),
        "{problems:#?}"
    );
    assert_eq!(h.get("/hello/x").await.status, 200);
    h.stop().await;
}
