//! The `todo` example group: a REST CRUD API under `/todos` on a SQL database (`db`), with a
//! read-through key-value cache (`cache`) and owners checked against the `users` service that
//! the `users` group exports.
//!
//! The schema comes from `migrations/<backend>/`, applied by the host when the group loads. With
//! the default `berth.toml` this runs on SQLite and the embedded key-value store; pointing
//! `[services.db]` at PostgreSQL and `[services.cache]` at Redis needs no rebuild.
//!
//! The cache is an optimisation: when it is down, reads fall back to the database and writes
//! still succeed (a stale entry is impossible: writes delete it, and a failed delete is retried
//! by expiry after `CACHE_TTL`).

use std::time::Duration;

use berth::{Context, Error, Json, Path, Result, StatusCode, Valid};
use serde::{Deserialize, Serialize};
use users_api::UsersClient;

const CACHE_TTL: Duration = Duration::from_secs(60);
const COLUMNS: &str = "id, title, done, owner_id";

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct Todo {
    pub id: i64,
    pub title: String,
    #[serde(deserialize_with = "berth::sql_bool")]
    pub done: bool,
    pub owner_id: Option<i64>,
}

/// What `POST /todos` takes; its `garde` rules are checked by the `Valid` extractor (422 with
/// the failing fields).
#[derive(Debug, Deserialize, garde::Validate, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NewTodo {
    #[garde(custom(not_blank), length(max = 500))]
    pub title: String,
    #[serde(default)]
    #[garde(skip)]
    pub done: bool,
    #[garde(skip)]
    pub owner_id: Option<i64>,
}

/// What `PUT /todos/{id}` takes: the fields to change.
#[derive(Debug, Deserialize, garde::Validate, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TodoUpdate {
    #[garde(inner(custom(not_blank), length(max = 500)))]
    pub title: Option<String>,
    #[garde(skip)]
    pub done: Option<bool>,
}

fn not_blank(value: &str, _ctx: &()) -> garde::Result {
    if value.trim().is_empty() {
        return Err(garde::Error::new("must not be empty"));
    }
    Ok(())
}

fn cache_key(id: i64) -> String {
    format!("todo/{id}")
}

/// Drops a cached entry; a cache outage only delays freshness until the entry expires.
async fn invalidate(ctx: &Context, id: i64) {
    if let Err(e) = async { ctx.kv("cache")?.delete(&cache_key(id)).await }.await {
        tracing::warn!(id, error = %e, "cache invalidation failed; the entry expires on its own");
    }
}

async fn check_owner(ctx: &Context, owner_id: Option<i64>) -> Result<()> {
    let Some(owner) = owner_id else { return Ok(()) };
    let users = UsersClient::new(ctx, "users")?;
    match users.get(owner as u64).await? {
        Some(_) => Ok(()),
        None => Err(Error::unprocessable(format!("owner {owner} is not a known user"))),
    }
}

/// `GET /todos`
#[berth::http(GET, "/todos")]
pub async fn list(ctx: Context) -> Result<Json<Vec<Todo>>> {
    let todos = ctx.sql("db")?.query(&format!("SELECT {COLUMNS} FROM todos ORDER BY id"), &[]).await?;
    Ok(Json(todos))
}

/// `POST /todos` → 201 with the created todo.
#[berth::http(POST, "/todos", body_limit = "16KiB")]
pub async fn create(ctx: Context, Valid(Json(new)): Valid<Json<NewTodo>>) -> Result<(StatusCode, Json<Todo>)> {
    check_owner(&ctx, new.owner_id).await?;
    let sql = format!("INSERT INTO todos (title, done, owner_id) VALUES ($1, $2, $3) RETURNING {COLUMNS}");
    let todo: Todo = ctx
        .sql("db")?
        .query_opt(&sql, berth::params![new.title, new.done, new.owner_id])
        .await?
        .ok_or_else(|| Error::internal("the insert returned no row"))?;
    tracing::info!(id = todo.id, "todo created");
    Ok((StatusCode::CREATED, Json(todo)))
}

/// `GET /todos/{id}`, through the cache.
#[berth::http(GET, "/todos/{id}")]
pub async fn read(ctx: Context, Path(id): Path<i64>) -> Result<Json<Todo>> {
    let cache = ctx.kv("cache")?;
    match cache.get_json::<Todo>(&cache_key(id)).await {
        Ok(Some(todo)) => return Ok(Json(todo)),
        Ok(None) => {}
        Err(e) => tracing::warn!(id, error = %e, "cache unavailable; reading the database"),
    }
    let todo: Todo = ctx
        .sql("db")?
        .query_opt(&format!("SELECT {COLUMNS} FROM todos WHERE id = $1"), berth::params![id])
        .await?
        .ok_or_else(|| Error::not_found(format!("no todo with id {id}")))?;
    if let Err(e) = cache.set_json(&cache_key(id), &todo, Some(CACHE_TTL)).await {
        tracing::warn!(id, error = %e, "could not fill the cache");
    }
    Ok(Json(todo))
}

/// `PUT /todos/{id}`: changes the given fields, in one transaction.
#[berth::http(PUT, "/todos/{id}", body_limit = "16KiB")]
pub async fn update(
    ctx: Context,
    Path(id): Path<i64>,
    Valid(Json(change)): Valid<Json<TodoUpdate>>,
) -> Result<Json<Todo>> {
    let tx = ctx.sql("db")?.begin().await?;
    let select = format!("SELECT {COLUMNS} FROM todos WHERE id = $1");
    let mut todo: Todo = tx
        .query_opt(&select, berth::params![id])
        .await?
        .ok_or_else(|| Error::not_found(format!("no todo with id {id}")))?;
    if let Some(title) = change.title {
        todo.title = title;
    }
    if let Some(done) = change.done {
        todo.done = done;
    }
    tx.execute("UPDATE todos SET title = $1, done = $2 WHERE id = $3", berth::params![&todo.title, todo.done, id])
        .await?;
    tx.commit().await?;
    invalidate(&ctx, id).await;
    Ok(Json(todo))
}

/// `DELETE /todos/{id}` → 204.
#[berth::http(DELETE, "/todos/{id}")]
pub async fn delete(ctx: Context, Path(id): Path<i64>) -> Result<()> {
    let done = ctx.sql("db")?.execute("DELETE FROM todos WHERE id = $1", berth::params![id]).await?;
    invalidate(&ctx, id).await;
    if done.rows_affected == 0 {
        return Err(Error::not_found(format!("no todo with id {id}")));
    }
    Ok(())
}

berth::group! {
    functions: [list, create, read, update, delete],
    services: [sql("db"), kv("cache"), users_api::requirement("users")],
}
