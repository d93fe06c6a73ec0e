//! The `todo` example group: a REST CRUD API under `/todos`.
//!
//! The store is in memory for now (it lives as long as the loaded plugin); the services work
//! moves it onto SQL with a key-value cache.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};

use berth::{Error, Json, Path, Result, StatusCode};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Todo {
    pub id: u64,
    pub title: String,
    pub done: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewTodo {
    pub title: String,
    #[serde(default)]
    pub done: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TodoUpdate {
    pub title: Option<String>,
    pub done: Option<bool>,
}

struct Store {
    next_id: u64,
    todos: BTreeMap<u64, Todo>,
}

static STORE: Mutex<Store> = Mutex::new(Store { next_id: 1, todos: BTreeMap::new() });

fn store() -> MutexGuard<'static, Store> {
    // A handler that panicked while holding the lock cannot have left a half-written entry
    // (every mutation is a single insert or remove), so the data is still consistent.
    STORE.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn validate_title(title: &str) -> Result<()> {
    if title.trim().is_empty() {
        return Err(Error::unprocessable("`title` must not be empty"));
    }
    if title.len() > 500 {
        return Err(Error::unprocessable("`title` must be at most 500 bytes"));
    }
    Ok(())
}

/// `GET /todos`
#[berth::http(GET, "/todos")]
pub async fn list() -> Json<Vec<Todo>> {
    Json(store().todos.values().cloned().collect())
}

/// `POST /todos` → 201 with the created todo.
#[berth::http(POST, "/todos", body_limit = "16KiB")]
pub async fn create(Json(new): Json<NewTodo>) -> Result<(StatusCode, Json<Todo>)> {
    validate_title(&new.title)?;
    let mut s = store();
    let todo = Todo { id: s.next_id, title: new.title, done: new.done };
    s.next_id += 1;
    s.todos.insert(todo.id, todo.clone());
    tracing::info!(id = todo.id, "todo created");
    Ok((StatusCode::CREATED, Json(todo)))
}

/// `GET /todos/{id}`
#[berth::http(GET, "/todos/{id}")]
pub async fn read(Path(id): Path<u64>) -> Result<Json<Todo>> {
    store().todos.get(&id).cloned().map(Json).ok_or_else(|| Error::not_found(format!("no todo with id {id}")))
}

/// `PUT /todos/{id}`: changes the given fields.
#[berth::http(PUT, "/todos/{id}", body_limit = "16KiB")]
pub async fn update(Path(id): Path<u64>, Json(change): Json<TodoUpdate>) -> Result<Json<Todo>> {
    if let Some(title) = &change.title {
        validate_title(title)?;
    }
    let mut s = store();
    let todo = s.todos.get_mut(&id).ok_or_else(|| Error::not_found(format!("no todo with id {id}")))?;
    if let Some(title) = change.title {
        todo.title = title;
    }
    if let Some(done) = change.done {
        todo.done = done;
    }
    Ok(Json(todo.clone()))
}

/// `DELETE /todos/{id}` → 204.
#[berth::http(DELETE, "/todos/{id}")]
pub async fn delete(Path(id): Path<u64>) -> Result<()> {
    store().todos.remove(&id).map(|_| ()).ok_or_else(|| Error::not_found(format!("no todo with id {id}")))
}

berth::group!(list, create, read, update, delete);

#[cfg(test)]
mod tests {
    use super::*;
    use berth::testing::TestGroup;
    use berth::Request;

    #[test]
    fn crud_round_trip() {
        let g = TestGroup::start(berth_group()).unwrap();
        let created =
            g.request(Request::new("POST", "/todos").with_json(&serde_json::json!({"title": "write tests"}))).unwrap();
        assert_eq!(created.status, StatusCode::CREATED);
        let todo: Todo = created.json_body().unwrap();
        let path = format!("/todos/{}", todo.id);
        let updated = g.request(Request::new("PUT", &path).with_json(&serde_json::json!({"done": true}))).unwrap();
        assert!(updated.json_body::<Todo>().unwrap().done);
        assert_eq!(g.request(Request::new("DELETE", &path)).unwrap().status, StatusCode::NO_CONTENT);
        assert_eq!(g.request(Request::new("GET", &path)).unwrap_err().status(), StatusCode::NOT_FOUND);
    }

    #[test]
    fn empty_title_is_refused_and_non_numeric_id_is_400() {
        let g = TestGroup::start(berth_group()).unwrap();
        let err = g.request(Request::new("POST", "/todos").with_json(&serde_json::json!({"title": " "}))).unwrap_err();
        assert_eq!(err.status(), StatusCode::UNPROCESSABLE_ENTITY);
        let err = g.request(Request::new("GET", "/todos/abc")).unwrap_err();
        assert_eq!(err.status(), StatusCode::BAD_REQUEST);
    }
}
