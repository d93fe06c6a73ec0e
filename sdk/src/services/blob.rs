//! Blob storage: named objects in a bucket.

use std::fmt;

use berth_plugin_api::BlobHandle;

use super::{lift, ServiceResult};

/// One stored object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobInfo {
    pub name: String,
    pub size: u64,
    pub modified_unix_ms: u64,
}

impl From<berth_plugin_api::BlobInfo> for BlobInfo {
    fn from(b: berth_plugin_api::BlobInfo) -> Self {
        BlobInfo { name: b.name.into_string(), size: b.size, modified_unix_ms: b.modified_unix_ms }
    }
}

/// A bucket. Names are relative paths (`a/b.txt`); names that try to leave the bucket are refused.
#[derive(Clone)]
pub struct Blob {
    name: String,
    handle: BlobHandle,
}

impl fmt::Debug for Blob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Blob").field("bucket", &self.name).finish()
    }
}

impl Blob {
    pub(crate) fn new(name: &str, handle: BlobHandle) -> Self {
        Blob { name: name.to_owned(), handle }
    }
    pub async fn put(&self, name: &str, data: impl Into<Vec<u8>>) -> ServiceResult<BlobInfo> {
        lift(self.handle.put(name.into(), data.into().into()).await).map(Into::into)
    }
    pub async fn get(&self, name: &str) -> ServiceResult<Option<Vec<u8>>> {
        lift(self.handle.get(name.into()).await).map(|v| v.into_option().map(|v| v.into_vec()))
    }
    pub async fn delete(&self, name: &str) -> ServiceResult<bool> {
        lift(self.handle.delete(name.into()).await)
    }
    pub async fn list(&self, prefix: &str) -> ServiceResult<Vec<BlobInfo>> {
        lift(self.handle.list(prefix.into()).await).map(|v| v.into_iter().map(Into::into).collect())
    }
}
