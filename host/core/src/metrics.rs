//! Prometheus metrics of the host. Each component owns its families under its own prefix;
//! per-function handles are resolved once when a group loads, never per request.

use prometheus::{
    core::{AtomicU64, Collector, GenericCounter},
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, Opts, Registry, TextEncoder,
};

/// The host's metric families.
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    invocations: IntCounterVec,
    errors: IntCounterVec,
    duration: HistogramVec,
    rejected: IntCounterVec,
    pub groups_loaded: IntGauge,
    pub inflight: IntGauge,
    service_calls: IntCounterVec,
    service_errors: IntCounterVec,
    service_duration: HistogramVec,
    /// Counter families registered by components on first use (triggers), by name.
    extra: std::sync::Arc<std::sync::Mutex<Vec<(String, IntCounterVec)>>>,
}

/// Metrics of one configured service: calls, errors by kind and latency, per operation.
#[derive(Clone)]
pub struct ServiceMetrics {
    service: std::sync::Arc<str>,
    calls: IntCounterVec,
    errors: IntCounterVec,
    duration: HistogramVec,
}

impl ServiceMetrics {
    /// Times `fut` and counts its outcome under operation `op`; errors are logged with the
    /// service name (values and parameters never are).
    pub async fn observe<T>(
        &self,
        op: &'static str,
        fut: impl std::future::Future<Output = Result<T, berth_plugin_api::ServiceError>>,
    ) -> berth_plugin_api::RResult<T, berth_plugin_api::ServiceError> {
        let started = std::time::Instant::now();
        let out = fut.await;
        self.duration.with_label_values(&[&self.service, op]).observe(started.elapsed().as_secs_f64());
        self.calls.with_label_values(&[&self.service, op]).inc();
        if let Err(e) = &out {
            let kind = service_error_label(e.kind);
            self.errors.with_label_values(&[&self.service, op, kind]).inc();
            tracing::warn!(service = %self.service, op, error_kind = kind, error = %e.message, "service call failed");
        }
        out.into()
    }
}

fn service_error_label(kind: u8) -> &'static str {
    use berth_plugin_api::service_error_kind as k;
    match kind {
        k::UNAVAILABLE => "unavailable",
        k::NOT_FOUND => "not_found",
        k::INVALID => "invalid",
        k::TOO_LARGE => "too_large",
        k::CONFLICT => "conflict",
        k::TIMEOUT => "timeout",
        k::NOT_DECLARED => "not_declared",
        k::HANDLER => "handler",
        _ => "other",
    }
}

/// The handles of one function, resolved at load.
#[derive(Clone)]
pub struct FunctionMetrics {
    by_class: [GenericCounter<AtomicU64>; 5],
    pub panics: GenericCounter<AtomicU64>,
    pub timeouts: GenericCounter<AtomicU64>,
    pub handler_errors: GenericCounter<AtomicU64>,
    /// In-process calls that ran well past their timeout without yielding.
    pub runaways: GenericCounter<AtomicU64>,
    pub duration: Histogram,
}

impl FunctionMetrics {
    /// Counts one invocation answered with `status`.
    pub fn count(&self, status: u16) {
        let class = (status / 100).clamp(1, 5) as usize - 1;
        self.by_class[class].inc();
    }
}

/// Why a request was turned away before reaching a function.
#[derive(Debug, Clone, Copy)]
pub enum Rejection {
    NotFound,
    MethodNotAllowed,
    Overloaded,
    BodyTooLarge,
    NotReady,
}

impl Rejection {
    fn label(self) -> &'static str {
        match self {
            Rejection::NotFound => "not_found",
            Rejection::MethodNotAllowed => "method_not_allowed",
            Rejection::Overloaded => "overloaded",
            Rejection::BodyTooLarge => "body_too_large",
            Rejection::NotReady => "not_ready",
        }
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        let invocations = IntCounterVec::new(
            Opts::new("berth_function_invocations_total", "Function invocations by response status class"),
            &["group", "function", "status_class"],
        )
        .expect("valid metric");
        let errors = IntCounterVec::new(
            Opts::new("berth_function_errors_total", "Function failures by kind (handler 5xx, panic, timeout, runaway: an in-process call that held a thread past its timeout)"),
            &["group", "function", "kind"],
        )
        .expect("valid metric");
        let duration = HistogramVec::new(
            HistogramOpts::new("berth_function_duration_seconds", "Function call duration, body read included")
                .buckets(vec![
                    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                    10.0, 30.0,
                ]),
            &["group", "function"],
        )
        .expect("valid metric");
        let rejected = IntCounterVec::new(
            Opts::new("berth_http_rejected_total", "HTTP requests answered by the host without calling a function"),
            &["reason"],
        )
        .expect("valid metric");
        let groups_loaded =
            IntGauge::new("berth_plugin_groups_loaded", "Function groups loaded and serving").expect("valid metric");
        let inflight = IntGauge::new("berth_http_inflight_requests", "Function calls in flight").expect("valid metric");
        let service_calls = IntCounterVec::new(
            Opts::new("berth_service_calls_total", "Service calls made by functions, by service and operation"),
            &["service", "op"],
        )
        .expect("valid metric");
        let service_errors = IntCounterVec::new(
            Opts::new("berth_service_errors_total", "Failed service calls by service, operation and error kind"),
            &["service", "op", "kind"],
        )
        .expect("valid metric");
        let service_duration = HistogramVec::new(
            HistogramOpts::new("berth_service_call_duration_seconds", "Service call latency").buckets(vec![
                0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0,
            ]),
            &["service", "op"],
        )
        .expect("valid metric");
        for c in [
            Box::new(invocations.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(errors.clone()),
            Box::new(duration.clone()),
            Box::new(rejected.clone()),
            Box::new(groups_loaded.clone()),
            Box::new(inflight.clone()),
            Box::new(service_calls.clone()),
            Box::new(service_errors.clone()),
            Box::new(service_duration.clone()),
        ] {
            registry.register(c).expect("metric registered once");
        }
        Metrics {
            registry,
            invocations,
            errors,
            duration,
            rejected,
            groups_loaded,
            inflight,
            service_calls,
            service_errors,
            service_duration,
            extra: Default::default(),
        }
    }

    /// Resolves the handles of one function.
    pub fn function(&self, group: &str, function: &str) -> FunctionMetrics {
        let class = |c: &str| self.invocations.with_label_values(&[group, function, c]);
        let kind = |k: &str| self.errors.with_label_values(&[group, function, k]);
        FunctionMetrics {
            by_class: [class("1xx"), class("2xx"), class("3xx"), class("4xx"), class("5xx")],
            panics: kind("panic"),
            timeouts: kind("timeout"),
            handler_errors: kind("handler"),
            runaways: kind("runaway"),
            duration: self.duration.with_label_values(&[group, function]),
        }
    }

    /// `berth_timer_runs_total{group,function,outcome}` (registered on first use).
    pub fn timer_runs(&self) -> IntCounterVec {
        self.register_once(|| {
            IntCounterVec::new(
                Opts::new("berth_timer_runs_total", "Timer runs by outcome (ok, failed, skipped while the last ran)"),
                &["group", "function", "outcome"],
            )
            .expect("valid metric")
        })
    }

    /// Registers a counter family the first time it is asked for; later calls return the same.
    pub fn register_once(&self, make: impl FnOnce() -> IntCounterVec) -> IntCounterVec {
        let made = make();
        let name = made.desc().first().map(|d| d.fq_name.clone()).unwrap_or_default();
        let mut extra = self.extra.lock().expect("metrics lock");
        if let Some(existing) = extra.iter().find(|(n, _)| *n == name) {
            return existing.1.clone();
        }
        let _ = self.registry.register(Box::new(made.clone()));
        extra.push((name, made.clone()));
        made
    }

    /// Registers a family owned by another component (its own metrics struct holds the handles).
    pub fn register(&self, collector: Box<dyn Collector>) {
        if let Err(e) = self.registry.register(collector) {
            tracing::warn!(error = %e, "metric family not registered");
        }
    }

    /// The metrics of the service configured as `name`.
    pub fn service(&self, name: &str) -> ServiceMetrics {
        ServiceMetrics {
            service: name.into(),
            calls: self.service_calls.clone(),
            errors: self.service_errors.clone(),
            duration: self.service_duration.clone(),
        }
    }

    pub fn reject(&self, why: Rejection) {
        self.rejected.with_label_values(&[why.label()]).inc();
    }

    /// The Prometheus text exposition of every family.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        String::from_utf8(out).unwrap_or_default()
    }
}
