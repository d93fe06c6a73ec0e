//! The in-memory key-value store (`kind = "memory-kv"`): a map in the host process, gone when the
//! host stops. For development, tests and platforms whose disk is ephemeral anyway (a function
//! instance on Lambda); values are shared by every group that declares the store, namespaced
//! like every other store's.
//!
//! This file is the whole backend: the store, its config type and its provider, registered by one
//! line in [`crate::registry::providers`].

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use berth_core::clock::now_unix_ms;
use berth_core::metrics::ServiceMetrics;
use berth_core::provider::{OpenContext, OpenedService, TypedProvider};
use bytesize::ByteSize;
use serde::Deserialize;

use super::{KvError, KvService};

/// `[services.<name>] kind = "memory-kv"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemoryKvConfig {
    /// Shared stores are not namespaced per group.
    #[serde(default)]
    pub shared: bool,
    #[serde(default = "default_max_value")]
    pub max_value_size: ByteSize,
    /// Keys the store holds at most; a write of a new key past it fails with `TOO_LARGE`.
    #[serde(default = "default_max_keys")]
    pub max_keys: usize,
}

fn default_max_value() -> ByteSize {
    ByteSize::mib(1)
}
fn default_max_keys() -> usize {
    100_000
}

// === the provider ===

/// `kind = "memory-kv"`: a map in the host process.
pub const PROVIDER: TypedProvider<MemoryKvConfig> = TypedProvider::new("memory-kv", "kv", open_store);

fn open_store(cfg: &MemoryKvConfig, ctx: OpenContext<'_>) -> Result<Arc<dyn OpenedService>, String> {
    let store = MemoryStore {
        entries: Mutex::new(BTreeMap::new()),
        max_value_size: cfg.max_value_size.as_u64(),
        max_keys: cfg.max_keys.max(1),
        metrics: ctx.metrics,
    };
    Ok(Arc::new(KvService { backend: Arc::new(store), shared: cfg.shared }))
}

// === impl MemoryStore ===

/// One value and when it expires (Unix ms).
struct Entry {
    value: Vec<u8>,
    expires_at: Option<u64>,
}

impl Entry {
    fn live(&self, now: u64) -> bool {
        self.expires_at.is_none_or(|at| at > now)
    }
}

/// The store: one ordered map under a lock held for one operation (never across an await).
pub struct MemoryStore {
    entries: Mutex<BTreeMap<String, Entry>>,
    max_value_size: u64,
    max_keys: usize,
    metrics: ServiceMetrics,
}

fn expiry(ttl_ms: u64) -> Option<u64> {
    (ttl_ms > 0).then(|| now_unix_ms().saturating_add(ttl_ms))
}

impl MemoryStore {
    fn entries(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Entry>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Stores `entry` under `key`, refusing a new key past `max_keys` (expired keys are dropped
    /// first to make room).
    fn put(&self, map: &mut BTreeMap<String, Entry>, key: &str, entry: Entry) -> Result<(), KvError> {
        if !map.contains_key(key) && map.len() >= self.max_keys {
            let now = now_unix_ms();
            map.retain(|_, e| e.live(now));
            if map.len() >= self.max_keys {
                return Err(KvError::failed(
                    berth_plugin_api::service_error_kind::TOO_LARGE,
                    format!("the in-memory store holds its limit of {} keys (max_keys)", self.max_keys),
                ));
            }
        }
        map.insert(key.to_owned(), entry);
        Ok(())
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        let mut map = self.entries();
        match map.get(key) {
            Some(e) if e.live(now_unix_ms()) => Ok(Some(e.value.clone())),
            Some(_) => {
                map.remove(key);
                Ok(None)
            }
            None => Ok(None),
        }
    }

    async fn set(&self, key: &str, value: Vec<u8>, ttl_ms: u64) -> Result<(), KvError> {
        let mut map = self.entries();
        self.put(&mut map, key, Entry { value, expires_at: expiry(ttl_ms) })
    }

    async fn delete(&self, key: &str) -> Result<bool, KvError> {
        Ok(self.entries().remove(key).is_some_and(|e| e.live(now_unix_ms())))
    }

    async fn increment(&self, key: &str, delta: i64) -> Result<i64, KvError> {
        let mut map = self.entries();
        let (current, expires_at) = match map.get(key) {
            Some(e) if e.live(now_unix_ms()) => (super::counter_value(&e.value)?, e.expires_at),
            _ => (0, None),
        };
        let next = current.checked_add(delta).ok_or(KvError::Overflow)?;
        self.put(&mut map, key, Entry { value: next.to_string().into_bytes(), expires_at })?;
        Ok(next)
    }

    async fn compare_and_swap(
        &self,
        key: &str,
        expected: Option<Vec<u8>>,
        new: Vec<u8>,
        ttl_ms: u64,
    ) -> Result<bool, KvError> {
        let mut map = self.entries();
        let current = map.get(key).filter(|e| e.live(now_unix_ms())).map(|e| &e.value);
        if current != expected.as_ref() {
            return Ok(false);
        }
        self.put(&mut map, key, Entry { value: new, expires_at: expiry(ttl_ms) })?;
        Ok(true)
    }

    async fn list_keys(&self, prefix: &str, limit: u32) -> Result<Vec<String>, KvError> {
        let now = now_unix_ms();
        let map = self.entries();
        let keys = map
            .range(prefix.to_owned()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .filter(|(_, e)| e.live(now))
            .map(|(k, _)| k.clone())
            .take(limit as usize)
            .collect();
        Ok(keys)
    }
}

super::kv_backend_from_inherent!(MemoryStore);

#[cfg(test)]
mod tests {
    use super::super::suite;
    use super::*;

    fn store(max_keys: usize) -> Arc<dyn super::super::KvBackend> {
        let store = MemoryStore {
            entries: Mutex::new(BTreeMap::new()),
            max_value_size: suite::MAX,
            max_keys,
            metrics: suite::metrics(),
        };
        Arc::new(store)
    }

    #[tokio::test]
    async fn memory_store_behaves() {
        suite::behaves(store(1000)).await;
    }

    #[tokio::test]
    async fn memory_store_lists_literally() {
        suite::lists_literally(store(1000)).await;
    }

    #[tokio::test]
    async fn memory_store_namespaces() {
        suite::namespaces(store(1000)).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn memory_store_races() {
        suite::races(store(1000)).await;
    }

    #[tokio::test]
    async fn a_full_store_refuses_new_keys_and_keeps_taking_old_ones() {
        let h = super::super::handle(store(2), None, "cache");
        suite::set(&h, "a", b"1", 0).await;
        suite::set(&h, "b", b"2", 0).await;
        let e = h.set("c".into(), b"3".as_slice().into(), 0).await.into_result().unwrap_err();
        assert_eq!(e.kind, berth_plugin_api::service_error_kind::TOO_LARGE);
        assert!(e.message.contains("max_keys"), "{}", e.message);
        suite::set(&h, "a", b"again", 0).await;
        assert_eq!(suite::get(&h, "a").await.as_deref(), Some(&b"again"[..]));
    }

    #[test]
    fn its_config_refuses_unknown_keys() {
        use berth_core::ServiceProvider as _;
        assert!(PROVIDER.check(&serde_json::json!({ "max_keys": 10, "shared": true })).is_ok());
        let e = PROVIDER.check(&serde_json::json!({ "max_key": 10 })).unwrap_err();
        assert!(e.contains("max_key"), "{e}");
    }
}
