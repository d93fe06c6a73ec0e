//! Metrics of hot swaps: `berth_swap_*` and the plugin-library gauges.

use prometheus::{Histogram, HistogramOpts, IntCounterVec, IntGauge, Opts};

use berth_core::Metrics;

/// The swap component's metric families.
#[derive(Clone)]
pub struct SwapMetrics {
    swaps: IntCounterVec,
    pub duration: Histogram,
    /// Group versions instantiated and not yet released: serving plus draining.
    pub versions_loaded: IntGauge,
    /// Private plugin copies mapped in the process (from `/proc/self/maps`).
    pub libraries_mapped: IntGauge,
}

impl SwapMetrics {
    /// Creates the families and registers them with the host's registry.
    pub fn new(metrics: &Metrics) -> Self {
        let swaps = IntCounterVec::new(
            Opts::new("berth_swap_total", "Hot swaps (deploy, reload, rollback, unload) by group and outcome"),
            &["group", "outcome"],
        )
        .expect("valid metric");
        let duration = Histogram::with_opts(
            HistogramOpts::new(
                "berth_swap_duration_seconds",
                "Time from a swap's start to the routing switch (or refusal): build, load, checks, init hook",
            )
            .buckets(vec![0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 120.0]),
        )
        .expect("valid metric");
        let versions_loaded = IntGauge::new(
            "berth_plugin_versions_loaded",
            "Group versions instantiated and not yet released (serving plus draining)",
        )
        .expect("valid metric");
        let libraries_mapped = IntGauge::new(
            "berth_plugin_libraries_mapped",
            "Plugin libraries mapped in the host process (from /proc/self/maps), stuck ones included",
        )
        .expect("valid metric");
        metrics.register(Box::new(swaps.clone()));
        metrics.register(Box::new(duration.clone()));
        metrics.register(Box::new(versions_loaded.clone()));
        metrics.register(Box::new(libraries_mapped.clone()));
        SwapMetrics { swaps, duration, versions_loaded, libraries_mapped }
    }

    /// Counts one swap of `group` with `outcome` (`ok`, or the refusal's code).
    pub fn count(&self, group: &str, outcome: &str) {
        self.swaps.with_label_values(&[group, outcome]).inc();
    }
}
