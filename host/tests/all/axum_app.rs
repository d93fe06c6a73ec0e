//! `examples/axum-app` loaded as a real plugin: the migrated axum app answers under its prefix
//! on every method, and its tokio-timer route fails clearly and at once, because a loaded plugin
//! has no tokio runtime (in-process tests cannot show this: they share the test's runtime).

use std::time::{Duration, Instant};

use crate::support::{group, TestHost};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_migrated_axum_app_serves_under_its_prefix_and_refuses_tokio_timers_clearly() {
    let h = TestHost::start(&group("examples/axum-app")).await;
    let health = h.get("/axum-app/health").await;
    assert_eq!((health.status, health.text().as_str()), (200, "ok"));

    let body = br#"{"url":"https://berth.dev/docs","title":"Berth docs","tags":["rust"]}"#;
    let created = h.send("POST", "/axum-app/bookmarks", &[("content-type", "application/json")], body).await;
    assert_eq!(created.status, 201, "{}", created.text());
    let id = created.json()["id"].as_u64().expect("an id");
    assert_eq!(created.header("location"), Some(format!("/axum-app/bookmarks/{id}").as_str()));
    let again = h.send("POST", "/axum-app/bookmarks", &[("content-type", "application/json")], body).await;
    assert_eq!((again.status, again.json()["error"].as_str()), (409, Some("duplicate")), "{}", again.text());
    let fetched = h.get(&format!("/axum-app/bookmarks/{id}")).await;
    assert_eq!(fetched.json()["title"], "Berth docs");
    let deleted = h.send("DELETE", &format!("/axum-app/bookmarks/{id}"), &[], b"").await;
    assert_eq!(deleted.status, 204);
    assert_eq!(h.get(&format!("/axum-app/bookmarks/{id}")).await.status, 404);

    // The host's timer, through the berth Context the adapter hands the app.
    let ping = h.get("/axum-app/berth/ping?wait_ms=30").await;
    assert_eq!(ping.status, 200, "{}", ping.text());
    assert_eq!(ping.json()["waited_ms"], 30);
    assert_eq!(ping.json()["request_id"].as_str(), ping.header("x-request-id"));

    // `tokio::time::sleep` inside the plugin: a clear 500 at once, not a hang.
    let started = Instant::now();
    let export = h.get("/axum-app/export").await;
    assert!(started.elapsed() < Duration::from_secs(5), "took {:?}", started.elapsed());
    assert_eq!(export.status, 500, "{}", export.text());
    let err = export.json();
    assert_eq!(err["error"], "no_tokio_runtime", "{err:#}");
    assert!(err["message"].as_str().unwrap().contains("berth::sleep"), "{err:#}");
    // ...and the group keeps serving.
    assert_eq!(h.get("/axum-app/health").await.status, 200);
    h.stop().await;
}
