//! Berth's fuzz targets: every decoder that takes outside input, as a plain function of bytes
//! with the oracle that judges its answer (as wasmtime keeps its generators and oracles in a
//! normal crate and its cargo-fuzz targets thin).
//!
//! - `ops/fuzz` (cargo-fuzz, libFuzzer) calls each target of [`TARGETS`] with the fuzzer's
//!   input; `ops/fuzz/run.sh SECONDS` runs them all.
//! - `tests/corpus.rs` replays every seed of `corpus/<target>/` and every input that once broke
//!   a target (`regressions/<target>/`) on each `cargo test`, so a crash that was fixed stays
//!   fixed without a fuzzer.
//!
//! A target panics when its decoder panics or its oracle sees a wrong answer; a clear refusal
//! of malformed input is the right answer, never a finding.

pub mod cloudevents;
pub mod config;
pub mod events;
pub mod http_head;
pub mod lambda;
pub mod listeners;
pub mod queue;
pub mod shims;
pub mod unzip;
pub mod wire;

/// One fuzz target: its name (the `ops/fuzz/fuzz_targets/<name>.rs` file and the corpus folder)
/// and the function the fuzzer calls.
pub struct Target {
    pub name: &'static str,
    pub run: fn(&[u8]),
    /// What it reaches, for `run.sh`'s report.
    pub covers: &'static str,
}

/// Every target.
pub const TARGETS: &[Target] = &[
    Target {
        name: "http_head",
        run: http_head::run,
        covers: "an HTTP/1.1 request head (as hyper's parser reads it) → route lookup → percent-decoded route parameters → the ABI request head",
    },
    Target {
        name: "listeners",
        run: listeners::run,
        covers: "raw bytes on the HTTP listener of standalone Berth, FC, SCF web functions, kubeless and Knative, through hyper, with no group loaded",
    },
    Target {
        name: "config",
        run: config::run,
        covers: "berth.toml text → the host's configuration, validated",
    },
    Target {
        name: "cloudevents",
        run: cloudevents::run,
        covers: "CloudEvents 1.0 in binary mode (ce-* headers) and structured mode (JSON)",
    },
    Target {
        name: "lambda",
        run: lambda::run,
        covers: "Lambda invocation events: API Gateway v1 and v2, ALB (single and multi-value), SQS, S3, EventBridge schedules, direct invokes",
    },
    Target {
        name: "events",
        run: events::run,
        covers: "Alibaba FC event payloads (timer, OSS, invoke) and Tencent SCF events (API Gateway, timer, COS, invoke)",
    },
    Target {
        name: "queue",
        run: queue::run,
        covers: "a Redis stream entry → the queue message envelope → the CloudEvent a queue function receives",
    },
    Target {
        name: "unzip",
        run: unzip::run,
        covers: "the unzip example's archive extraction under its limits",
    },
    Target {
        name: "wire",
        run: wire::run,
        covers: "frames between the host and a process-isolated worker, both directions",
    },
];

/// The target named `name`.
pub fn target(name: &str) -> Option<&'static Target> {
    TARGETS.iter().find(|t| t.name == name)
}

/// Splits off the first byte (a selector) from the rest.
pub(crate) fn split(data: &[u8]) -> (u8, &[u8]) {
    match data.split_first() {
        Some((&b, rest)) => (b, rest),
        None => (0, data),
    }
}
