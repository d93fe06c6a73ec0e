//! Timer, direct-invoke and blob triggers through a real host.

use std::time::Duration;

use crate::support::{group, metric, TestHost};

#[tokio::test]
async fn timers_fire_on_schedule_and_skip_overlapping_runs() {
    let h = TestHost::start(&group("host/fixtures/timer-worker")).await;
    assert!(h.readiness().ready, "{:?}", h.readiness());
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let t = h.get("/ticks").await.json();
    let ticks = t["ticks"].as_u64().unwrap();
    assert!((6..=13).contains(&ticks), "every 100ms for ~1.1s gave {ticks} ticks");
    assert!(t["last_event"].as_str().unwrap().starts_with("berth.timer.fired timer-worker.tick."), "{t}");
    // slow_tick is due every 50 ms but takes 300 ms: runs never overlap, the rest are skipped.
    assert_eq!(t["slow_max_active"], 1, "{t}");
    let slow_runs = t["slow_runs"].as_u64().unwrap();
    assert!((2..=5).contains(&slow_runs), "{slow_runs} slow runs");
    let metrics = h.get("/metrics").await.text();
    let skipped =
        metric(&metrics, r#"berth_timer_runs_total{function="slow_tick",group="timer-worker",outcome="skipped"}"#);
    assert!(skipped.unwrap_or(0.0) >= 5.0, "{metrics}");
    h.stop().await;
}

#[tokio::test]
async fn direct_invoke_is_synchronous_or_asynchronous_and_fires_timers_by_hand() {
    let h = TestHost::start(&[group("examples/hello"), group("host/fixtures/timer-worker")].concat()).await;
    let res = h
        .send("POST", "/invoke/hello/echo", &[("content-type", "application/json")], br#"{"message":"hi","times":2}"#)
        .await;
    assert_eq!(res.status, 201, "{}", res.text());
    assert_eq!(res.json()["echoed"], serde_json::json!(["hi", "hi"]));

    let res = h.send("POST", "/invoke/hello/echo?async=true", &[], br#"{"message":"later"}"#).await;
    assert_eq!(res.status, 202, "{}", res.text());
    let status_url = res.json()["status_url"].as_str().unwrap().to_owned();
    let mut outcome = serde_json::Value::Null;
    for _ in 0..50 {
        outcome = h.get(&status_url).await.json()["outcome"].clone();
        if outcome["status"] != "pending" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(outcome["status"], "succeeded", "{outcome}");
    assert_eq!(outcome["response_status"], 201);

    let before = h.get("/ticks").await.json()["ticks"].as_u64().unwrap();
    let res = h
        .send("POST", "/invoke/timer-worker/tick", &[("ce-type", "berth.timer.fired"), ("ce-id", "manual-1")], b"{}")
        .await;
    assert_eq!(res.status, 204, "{}", res.text());
    let t = h.get("/ticks").await.json();
    assert!(t["ticks"].as_u64().unwrap() > before);

    assert_eq!(h.send("POST", "/invoke/hello/nope", &[], b"{}").await.status, 404);
    assert_eq!(h.send("POST", "/invoke/hello/divide", &[], b"").await.status, 400, "handler errors keep their status");
    assert_eq!(h.get("/invoke/results/unknown").await.status, 404);
    h.stop().await;
}

fn zip_of(entries: &[(&str, &[u8])]) -> Vec<u8> {
    // A stored (uncompressed) zip, written by hand so the test needs no zip crate.
    let mut out = Vec::new();
    let mut central = Vec::new();
    for (name, data) in entries {
        let crc = crc32(data);
        let offset = out.len() as u32;
        out.extend_from_slice(&[0x50, 0x4b, 0x03, 0x04, 20, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        out.extend_from_slice(&crc.to_le_bytes());
        out.extend_from_slice(&(data.len() as u32).to_le_bytes());
        out.extend_from_slice(&(data.len() as u32).to_le_bytes());
        out.extend_from_slice(&(name.len() as u16).to_le_bytes());
        out.extend_from_slice(&0u16.to_le_bytes());
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(data);
        central.extend_from_slice(&[0x50, 0x4b, 0x01, 0x02, 20, 0, 20, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        central.extend_from_slice(&crc.to_le_bytes());
        central.extend_from_slice(&(data.len() as u32).to_le_bytes());
        central.extend_from_slice(&(data.len() as u32).to_le_bytes());
        central.extend_from_slice(&(name.len() as u16).to_le_bytes());
        // extra len, comment len, disk start, internal attrs (2 each), external attrs (4).
        central.extend_from_slice(&[0; 12]);
        central.extend_from_slice(&offset.to_le_bytes());
        central.extend_from_slice(name.as_bytes());
    }
    let cd_offset = out.len() as u32;
    out.extend_from_slice(&central);
    out.extend_from_slice(&[0x50, 0x4b, 0x05, 0x06, 0, 0, 0, 0]);
    out.extend_from_slice(&(entries.len() as u16).to_le_bytes());
    out.extend_from_slice(&(entries.len() as u16).to_le_bytes());
    out.extend_from_slice(&(central.len() as u32).to_le_bytes());
    out.extend_from_slice(&cd_offset.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out
}

fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= b as u32;
        for _ in 0..8 {
            crc = if crc & 1 != 0 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
        }
    }
    !crc
}

#[tokio::test]
async fn an_uploaded_archive_is_extracted_and_a_hostile_one_dead_lettered_with_the_reason() {
    let config = format!(
        "[services.uploads]\nkind = \"blob\"\n[services.extracted]\nkind = \"blob\"\n{}[groups.config]\nmax_total_bytes = 1000\n",
        group("examples/unzip")
    );
    let h = TestHost::start(&config).await;
    assert!(h.readiness().ready, "{:?}", h.readiness());
    let archive = zip_of(&[("readme.txt", b"hello from the archive"), ("docs/a.md", b"# A")]);
    assert_eq!(h.send("PUT", "/uploads/site.zip", &[], &archive).await.status, 201);
    let mut got = None;
    for _ in 0..100 {
        let res = h.get("/extracted/site/docs/a.md").await;
        if res.status == 200 {
            got = Some(res.body);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(got.as_deref(), Some(&b"# A"[..]));
    assert_eq!(h.get("/extracted/site/readme.txt").await.text(), "hello from the archive");

    // Path escape and an archive past the configured size: refused, dead-lettered, nothing written.
    let evil = zip_of(&[("../escape.txt", b"pwned")]);
    assert_eq!(h.send("PUT", "/uploads/evil.zip", &[], &evil).await.status, 201);
    let big = zip_of(&[("big.bin", &[b'x'; 2000])]);
    assert_eq!(h.send("PUT", "/uploads/big.zip", &[], &big).await.status, 201);
    let dead_dir = h.data_dir().join("dead-letter/blob/unzip/unzip");
    let mut reasons = Vec::new();
    for _ in 0..100 {
        reasons = std::fs::read_dir(&dead_dir)
            .map(|d| d.flatten().map(|e| std::fs::read_to_string(e.path()).unwrap_or_default()).collect())
            .unwrap_or_default();
        if reasons.len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(reasons.len(), 2, "{reasons:?}");
    assert!(
        reasons.iter().any(|r| r.contains("would escape the target directory") && r.contains("evil.zip")),
        "{reasons:?}"
    );
    assert!(reasons.iter().any(|r| r.contains("expands past 1000 bytes")), "{reasons:?}");
    assert!(reasons.iter().all(|r| r.contains("\"attempts\": 1")), "permanent failures are not retried: {reasons:?}");
    assert_eq!(h.get("/extracted/escape.txt").await.status, 404);
    assert_eq!(h.get("/extracted/big/big.bin").await.status, 404);
    h.stop().await;
}
