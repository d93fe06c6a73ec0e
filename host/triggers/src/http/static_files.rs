//! Static front ends: `[[static]]` in `berth.toml` serves a built directory under a URL prefix.
//!
//! Files are served by tower-http's `ServeDir`: content types from the extension, strong ETags
//! and `Last-Modified` with `304` (RFC 9110 preconditions), ranges, and `.br` / `.gz` siblings
//! when the client accepts them. Around it, Berth adds:
//!
//! - **Confinement**: every path `ServeDir` opens or stats (the file, its precompressed sibling,
//!   a directory's index) is resolved with its symlinks first and refused (404) unless it lies
//!   under the mount's root. `ServeDir` itself refuses `..` and backslashes after decoding, and an
//!   encoded separator (`%2f`, `%5c`) or a NUL is refused here before it looks.
//! - **SPA fallback** (`spa = true`): a GET for a path that names no file and has no extension
//!   (`/notes/42`, a client-side route) answers the root's index page; a missing asset
//!   (`/app.js`) stays a 404.
//! - API routes take precedence: the HTTP trigger asks a mount only when no route matches.
//!
//! A file is read whole into the response (the host's response body is one buffer): mounts are
//! meant for built front ends, not for large downloads.

use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;

use berth_core::error::{json_error, Body};
use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty, Full};
use serde::Deserialize;
use tower_http::services::fs::{Backend, TokioBackend, TokioFile};
use tower_http::services::ServeDir;
use tower_service::Service;

/// One `[[static]]` entry.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct StaticConfig {
    /// The URL prefix it serves under (`/`, `/app`).
    #[serde(default = "default_prefix")]
    pub prefix: String,
    /// The directory (relative to `berth.toml`): a front end's build output.
    pub dir: PathBuf,
    /// Answer the index page for paths without an extension that name no file (client-side
    /// routing).
    #[serde(default)]
    pub spa: bool,
    /// The index page of a directory, and the SPA fallback.
    #[serde(default = "default_index")]
    pub index: String,
    /// A `cache-control` value for every file served (none by default: clients revalidate with
    /// the ETag).
    #[serde(default)]
    pub cache_control: Option<String>,
}

fn default_prefix() -> String {
    "/".into()
}

fn default_index() -> String {
    "index.html".into()
}

/// Why a `[[static]]` entry cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum StaticError {
    #[error("`[[static]] prefix = \"{prefix}\"`: {why}")]
    Prefix { prefix: String, why: &'static str },
    #[error("`[[static]] dir = \"{}\"`: {source}; build the front end first, or fix the path", dir.display())]
    Dir { dir: PathBuf, source: io::Error },
    #[error("`[[static]] dir = \"{}\"` is not a directory", dir.display())]
    NotADir { dir: PathBuf },
    #[error("`[[static]] index = \"{index}\"` must be a file name (no `/`, not `..`)")]
    Index { index: String },
    #[error("`[[static]] cache_control = \"{value}\"` is not a valid header value")]
    CacheControl { value: String },
    #[error("two `[[static]]` entries serve prefix `{prefix}`")]
    Duplicate { prefix: String },
}

/// Checks the entries' prefixes and index names (the directories are checked when serving starts,
/// by [`StaticFiles::new`]).
pub fn check(configs: &[StaticConfig]) -> Result<(), StaticError> {
    let mut seen = std::collections::BTreeSet::new();
    for c in configs {
        let prefix = normalized_prefix(&c.prefix)?;
        if !seen.insert(prefix.clone()) {
            return Err(StaticError::Duplicate { prefix });
        }
        if c.index.is_empty() || c.index.contains('/') || c.index == ".." || c.index == "." {
            return Err(StaticError::Index { index: c.index.clone() });
        }
        if let Some(v) = &c.cache_control {
            HeaderValue::from_str(v).map_err(|_| StaticError::CacheControl { value: v.clone() })?;
        }
    }
    Ok(())
}

/// `/app/` → `/app`; `/` stays `/`.
fn normalized_prefix(prefix: &str) -> Result<String, StaticError> {
    let bad = |why| StaticError::Prefix { prefix: prefix.to_owned(), why };
    if !prefix.starts_with('/') {
        return Err(bad("it must start with `/`"));
    }
    if prefix.contains(['?', '#', '%', '\\', '{', '}', '*']) || prefix.split('/').any(|s| s == ".." || s == ".") {
        return Err(bad("it must be a plain path (no `..`, `%`, `?`, `#`, `{`, `*` or `\\`)"));
    }
    let trimmed = prefix.trim_end_matches('/');
    let prefix = if trimmed.is_empty() { "/".to_owned() } else { trimmed.to_owned() };
    for reserved in crate::http::routes::RESERVED_PATHS.iter().chain(&["/invoke"]) {
        if prefix == *reserved || prefix.starts_with(&format!("{reserved}/")) {
            return Err(bad("it is a path the host serves itself (/healthz, /readyz, /metrics, /invoke/)"));
        }
    }
    Ok(prefix)
}

/// The `ServeDir` backend that opens only what lies under the mount's root, symlinks resolved.
#[derive(Clone, Debug)]
struct Confined {
    root: PathBuf,
}

impl Confined {
    async fn check(&self, path: &Path) -> io::Result<()> {
        let real = tokio::fs::canonicalize(path).await?;
        if real.starts_with(&self.root) {
            Ok(())
        } else {
            tracing::warn!(path = %path.display(), resolves_to = %real.display(), "static file outside its root refused");
            Err(io::Error::new(io::ErrorKind::NotFound, "outside the static root"))
        }
    }
}

type BoxIo<T> = Pin<Box<dyn Future<Output = io::Result<T>> + Send>>;

impl Backend for Confined {
    type File = TokioFile;
    type Metadata = std::fs::Metadata;
    type OpenFuture = BoxIo<TokioFile>;
    type MetadataFuture = BoxIo<std::fs::Metadata>;

    fn open(&self, path: PathBuf) -> Self::OpenFuture {
        let this = self.clone();
        Box::pin(async move {
            this.check(&path).await?;
            TokioBackend.open(path).await
        })
    }

    fn metadata(&self, path: PathBuf) -> Self::MetadataFuture {
        let this = self.clone();
        Box::pin(async move {
            this.check(&path).await?;
            TokioBackend.metadata(path).await
        })
    }
}

struct Mount {
    /// Normalized: `/` or `/app`.
    prefix: String,
    spa: bool,
    index: String,
    cache_control: Option<HeaderValue>,
    /// The directory, canonical.
    serve_root: PathBuf,
    serve: ServeDir<tower_http::services::fs::DefaultServeDirFallback, Confined>,
}

/// Every `[[static]]` mount, longest prefix first.
#[derive(Default)]
pub struct StaticFiles {
    mounts: Vec<Mount>,
}

impl StaticFiles {
    /// Opens every mount: its directory must exist.
    pub fn new(configs: &[StaticConfig]) -> Result<StaticFiles, StaticError> {
        check(configs)?;
        let mut mounts = Vec::with_capacity(configs.len());
        for c in configs {
            let root =
                std::fs::canonicalize(&c.dir).map_err(|source| StaticError::Dir { dir: c.dir.clone(), source })?;
            if !root.is_dir() {
                return Err(StaticError::NotADir { dir: c.dir.clone() });
            }
            // Confined too, for what `ServeDir` opens itself (a `.gz` sibling, a directory's index).
            let serve = ServeDir::with_backend(&root, Confined { root: root.clone() })
                .append_index_html_on_directories(true)
                .precompressed_br()
                .precompressed_gzip();
            mounts.push(Mount {
                prefix: normalized_prefix(&c.prefix)?,
                spa: c.spa,
                index: c.index.clone(),
                cache_control: c.cache_control.as_deref().and_then(|v| HeaderValue::from_str(v).ok()),
                serve_root: root.clone(),
                serve,
            });
            tracing::info!(prefix = %c.prefix, dir = %root.display(), spa = c.spa, "serving static files");
        }
        mounts.sort_by_key(|m| std::cmp::Reverse(m.prefix.len()));
        Ok(StaticFiles { mounts })
    }

    pub fn is_empty(&self) -> bool {
        self.mounts.is_empty()
    }

    /// Answers a GET or HEAD under one of the mounts; `None` when no mount covers the path (or
    /// the method is another), for the caller's own 404 or 405.
    pub async fn serve(&self, parts: &http::request::Parts, request_id: &str) -> Option<Response<Body>> {
        if parts.method != Method::GET && parts.method != Method::HEAD {
            return None;
        }
        let path = parts.uri.path();
        let (mount, rest) = self.mounts.iter().find_map(|m| Some((m, strip_prefix(&m.prefix, path)?)))?;
        // `ServeDir` decodes the path and refuses `..`; a separator or NUL smuggled in encoded form
        // would name something other than what the URL shows.
        // `..` is refused here too, so that such a path never reaches the SPA fallback.
        if let Some(why) = refused(rest) {
            return Some(json_error(StatusCode::BAD_REQUEST, "bad_path", why, Some(request_id)));
        }
        // A path through a symlink out of the root is a 404, and not a client-side route either.
        if mount.escapes(rest).await {
            return Some(json_error(StatusCode::NOT_FOUND, "not_found", "no such file", Some(request_id)));
        }
        let res = mount.call(parts, rest).await;
        if res.status() == StatusCode::NOT_FOUND && mount.spa && !last_segment_has_extension(rest) {
            let index = format!("/{}", mount.index);
            return Some(mount.call(parts, &index).await);
        }
        Some(res)
    }
}

/// The rest of `path` under `prefix` (always starting with `/`), or `None` when it is not under it.
fn strip_prefix<'p>(prefix: &str, path: &'p str) -> Option<&'p str> {
    if prefix == "/" {
        return Some(path);
    }
    match path.strip_prefix(prefix)? {
        "" => Some("/"),
        rest if rest.starts_with('/') => Some(rest),
        _ => None,
    }
}

/// Why a static path is refused before any file is looked at.
fn refused(path: &str) -> Option<&'static str> {
    let lower = path.to_ascii_lowercase();
    if lower.contains("%2f") || lower.contains("%5c") || lower.contains("%00") {
        return Some("an encoded `/`, `\\` or NUL is not allowed in a static path");
    }
    let decoded = percent_encoding::percent_decode_str(path).decode_utf8_lossy();
    if decoded.contains(['\\', '\0']) || decoded.split('/').any(|s| s == "..") {
        return Some("`..` and `\\` are not allowed in a static path");
    }
    None
}

fn last_segment_has_extension(path: &str) -> bool {
    path.rsplit('/').next().is_some_and(|s| s.contains('.'))
}

impl Mount {
    /// Whether `path` (under the mount) leads out of the root: the deepest part of it that exists,
    /// symlinks resolved, lies outside.
    async fn escapes(&self, path: &str) -> bool {
        let root = &self.serve_root;
        let decoded = percent_encoding::percent_decode_str(path).decode_utf8_lossy();
        let mut candidate = root.join(decoded.trim_start_matches('/'));
        loop {
            match tokio::fs::canonicalize(&candidate).await {
                Ok(real) => return !real.starts_with(root),
                Err(_) => {
                    if !candidate.pop() || !candidate.starts_with(root) {
                        return false;
                    }
                }
            }
        }
    }

    async fn call(&self, parts: &http::request::Parts, path: &str) -> Response<Body> {
        let query = parts.uri.query().map(|q| format!("?{q}")).unwrap_or_default();
        let mut req = Request::new(Empty::<Bytes>::new());
        *req.method_mut() = parts.method.clone();
        *req.headers_mut() = parts.headers.clone();
        match format!("{path}{query}").parse() {
            Ok(uri) => *req.uri_mut() = uri,
            Err(_) => return plain(StatusCode::BAD_REQUEST),
        }
        let mut serve = self.serve.clone();
        let Ok(res) = serve.call(req).await;
        let (mut head, body) = res.into_parts();
        let bytes = match body.collect().await {
            Ok(b) => b.to_bytes(),
            Err(e) => {
                tracing::warn!(error = %e, path, "reading a static file failed");
                return plain(StatusCode::INTERNAL_SERVER_ERROR);
            }
        };
        if head.status.is_success() || head.status == StatusCode::NOT_MODIFIED {
            if let Some(v) = &self.cache_control {
                head.headers.insert(header::CACHE_CONTROL, v.clone());
            }
        }
        if head.status == StatusCode::NOT_FOUND && bytes.is_empty() {
            head.headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
            return Response::from_parts(head, Full::new(Bytes::from_static(b"not found\n")));
        }
        Response::from_parts(head, Full::new(bytes))
    }
}

fn plain(status: StatusCode) -> Response<Body> {
    let mut res = Response::new(Full::new(Bytes::new()));
    *res.status_mut() = status;
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(prefix: &str) -> StaticConfig {
        StaticConfig {
            prefix: prefix.into(),
            dir: "web".into(),
            spa: false,
            index: "index.html".into(),
            cache_control: None,
        }
    }

    #[test]
    fn prefixes_are_plain_paths_outside_the_hosts_own() {
        assert_eq!(normalized_prefix("/app/").unwrap(), "/app");
        assert_eq!(normalized_prefix("/").unwrap(), "/");
        for bad in ["app", "/a/../b", "/metrics", "/invoke", "/invoke/x", "/a%2f", "/{x}"] {
            assert!(normalized_prefix(bad).is_err(), "{bad}");
        }
        assert!(normalized_prefix("/metricsboard").is_ok());
        let err = check(&[config("/app"), config("/app/")]).unwrap_err();
        assert!(err.to_string().contains("two `[[static]]` entries serve prefix `/app`"), "{err}");
        let err = check(&[StaticConfig { index: "../x".into(), ..config("/") }]).unwrap_err();
        assert!(err.to_string().contains("must be a file name"), "{err}");
    }

    #[test]
    fn a_prefix_covers_itself_and_what_is_below_it() {
        assert_eq!(strip_prefix("/app", "/app"), Some("/"));
        assert_eq!(strip_prefix("/app", "/app/x.js"), Some("/x.js"));
        assert_eq!(strip_prefix("/app", "/apple"), None);
        assert_eq!(strip_prefix("/", "/x"), Some("/x"));
        assert!(last_segment_has_extension("/assets/app.js"));
        assert!(!last_segment_has_extension("/notes/42"));
        for bad in ["/../x", "/a/%2e%2e/x", "/a%2fb", "/a\\b", "/%5c", "/x%00"] {
            assert!(refused(bad).is_some(), "{bad}");
        }
        assert_eq!(refused("/assets/app.v2.js"), None);
        assert_eq!(refused("/a..b/c"), None, "dots inside a name are fine");
    }

    #[test]
    fn a_missing_directory_is_named_with_what_to_do() {
        let err =
            StaticFiles::new(&[StaticConfig { dir: "/no/such/dir".into(), ..config("/") }]).err().expect("refused");
        assert!(err.to_string().contains("/no/such/dir") && err.to_string().contains("build the front end"), "{err}");
    }
}
