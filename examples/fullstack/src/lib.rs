//! The `notes` example group: the API of a notes board, served by one `berth.toml` together with
//! its Vite + TypeScript front end (`web/`, mounted with `[[static]]`), which calls it only through
//! the typed client that `berth client --lang ts` generates from the host's OpenAPI document.
//!
//! - `GET /api/notes`: every note, newest first.
//! - `POST /api/notes`: creates a note (201); its text must not be blank and is at most
//!   [`MAX_TEXT`] characters, its color one of [`COLORS`] (422 with the failing fields otherwise).
//! - `DELETE /api/notes/{id}`: 204, or 404 when there is no such note.
//!
//! Notes live in the SQL service `db`; the schema comes from `migrations/sqlite/`, applied by the
//! host when the group loads.

use berth::{Context, Error, Json, Path, Result, StatusCode, Valid};
use serde::{Deserialize, Serialize};

/// The colors a note may have; the first is the default.
pub const COLORS: [&str; 4] = ["yellow", "blue", "green", "pink"];
/// The longest text a note may have, in characters.
pub const MAX_TEXT: usize = 280;

const COLUMNS: &str = "id, text, color, created_at";

/// A note on the board.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct Note {
    pub id: i64,
    pub text: String,
    /// One of `yellow`, `blue`, `green`, `pink`.
    pub color: String,
    /// When it was created (UTC, RFC 3339).
    pub created_at: String,
}

/// What `POST /api/notes` takes; its `garde` rules are checked by the `Valid` extractor (422 with
/// the failing fields).
#[derive(Debug, Deserialize, garde::Validate, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NewNote {
    /// The note's text: not blank, at most 280 characters.
    #[garde(custom(not_blank), length(chars, max = MAX_TEXT))]
    pub text: String,
    /// One of `yellow` (the default), `blue`, `green`, `pink`.
    #[serde(default)]
    #[garde(inner(custom(known_color)))]
    pub color: Option<String>,
}

fn not_blank(value: &str, _ctx: &()) -> garde::Result {
    if value.trim().is_empty() {
        return Err(garde::Error::new("must not be blank"));
    }
    Ok(())
}

fn known_color(value: &str, _ctx: &()) -> garde::Result {
    if COLORS.contains(&value) {
        return Ok(());
    }
    Err(garde::Error::new(format!("must be one of {}", COLORS.join(", "))))
}

/// Lists every note, newest first.
#[berth::http(GET, "/api/notes")]
pub async fn list(ctx: Context) -> Result<Json<Vec<Note>>> {
    let notes = ctx.sql("db")?.query(&format!("SELECT {COLUMNS} FROM notes ORDER BY id DESC"), &[]).await?;
    Ok(Json(notes))
}

/// Creates a note.
#[berth::http(POST, "/api/notes", body_limit = "16KiB")]
pub async fn create(ctx: Context, Valid(Json(new)): Valid<Json<NewNote>>) -> Result<(StatusCode, Json<Note>)> {
    let color = new.color.unwrap_or_else(|| COLORS[0].to_owned());
    let sql = format!("INSERT INTO notes (text, color) VALUES ($1, $2) RETURNING {COLUMNS}");
    let note: Note = ctx
        .sql("db")?
        .query_opt(&sql, berth::params![new.text.trim(), color])
        .await?
        .ok_or_else(|| Error::internal("the insert returned no row"))?;
    tracing::info!(id = note.id, color = %note.color, "note created");
    Ok((StatusCode::CREATED, Json(note)))
}

/// Deletes a note.
#[berth::http(DELETE, "/api/notes/{id}")]
pub async fn delete(ctx: Context, Path(id): Path<i64>) -> Result<()> {
    let done = ctx.sql("db")?.execute("DELETE FROM notes WHERE id = $1", berth::params![id]).await?;
    if done.rows_affected == 0 {
        return Err(Error::not_found(format!("no note with id {id}")));
    }
    tracing::info!(id, "note deleted");
    Ok(())
}

berth::group! {
    functions: [list, create, delete],
    services: [sql("db")],
}
