//! `[[static]]`: a built front end served next to the groups' routes — content types, ETag and
//! Last-Modified with 304, precompressed siblings, the SPA fallback, routes first, and no way out
//! of the root (`..`, encoded variants, symlinks).

use std::path::Path;

use crate::support::{group, request, TestHost};

const INDEX: &str = "<!doctype html><title>notes</title><div id=app></div>";
const APP_JS: &str = "console.log('notes board');\n";

/// A front end's build output, with a precompressed sibling, a nested index, and symlinks out.
fn front_end(dir: &Path) {
    std::fs::write(dir.join("index.html"), INDEX).unwrap();
    std::fs::create_dir_all(dir.join("assets")).unwrap();
    std::fs::write(dir.join("assets/app.js"), APP_JS).unwrap();
    std::fs::write(dir.join("assets/app.js.gz"), b"\x1f\x8b pretend gzip").unwrap();
    std::fs::write(dir.join("assets/style.css"), "body { margin: 0 }").unwrap();
    std::fs::create_dir_all(dir.join("docs")).unwrap();
    std::fs::write(dir.join("docs/index.html"), "<h1>docs</h1>").unwrap();
    std::os::unix::fs::symlink("/etc", dir.join("etc-link")).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", dir.join("passwd.txt")).unwrap();
    // A precompressed sibling that leads out (what ServeDir opens on its own).
    std::fs::write(dir.join("assets/leak.js"), "let leak = 0;").unwrap();
    std::os::unix::fs::symlink("/etc/passwd", dir.join("assets/leak.js.gz")).unwrap();
    // A symlink that stays inside the root is fine.
    std::os::unix::fs::symlink(dir.join("assets/style.css"), dir.join("theme.css")).unwrap();
}

async fn host(web: &Path, extra: &str) -> TestHost {
    let mounts = format!("[[static]]\nprefix = \"/\"\ndir = \"{}\"\nspa = true\n{extra}", web.display());
    TestHost::start(&format!("{}{mounts}", group("examples/hello"))).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_are_served_with_types_validators_and_precompressed_siblings() {
    let web = tempfile::tempdir().unwrap();
    front_end(web.path());
    let h = host(web.path(), "cache_control = \"public, max-age=60\"\n").await;

    let index = h.get("/").await;
    assert_eq!(index.status, 200);
    assert_eq!(index.text(), INDEX);
    assert_eq!(index.header("content-type"), Some("text/html"));
    assert_eq!(index.header("cache-control"), Some("public, max-age=60"));
    assert!(index.header("x-request-id").is_some());

    let js = h.get("/assets/app.js").await;
    assert_eq!(js.status, 200);
    assert_eq!(js.text(), APP_JS);
    assert_eq!(js.header("content-type"), Some("text/javascript"));
    let etag = js.header("etag").expect("an ETag").to_owned();
    let modified = js.header("last-modified").expect("a Last-Modified").to_owned();
    let again = request(h.addr, "GET", "/assets/app.js", &[("if-none-match", &etag)], b"").await;
    assert_eq!(again.status, 304, "a matching ETag");
    assert!(again.body.is_empty());
    assert_eq!(again.header("etag"), Some(etag.as_str()));
    let again = request(h.addr, "GET", "/assets/app.js", &[("if-modified-since", &modified)], b"").await;
    assert_eq!(again.status, 304, "not modified since");
    let stale = request(h.addr, "GET", "/assets/app.js", &[("if-none-match", "\"other\"")], b"").await;
    assert_eq!(stale.status, 200);

    let gz = request(h.addr, "GET", "/assets/app.js", &[("accept-encoding", "gzip, br")], b"").await;
    assert_eq!(gz.status, 200);
    assert_eq!(gz.header("content-encoding"), Some("gzip"));
    assert_eq!(gz.body, b"\x1f\x8b pretend gzip");
    assert_eq!(gz.header("content-type"), Some("text/javascript"), "the type of the file, not of the .gz");

    assert_eq!(h.get("/assets/style.css").await.header("content-type"), Some("text/css"));
    assert_eq!(h.get("/theme.css").await.text(), "body { margin: 0 }", "a symlink inside the root");
    assert_eq!(h.get("/docs/").await.text(), "<h1>docs</h1>");
    let head = request(h.addr, "HEAD", "/assets/app.js", &[], b"").await;
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_come_first_and_client_side_routes_get_the_index() {
    let web = tempfile::tempdir().unwrap();
    front_end(web.path());
    std::fs::write(web.path().join("hello"), "a file named like a route").unwrap();
    let h = host(web.path(), "").await;

    // The group's route, although a mount covers `/`.
    let hello = h.get("/hello/world").await;
    assert_eq!(hello.status, 200);
    assert!(hello.text().contains("world"), "{}", hello.text());
    // POST to a path only a file serves: not a static method.
    assert_eq!(request(h.addr, "POST", "/assets/app.js", &[], b"").await.status, 404);

    let spa = h.get("/notes/42").await;
    assert_eq!(spa.status, 200, "a client-side route");
    assert_eq!(spa.text(), INDEX);
    let missing = h.get("/assets/missing.js").await;
    assert_eq!(missing.status, 404, "a missing asset is not the index page");
    assert_eq!(h.get("/healthz").await.text(), "ok\n");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_outside_the_root_is_reachable() {
    let web = tempfile::tempdir().unwrap();
    front_end(web.path());
    let h = host(web.path(), "").await;
    let probes = [
        "/../../../../etc/passwd",
        "/assets/../../../../etc/passwd",
        "/%2e%2e/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
        "/%2E%2E/%2E%2E/%2E%2E/etc/passwd",
        "/..%2f..%2f..%2f..%2fetc%2fpasswd",
        "/%2e%2e%2f%2e%2e%2f%2e%2e%2fetc%2fpasswd",
        "/..%5c..%5c..%5cetc%5cpasswd",
        "/assets/..\\..\\..\\etc\\passwd",
        "/etc-link/passwd",
        "/etc-link/hostname",
        "/passwd.txt",
        "/assets/app.js%00.html",
    ];
    for probe in probes {
        let res = request(h.addr, "GET", probe, &[], b"").await;
        let text = res.text();
        assert!(!text.contains("root:"), "{probe} leaked /etc/passwd");
        assert!(matches!(res.status, 400 | 404), "{probe}: {} {text}", res.status);
        // Not the SPA index either: a refused path is refused.
        assert_ne!(text, INDEX, "{probe}");
    }
    let sibling = request(h.addr, "GET", "/assets/leak.js", &[("accept-encoding", "gzip")], b"").await;
    assert!(!sibling.text().contains("root:"), "a .gz sibling out of the root was served");
    assert_eq!(sibling.header("content-encoding"), None);
    // The host serves on.
    assert_eq!(h.get("/assets/app.js").await.status, 200);
    h.stop().await;
}

#[test]
fn a_mount_on_a_path_the_host_serves_or_a_missing_directory_is_refused() {
    use berth_host::config::BerthConfig;
    let parse = |text: &str| {
        BerthConfig::parse(text, Path::new("/srv"), &std::collections::BTreeMap::new()).map_err(|e| e.to_string())
    };
    let err = parse("[[static]]\nprefix = \"/metrics\"\ndir = \"web\"\n").expect_err("refused");
    assert!(err.contains("a path the host serves itself"), "{err}");
    let err = parse("[[static]]\ndir = \"web\"\nunknown = 1\n").expect_err("refused");
    assert!(err.contains("unknown"), "{err}");

    let config = parse("[[static]]\ndir = \"no-such-front-end/dist\"\n").expect("parses");
    assert_eq!(config.statics[0].dir, Path::new("/srv/no-such-front-end/dist"), "relative to berth.toml");
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let err = runtime.block_on(berth_host::server::start(config)).err().expect("refused at start").to_string();
    assert!(err.contains("/srv/no-such-front-end/dist") && err.contains("build the front end first"), "{err}");
}
