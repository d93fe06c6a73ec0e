//! Blob storage in a local directory: one directory per bucket, names as relative paths.
//!
//! Writes go to a temporary file and are renamed into place, so a reader never sees half an
//! object and a failed write leaves the old object intact. Names that could leave the bucket
//! (`..`, absolute paths, backslashes, NUL) are refused. Every put and delete is published on the
//! bucket's event channel, which blob triggers subscribe to.

use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use berth_plugin_api::abi_stable::{sabi_trait::TD_Opaque, std_types::RArc};
use berth_plugin_api::{
    service_error_kind as kind, BlobHandle, BlobInfo, BlobStore, BlobStore_TO, ROption, RString, RVec, ServiceError,
    ServiceResult,
};
use tokio::sync::broadcast;

use berth_core::clock::{now_unix_ms, unix_ms};
use berth_core::host_future::FutureExt as _;
use berth_core::metrics::ServiceMetrics;
use berth_core::provider::{OpenContext, OpenedService, ServiceHandle, TypedProvider};

use crate::config::BlobConfig;
use crate::SetupError;

// === the provider ===

/// `kind = "blob"`: a bucket in a local directory.
pub const PROVIDER: TypedProvider<BlobConfig> = TypedProvider::new("blob", "blob", open_bucket);

fn open_bucket(cfg: &BlobConfig, ctx: OpenContext<'_>) -> Result<Arc<dyn OpenedService>, String> {
    Ok(Arc::new(Bucket::open(ctx.name, cfg, ctx.data_dir, ctx.metrics).map_err(|e| e.0)?))
}

impl OpenedService for Bucket {
    fn bind(&self, _group: &str, _declared_as: &str) -> ServiceHandle {
        ServiceHandle::Blob(self.handle())
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

/// Longest object name accepted.
pub const MAX_NAME_LEN: usize = 1024;
const TMP_DIR: &str = ".berth-tmp";

/// What happened to an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlobEventKind {
    Created,
    Deleted,
}

impl BlobEventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            BlobEventKind::Created => "created",
            BlobEventKind::Deleted => "deleted",
        }
    }
}

/// A change in a bucket.
#[derive(Debug, Clone)]
pub struct BlobEvent {
    pub bucket: Arc<str>,
    pub name: String,
    pub kind: BlobEventKind,
    pub size: u64,
    pub time_unix_ms: u64,
}

struct Inner {
    name: Arc<str>,
    root: PathBuf,
    max_object_size: u64,
    metrics: ServiceMetrics,
    events: broadcast::Sender<BlobEvent>,
}

/// A bucket. Cheap to clone.
#[derive(Clone)]
pub struct Bucket(Arc<Inner>);

/// Checks an object name and returns its relative path.
pub fn validate_name(bucket: &str, name: &str) -> Result<PathBuf, ServiceError> {
    let bad = |why: &str| ServiceError::new(kind::INVALID, bucket, format!("object name `{name}` refused: {why}"));
    if name.is_empty() {
        return Err(bad("empty"));
    }
    if name.len() > MAX_NAME_LEN {
        return Err(bad(&format!("longer than {MAX_NAME_LEN} bytes")));
    }
    if name.contains('\0') || name.contains('\\') {
        return Err(bad("NUL and backslash are not allowed"));
    }
    if name.starts_with('/') {
        return Err(bad("absolute paths would leave the bucket"));
    }
    // Check the segments as written: `Path::components` silently drops `.` and empty segments.
    for seg in name.split('/') {
        match seg {
            "" => return Err(bad("empty segments (`//`, a leading or trailing `/`) are not allowed")),
            "." => return Err(bad("`.` segments are not allowed")),
            ".." => return Err(bad("`..` would leave the bucket")),
            _ => {}
        }
    }
    let path = Path::new(name);
    for c in path.components() {
        match c {
            Component::Normal(part) if part != TMP_DIR => {}
            Component::Normal(_) => return Err(bad("reserved name")),
            Component::ParentDir => return Err(bad("`..` would leave the bucket")),
            Component::RootDir | Component::Prefix(_) => return Err(bad("absolute paths would leave the bucket")),
            Component::CurDir => return Err(bad("`.` segments are not allowed")),
        }
    }
    if name.ends_with('/') {
        return Err(bad("a name cannot end with `/`"));
    }
    Ok(path.to_path_buf())
}

fn io_error(bucket: &str, what: &str, e: std::io::Error) -> ServiceError {
    ServiceError::new(kind::UNAVAILABLE, bucket, format!("{what}: {e}"))
}

impl Bucket {
    /// Opens (creating if needed) the bucket's directory.
    pub fn open(name: &str, cfg: &BlobConfig, data_dir: &Path, metrics: ServiceMetrics) -> Result<Bucket, SetupError> {
        let root = match &cfg.dir {
            Some(d) if d.is_absolute() => d.clone(),
            Some(d) => data_dir.join(d),
            None => data_dir.join("blob").join(name),
        };
        std::fs::create_dir_all(root.join(TMP_DIR))
            .map_err(|e| SetupError(format!("cannot create bucket directory `{}`: {e}", root.display())))?;
        let root = root.canonicalize().map_err(|e| SetupError(format!("`{}`: {e}", root.display())))?;
        let (events, _) = broadcast::channel(1024);
        Ok(Bucket(Arc::new(Inner {
            name: name.into(),
            root,
            max_object_size: cfg.max_object_size.as_u64(),
            metrics,
            events,
        })))
    }

    /// The handle groups get.
    pub fn handle(&self) -> BlobHandle {
        BlobStore_TO::from_ptr(RArc::new(self.clone()), TD_Opaque)
    }

    /// Subscribes to this bucket's changes.
    pub fn subscribe(&self) -> broadcast::Receiver<BlobEvent> {
        self.0.events.subscribe()
    }

    pub fn name(&self) -> &str {
        &self.0.name
    }

    /// Stores an object (replacing any with the same name).
    pub async fn put(&self, name: &str, data: Vec<u8>) -> Result<BlobInfo, ServiceError> {
        let bucket = &*self.0.name;
        let rel = validate_name(bucket, name)?;
        if data.len() as u64 > self.0.max_object_size {
            return Err(ServiceError::new(
                kind::TOO_LARGE,
                bucket,
                format!(
                    "object `{name}` is {} bytes; this bucket takes at most {}",
                    data.len(),
                    self.0.max_object_size
                ),
            ));
        }
        let target = self.0.root.join(&rel);
        let tmp = self.0.root.join(TMP_DIR).join(format!("{}-{}", std::process::id(), uuid_like()));
        let size = data.len() as u64;
        let write = async {
            if let Some(parent) = target.parent() {
                tokio::fs::create_dir_all(parent).await?;
            }
            tokio::fs::write(&tmp, &data).await?;
            tokio::fs::rename(&tmp, &target).await
        };
        if let Err(e) = write.await {
            let _ = tokio::fs::remove_file(&tmp).await;
            return Err(io_error(bucket, &format!("storing `{name}`"), e));
        }
        let time = now_unix_ms();
        let _ = self.0.events.send(BlobEvent {
            bucket: self.0.name.clone(),
            name: name.to_owned(),
            kind: BlobEventKind::Created,
            size,
            time_unix_ms: time,
        });
        Ok(BlobInfo { name: name.into(), size, modified_unix_ms: time })
    }

    pub async fn get(&self, name: &str) -> Result<Option<Vec<u8>>, ServiceError> {
        let rel = validate_name(&self.0.name, name)?;
        match tokio::fs::read(self.0.root.join(rel)).await {
            Ok(data) => Ok(Some(data)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) if e.kind() == std::io::ErrorKind::IsADirectory => Ok(None),
            Err(e) => Err(io_error(&self.0.name, &format!("reading `{name}`"), e)),
        }
    }

    pub async fn delete(&self, name: &str) -> Result<bool, ServiceError> {
        let rel = validate_name(&self.0.name, name)?;
        let path = self.0.root.join(rel);
        let size = tokio::fs::metadata(&path).await.map(|m| m.len()).unwrap_or(0);
        match tokio::fs::remove_file(&path).await {
            Ok(()) => {
                let _ = self.0.events.send(BlobEvent {
                    bucket: self.0.name.clone(),
                    name: name.to_owned(),
                    kind: BlobEventKind::Deleted,
                    size,
                    time_unix_ms: now_unix_ms(),
                });
                Ok(true)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(io_error(&self.0.name, &format!("deleting `{name}`"), e)),
        }
    }

    pub async fn list(&self, prefix: &str) -> Result<Vec<BlobInfo>, ServiceError> {
        let root = self.0.root.clone();
        let prefix = prefix.to_owned();
        let bucket = self.0.name.clone();
        tokio::task::spawn_blocking(move || {
            let mut out = Vec::new();
            let mut stack = vec![root.clone()];
            while let Some(dir) = stack.pop() {
                let entries = std::fs::read_dir(&dir).map_err(|e| io_error(&bucket, "listing", e))?;
                for entry in entries.flatten() {
                    let path = entry.path();
                    let Ok(meta) = entry.metadata() else { continue };
                    let Ok(rel) = path.strip_prefix(&root) else { continue };
                    let rel = rel.to_string_lossy().into_owned();
                    if rel == TMP_DIR {
                        continue;
                    }
                    if meta.is_dir() {
                        stack.push(path);
                    } else if rel.starts_with(&prefix) {
                        let modified = meta.modified().map(unix_ms).unwrap_or(0);
                        out.push(BlobInfo { name: rel.into(), size: meta.len(), modified_unix_ms: modified });
                    }
                }
            }
            out.sort_by(|a, b| a.name.cmp(&b.name));
            Ok(out)
        })
        .await
        .map_err(|e| ServiceError::new(kind::OTHER, &self.0.name, format!("listing stopped: {e}")))?
    }
}

/// A unique suffix for temporary files.
fn uuid_like() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!("{:x}-{:x}", now_unix_ms(), NEXT.fetch_add(1, Ordering::Relaxed))
}

impl BlobStore for Bucket {
    fn put(&self, name: RString, data: RVec<u8>) -> ServiceResult<BlobInfo> {
        let b = self.clone();
        async move { b.0.metrics.observe("put", b.put(name.as_str(), data.into_vec())).await }.into_ffi()
    }
    fn get(&self, name: RString) -> ServiceResult<ROption<RVec<u8>>> {
        let b = self.clone();
        async move {
            let got = b.get(name.as_str());
            b.0.metrics.observe("get", async { got.await.map(|o| o.map(RVec::from).into()) }).await
        }
        .into_ffi()
    }
    fn delete(&self, name: RString) -> ServiceResult<bool> {
        let b = self.clone();
        async move { b.0.metrics.observe("delete", b.delete(name.as_str())).await }.into_ffi()
    }
    fn list(&self, prefix: RString) -> ServiceResult<RVec<BlobInfo>> {
        let b = self.clone();
        async move { b.0.metrics.observe("list", async { b.list(prefix.as_str()).await.map(RVec::from) }).await }
            .into_ffi()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bucket(dir: &Path, max: u64) -> Bucket {
        let cfg = BlobConfig { dir: Some(dir.to_path_buf()), max_object_size: bytesize::ByteSize::b(max) };
        Bucket::open("uploads", &cfg, dir, berth_core::metrics::Metrics::new().service("uploads")).unwrap()
    }

    #[test]
    fn names_that_leave_the_bucket_are_refused() {
        for bad in ["../x", "a/../../x", "/etc/passwd", "a/./b", "", "a\\b", "a\0b", "dir/", ".berth-tmp/x"] {
            assert!(validate_name("b", bad).is_err(), "{bad:?} must be refused");
        }
        for good in ["a", "a/b/c.txt", "..a", "a..b", "photo 1.jpg"] {
            assert!(validate_name("b", good).is_ok(), "{good:?} must be accepted");
        }
    }

    #[tokio::test]
    async fn put_get_list_delete_and_limits_keep_what_is_stored() {
        let dir = tempfile::tempdir().unwrap();
        let b = bucket(dir.path(), 8);
        let mut events = b.subscribe();
        b.put("a/one.txt", b"hello".to_vec()).await.unwrap();
        b.put("b.txt", b"12345678".to_vec()).await.unwrap();
        let err = b.put("a/one.txt", b"123456789".to_vec()).await.unwrap_err();
        assert_eq!(err.kind, kind::TOO_LARGE);
        assert_eq!(b.get("a/one.txt").await.unwrap().as_deref(), Some(&b"hello"[..]), "old object intact");
        let err = b.put("../escape", b"x".to_vec()).await.unwrap_err();
        assert_eq!(err.kind, kind::INVALID);
        assert!(!dir.path().parent().unwrap().join("escape").exists());
        let names: Vec<String> = b.list("").await.unwrap().into_iter().map(|i| i.name.into_string()).collect();
        assert_eq!(names, ["a/one.txt", "b.txt"]);
        assert_eq!(b.list("a/").await.unwrap().len(), 1);
        assert!(b.delete("b.txt").await.unwrap());
        assert!(!b.delete("b.txt").await.unwrap());
        assert_eq!(b.get("b.txt").await.unwrap(), None);
        let first = events.recv().await.unwrap();
        assert_eq!((first.name.as_str(), first.kind, first.size), ("a/one.txt", BlobEventKind::Created, 5));
    }
}
