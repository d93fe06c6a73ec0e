//! `[platform]` in `berth.toml`: which function receives the events a platform delivers that no
//! trigger of the group names by itself.
//!
//! ```toml
//! [platform]
//! invoke = "orders/handle"                      # any other event (Lambda, FC, SCF, kubeless)
//! [platform.schedules]
//! nightly-cleanup = "orders/purge"              # EventBridge rule / FC or SCF timer trigger name
//! [platform.queues]
//! orders-prod = "orders/ship"                   # SQS queue name (the last part of its ARN)
//! [platform.buckets]
//! my-upload-bucket = "media/thumbnail"          # S3 / OSS / COS bucket name
//! [platform.events]
//! "com.example.order.created" = "orders/accept" # CloudEvents type (Knative)
//! ```
//!
//! Without an entry, a queue or bucket reaches the functions whose own trigger names it, and a
//! schedule the timer function named like the rule (`purge` or `orders-purge`).

use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;

/// `group/function`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct FunctionRef {
    pub group: String,
    pub function: String,
}

impl TryFrom<String> for FunctionRef {
    type Error = String;

    fn try_from(s: String) -> Result<Self, String> {
        match s.split_once(['/', '.']) {
            Some((g, f)) if !g.is_empty() && !f.is_empty() && !f.contains('/') => {
                Ok(FunctionRef { group: g.to_owned(), function: f.to_owned() })
            }
            _ => Err(format!("`{s}` is not a function: expected \"group/function\"")),
        }
    }
}

impl fmt::Display for FunctionRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.group, self.function)
    }
}

/// The `[platform]` section.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlatformConfig {
    /// The platform to run as: `auto` (default: detected from the environment) or a name
    /// (`lambda`, `fc`, `scf`, `scf-web`, `kubeless`, `knative`, `standalone`). `--platform`
    /// and `BERTH_PLATFORM` win over it.
    #[serde(default)]
    pub name: Option<String>,
    /// The function that receives events no trigger claims.
    #[serde(default)]
    pub invoke: Option<FunctionRef>,
    /// Platform schedule (rule or timer trigger name) → timer function.
    #[serde(default)]
    pub schedules: BTreeMap<String, FunctionRef>,
    /// Platform queue name → queue function.
    #[serde(default)]
    pub queues: BTreeMap<String, FunctionRef>,
    /// Platform bucket name → blob function.
    #[serde(default)]
    pub buckets: BTreeMap<String, FunctionRef>,
    /// CloudEvents type → function.
    #[serde(default)]
    pub events: BTreeMap<String, FunctionRef>,
    /// Run timers and queue consumers inside the process too. Default: yes where instances
    /// live on (standalone, kubeless, Knative), no where they are frozen between invocations
    /// (Lambda, FC, SCF), since the platform delivers those events there.
    #[serde(default)]
    pub run_triggers: Option<bool>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_function_is_group_slash_function() {
        let f = FunctionRef::try_from("orders/ship".to_owned()).unwrap();
        assert_eq!((f.group.as_str(), f.function.as_str()), ("orders", "ship"));
        assert_eq!(f.to_string(), "orders/ship");
        assert_eq!(FunctionRef::try_from("orders.ship".to_owned()).unwrap(), f, "kubeless's file.function form");
        for bad in ["orders", "/ship", "orders/", "a/b/c"] {
            let err = FunctionRef::try_from(bad.to_owned()).unwrap_err();
            assert!(err.contains("group/function"), "{bad}: {err}");
        }
    }
}
