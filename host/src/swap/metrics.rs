//! Metrics of hot swaps: `berth_swap_*` and the plugin-library gauges.

use prometheus::{Histogram, HistogramOpts, IntCounterVec, IntGauge, IntGaugeVec, Opts};

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
    /// 1 per serving group, labelled with the version and sha256 it serves.
    group_info: IntGaugeVec,
    /// 1 while a group's wanted version (the group list's) is not the one serving.
    pub deploy_failing: IntGaugeVec,
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
        let group_info = IntGaugeVec::new(
            Opts::new("berth_group_info", "1 per serving group: the version and the sha256 of the plugin it serves"),
            &["group", "version", "sha256"],
        )
        .expect("valid metric");
        let deploy_failing = IntGaugeVec::new(
            Opts::new(
                "berth_group_deploy_failing",
                "1 while the version the group list asks for could not be swapped in (the previous one serves)",
            ),
            &["group"],
        )
        .expect("valid metric");
        metrics.register(Box::new(group_info.clone()));
        metrics.register(Box::new(deploy_failing.clone()));
        metrics.register(Box::new(swaps.clone()));
        metrics.register(Box::new(duration.clone()));
        metrics.register(Box::new(versions_loaded.clone()));
        metrics.register(Box::new(libraries_mapped.clone()));
        SwapMetrics { swaps, duration, versions_loaded, libraries_mapped, group_info, deploy_failing }
    }

    /// `group` now serves `new` (or nothing) instead of `old`.
    pub fn serving(&self, group: &str, old: Option<(&str, &str)>, new: Option<(&str, &str)>) {
        if let Some((version, sha256)) = old {
            let _ = self.group_info.remove_label_values(&[group, version, sha256]);
        }
        if let Some((version, sha256)) = new {
            self.group_info.with_label_values(&[group, version, sha256]).set(1);
        }
    }

    /// Counts one swap of `group` with `outcome` (`ok`, or the refusal's code).
    pub fn count(&self, group: &str, outcome: &str) {
        self.swaps.with_label_values(&[group, outcome]).inc();
    }
}
