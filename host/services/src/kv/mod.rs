//! Key-value stores: the handle a group gets, and the [`KvBackend`] trait every store implements
//! (one file each: [`embedded`], a SQLite file; [`redis`], on Redis).
//!
//! A backend ([`KvBackend`]) is opened once per `[services.<name>]` and shared by every group that
//! declares it. Each group gets its own [`handle`], which puts `<group>/` in front of every key
//! unless the store is `shared`, so groups never see each other's keys, and which enforces
//! `max_value_size` before a backend is asked to store anything.
//!
//! A new store is one file here: a type implementing [`KvBackend`] (the inherent-methods macro
//! `kv_backend_from_inherent!` writes the trait impl) and a [`ServiceProvider`](berth_core::ServiceProvider)
//! that opens it, registered in [`crate::registry::providers`].

#[cfg(feature = "sqlite")]
pub mod embedded;
pub mod memory;
#[cfg(feature = "redis")]
pub mod redis;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use berth_core::host_future::FutureExt as _;
use berth_plugin_api::abi_stable::{sabi_trait::TD_Opaque, std_types::RArc};
use berth_plugin_api::{
    service_error_kind as kind, KvHandle, KvStore, KvStore_TO, ROption, RString, RVec, ServiceError, ServiceResult,
};

use berth_core::metrics::ServiceMetrics;
use berth_core::provider::{OpenedService, ServiceHandle};

/// Why a backend call failed. The group's handle turns it into a [`ServiceError`] that names the
/// key as the group wrote it.
#[derive(Debug, Clone, PartialEq)]
pub enum KvError {
    /// `increment` met a value that is not a decimal 64-bit integer.
    NotAnInteger,
    /// `increment` would leave the 64-bit range.
    Overflow,
    /// Anything else: a [`kind`] and a message.
    Failed { kind: u8, message: String },
}

impl KvError {
    pub fn failed(kind: u8, message: impl Into<String>) -> Self {
        KvError::Failed { kind, message: message.into() }
    }
}

/// What a backend call returns.
pub type KvFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, KvError>> + Send + 'a>>;

/// Implements [`KvBackend`] for a store with `metrics` and `max_value_size` fields and inherent
/// async methods named like the trait's (`get`, `set`, `delete`, `increment`,
/// `compare_and_swap`, `list_keys`).
macro_rules! kv_backend_from_inherent {
    ($store:ident) => {
        impl $crate::kv::KvBackend for $store {
            fn metrics(&self) -> &::berth_core::metrics::ServiceMetrics {
                &self.metrics
            }
            fn max_value_size(&self) -> u64 {
                self.max_value_size
            }
            fn get<'a>(&'a self, key: &'a str) -> $crate::kv::KvFuture<'a, Option<Vec<u8>>> {
                Box::pin($store::get(self, key))
            }
            fn set<'a>(&'a self, key: &'a str, value: Vec<u8>, ttl_ms: u64) -> $crate::kv::KvFuture<'a, ()> {
                Box::pin($store::set(self, key, value, ttl_ms))
            }
            fn delete<'a>(&'a self, key: &'a str) -> $crate::kv::KvFuture<'a, bool> {
                Box::pin($store::delete(self, key))
            }
            fn increment<'a>(&'a self, key: &'a str, delta: i64) -> $crate::kv::KvFuture<'a, i64> {
                Box::pin($store::increment(self, key, delta))
            }
            fn compare_and_swap<'a>(
                &'a self,
                key: &'a str,
                expected: Option<Vec<u8>>,
                new: Vec<u8>,
                ttl_ms: u64,
            ) -> $crate::kv::KvFuture<'a, bool> {
                Box::pin($store::compare_and_swap(self, key, expected, new, ttl_ms))
            }
            fn list_keys<'a>(&'a self, prefix: &'a str, limit: u32) -> $crate::kv::KvFuture<'a, Vec<String>> {
                Box::pin($store::list_keys(self, prefix, limit))
            }
        }
    };
}
pub(crate) use kv_backend_from_inherent;

/// The counter a store keeps as a decimal integer value, read back (`NotAnInteger` otherwise).
pub(crate) fn counter_value(value: &[u8]) -> Result<i64, KvError> {
    std::str::from_utf8(value).ok().and_then(|s| s.parse::<i64>().ok()).ok_or(KvError::NotAnInteger)
}

/// A key-value backend shared by every group that uses it. Keys arrive complete (namespaced by
/// [`handle`]); values arrive already checked against [`KvBackend::max_value_size`].
pub trait KvBackend: Send + Sync {
    /// The metrics of `[services.<name>]`.
    fn metrics(&self) -> &ServiceMetrics;
    /// The largest value the store takes, in bytes.
    fn max_value_size(&self) -> u64;
    fn get<'a>(&'a self, key: &'a str) -> KvFuture<'a, Option<Vec<u8>>>;
    /// Sets a value; `ttl_ms` 0 means no expiry.
    fn set<'a>(&'a self, key: &'a str, value: Vec<u8>, ttl_ms: u64) -> KvFuture<'a, ()>;
    /// Deletes a key; true when it existed (and had not expired).
    fn delete<'a>(&'a self, key: &'a str) -> KvFuture<'a, bool>;
    /// Adds `delta` to a decimal integer value (missing = 0), keeping its expiry.
    fn increment<'a>(&'a self, key: &'a str, delta: i64) -> KvFuture<'a, i64>;
    /// Sets `new` only if the current value is `expected` (`None`: only if absent), atomically.
    fn compare_and_swap<'a>(
        &'a self,
        key: &'a str,
        expected: Option<Vec<u8>>,
        new: Vec<u8>,
        ttl_ms: u64,
    ) -> KvFuture<'a, bool>;
    /// Keys starting with `prefix` (taken literally), sorted, at most `limit`.
    fn list_keys<'a>(&'a self, prefix: &'a str, limit: u32) -> KvFuture<'a, Vec<String>>;
}

/// The handle a group gets for store `name`: every key is prefixed with `<namespace>/` when
/// `namespace` is given (and `list_keys` strips it again).
pub fn handle(backend: Arc<dyn KvBackend>, namespace: Option<String>, name: &str) -> KvHandle {
    let prefix = namespace.map(|ns| format!("{ns}/")).unwrap_or_default();
    KvStore_TO::from_ptr(RArc::new(GroupStore { backend, prefix: prefix.into(), name: name.into() }), TD_Opaque)
}

/// An opened store as the registry keeps it: groups share the backend; each gets a handle
/// namespaced by its name unless the store is `shared`.
pub struct KvService {
    pub backend: Arc<dyn KvBackend>,
    pub shared: bool,
}

impl OpenedService for KvService {
    fn bind(&self, group: &str, declared_as: &str) -> ServiceHandle {
        let namespace = (!self.shared).then(|| group.to_owned());
        ServiceHandle::Kv(handle(self.backend.clone(), namespace, declared_as))
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

// === impl GroupStore ===

/// One group's view of a backend.
#[derive(Clone)]
struct GroupStore {
    backend: Arc<dyn KvBackend>,
    /// `<group>/`, or empty for a shared store.
    prefix: Arc<str>,
    /// The store's name as the group declared it.
    name: RString,
}

impl GroupStore {
    fn key(&self, key: &str) -> String {
        let mut full = String::with_capacity(self.prefix.len() + key.len());
        full.push_str(&self.prefix);
        full.push_str(key);
        full
    }

    fn error(&self, key: &str, e: KvError) -> ServiceError {
        let (kind, message) = match e {
            KvError::NotAnInteger => (kind::INVALID, format!("value of `{key}` is not an integer")),
            KvError::Overflow => (kind::INVALID, format!("incrementing `{key}` would overflow a 64-bit integer")),
            KvError::Failed { kind, message } => (kind, message),
        };
        ServiceError { kind, service: self.name.clone(), message: message.into() }
    }

    fn check_size(&self, key: &str, value: &[u8]) -> Result<(), ServiceError> {
        let max = self.backend.max_value_size();
        if value.len() as u64 > max {
            return Err(ServiceError::new(
                kind::TOO_LARGE,
                &self.name,
                format!(
                    "value of `{key}` is {} bytes; store `{}` takes at most {max} (its `max_value_size`)",
                    value.len(),
                    self.name
                ),
            ));
        }
        Ok(())
    }
}

impl KvStore for GroupStore {
    fn get(&self, key: RString) -> ServiceResult<ROption<RVec<u8>>> {
        let s = self.clone();
        async move {
            let run = async {
                let got = s.backend.get(&s.key(&key)).await.map_err(|e| s.error(&key, e))?;
                Ok(got.map(RVec::from).into())
            };
            s.backend.metrics().observe("get", run).await
        }
        .into_ffi()
    }

    fn set(&self, key: RString, value: RVec<u8>, ttl_ms: u64) -> ServiceResult<()> {
        let s = self.clone();
        async move {
            let run = async {
                s.check_size(&key, &value)?;
                s.backend.set(&s.key(&key), value.into_vec(), ttl_ms).await.map_err(|e| s.error(&key, e))
            };
            s.backend.metrics().observe("set", run).await
        }
        .into_ffi()
    }

    fn delete(&self, key: RString) -> ServiceResult<bool> {
        let s = self.clone();
        async move {
            let run = async { s.backend.delete(&s.key(&key)).await.map_err(|e| s.error(&key, e)) };
            s.backend.metrics().observe("delete", run).await
        }
        .into_ffi()
    }

    fn increment(&self, key: RString, delta: i64) -> ServiceResult<i64> {
        let s = self.clone();
        async move {
            let run = async { s.backend.increment(&s.key(&key), delta).await.map_err(|e| s.error(&key, e)) };
            s.backend.metrics().observe("increment", run).await
        }
        .into_ffi()
    }

    fn compare_and_swap(
        &self,
        key: RString,
        expected: ROption<RVec<u8>>,
        new: RVec<u8>,
        ttl_ms: u64,
    ) -> ServiceResult<bool> {
        let s = self.clone();
        async move {
            let run = async {
                s.check_size(&key, &new)?;
                let expected = expected.into_option().map(RVec::into_vec);
                let full = s.key(&key);
                s.backend.compare_and_swap(&full, expected, new.into_vec(), ttl_ms).await.map_err(|e| s.error(&key, e))
            };
            s.backend.metrics().observe("cas", run).await
        }
        .into_ffi()
    }

    fn list_keys(&self, prefix: RString, limit: u32) -> ServiceResult<RVec<RString>> {
        let s = self.clone();
        async move {
            let run = async {
                if limit == 0 {
                    return Ok(RVec::new());
                }
                let keys = s.backend.list_keys(&s.key(&prefix), limit).await.map_err(|e| s.error(&prefix, e))?;
                Ok(keys.iter().filter_map(|k| k.strip_prefix(&*s.prefix)).map(RString::from).collect())
            };
            s.backend.metrics().observe("list", run).await
        }
        .into_ffi()
    }
}

#[cfg(test)]
pub(crate) mod suite {
    //! One behavioural suite every store runs (`behaves`, `lists_literally`, `namespaces`,
    //! `races`): here against the embedded store and against redis-kv (a real Redis at
    //! `REDIS_URL`, default `redis://127.0.0.1:6379`, each test under a `TestPrefix` of its own,
    //! deleted afterwards); a store in its own file runs it from there.

    #[cfg(feature = "sqlite")]
    use std::path::{Path, PathBuf};
    use std::time::Duration;

    use super::*;
    #[cfg(feature = "sqlite")]
    use crate::config::EmbeddedKvConfig;
    #[cfg(feature = "redis")]
    use crate::config::RedisKvConfig;
    #[cfg(feature = "redis")]
    use crate::redis::tests::{redis_url, TestPrefix};
    #[cfg(any(feature = "sqlite", feature = "redis"))]
    use bytesize::ByteSize;

    /// The `max_value_size` every store of the suite is opened with.
    pub(crate) const MAX: u64 = 32;

    pub(crate) fn metrics() -> ServiceMetrics {
        berth_core::metrics::Metrics::new().service("cache")
    }

    #[cfg(feature = "sqlite")]
    fn embedded(dir: &Path) -> Arc<dyn KvBackend> {
        let cfg = EmbeddedKvConfig { path: None, shared: false, max_value_size: ByteSize::b(MAX) };
        embedded::open_embedded("cache", &cfg, dir, metrics()).unwrap()
    }

    #[cfg(feature = "redis")]
    fn redis_kv(prefix: &str) -> Arc<dyn KvBackend> {
        let cfg = RedisKvConfig {
            url: redis_url(),
            key_prefix: prefix.to_owned(),
            shared: false,
            max_value_size: ByteSize::b(MAX),
            timeout: Duration::from_secs(2),
        };
        redis::open_redis(&cfg, metrics()).unwrap()
    }

    pub(crate) async fn get(h: &KvHandle, key: &str) -> Option<Vec<u8>> {
        h.get(key.into()).await.unwrap().into_option().map(RVec::into_vec)
    }

    pub(crate) async fn set(h: &KvHandle, key: &str, value: &[u8], ttl_ms: u64) {
        h.set(key.into(), value.into(), ttl_ms).await.unwrap();
    }

    pub(crate) async fn cas(h: &KvHandle, key: &str, expected: Option<&[u8]>, new: &[u8], ttl_ms: u64) -> bool {
        let expected = expected.map(RVec::from).into();
        h.compare_and_swap(key.into(), expected, new.into(), ttl_ms).await.unwrap()
    }

    pub(crate) async fn list(h: &KvHandle, prefix: &str, limit: u32) -> Vec<String> {
        h.list_keys(prefix.into(), limit).await.unwrap().into_iter().map(RString::into_string).collect()
    }

    /// Everything one group does with a store.
    pub(crate) async fn behaves(backend: Arc<dyn KvBackend>) {
        let h = handle(backend.clone(), Some("g1".into()), "cache");

        // get / set / overwrite / TTL.
        assert_eq!(get(&h, "k").await, None);
        set(&h, "k", b"one", 0).await;
        assert_eq!(get(&h, "k").await.as_deref(), Some(&b"one"[..]));
        set(&h, "k", b"two", 0).await;
        assert_eq!(get(&h, "k").await.as_deref(), Some(&b"two"[..]));
        set(&h, "short", b"x", 100).await;
        assert_eq!(get(&h, "short").await.as_deref(), Some(&b"x"[..]));
        assert!(list(&h, "sh", 10).await.contains(&"short".to_owned()));
        tokio::time::sleep(Duration::from_millis(250)).await;
        assert_eq!(get(&h, "short").await, None, "expired");
        assert!(list(&h, "sh", 10).await.is_empty(), "expired keys are not listed");
        assert!(!h.delete("short".into()).await.unwrap(), "an expired key did not exist");

        // delete.
        assert!(h.delete("k".into()).await.unwrap());
        assert!(!h.delete("k".into()).await.unwrap());
        assert_eq!(get(&h, "k").await, None);

        // increment.
        assert_eq!(h.increment("n".into(), 5).await.unwrap(), 5, "missing counts as 0");
        assert_eq!(h.increment("n".into(), -7).await.unwrap(), -2);
        assert_eq!(get(&h, "n").await.as_deref(), Some(&b"-2"[..]));
        assert!(cas(&h, "n", Some(b"-2"), b"10", 0).await, "a counter compares as its decimal text");
        assert_eq!(h.increment("n".into(), 1).await.unwrap(), 11);
        set(&h, "word", b"abc", 0).await;
        let e = h.increment("word".into(), 1).await.unwrap_err();
        assert_eq!((e.kind, e.message.as_str()), (kind::INVALID, "value of `word` is not an integer"));
        assert_eq!(e.service.as_str(), "cache");
        set(&h, "big", i64::MAX.to_string().as_bytes(), 0).await;
        assert_eq!(h.increment("big".into(), 1).await.unwrap_err().kind, kind::INVALID);

        // compare-and-swap.
        assert!(cas(&h, "c", None, b"v1", 0).await, "absent: set");
        assert!(!cas(&h, "c", None, b"v2", 0).await, "present: refused");
        assert!(!cas(&h, "c", Some(b"nope"), b"v2", 0).await, "wrong expected value");
        assert_eq!(get(&h, "c").await.as_deref(), Some(&b"v1"[..]));
        assert!(cas(&h, "c", Some(b"v1"), b"v2", 0).await);
        assert_eq!(get(&h, "c").await.as_deref(), Some(&b"v2"[..]));
        assert!(!cas(&h, "missing", Some(b"v1"), b"v2", 0).await, "absent is not equal to a value");
        assert!(cas(&h, "lease", None, b"a", 100).await);
        tokio::time::sleep(Duration::from_millis(250)).await;
        assert!(cas(&h, "lease", None, b"b", 0).await, "an expired key counts as absent");
        assert_eq!(get(&h, "lease").await.as_deref(), Some(&b"b"[..]));

        // Limits: the stored value is kept.
        let too_big = vec![b'x'; MAX as usize + 1];
        let e = h.set("c".into(), too_big.clone().into(), 0).await.unwrap_err();
        assert_eq!(e.kind, kind::TOO_LARGE);
        assert!(e.message.contains("`c`") && e.message.contains("max_value_size"), "{}", e.message);
        let e = h.compare_and_swap("c".into(), Some(RVec::from(&b"v2"[..])).into(), too_big.into(), 0).await;
        assert_eq!(e.unwrap_err().kind, kind::TOO_LARGE);
        assert_eq!(get(&h, "c").await.as_deref(), Some(&b"v2"[..]), "old value kept");
        set(&h, "exact", &[b'y'; MAX as usize], 0).await;
    }

    /// Prefix listing takes `%`, `_`, `*`, `?`, `[`, `\` literally, and sorts and limits.
    pub(crate) async fn lists_literally(backend: Arc<dyn KvBackend>) {
        let h = handle(backend, Some("g1".into()), "cache");
        let keys = ["a%b", "a_b", "aXb", "a*x", "a?y", "a[1]", "a\\z", "ab", "b", "A%b"];
        for k in keys {
            set(&h, k, b"1", 0).await;
        }
        assert_eq!(list(&h, "a%", 10).await, ["a%b"]);
        assert_eq!(list(&h, "a_", 10).await, ["a_b"]);
        assert_eq!(list(&h, "a*", 10).await, ["a*x"]);
        assert_eq!(list(&h, "a?", 10).await, ["a?y"]);
        assert_eq!(list(&h, "a[", 10).await, ["a[1]"]);
        assert_eq!(list(&h, "a\\", 10).await, ["a\\z"]);
        let mut all_a: Vec<&str> = keys.iter().copied().filter(|k| k.starts_with('a')).collect();
        all_a.sort();
        assert_eq!(list(&h, "a", 100).await, all_a);
        assert_eq!(list(&h, "a", 3).await, all_a[..3]);
        assert_eq!(list(&h, "", 100).await.len(), keys.len());
        assert!(list(&h, "", 0).await.is_empty());
        assert!(list(&h, "zz", 10).await.is_empty());
    }

    /// Two groups on one store do not see each other; two handles on a shared store do.
    pub(crate) async fn namespaces(backend: Arc<dyn KvBackend>) {
        let g1 = handle(backend.clone(), Some("g1".into()), "cache");
        let g2 = handle(backend.clone(), Some("g2".into()), "cache");
        set(&g1, "same", b"one", 0).await;
        set(&g2, "same", b"two", 0).await;
        set(&g2, "only-g2", b"x", 0).await;
        assert_eq!(get(&g1, "same").await.as_deref(), Some(&b"one"[..]));
        assert_eq!(get(&g2, "same").await.as_deref(), Some(&b"two"[..]));
        assert_eq!(get(&g1, "only-g2").await, None);
        assert_eq!(get(&g1, "g2/only-g2").await, None, "a group cannot reach into another namespace");
        assert_eq!(list(&g1, "", 100).await, ["same"]);
        assert_eq!(list(&g2, "", 100).await, ["only-g2", "same"]);
        assert!(!g1.delete("only-g2".into()).await.unwrap());
        assert_eq!(g1.increment("same-n".into(), 1).await.unwrap(), 1);
        assert_eq!(g2.increment("same-n".into(), 1).await.unwrap(), 1);

        let shared_a = handle(backend.clone(), None, "cache");
        let shared_b = handle(backend, None, "cache");
        set(&shared_a, "common", b"hi", 0).await;
        assert_eq!(get(&shared_b, "common").await.as_deref(), Some(&b"hi"[..]));
        assert_eq!(get(&shared_b, "g1/same").await.as_deref(), Some(&b"one"[..]), "shared: keys as written");
        assert_eq!(list(&shared_b, "g", 100).await, ["g1/same", "g1/same-n", "g2/only-g2", "g2/same", "g2/same-n"]);
    }

    /// Increments and compare-and-swaps racing from several tasks lose nothing and admit one winner.
    pub(crate) async fn races(backend: Arc<dyn KvBackend>) {
        let h = handle(backend, Some("g1".into()), "cache");
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let h = h.clone();
                tokio::spawn(async move {
                    for _ in 0..25 {
                        h.increment("hits".into(), 1).await.unwrap();
                    }
                    cas(&h, "owner", None, b"me", 0).await
                })
            })
            .collect();
        let mut winners = 0;
        for t in tasks {
            winners += usize::from(t.await.unwrap());
        }
        assert_eq!(winners, 1, "exactly one task takes an absent key");
        assert_eq!(get(&h, "hits").await.as_deref(), Some(&b"200"[..]));
    }

    #[cfg(feature = "sqlite")]
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn embedded_store_races() {
        let dir = tempfile::tempdir().unwrap();
        races(embedded(dir.path())).await;
    }

    #[cfg(feature = "redis")]
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn redis_kv_races() {
        let prefix = TestPrefix::new();
        races(redis_kv(&prefix)).await;
    }

    #[cfg(feature = "sqlite")]
    #[tokio::test]
    async fn embedded_store_behaves() {
        let dir = tempfile::tempdir().unwrap();
        behaves(embedded(dir.path())).await;
    }

    #[cfg(feature = "sqlite")]
    #[tokio::test]
    async fn embedded_store_lists_literally() {
        let dir = tempfile::tempdir().unwrap();
        lists_literally(embedded(dir.path())).await;
    }

    #[cfg(feature = "sqlite")]
    #[tokio::test]
    async fn embedded_store_namespaces() {
        let dir = tempfile::tempdir().unwrap();
        namespaces(embedded(dir.path())).await;
    }

    #[cfg(feature = "redis")]
    #[tokio::test]
    async fn redis_kv_behaves() {
        let prefix = TestPrefix::new();
        behaves(redis_kv(&prefix)).await;
    }

    #[cfg(feature = "redis")]
    #[tokio::test]
    async fn redis_kv_lists_literally() {
        let prefix = TestPrefix::new();
        lists_literally(redis_kv(&prefix)).await;
    }

    #[cfg(feature = "redis")]
    #[tokio::test]
    async fn redis_kv_namespaces() {
        let prefix = TestPrefix::new();
        namespaces(redis_kv(&prefix)).await;
    }

    #[cfg(feature = "redis")]
    #[tokio::test]
    async fn redis_kv_keys_carry_prefix_and_namespace() {
        let prefix = TestPrefix::new();
        let h = handle(redis_kv(&prefix), Some("g1".into()), "cache");
        set(&h, "k", b"v", 0).await;
        let raw = crate::redis::tests::raw_get(&format!("{prefix}g1/k")).await;
        assert_eq!(raw.as_deref(), Some(&b"v"[..]));
    }

    #[cfg(feature = "sqlite")]
    #[tokio::test]
    async fn embedded_store_persists_across_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let h = handle(embedded(dir.path()), Some("g1".into()), "cache");
            set(&h, "kept", b"value", 0).await;
            set(&h, "later", b"value", 60_000).await;
            h.increment("n".into(), 41).await.unwrap();
        }
        assert!(dir.path().join("kv/cache.db").exists());
        let h = handle(embedded(dir.path()), Some("g1".into()), "cache");
        assert_eq!(get(&h, "kept").await.as_deref(), Some(&b"value"[..]));
        assert_eq!(get(&h, "later").await.as_deref(), Some(&b"value"[..]));
        assert_eq!(h.increment("n".into(), 1).await.unwrap(), 42);
    }

    #[cfg(feature = "sqlite")]
    #[test]
    fn embedded_store_opens_outside_a_runtime_and_refuses_a_bad_path() {
        let dir = tempfile::tempdir().unwrap();
        let _ = embedded(dir.path());
        std::fs::write(dir.path().join("not-a-dir"), b"").unwrap();
        let cfg = EmbeddedKvConfig {
            path: Some(PathBuf::from("not-a-dir/cache.db")),
            shared: false,
            max_value_size: ByteSize::b(MAX),
        };
        let e = embedded::open_embedded("cache", &cfg, dir.path(), metrics()).err().expect("a file in the way");
        assert!(e.0.contains("not-a-dir"), "{e}");
    }
}
