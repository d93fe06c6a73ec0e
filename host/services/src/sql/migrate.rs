//! A group's SQL migrations: the `*.sql` files of a folder, applied once each, in lexical order
//! of their names, each in its own transaction, recorded in `_berth_migrations`.
//!
//! A file that was applied and has changed since (its SHA-256 differs from the recorded one)
//! stops the run before anything new is applied: editing history would leave databases that ran
//! the old text and databases that ran the new one. On PostgreSQL an advisory lock serialises
//! hosts that migrate the same database at once; on SQLite the write lock does. MySQL commits
//! each DDL statement on its own, so a file that fails half-way there leaves its earlier
//! statements applied (and the file unrecorded).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use berth_plugin_api::{ServiceError, SqlValue};
use sha2::{Digest, Sha256};

use super::{SqlPool, Tx};

/// The key of the PostgreSQL advisory lock held while one migration runs ("berth_mg").
#[cfg(feature = "postgres")]
const PG_LOCK_KEY: i64 = 0x6265_7274_685f_6d67;

fn create_table(backend: &str) -> &'static str {
    match backend {
        "postgres" => {
            "CREATE TABLE IF NOT EXISTS _berth_migrations (group_name TEXT NOT NULL, name TEXT NOT NULL, \
             checksum TEXT NOT NULL, applied_at TIMESTAMPTZ NOT NULL DEFAULT now(), PRIMARY KEY (group_name, name))"
        }
        "mysql" => {
            "CREATE TABLE IF NOT EXISTS _berth_migrations (group_name VARCHAR(191) NOT NULL, \
             name VARCHAR(191) NOT NULL, checksum CHAR(64) NOT NULL, \
             applied_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6), PRIMARY KEY (group_name, name))"
        }
        _ => {
            "CREATE TABLE IF NOT EXISTS _berth_migrations (group_name TEXT NOT NULL, name TEXT NOT NULL, \
             checksum TEXT NOT NULL, applied_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')), \
             PRIMARY KEY (group_name, name))"
        }
    }
}

/// One `*.sql` file.
struct Migration {
    name: String,
    text: String,
    checksum: String,
}

/// The migrations of `dir` (or of `dir/<backend>/` when it exists), sorted by name.
fn read_dir(dir: &Path, backend: &str) -> Result<(PathBuf, Vec<Migration>), String> {
    let specific = dir.join(backend);
    let dir = if specific.is_dir() { specific } else { dir.to_path_buf() };
    let entries =
        std::fs::read_dir(&dir).map_err(|e| format!("cannot read migrations folder `{}`: {e}", dir.display()))?;
    let mut out = Vec::new();
    for entry in entries {
        let path = entry.map_err(|e| format!("cannot read migrations folder `{}`: {e}", dir.display()))?.path();
        if !path.is_file() || path.extension().is_none_or(|e| e != "sql") {
            continue;
        }
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| format!("migration `{}` has a name that is not UTF-8; rename it", path.display()))?
            .to_owned();
        let bytes = std::fs::read(&path).map_err(|e| format!("cannot read migration `{}`: {e}", path.display()))?;
        let checksum = format!("{:x}", Sha256::digest(&bytes));
        let text = String::from_utf8(bytes).map_err(|_| format!("migration `{}` is not UTF-8 text", path.display()))?;
        out.push(Migration { name, text, checksum });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok((dir, out))
}

fn text(s: &str) -> SqlValue {
    SqlValue::Text(s.into())
}

/// A recorded checksum from a `_berth_migrations` row.
fn checksum_of(row: &super::JsonRow) -> String {
    row.get("checksum").and_then(|v| v.as_str()).unwrap_or_default().trim().to_owned()
}

/// The recorded migrations of a `_berth_migrations` query: name → checksum.
fn applied(rows: &[super::JsonRow]) -> BTreeMap<String, String> {
    rows.iter().filter_map(|r| Some((r.get("name")?.as_str()?.to_owned(), checksum_of(r)))).collect()
}

pub(super) async fn run(pool: &SqlPool, group: &str, dir: &Path) -> Result<Vec<String>, String> {
    let (backend, service) = (pool.backend(), pool.name());
    let on = format!("{backend} `{service}`");
    let (dir, migrations) = read_dir(dir, backend)?;
    let failed = |what: &str, e: ServiceError| format!("{what} on {on} failed: {}", e.message);

    let group_v = text(group);
    let select = "SELECT name, checksum FROM _berth_migrations WHERE group_name = $1";
    // A restart: every migration is recorded with the checksum it has now. One read, no lock
    // and no write transaction (fails when the table does not exist yet: then the full path).
    if let Ok(rows) = pool.run_query(select, &[&group_v]).await {
        let applied = applied(&rows);
        if migrations.iter().all(|m| applied.get(&m.name) == Some(&m.checksum)) {
            return Ok(Vec::new());
        }
    }

    // The bookkeeping table, created under the lock on PostgreSQL (concurrent CREATE TABLE IF
    // NOT EXISTS can collide there).
    let mut tx = pool.begin().await.map_err(|e| failed("starting migrations", e))?;
    lock(&mut tx, pool).await.map_err(|e| failed("locking migrations", e))?;
    tx.script(create_table(backend)).await.map_err(|e| failed("creating `_berth_migrations`", pool.error(e)))?;
    tx.commit().await.map_err(|e| failed("creating `_berth_migrations`", pool.error(e.into())))?;

    let rows = pool.run_query(select, &[&group_v]).await.map_err(|e| failed("reading `_berth_migrations`", e))?;
    let applied = applied(&rows);
    let changed = |m: &Migration, recorded: &str| {
        format!(
            "migration `{}` (in `{}`) changed after it was applied to {on} (checksum {} recorded, {} now); \
             restore the applied text and put the change in a new migration file",
            m.name,
            dir.display(),
            &recorded[..recorded.len().min(12)],
            &m.checksum[..12]
        )
    };
    for m in &migrations {
        if let Some(recorded) = applied.get(&m.name).filter(|r| **r != m.checksum) {
            return Err(changed(m, recorded));
        }
    }

    let mut done = Vec::new();
    // Collected first: an iterator adapter's closure held across the awaits below would make
    // this future `Send` only for one lifetime, and a spawned caller needs it for any.
    let pending: Vec<&Migration> = migrations.iter().filter(|m| !applied.contains_key(&m.name)).collect();
    for m in pending {
        let name_v = text(&m.name);
        let refused =
            |e: ServiceError| format!("migration `{}` (in `{}`) failed on {on}: {}", m.name, dir.display(), e.message);
        let mut tx = pool.begin().await.map_err(refused)?;
        lock(&mut tx, pool).await.map_err(refused)?;
        // Another host may have applied it while this one waited for the lock.
        let again = tx
            .query("SELECT checksum FROM _berth_migrations WHERE group_name = $1 AND name = $2", &[&group_v, &name_v])
            .await
            .map_err(|e| refused(pool.error(e)))?;
        if let Some(row) = again.first() {
            let _ = tx.rollback().await;
            let recorded = checksum_of(row);
            if recorded != m.checksum {
                return Err(changed(m, &recorded));
            }
            continue;
        }
        if !m.text.trim().is_empty() {
            if let Err(e) = tx.script(&m.text).await {
                let _ = tx.rollback().await;
                return Err(refused(pool.error(e)));
            }
        }
        let checksum_v = text(&m.checksum);
        tx.execute(
            "INSERT INTO _berth_migrations (group_name, name, checksum) VALUES ($1, $2, $3)",
            &[&group_v, &name_v, &checksum_v],
        )
        .await
        .map_err(|e| refused(pool.error(e)))?;
        tx.commit().await.map_err(|e| refused(pool.error(e.into())))?;
        tracing::info!(group, service, migration = %m.name, "migration applied");
        done.push(m.name.clone());
    }
    Ok(done)
}

/// Serialises migrating hosts on PostgreSQL until the transaction ends.
async fn lock(tx: &mut Tx, pool: &SqlPool) -> Result<(), ServiceError> {
    #[cfg(feature = "postgres")]
    if let Tx::Postgres(_) = tx {
        let key = SqlValue::Int(PG_LOCK_KEY);
        tx.query("SELECT pg_advisory_xact_lock($1)", &[&key]).await.map_err(|e| pool.error(e))?;
    }
    let _ = (tx, pool);
    Ok(())
}
