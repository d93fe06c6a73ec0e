//! `url` groups: a plugin fetched over `http(s)` and pinned by its sha256.
//!
//! A fetched file is kept in `<data_dir>/fetched/<group>-<sha256>.so`, written through a
//! temporary file and renamed only once its sha256 matches the pin: a download that breaks off,
//! or a file that is not the one pinned, never becomes a plugin file, and a version already
//! fetched (a restart, a rollback of the list) is not downloaded again. What is loaded is
//! checked against the pin again before it is opened (`install::verify_file`) and once more with
//! the hash the loader computes of every file it opens (`install::check_loaded`): a cached copy
//! changed on disk is refused and removed. `path` and `file` groups take a pin too.

use std::path::{Path, PathBuf};
use std::time::Duration;

/// How long connecting to the plugin's server may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long one whole download may take.
pub const DOWNLOAD_TIMEOUT: Duration = Duration::from_secs(300);

/// Why a `url` group's plugin could not be fetched. The serving version, if any, is untouched.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("group `{group}`: fetching {url} failed: {message}")]
    Download { group: String, url: String, message: String },
    #[error(
        "group `{group}`: {url} has sha256 {actual}, but the group list pins {expected}; refused — publish the file \
         pinned, or pin the file published"
    )]
    Mismatch { group: String, url: String, expected: String, actual: String },
    #[error("group `{group}`: {url} is larger than {limit} bytes (admin.max_upload); refused")]
    TooLarge { group: String, url: String, limit: u64 },
    #[error("group `{group}`: cannot store the plugin fetched from {url} in `{path}`: {source}")]
    Store { group: String, url: String, path: PathBuf, source: std::io::Error },
    #[error(
        "group `{group}`: the cached copy `{path}` has sha256 {actual}, not the pinned {expected}; it was removed and is \
         fetched again on the next try"
    )]
    Corrupt { group: String, path: PathBuf, expected: String, actual: String },
    #[error(
        "group `{group}` is fetched from {url}, and this berth was built without an HTTP client; rebuild it with \
         `--features http-client` (or `--features full`)"
    )]
    NoClient { group: String, url: String },
}

impl FetchError {
    /// A short machine-readable code (the `outcome` of `berth_swap_total`).
    pub fn code(&self) -> &'static str {
        match self {
            FetchError::Download { .. } | FetchError::NoClient { .. } => "fetch_failed",
            FetchError::Mismatch { .. } => "sha256_mismatch",
            FetchError::TooLarge { .. } => "too_large",
            FetchError::Store { .. } => "fetch_store_failed",
            FetchError::Corrupt { .. } => "sha256_mismatch",
        }
    }
}

/// What to fetch.
#[derive(Debug, Clone)]
pub struct Pinned<'a> {
    pub group: &'a str,
    pub url: &'a str,
    /// Lower-case hex.
    pub sha256: &'a str,
}

pub use berth_core::error::shown_url;

/// Where a group's fetched versions are kept.
pub fn cache_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("fetched")
}

/// The plugin file of `pin`: from the cache when a file of that sha256 is there, else
/// downloaded (at most `limit` bytes), verified and stored.
pub async fn fetch(data_dir: &Path, pin: Pinned<'_>, limit: u64) -> Result<PathBuf, FetchError> {
    let dir = cache_dir(data_dir);
    let path = dir.join(format!("{}-{}.{}", pin.group, pin.sha256, std::env::consts::DLL_EXTENSION));
    let store =
        |source| FetchError::Store { group: pin.group.to_owned(), url: shown_url(pin.url), path: path.clone(), source };
    // Only a verified download is renamed to this name; `install::verify_file` hashes it again
    // before it is opened, and `install::check_loaded` compares the loader's hash with the pin.
    if path.is_file() {
        tracing::debug!(group = pin.group, file = %path.display(), "plugin already fetched");
        return Ok(path);
    }
    tokio::fs::create_dir_all(&dir).await.map_err(store)?;
    let tmp = dir.join(format!(".{}-{}.part{}", pin.group, pin.sha256, std::process::id()));
    let started = std::time::Instant::now();
    let result = download(&pin, &tmp, limit).await;
    let actual = match result {
        Ok(actual) => actual,
        Err(e) => {
            let _ = tokio::fs::remove_file(&tmp).await;
            return Err(e);
        }
    };
    if actual != pin.sha256 {
        let _ = tokio::fs::remove_file(&tmp).await;
        return Err(FetchError::Mismatch {
            group: pin.group.to_owned(),
            url: shown_url(pin.url),
            expected: pin.sha256.to_owned(),
            actual,
        });
    }
    tokio::fs::rename(&tmp, &path).await.map_err(store)?;
    tracing::info!(
        group = pin.group,
        url = %shown_url(pin.url),
        sha256 = &pin.sha256[..16],
        ms = started.elapsed().as_millis() as u64,
        "plugin fetched and verified"
    );
    Ok(path)
}

/// Streams the body into `tmp`, hashing as it goes; returns the sha256.
#[cfg(feature = "http-client")]
async fn download(pin: &Pinned<'_>, tmp: &Path, limit: u64) -> Result<String, FetchError> {
    use sha2::Digest;
    use tokio::io::AsyncWriteExt;
    let failed =
        |message: String| FetchError::Download { group: pin.group.to_owned(), url: shown_url(pin.url), message };
    let store = |source| FetchError::Store {
        group: pin.group.to_owned(),
        url: shown_url(pin.url),
        path: tmp.to_owned(),
        source,
    };
    // Idempotent: the first caller installs ring as the process's rustls provider.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(DOWNLOAD_TIMEOUT)
        .build()
        .map_err(|e| failed(e.to_string()))?;
    let mut response = client.get(pin.url).send().await.map_err(|e| failed(describe(e)))?;
    let status = response.status();
    if !status.is_success() {
        return Err(failed(format!("the server answered {status}")));
    }
    if response.content_length().is_some_and(|n| n > limit) {
        return Err(FetchError::TooLarge { group: pin.group.to_owned(), url: shown_url(pin.url), limit });
    }
    let mut file = tokio::fs::File::create(tmp).await.map_err(store)?;
    let mut hasher = sha2::Sha256::new();
    let mut written = 0u64;
    while let Some(chunk) = response.chunk().await.map_err(|e| failed(describe(e)))? {
        written += chunk.len() as u64;
        if written > limit {
            return Err(FetchError::TooLarge { group: pin.group.to_owned(), url: shown_url(pin.url), limit });
        }
        hasher.update(&chunk);
        file.write_all(&chunk).await.map_err(store)?;
    }
    file.sync_all().await.map_err(store)?;
    Ok(format!("{:x}", hasher.finalize()))
}

#[cfg(not(feature = "http-client"))]
async fn download(pin: &Pinned<'_>, _tmp: &Path, _limit: u64) -> Result<String, FetchError> {
    Err(FetchError::NoClient { group: pin.group.to_owned(), url: shown_url(pin.url) })
}

/// A reqwest error with its causes (the top level alone says only "error sending request"),
/// without the URL (the error names it, shown without secrets).
#[cfg(feature = "http-client")]
fn describe(e: reqwest::Error) -> String {
    let e = e.without_url();
    let mut message = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        message.push_str(": ");
        message.push_str(&s.to_string());
        source = s.source();
    }
    message
}
