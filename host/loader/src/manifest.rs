//! A plugin's manifest as the host sees it: plain Rust data copied out of the library (so it
//! outlives it), checked once when the plugin is opened.

use std::path::Path;
use std::time::Duration;

use berth_plugin_api::{Manifest, Trigger};
use serde::{Deserialize, Serialize};

use crate::LoadError;

/// A trigger as the host sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum TriggerSpec {
    Http {
        #[serde(with = "method_text")]
        method: http::Method,
        route: String,
    },
    /// A cron expression with seconds, or `@every <duration>`; `timezone` empty = UTC.
    Timer {
        schedule: String,
        timezone: String,
        allow_overlap: bool,
    },
    /// A queue binding of `berth.toml`; `None` takes the binding's setting.
    Queue {
        queue: String,
        concurrency: Option<u32>,
        max_attempts: Option<u32>,
    },
    Blob {
        bucket: String,
        events: Vec<String>,
    },
}

impl TriggerSpec {
    /// The trigger's kind as it appears in logs, metrics and `CallContext::trigger`.
    pub fn kind(&self) -> &'static str {
        match self {
            TriggerSpec::Http { .. } => "http",
            TriggerSpec::Timer { .. } => "timer",
            TriggerSpec::Queue { .. } => "queue",
            TriggerSpec::Blob { .. } => "blob",
        }
    }

    /// A one-line description (`http GET /x`, `timer 0 * * * * *`).
    pub fn describe(&self) -> String {
        match self {
            TriggerSpec::Http { method, route } => format!("http {method} {route}"),
            TriggerSpec::Timer { schedule, timezone, allow_overlap } => {
                let tz = if timezone.is_empty() { "UTC" } else { timezone };
                format!("timer \"{schedule}\" ({tz}{})", if *allow_overlap { ", overlapping" } else { "" })
            }
            TriggerSpec::Queue { queue, concurrency, max_attempts } => {
                let or_default = |v: &Option<u32>| v.map_or_else(|| "the queue's".to_owned(), |n| n.to_string());
                format!(
                    "queue {queue} (concurrency {}, max attempts {})",
                    or_default(concurrency),
                    or_default(max_attempts)
                )
            }
            TriggerSpec::Blob { bucket, events } => format!("blob {bucket} [{}]", events.join(", ")),
        }
    }
}

/// One function of a loaded group.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FunctionManifest {
    pub name: String,
    pub triggers: Vec<TriggerSpec>,
    pub timeout: Option<Duration>,
    pub body_limit: Option<u64>,
    pub services: Vec<(String, String)>,
}

/// A service a group declares.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceNeed {
    /// `sql`, `kv`, `redis`, `blob`, `http`, `secret`, `queue` or `service`.
    pub kind: String,
    pub name: String,
    /// For `service`: the interface crate and the version the consumer was built with.
    pub interface: String,
    pub version: String,
}

/// A service a group exports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportInfo {
    pub name: String,
    pub interface: String,
    pub version: String,
}

/// A plugin's manifest, copied out of the library (so it outlives it).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GroupManifest {
    pub name: String,
    pub version: String,
    pub sdk_version: String,
    pub functions: Vec<FunctionManifest>,
    pub services: Vec<ServiceNeed>,
    pub exports: Vec<ExportInfo>,
    /// What the plugin says of its HTTP functions' API (JSON: parameters, bodies, answers and
    /// their schemas), for the OpenAPI document; `None` from a plugin that predates it.
    #[serde(default)]
    pub api: Option<String>,
}

/// An HTTP method as its text (a manifest crosses to the host from a worker process).
mod method_text {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(m: &http::Method, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(m.as_str())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<http::Method, D::Error> {
        let text = String::deserialize(d)?;
        http::Method::from_bytes(text.as_bytes()).map_err(serde::de::Error::custom)
    }
}

impl GroupManifest {
    /// Checks and copies the ABI manifest a group reports (names, routes, schedules), as the
    /// loader does for a library's: `path` names where it came from in errors.
    pub fn from_abi(path: &Path, m: Manifest) -> Result<GroupManifest, LoadError> {
        convert_manifest(path, m)
    }
}

pub(crate) fn convert_manifest(path: &Path, m: Manifest) -> Result<GroupManifest, LoadError> {
    let bad = |message: String| LoadError::Manifest { path: path.to_owned(), message };
    if m.name.is_empty() || !m.name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
        return Err(bad(format!("group name `{}` must be non-empty ASCII letters, digits, `-` or `_`", m.name)));
    }
    let mut functions = Vec::with_capacity(m.functions.len());
    for f in m.functions.iter() {
        let mut triggers = Vec::new();
        for t in f.triggers.iter() {
            match t.as_enum() {
                Ok(Trigger::Http { method, route }) => {
                    let method = http::Method::from_bytes(method.as_bytes())
                        .map_err(|_| bad(format!("function `{}`: invalid HTTP method `{method}`", f.name)))?;
                    if !route.starts_with('/') {
                        return Err(bad(format!("function `{}`: route `{route}` must start with `/`", f.name)));
                    }
                    triggers.push(TriggerSpec::Http { method, route: route.to_string() });
                }
                Ok(Trigger::Timer { schedule, timezone, allow_overlap }) => triggers.push(TriggerSpec::Timer {
                    schedule: schedule.to_string(),
                    timezone: timezone.to_string(),
                    allow_overlap: *allow_overlap,
                }),
                Ok(Trigger::Queue { queue, concurrency, max_attempts }) => triggers.push(TriggerSpec::Queue {
                    queue: queue.to_string(),
                    // The ABI says 0 for "not set".
                    concurrency: (*concurrency > 0).then_some(*concurrency),
                    max_attempts: (*max_attempts > 0).then_some(*max_attempts),
                }),
                Ok(Trigger::Blob { bucket, events }) => triggers.push(TriggerSpec::Blob {
                    bucket: bucket.to_string(),
                    events: events.iter().map(|e| e.to_string()).collect(),
                }),
                Ok(_) | Err(_) => {
                    return Err(bad(format!(
                    "function `{}` uses a trigger kind this host does not know; upgrade the host or rebuild the plugin",
                    f.name
                )))
                }
            }
        }
        functions.push(FunctionManifest {
            name: f.name.to_string(),
            triggers,
            timeout: (f.timeout_ms > 0).then(|| Duration::from_millis(f.timeout_ms)),
            body_limit: (f.body_limit > 0).then_some(f.body_limit),
            services: f.services.iter().map(|s| (s.kind.to_string(), s.name.to_string())).collect(),
        });
    }
    let services = m
        .services
        .iter()
        .map(|s| ServiceNeed {
            kind: s.kind.to_string(),
            name: s.name.to_string(),
            interface: s.interface.to_string(),
            version: s.version.to_string(),
        })
        .collect();
    let exports = m
        .exports
        .iter()
        .map(|e| ExportInfo {
            name: e.name.to_string(),
            interface: e.interface.to_string(),
            version: e.version.to_string(),
        })
        .collect();
    Ok(GroupManifest {
        name: m.name.into_string(),
        version: m.version.into_string(),
        sdk_version: m.sdk_version.into_string(),
        functions,
        services,
        exports,
        api: None,
    })
}
