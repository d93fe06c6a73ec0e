//! Key-value: bytes or JSON values, TTLs, counters, compare-and-swap, prefix listing.

use std::fmt;
use std::time::Duration;

use berth_plugin_api::{service_error_kind as kind, KvHandle, ROption};
use serde::{de::DeserializeOwned, Serialize};

use super::{lift, ServiceError, ServiceResult};

/// A key-value store. Keys are namespaced per group by the host unless the store is shared.
#[derive(Clone)]
pub struct Kv {
    name: String,
    handle: KvHandle,
}

impl fmt::Debug for Kv {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Kv").field("name", &self.name).finish()
    }
}

fn ttl_ms(ttl: Option<Duration>) -> u64 {
    ttl.map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)).unwrap_or(0)
}

impl Kv {
    pub(crate) fn new(name: &str, handle: KvHandle) -> Self {
        Kv { name: name.to_owned(), handle }
    }

    pub async fn get(&self, key: &str) -> ServiceResult<Option<Vec<u8>>> {
        lift(self.handle.get(key.into()).await).map(|v| v.into_option().map(|v| v.into_vec()))
    }

    /// Gets a JSON value.
    pub async fn get_json<T: DeserializeOwned>(&self, key: &str) -> ServiceResult<Option<T>> {
        match self.get(key).await? {
            None => Ok(None),
            Some(raw) => serde_json::from_slice(&raw).map(Some).map_err(|e| {
                ServiceError::local(
                    kind::INVALID,
                    &self.name,
                    format!("value of `{key}` is not the expected JSON: {e}"),
                )
            }),
        }
    }

    /// Sets a value, with an optional time to live.
    pub async fn set(&self, key: &str, value: impl Into<Vec<u8>>, ttl: Option<Duration>) -> ServiceResult<()> {
        lift(self.handle.set(key.into(), value.into().into(), ttl_ms(ttl)).await)
    }

    /// Sets a JSON value.
    pub async fn set_json<T: Serialize>(&self, key: &str, value: &T, ttl: Option<Duration>) -> ServiceResult<()> {
        let raw = serde_json::to_vec(value)
            .map_err(|e| ServiceError::local(kind::INVALID, &self.name, format!("encoding `{key}`: {e}")))?;
        self.set(key, raw, ttl).await
    }

    /// Deletes a key; true when it existed.
    pub async fn delete(&self, key: &str) -> ServiceResult<bool> {
        lift(self.handle.delete(key.into()).await)
    }

    /// Adds `delta` to a counter (missing = 0) and returns the new value.
    pub async fn increment(&self, key: &str, delta: i64) -> ServiceResult<i64> {
        lift(self.handle.increment(key.into(), delta).await)
    }

    /// Sets `new` only if the current value is `expected` (`None`: only if the key is absent).
    /// Returns whether it was set.
    pub async fn compare_and_swap(
        &self,
        key: &str,
        expected: Option<&[u8]>,
        new: impl Into<Vec<u8>>,
        ttl: Option<Duration>,
    ) -> ServiceResult<bool> {
        let expected = match expected {
            Some(v) => ROption::RSome(v.into()),
            None => ROption::RNone,
        };
        lift(self.handle.compare_and_swap(key.into(), expected, new.into().into(), ttl_ms(ttl)).await)
    }

    /// Keys that start with `prefix`, sorted, at most `limit`.
    pub async fn list_keys(&self, prefix: &str, limit: u32) -> ServiceResult<Vec<String>> {
        lift(self.handle.list_keys(prefix.into(), limit).await)
            .map(|v| v.into_iter().map(|s| s.into_string()).collect())
    }
}
