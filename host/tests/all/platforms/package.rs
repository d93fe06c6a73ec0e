//! `berth package` as a user runs it: what each target writes, and the same plugin in all.

use sha2::Digest as _;

use super::support::package;

fn sha(path: &std::path::Path) -> String {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    format!("{:x}", sha2::Sha256::digest(bytes))
}

#[test]
fn each_target_gets_its_entry_point_and_every_target_the_same_plugin() {
    let mut plugins = Vec::new();
    for (target, entry) in [
        ("lambda", "bootstrap"),
        ("fc", "bootstrap"),
        ("scf", "bootstrap"),
        ("scf-web", "scf_bootstrap"),
        ("kubeless", "berth"),
        ("knative", "berth"),
        ("container", "berth"),
    ] {
        let pkg = package(target);
        let root = &pkg.root;
        assert!(root.join(entry).is_file(), "{target}: no {entry} in {}", root.display());
        let config = std::fs::read_to_string(root.join("berth.toml")).unwrap();
        let doc: toml::Table = config.parse().unwrap();
        let file = doc["groups"][0]["file"].as_str().unwrap().to_owned();
        assert!(file.starts_with("plugins/"), "{target}: {config}");
        let packaged = sha(&root.join(&file));
        assert_eq!(
            doc["groups"][0]["sha256"].as_str(),
            Some(packaged.as_str()),
            "{target}: the plugin is pinned: {config}"
        );
        plugins.push((target, packaged));
        assert!(pkg.stdout.contains(&format!("packaged {target}: ")), "{}", pkg.stdout);
        if pkg.artifact.extension().is_some_and(|e| e == "zip") {
            let mut zip = zip::ZipArchive::new(std::fs::File::open(&pkg.artifact).unwrap()).unwrap();
            let mode = zip.by_name(entry).unwrap().unix_mode().unwrap();
            assert_eq!(mode & 0o777, 0o755, "{target}: {entry} is executable in the zip");
            assert!(pkg.stdout.contains("upload:"), "{}", pkg.stdout);
        } else {
            let dockerfile = std::fs::read_to_string(root.join("Dockerfile")).unwrap();
            assert!(dockerfile.contains("USER 65532:65532") && dockerfile.contains("debian"), "{dockerfile}");
        }
    }
    let first = plugins[0].1.clone();
    assert!(plugins.iter().all(|(_, s)| *s == first), "the same plugin in every target: {plugins:?}");
}

#[test]
fn package_help_says_what_each_target_produces() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_berth")).args(["package", "--help"]).output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    for line in [
        "lambda     berth-lambda.zip: bootstrap",
        "scf-web    berth-scf-web.zip: scf_bootstrap",
        "knative    berth-knative/",
    ] {
        assert!(help.contains(line), "{help}");
    }
}

#[test]
fn a_platform_that_cannot_be_served_is_refused_with_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("berth.toml");
    std::fs::write(&config, format!("data_dir = \"{}\"\n[admin]\nenabled = false\n", dir.path().display())).unwrap();
    let run = |platform: &str| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_berth"))
            .args(["up", "--platform", platform, "--config"])
            .arg(&config)
            .env_remove("AWS_LAMBDA_RUNTIME_API")
            .env("NO_COLOR", "1")
            .output()
            .unwrap();
        (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    let (ok, err) = run("azure");
    assert!(!ok && err.contains("unknown platform `azure`") && err.contains("lambda, fc, scf"), "{err}");
    let (ok, err) = run("lambda");
    assert!(!ok && err.contains("AWS_LAMBDA_RUNTIME_API is not set") && err.contains("--platform standalone"), "{err}");
}
