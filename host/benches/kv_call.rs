//! The cost of one key-value `get` on the embedded store, made three ways:
//!
//! - `kv_call/direct_backend`: host code awaiting `KvBackend::get` on the store itself (the
//!   SQLite read and nothing else).
//! - `kv_call/host_handle`: host code awaiting `get` on the `KvHandle` the group was given (adds
//!   the ABI trait object, the group namespace, metrics and the `FfiFuture`).
//! - `kv_call/through_plugin`: `FunctionGroup::call` of `kv_get` in the `svc-bench` fixture
//!   (release build), which runs `ctx.kv("cache")?.get(&key)`: the SDK glue, the registry-resolved
//!   handle, and the answer back as an HTTP response.
//!
//! The store holds one key (64 bytes). The group's services are resolved by a `ServiceRegistry`
//! built from `berth.toml` text (`[services.cache] kind = "kv"`, `[services.db] kind = "sqlite"`);
//! when the SQL backend is not available in this build, `db` is left out and the run says so (the
//! measured function does not use it). All three ways read through one backend (one pool). After criterion's runs a fixed loop prints the ratio
//! direct / through-plugin time per call (1.0 would be no overhead).
//!
//! `cargo bench -p berth-host --bench kv_call`

use std::collections::BTreeMap;
use std::hint::black_box;

use berth_host::config::{BerthConfig, EmbeddedKvConfig};
use berth_host::core::Metrics;
use berth_host::services::host::GroupHost;
use berth_host::services::kv;
use berth_plugin_api::{FunctionGroup, RResult};
use criterion::{criterion_group, criterion_main, Criterion};

mod support;

const GROUP: &str = "svc-bench";
const KEY: &str = "bench";

fn kv_call(c: &mut Criterion) {
    let support::Bench { so, scratch, plugin, index } = support::load("host/fixtures/svc-bench", "kv_get");

    let toml = format!(
        "data_dir = {scratch:?}\n\n[[groups]]\nfile = {so:?}\n\n[services.cache]\nkind = \"kv\"\n\n[services.db]\nkind = \"sqlite\"\n"
    );
    let config = BerthConfig::parse(&toml, &scratch, &BTreeMap::new()).expect("bench berth.toml");
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio runtime");
    // Backends are opened inside the runtime, as the host opens them.
    let _in_runtime = rt.enter();
    let registry = support::registry(&config);
    let settings = support::settings(&config.groups[0]);
    let mut services = match rt.block_on(registry.resolve(GROUP, &plugin.manifest.services, settings)) {
        Ok(s) => s,
        Err(e) => {
            println!("kv_call: SQL is not available in this build ({e}); resolving without `db`");
            let kv_only: Vec<_> = plugin.manifest.services.iter().filter(|n| n.kind != "sql").cloned().collect();
            rt.block_on(registry.resolve(GROUP, &kv_only, settings)).expect("resolving `cache`")
        }
    };
    // The registry resolved every declaration; the `cache` handle is then made again, exactly as the
    // registry makes it, over a backend this bench holds (the registry does not hand its backends
    // out), so that all three ways read through one connection pool.
    let kv_cfg: EmbeddedKvConfig =
        serde_json::from_value(config.services["cache"].settings_value()).expect("cache is kind = \"kv\"");
    let backend = kv::embedded::open_embedded("cache", &kv_cfg, &config.data_dir, Metrics::new().service("cache"))
        .expect("opening the store");
    assert!(services.kv.contains_key("cache"), "the registry resolved `cache`");
    services.kv.insert("cache".into(), kv::handle(backend.clone(), Some(GROUP.into()), "cache"));
    let handle = services.kv("cache").expect("the group's cache handle");

    let value = vec![b'v'; 64];
    rt.block_on(handle.set(KEY.into(), value.clone().into(), 0)).unwrap();
    let full_key = format!("{GROUP}/{KEY}");

    let host = GroupHost::with_services(GROUP, services.clone());
    let instance = rt.block_on(plugin.instantiate(host.clone())).expect("instantiating svc-bench");
    let call = || {
        let (ctx, input) = support::get(&host, &format!("/kv/{KEY}"), ("key", KEY));
        FunctionGroup::call(&instance.group, index, ctx, input)
    };

    // All three see the same value.
    match rt.block_on(call()) {
        RResult::ROk(r) => assert_eq!((r.status, &r.body[..]), (200, &value[..])),
        RResult::RErr(e) => panic!("kv_get failed: {}", berth_plugin_api::describe_error(&e)),
    }
    assert_eq!(rt.block_on(backend.get(&full_key)).unwrap().as_deref(), Some(&value[..]));
    assert_eq!(rt.block_on(handle.get(KEY.into())).unwrap().into_option().as_deref(), Some(&value[..]));

    let direct = || async { black_box(backend.get(black_box(&full_key)).await.unwrap()) };
    let via_handle = || async { black_box(handle.get(KEY.into()).await) };
    let via_plugin = || async { black_box(call().await) };

    let mut group = c.benchmark_group("kv_call");
    group.bench_function("direct_backend", |b| {
        b.iter_custom(|iters| rt.block_on(support::timed(iters, direct)));
    });
    group.bench_function("host_handle", |b| {
        b.iter_custom(|iters| rt.block_on(support::timed(iters, via_handle)));
    });
    group.bench_function("through_plugin", |b| {
        b.iter_custom(|iters| rt.block_on(support::timed(iters, via_plugin)));
    });
    group.finish();

    // The ratio: short interleaved rounds, each giving its own ratio, so that load changing
    // during the run (other processes) hits both sides of one ratio alike; the median of those.
    const ROUNDS: usize = 40;
    const PER_ROUND: u64 = 500;
    let (mut d, mut h, mut p) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        d.push(rt.block_on(support::timed(PER_ROUND, direct)).as_nanos() as f64 / PER_ROUND as f64);
        h.push(rt.block_on(support::timed(PER_ROUND, via_handle)).as_nanos() as f64 / PER_ROUND as f64);
        p.push(rt.block_on(support::timed(PER_ROUND, via_plugin)).as_nanos() as f64 / PER_ROUND as f64);
    }
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let to_plugin = median(d.iter().zip(&p).map(|(d, p)| d / p).collect());
    let to_handle = median(d.iter().zip(&h).map(|(d, h)| d / h).collect());
    println!(
        "kv_call: per get (median of {ROUNDS} rounds of {PER_ROUND}): direct backend {:.1} µs, host handle {:.1} µs, \
         through plugin {:.1} µs; direct/through-plugin = {to_plugin:.3}, direct/host-handle = {to_handle:.3}",
        median(d) / 1e3,
        median(h) / 1e3,
        median(p) / 1e3,
    );

    rt.block_on(instance.group.shutdown());
    drop(instance);
    let _ = std::fs::remove_dir_all(&scratch);
}

criterion_group! {
    name = benches;
    config = support::service_bench_config();
    targets = kv_call
}
criterion_main!(benches);
