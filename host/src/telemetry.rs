//! Log setup for the binary.

use tracing_subscriber::EnvFilter;

/// Installs the global `tracing` subscriber: human-readable lines on stderr, filtered by
/// `filter` (env-filter syntax; `RUST_LOG` wins when set). On Lambda, `AWS_LAMBDA_LOG_LEVEL`
/// sets the level and `AWS_LAMBDA_LOG_FORMAT=JSON` makes each line a JSON object (with the
/// invocation's request id among its span fields), as Lambda's advanced logging expects.
pub fn init(filter: &str) {
    let lambda_level = std::env::var("AWS_LAMBDA_LOG_LEVEL").ok().map(|l| match l.to_ascii_lowercase().as_str() {
        "fatal" => "error".to_owned(),
        other => other.to_owned(),
    });
    let filter = std::env::var("RUST_LOG")
        .ok()
        .and_then(|f| EnvFilter::try_new(f).ok())
        .or_else(|| lambda_level.and_then(|l| EnvFilter::try_new(l).ok()))
        .or_else(|| EnvFilter::try_new(filter).ok())
        .unwrap_or_else(|| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_target(true);
    if std::env::var("AWS_LAMBDA_LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json")) {
        let _ = builder.json().with_current_span(true).with_span_list(false).try_init();
    } else {
        let _ = builder.with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr())).try_init();
    }
}

/// Logging of a `berth worker` process: its own lines (the worker's, not the plugin's, which go
/// to the host) at `warn` on stderr, marked with the worker's pid.
pub fn init_worker() {
    let filter = std::env::var("RUST_LOG")
        .ok()
        .and_then(|f| EnvFilter::try_new(f).ok())
        .unwrap_or_else(|| EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(false).try_init();
}
