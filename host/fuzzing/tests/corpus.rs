//! Replays every seed (`corpus/<target>/`) and every input that once broke a target
//! (`regressions/<target>/`) through its target, so what the fuzzer found stays fixed.

use std::path::{Path, PathBuf};

fn inputs(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut files: Vec<PathBuf> = entries.filter_map(Result::ok).map(|e| e.path()).filter(|p| p.is_file()).collect();
    files.sort();
    files
}

fn replay(folder: &str) -> usize {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join(folder);
    let mut count = 0;
    for target in berth_fuzzing::TARGETS {
        for file in inputs(&root.join(target.name)) {
            let data = std::fs::read(&file).unwrap();
            let run = std::panic::catch_unwind(|| (target.run)(&data));
            assert!(run.is_ok(), "target {} fails on {}", target.name, file.display());
            count += 1;
        }
    }
    count
}

#[test]
fn every_seed_passes_its_target() {
    // At least one seed per target: a target without one starts from nothing.
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    for target in berth_fuzzing::TARGETS {
        assert!(!inputs(&root.join(target.name)).is_empty(), "no seed for target {}", target.name);
    }
    assert!(replay("corpus") >= berth_fuzzing::TARGETS.len());
}

#[test]
fn every_input_that_once_failed_passes_now() {
    replay("regressions");
}

/// The wire seeds are encoded by the host's own types, so they follow the protocol: the files
/// must be what `wire::seeds` encodes now (`BERTH_FUZZ_WRITE_SEEDS=1` rewrites them).
#[test]
fn the_wire_seeds_follow_the_protocol() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus/wire");
    for (name, bytes) in berth_fuzzing::wire::seeds() {
        let file = dir.join(name);
        if std::env::var_os("BERTH_FUZZ_WRITE_SEEDS").is_some() {
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(&file, &bytes).unwrap();
        }
        let committed = std::fs::read(&file).unwrap_or_default();
        assert!(committed == bytes, "{} is stale: run with BERTH_FUZZ_WRITE_SEEDS=1", file.display());
    }
}

/// The listener harness reaches each platform's handler: every listener seed gets an answer
/// (a harness that answers nothing would pass every oracle and fuzz nothing).
#[test]
fn every_listener_seed_is_answered() {
    use berth_platforms::Platform;
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus/listeners");
    let platforms = [Platform::Standalone, Platform::Fc, Platform::ScfWeb, Platform::Kubeless, Platform::Knative];
    for file in inputs(&dir) {
        let data = std::fs::read(&file).unwrap();
        let answer = berth_fuzzing::listeners::serve(platforms[usize::from(data[0]) % platforms.len()], &data[1..]);
        assert!(answer.starts_with(b"HTTP/1.1 "), "{} got no answer", file.display());
    }
}

/// kubeless's metrics are labelled by method: made-up methods share one series, so a caller
/// cannot grow the host's memory and `/metrics` by sending new ones.
#[test]
fn kubeless_metrics_stay_bounded_whatever_the_method() {
    use berth_platforms::Platform;
    for i in 0..200 {
        let req = format!("M{i} /nothing HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n");
        berth_fuzzing::listeners::serve(Platform::Kubeless, req.as_bytes());
    }
    berth_fuzzing::listeners::serve(Platform::Kubeless, b"GET /nothing HTTP/1.1\r\nHost: a\r\n\r\n");
    let metrics = berth_fuzzing::listeners::serve(Platform::Kubeless, b"GET /metrics HTTP/1.1\r\nHost: a\r\n\r\n");
    let text = String::from_utf8_lossy(&metrics);
    let series: Vec<&str> = text.lines().filter(|l| l.starts_with("function_calls_total{")).collect();
    // (Other tests share this process's kubeless shim: they add standard methods, never more.)
    assert!(series.iter().any(|l| l.contains(r#"method="other""#) && l.ends_with(" 200")), "{series:?}");
    assert!(series.iter().any(|l| l.contains(r#"method="GET""#)), "{series:?}");
    assert!(!series.iter().any(|l| l.contains(r#"method="M"#)), "{series:?}");
}
