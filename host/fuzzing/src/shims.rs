//! A host with no group loaded, as each platform shim sees it: the decoders run in full, and an
//! event that decodes reaches the dispatcher, which answers that no function serves it.

use std::sync::{Arc, OnceLock};

use berth_core::dispatcher::Dispatcher;
use berth_core::metrics::Metrics;
use berth_core::serving::ServingGroups;
use berth_platforms::{Platform, PlatformConfig, Shim};
use berth_triggers::http::invoke::InvokeApi;
use berth_triggers::http::HttpTrigger;

/// Where the shims' events go: names the seed corpus uses, so that decoded events are routed.
const TARGETS: &str = r#"{
    "invoke": "fuzz/invoke",
    "schedules": { "nightly": "fuzz/timer" },
    "queues": { "orders": "fuzz/queue" },
    "buckets": { "uploads": "fuzz/blob" },
    "events": { "com.example.created": "fuzz/event" }
}"#;

/// The platforms with a shim.
pub const PLATFORMS: [Platform; 7] = [
    Platform::Standalone,
    Platform::Lambda,
    Platform::Fc,
    Platform::Scf,
    Platform::ScfWeb,
    Platform::Kubeless,
    Platform::Knative,
];

/// The shim for `platform`, built once per process.
pub fn shim(platform: Platform) -> Arc<Shim> {
    static SHIMS: OnceLock<Vec<(Platform, Arc<Shim>)>> = OnceLock::new();
    let all = SHIMS.get_or_init(|| {
        let config: PlatformConfig = serde_json::from_str(TARGETS).expect("the fuzz platform config parses");
        PLATFORMS
            .iter()
            .map(|&p| {
                let metrics = Metrics::new();
                let dispatcher = Arc::new(Dispatcher::default());
                let serving = Arc::new(ServingGroups::default());
                serving.set_ready();
                let invoke = InvokeApi::new(dispatcher.clone(), None);
                let http = Arc::new(HttpTrigger::new(serving.clone(), metrics.clone(), 64, invoke));
                // kubeless: every call no route serves goes to FUNC_HANDLER.
                let env = |name: &str| (name == "FUNC_HANDLER").then(|| "fuzz/handler".to_owned());
                (p, Arc::new(Shim::new(p, config.clone(), http, dispatcher, serving, metrics, &env)))
            })
            .collect()
    });
    all.iter().find(|(p, _)| *p == platform).map(|(_, s)| s.clone()).expect("a shim for every platform")
}

/// The runtime the async decoders run on (one thread, as a plugin call's poll would be).
pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a current-thread runtime")
    })
    .block_on(f)
}
