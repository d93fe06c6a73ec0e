//! MySQL and MariaDB.
//!
//! Statements use `$1..$N` like the other backends; they are rewritten to `?` (see
//! [`super::placeholders`]). Sessions run in UTC (`time_zone = '+00:00'`, set by sqlx).
//!
//! Results are decoded by column type: integer types, `YEAR` and `BIT` → numbers (`BIGINT
//! UNSIGNED` past `i64` too), `BOOLEAN` (`TINYINT(1)`) → `true`/`false`, `FLOAT`/`DOUBLE` →
//! numbers, `DECIMAL` → string (exact), `DATE` → `2024-01-31`, `DATETIME` → `2024-01-31T12:30:00`
//! (no zone), `TIMESTAMP` → `2024-01-31T12:30:00Z`, `TIME` → `-838:59:59` style, `JSON` → embedded
//! JSON, text types, `ENUM` and `SET` → strings, binary types and `GEOMETRY` → arrays of byte
//! numbers.
//!
//! The protocol marks a text column with a binary collation (`utf8mb4_bin`, and MariaDB's `JSON`,
//! a `LONGTEXT` alias in `utf8mb4_bin`) exactly like a binary one, and sqlx does not expose the
//! column's character set that would tell them apart: such columns arrive as byte arrays, every
//! time. Select them as `CAST(col AS CHAR)` for a string (or use a `_ci` collation).

use std::str::FromStr as _;

use berth_plugin_api::{SqlExecuted, SqlValue};
use serde_json::Value;
use sqlx::mysql::{MySqlArguments, MySqlConnectOptions, MySqlRow, MySqlValueRef};
use sqlx::{Arguments as _, Column as _, Decode, Executor, MySql, Row as _, TypeInfo as _, ValueRef as _};

use super::placeholders::{self, Dialect};
use super::{bytes_json, f32_json, float_json, Failure, JsonRow, SqlPool};
use crate::config::SqlServerConfig;
use crate::SetupError;
use std::sync::Arc;

use berth_core::metrics::ServiceMetrics;
use berth_core::provider::{OpenContext, OpenedService, TypedProvider};

// === the provider ===

/// `kind = "mysql"`: MySQL or MariaDB.
pub const PROVIDER: TypedProvider<SqlServerConfig> = TypedProvider::new("mysql", "sql", open_pool);

fn open_pool(cfg: &SqlServerConfig, ctx: OpenContext<'_>) -> Result<Arc<dyn OpenedService>, String> {
    Ok(Arc::new(SqlPool::mysql(ctx.name, cfg, ctx.metrics).map_err(|e| e.0)?))
}

impl SqlPool {
    /// A MySQL/MariaDB pool that connects on first use: a server that is down does not refuse the
    /// group, its calls fail (`UNAVAILABLE`/`TIMEOUT`) until it is back. Must be called inside the
    /// tokio runtime (the pool's maintenance task lives there).
    pub fn mysql(name: &str, cfg: &SqlServerConfig, metrics: ServiceMetrics) -> Result<SqlPool, SetupError> {
        SqlPool::require_runtime()?;
        let options = MySqlConnectOptions::from_str(&cfg.url)
            .map_err(|e| SetupError(format!("`url` is not a usable MySQL URL: {e}")))?;
        let pool = super::Pool::Mysql(super::server_pool(options, cfg));
        Ok(SqlPool::new(name, "mysql", cfg.acquire_timeout, pool, metrics))
    }
}

/// The statement with `?` placeholders, and its arguments in placeholder order.
fn prepare<'s>(sql: &'s str, params: &[&SqlValue]) -> Result<(std::borrow::Cow<'s, str>, MySqlArguments), Failure> {
    let scanned = placeholders::scan(sql, Dialect::Mysql).map_err(Failure::Invalid)?;
    placeholders::check_count(&scanned.order, params.len()).map_err(Failure::Invalid)?;
    let ordered: Vec<(usize, &SqlValue)> = if scanned.order.is_empty() {
        params.iter().copied().enumerate().collect()
    } else {
        scanned.order.iter().map(|&i| (i, params[i])).collect()
    };
    let mut args = MySqlArguments::default();
    super::bind_all(&mut args, ordered, "MySQL", |a| a.add(None::<i64>))?;
    Ok((scanned.sql, args))
}

pub(super) async fn query<'c>(
    ex: impl Executor<'c, Database = MySql>,
    sql: &str,
    params: &[&SqlValue],
) -> Result<Vec<JsonRow>, Failure> {
    let (sql, args) = prepare(sql, params)?;
    let rows = sqlx::query_with(&sql, args).fetch_all(ex).await?;
    rows.iter().map(row_json).collect()
}

pub(super) async fn execute<'c>(
    ex: impl Executor<'c, Database = MySql>,
    sql: &str,
    params: &[&SqlValue],
) -> Result<SqlExecuted, Failure> {
    let (sql, args) = prepare(sql, params)?;
    let done = sqlx::query_with(&sql, args).execute(ex).await?;
    Ok(SqlExecuted { rows_affected: done.rows_affected(), last_insert_id: done.last_insert_id() as i64 })
}

fn row_json(row: &MySqlRow) -> Result<JsonRow, Failure> {
    let mut out = JsonRow::new();
    for (i, col) in row.columns().iter().enumerate() {
        let raw = row.try_get_raw(i)?;
        let value = if raw.is_null() {
            Value::Null
        } else {
            decode(col.type_info().name(), raw)
                .map_err(|e| Failure::Decode(format!("column `{}` ({}): {e}", col.name(), col.type_info().name())))?
        };
        out.insert(col.name().to_owned(), value);
    }
    Ok(out)
}

fn decode(type_name: &str, raw: MySqlValueRef<'_>) -> Result<Value, sqlx::error::BoxDynError> {
    fn d<'r, T: Decode<'r, MySql>>(raw: MySqlValueRef<'r>) -> Result<T, sqlx::error::BoxDynError> {
        T::decode(raw)
    }
    Ok(match type_name {
        "BOOLEAN" => Value::Bool(d::<bool>(raw)?),
        "TINYINT" | "SMALLINT" | "MEDIUMINT" | "INT" | "BIGINT" | "YEAR" => Value::from(d::<i64>(raw)?),
        n if n.ends_with(" UNSIGNED") || n == "BIT" => Value::from(d::<u64>(raw)?),
        "FLOAT" => f32_json(d::<f32>(raw)?),
        "DOUBLE" => float_json(d::<f64>(raw)?),
        "DECIMAL" => Value::String(d::<String>(raw)?),
        "DATE" => Value::String(moment(d::<&[u8]>(raw)?, Moment::Date)?),
        "DATETIME" => Value::String(moment(d::<&[u8]>(raw)?, Moment::Local)?),
        "TIMESTAMP" => Value::String(moment(d::<&[u8]>(raw)?, Moment::Utc)?),
        "TIME" => {
            let t = d::<sqlx::mysql::types::MySqlTime>(raw)?;
            let mut s = format!(
                "{}{:02}:{:02}:{:02}",
                // `sign()`, not `is_negative()`: the latter is inverted in sqlx 0.8.6.
                if t.sign().is_negative() { "-" } else { "" },
                t.hours(),
                t.minutes(),
                t.seconds()
            );
            if t.microseconds() != 0 {
                s.push_str(format!(".{:06}", t.microseconds()).trim_end_matches('0'));
            }
            Value::String(s)
        }
        "JSON" => {
            let text = d::<&str>(raw)?;
            serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_owned()))
        }
        "BINARY" | "VARBINARY" | "TINYBLOB" | "BLOB" | "MEDIUMBLOB" | "LONGBLOB" | "GEOMETRY" => {
            bytes_json(d::<&[u8]>(raw)?)
        }
        _ => Value::String(d::<String>(raw)?),
    })
}

#[derive(Clone, Copy, PartialEq)]
enum Moment {
    Date,
    /// `DATETIME`: no zone.
    Local,
    /// `TIMESTAMP`: UTC in a UTC session.
    Utc,
}

/// A `DATE`, `DATETIME` or `TIMESTAMP` in the binary protocol (a length byte, then year, month,
/// day, and optionally hour, minute, second, microseconds; all zero when the length is 0) or as
/// text (`2024-01-31 12:30:00`).
fn moment(b: &[u8], kind: Moment) -> Result<String, String> {
    let zone = if kind == Moment::Utc { "Z" } else { "" };
    if b.first().is_some_and(u8::is_ascii_digit) {
        let text = std::str::from_utf8(b).map_err(|e| e.to_string())?;
        return Ok(match text.split_once(' ') {
            Some((date, time)) => format!("{date}T{time}{zone}"),
            None => text.to_owned(),
        });
    }
    let (&len, rest) = b.split_first().ok_or("empty date value")?;
    let fields = rest.get(..len as usize).filter(|f| f.len() <= 11).ok_or("malformed date value")?;
    let mut f = [0u8; 11];
    f[..fields.len()].copy_from_slice(fields);
    let date = format!("{:04}-{:02}-{:02}", u16::from_le_bytes([f[0], f[1]]), f[2], f[3]);
    if kind == Moment::Date {
        return Ok(date);
    }
    let mut out = format!("{date}T{:02}:{:02}:{:02}", f[4], f[5], f[6]);
    let micros = u32::from_le_bytes([f[7], f[8], f[9], f[10]]);
    if micros != 0 {
        out.push_str(format!(".{micros:06}").trim_end_matches('0'));
    }
    out.push_str(zone);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_read_from_both_protocols() {
        let mut dt = vec![11u8];
        dt.extend(2024u16.to_le_bytes());
        dt.extend([2, 29, 13, 5, 9]);
        dt.extend(500_000u32.to_le_bytes());
        assert_eq!(moment(&dt, Moment::Utc).unwrap(), "2024-02-29T13:05:09.5Z");
        assert_eq!(moment(&dt[..8], Moment::Local).unwrap_err(), "malformed date value");
        let mut d = vec![4u8];
        d.extend(1999u16.to_le_bytes());
        d.extend([12, 31]);
        assert_eq!(moment(&d, Moment::Date).unwrap(), "1999-12-31");
        assert_eq!(moment(&d, Moment::Local).unwrap(), "1999-12-31T00:00:00");
        assert_eq!(moment(&[0], Moment::Local).unwrap(), "0000-00-00T00:00:00");
        assert_eq!(moment(b"2024-01-31 12:30:00", Moment::Utc).unwrap(), "2024-01-31T12:30:00Z");
        assert_eq!(moment(b"2024-01-31", Moment::Date).unwrap(), "2024-01-31");
    }
}
