//! The cost of one call of the `hello` example's `hello` function through the plugin ABI, next to
//! a direct Rust call of the same function.
//!
//! - `abi_call/through_abi`: what the host does per call once a request is routed: build the
//!   `CallContext` and `Input::Http` (method, path, `name=world` param; no headers, empty body),
//!   call `FunctionGroup::call` on the loaded `.so` (release build of `examples/hello`) and await
//!   the `FfiFuture`. Inside the plugin that is the SDK glue: ABI input to `berth::Request`,
//!   `Context`, the `Path<String>` extractor, the handler, JSON serialisation of the answer, panic
//!   guard, and the answer back as an ABI `Response`.
//! - `abi_call/direct`: `hello::hello(Path("world".to_string())).await`, statically linked: the
//!   handler alone (its result is not serialised).
//!
//! Both run in one current-thread tokio runtime, `iters` awaited calls per `block_on`, so neither
//! pays for entering the runtime. Logging is set up as `log = "warn"` (the HTTP benchmark's
//! setting), so the handler's `debug!` is skipped on both sides.
//!
//! `cargo bench -p berth-host --bench abi_call`

use std::hint::black_box;
use std::time::{Duration, Instant};

use berth_host::services::host::GroupHost;
use berth_plugin_api::{FunctionGroup, RResult};
use criterion::{criterion_group, criterion_main, Criterion};

mod support;

fn abi_call(c: &mut Criterion) {
    let support::Bench { scratch, plugin, index, .. } = support::load("examples/hello", "hello");

    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio runtime");
    // A host handle with no services and an empty group config, as for a group without any.
    let host = GroupHost::handle("hello");
    let instance = rt.block_on(plugin.instantiate(host.clone())).expect("instantiating the hello group");

    let call = || {
        let (ctx, input) = support::get(&host, "/hello/world", ("name", "world"));
        FunctionGroup::call(&instance.group, index, ctx, input)
    };

    // The answer through the ABI is the JSON the HTTP benchmark expects.
    match rt.block_on(call()) {
        RResult::ROk(r) => {
            assert_eq!(r.status, 200);
            assert_eq!(&r.body[..], br#"{"message":"Hello, world!"}"#);
        }
        RResult::RErr(e) => panic!("hello failed: {}", berth_plugin_api::describe_error(&e)),
    }

    let mut group = c.benchmark_group("abi_call");
    group.bench_function("through_abi", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let started = Instant::now();
                for _ in 0..iters {
                    black_box(call().await);
                }
                started.elapsed()
            })
        })
    });
    group.bench_function("direct", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let started = Instant::now();
                for _ in 0..iters {
                    let _ = black_box(hello::hello(berth::Path(black_box("world").to_string())).await);
                }
                started.elapsed()
            })
        })
    });
    group.finish();

    rt.block_on(instance.group.shutdown());
    drop(instance);
    let _ = std::fs::remove_dir_all(&scratch);
}

fn config() -> Criterion {
    Criterion::default().warm_up_time(Duration::from_secs(2)).measurement_time(Duration::from_secs(5))
}

criterion_group! {
    name = benches;
    config = config();
    targets = abi_call
}
criterion_main!(benches);
