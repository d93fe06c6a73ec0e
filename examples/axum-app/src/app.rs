//! A bookmarks API as it was before it moved into Berth: an axum `Router` over in-memory state,
//! with its own error type. It used to be served by a `main.rs` of its own
//! (`axum::serve(listener, Router::new().nest("/api", app::router()))`); the migration replaced
//! that `main.rs` with `lib.rs` and left this file unchanged.
//!
//! - `GET /health`: `ok`
//! - `GET /bookmarks?tag=rust&limit=10`: the bookmarks, oldest first
//! - `POST /bookmarks` `{"url", "title", "tags"}`: 201 with `Location`, 409 for a known URL
//! - `GET|PATCH|DELETE /bookmarks/{id}`: one bookmark (404 when there is none)
//! - `GET /tags`: how many bookmarks carry each tag
//! - `GET /export`: every bookmark as CSV, paced with a tokio timer

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{OriginalUri, Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

/// The most bookmarks one list answers.
pub const MAX_LIMIT: usize = 100;

/// The app's state: every bookmark, behind a lock.
#[derive(Clone, Default)]
pub struct AppState {
    store: Arc<Mutex<Store>>,
}

impl AppState {
    fn store(&self) -> MutexGuard<'_, Store> {
        // A panicking handler leaves the map consistent (each change is one insert or remove).
        self.store.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[derive(Default)]
struct Store {
    next_id: u64,
    bookmarks: BTreeMap<u64, Bookmark>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bookmark {
    pub id: u64,
    pub url: String,
    pub title: String,
    pub tags: Vec<String>,
}

#[derive(Debug, Deserialize)]
pub struct NewBookmark {
    url: String,
    title: String,
    #[serde(default)]
    tags: Vec<String>,
}

#[derive(Debug, Deserialize)]
pub struct Changes {
    title: Option<String>,
    tags: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
pub struct ListQuery {
    tag: Option<String>,
    limit: Option<usize>,
}

/// What the API answers when it refuses a request: `{"error", "message"}` with a status.
#[derive(Debug)]
pub enum ApiError {
    NotFound(u64),
    Duplicate {
        url: String,
        id: u64,
    },
    Invalid {
        field: &'static str,
        message: String,
    },
    /// A body or query string the extractors refused (400, 415 or 422, as axum says).
    Rejected {
        status: StatusCode,
        message: String,
    },
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code, message) = match self {
            ApiError::NotFound(id) => (StatusCode::NOT_FOUND, "not_found", format!("no bookmark {id}")),
            ApiError::Duplicate { url, id } => {
                (StatusCode::CONFLICT, "duplicate", format!("`{url}` is already bookmark {id}"))
            }
            ApiError::Invalid { field, message } => {
                (StatusCode::UNPROCESSABLE_ENTITY, "invalid", format!("`{field}`: {message}"))
            }
            ApiError::Rejected { status, message } => (status, "rejected", message),
        };
        (status, Json(serde_json::json!({ "error": code, "message": message }))).into_response()
    }
}

impl From<JsonRejection> for ApiError {
    fn from(e: JsonRejection) -> Self {
        ApiError::Rejected { status: e.status(), message: e.body_text() }
    }
}

impl From<QueryRejection> for ApiError {
    fn from(e: QueryRejection) -> Self {
        ApiError::Rejected { status: e.status(), message: e.body_text() }
    }
}

/// The app, with fresh state.
pub fn router() -> Router {
    Router::new()
        .route("/health", get(|| async { "ok" }))
        .route("/bookmarks", get(list).post(create))
        .route("/bookmarks/{id}", get(fetch).patch(change).delete(remove))
        .route("/tags", get(tags))
        .route("/export", get(export))
        .with_state(AppState::default())
}

async fn list(
    State(state): State<AppState>,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<Vec<Bookmark>>, ApiError> {
    let Query(query) = query?;
    let limit = query.limit.unwrap_or(MAX_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::Invalid { field: "limit", message: format!("must be 1 to {MAX_LIMIT}, not {limit}") });
    }
    let store = state.store();
    let found = store
        .bookmarks
        .values()
        .filter(|b| query.tag.as_ref().is_none_or(|t| b.tags.contains(t)))
        .take(limit)
        .cloned()
        .collect();
    Ok(Json(found))
}

async fn create(
    State(state): State<AppState>,
    OriginalUri(uri): OriginalUri,
    new: Result<Json<NewBookmark>, JsonRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let Json(new) = new?;
    let url = check_url(&new.url)?;
    let title = check_title(&new.title)?;
    let tags = check_tags(new.tags)?;
    let mut store = state.store();
    if let Some(existing) = store.bookmarks.values().find(|b| b.url == url) {
        return Err(ApiError::Duplicate { url, id: existing.id });
    }
    store.next_id += 1;
    let bookmark = Bookmark { id: store.next_id, url, title, tags };
    store.bookmarks.insert(bookmark.id, bookmark.clone());
    // Where the app is mounted (nested, or behind a prefix) is in the original URI.
    let location = format!("{}/{}", uri.path().trim_end_matches('/'), bookmark.id);
    Ok((StatusCode::CREATED, [(header::LOCATION, location)], Json(bookmark)))
}

async fn fetch(State(state): State<AppState>, Path(id): Path<u64>) -> Result<Json<Bookmark>, ApiError> {
    state.store().bookmarks.get(&id).cloned().map(Json).ok_or(ApiError::NotFound(id))
}

async fn change(
    State(state): State<AppState>,
    Path(id): Path<u64>,
    changes: Result<Json<Changes>, JsonRejection>,
) -> Result<Json<Bookmark>, ApiError> {
    let Json(changes) = changes?;
    let title = changes.title.as_deref().map(check_title).transpose()?;
    let tags = changes.tags.map(check_tags).transpose()?;
    let mut store = state.store();
    let bookmark = store.bookmarks.get_mut(&id).ok_or(ApiError::NotFound(id))?;
    if let Some(title) = title {
        bookmark.title = title;
    }
    if let Some(tags) = tags {
        bookmark.tags = tags;
    }
    Ok(Json(bookmark.clone()))
}

async fn remove(State(state): State<AppState>, Path(id): Path<u64>) -> Result<StatusCode, ApiError> {
    match state.store().bookmarks.remove(&id) {
        Some(_) => Ok(StatusCode::NO_CONTENT),
        None => Err(ApiError::NotFound(id)),
    }
}

async fn tags(State(state): State<AppState>) -> Json<BTreeMap<String, usize>> {
    let mut counts = BTreeMap::new();
    for tag in state.store().bookmarks.values().flat_map(|b| &b.tags) {
        *counts.entry(tag.clone()).or_insert(0) += 1;
    }
    Json(counts)
}

/// Every bookmark as CSV. Paced (as the original did, to keep exports from starving other
/// requests) with a tokio timer: what a plugin cannot run (see README.md).
async fn export(State(state): State<AppState>) -> impl IntoResponse {
    tokio::time::sleep(Duration::from_millis(20)).await;
    let mut csv = String::from("id,url,title\n");
    for b in state.store().bookmarks.values() {
        csv.push_str(&format!("{},{},\"{}\"\n", b.id, b.url, b.title.replace('"', "\"\"")));
    }
    ([(header::CONTENT_TYPE, "text/csv")], csv)
}

fn check_url(url: &str) -> Result<String, ApiError> {
    let url = url.trim();
    let rest = url.strip_prefix("https://").or_else(|| url.strip_prefix("http://"));
    match rest {
        Some(host) if !host.is_empty() && !host.contains(char::is_whitespace) => Ok(url.to_owned()),
        _ => Err(ApiError::Invalid { field: "url", message: format!("`{url}` is not an http(s) URL") }),
    }
}

fn check_title(title: &str) -> Result<String, ApiError> {
    let title = title.trim();
    match title.chars().count() {
        0 => Err(ApiError::Invalid { field: "title", message: "must not be empty".into() }),
        1..=200 => Ok(title.to_owned()),
        n => Err(ApiError::Invalid { field: "title", message: format!("at most 200 characters, not {n}") }),
    }
}

fn check_tags(tags: Vec<String>) -> Result<Vec<String>, ApiError> {
    let mut checked: Vec<String> = Vec::with_capacity(tags.len());
    for tag in tags {
        let ok = !tag.is_empty() && tag.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if !ok {
            return Err(ApiError::Invalid {
                field: "tags",
                message: format!("`{tag}` is not a tag (lower-case letters, digits and `-`)"),
            });
        }
        if !checked.contains(&tag) {
            checked.push(tag);
        }
    }
    Ok(checked)
}
