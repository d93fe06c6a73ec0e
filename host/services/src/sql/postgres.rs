//! PostgreSQL.
//!
//! Parameters: `Int` is `int8`, `Float` is `float8`, `Text` is `text`, `Bytes` is `bytea`, `Bool`
//! is `bool`; a `Null` has no type, so the server infers it from where it stands (a statement
//! with a `Null` is prepared for that call only, so the inferred type never sticks to the
//! statement's cached form).
//!
//! Results are decoded by column type: integers, `oid` and floats → numbers (NaN and ±Infinity as
//! strings), `bool`, text types and enums → strings, `numeric` → string (exact), `json`/`jsonb`
//! → embedded JSON, `bytea` → array of byte numbers, `date` → `2024-01-31`, `time` →
//! `12:30:00.5`, `timetz` → `12:30:00+02:00`, `timestamp` → `2024-01-31T12:30:00` (no zone),
//! `timestamptz` → `2024-01-31T10:30:00Z`, `interval` → ISO 8601 (`P1Y2M3DT4H5M6.5S`), `uuid`,
//! `inet`/`cidr`, `macaddr` → their usual text, arrays → JSON arrays of the same, domains as
//! their base type. Any other type arrives as its binary wire bytes: cast it in SQL
//! (`col::text`) for a readable form.

use std::fmt::Write as _;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::str::FromStr as _;

use berth_plugin_api::{SqlExecuted, SqlValue};
use serde_json::Value;
use sqlx::encode::IsNull;
use sqlx::error::BoxDynError;
use sqlx::postgres::types::Oid;
use sqlx::postgres::{PgArgumentBuffer, PgArguments, PgConnectOptions, PgRow, PgTypeInfo, PgTypeKind, PgValueFormat};
use sqlx::{Arguments as _, Column as _, Encode, Executor, Postgres, Row as _, Type, TypeInfo as _, ValueRef as _};

use super::{bytes_json, f32_json, float_json, Failure, JsonRow, SqlPool};
use crate::config::SqlServerConfig;
use crate::SetupError;
use std::sync::Arc;

use berth_core::metrics::ServiceMetrics;
use berth_core::provider::{OpenContext, OpenedService, TypedProvider};

// === the provider ===

/// `kind = "postgres"`: PostgreSQL.
pub const PROVIDER: TypedProvider<SqlServerConfig> = TypedProvider::new("postgres", "sql", open_pool);

fn open_pool(cfg: &SqlServerConfig, ctx: OpenContext<'_>) -> Result<Arc<dyn OpenedService>, String> {
    Ok(Arc::new(SqlPool::postgres(ctx.name, cfg, ctx.metrics).map_err(|e| e.0)?))
}

impl SqlPool {
    /// A PostgreSQL pool that connects on first use: a server that is down does not refuse the
    /// group, its calls fail (`UNAVAILABLE`/`TIMEOUT`) until it is back. Must be called inside the
    /// tokio runtime (the pool's maintenance task lives there).
    pub fn postgres(name: &str, cfg: &SqlServerConfig, metrics: ServiceMetrics) -> Result<SqlPool, SetupError> {
        SqlPool::require_runtime()?;
        let options = PgConnectOptions::from_str(&cfg.url)
            .map_err(|e| SetupError(format!("`url` is not a usable PostgreSQL URL: {e}")))?
            .application_name("berth");
        let pool = super::Pool::Postgres(super::server_pool(options, cfg));
        Ok(SqlPool::new(name, "postgres", cfg.acquire_timeout, pool, metrics))
    }
}

/// NULL of no declared type (OID 0): the server infers it, as for an untyped literal.
struct UntypedNull;

impl Type<Postgres> for UntypedNull {
    fn type_info() -> PgTypeInfo {
        PgTypeInfo::with_oid(Oid(0))
    }
}

impl Encode<'_, Postgres> for UntypedNull {
    fn encode_by_ref(&self, _: &mut PgArgumentBuffer) -> Result<IsNull, BoxDynError> {
        Ok(IsNull::Yes)
    }
}

/// The arguments, and whether one is NULL.
fn arguments(params: &[&SqlValue]) -> Result<(PgArguments, bool), Failure> {
    let mut args = PgArguments::default();
    let mut has_null = false;
    super::bind_all(&mut args, params.iter().copied().enumerate(), "PostgreSQL", |a| {
        has_null = true;
        a.add(UntypedNull)
    })?;
    Ok((args, has_null))
}

pub(super) async fn query<'c>(
    ex: impl Executor<'c, Database = Postgres>,
    sql: &str,
    params: &[&SqlValue],
) -> Result<Vec<JsonRow>, Failure> {
    let (args, has_null) = arguments(params)?;
    let rows = sqlx::query_with(sql, args).persistent(!has_null).fetch_all(ex).await?;
    rows.iter().map(row_json).collect()
}

pub(super) async fn execute<'c>(
    ex: impl Executor<'c, Database = Postgres>,
    sql: &str,
    params: &[&SqlValue],
) -> Result<SqlExecuted, Failure> {
    let (args, has_null) = arguments(params)?;
    let done = sqlx::query_with(sql, args).persistent(!has_null).execute(ex).await?;
    Ok(SqlExecuted { rows_affected: done.rows_affected(), last_insert_id: 0 })
}

fn row_json(row: &PgRow) -> Result<JsonRow, Failure> {
    let mut out = JsonRow::new();
    for (i, col) in row.columns().iter().enumerate() {
        let raw = row.try_get_raw(i)?;
        let value = if raw.is_null() {
            Value::Null
        } else {
            let format = raw.format();
            let bytes = raw.as_bytes().map_err(|e| Failure::Decode(format!("column `{}`: {e}", col.name())))?;
            decode(col.type_info(), format, bytes)
                .map_err(|e| Failure::Decode(format!("column `{}` ({}): {e}", col.name(), col.type_info().name())))?
        };
        out.insert(col.name().to_owned(), value);
    }
    Ok(out)
}

// === Decoding ===

/// One value of type `ty` as JSON.
fn decode(ty: &PgTypeInfo, format: PgValueFormat, b: &[u8]) -> Result<Value, String> {
    match ty.kind() {
        PgTypeKind::Domain(base) => return decode(base, format, b),
        PgTypeKind::Enum(_) => return text(b),
        PgTypeKind::Array(elem) if format == PgValueFormat::Binary => return array(elem, b),
        _ => {}
    }
    let oid = ty.oid().map_or(0, |o| o.0);
    if format == PgValueFormat::Text {
        return decode_text(oid, b);
    }
    Ok(match oid {
        16 => Value::Bool(fixed::<1>(b)?[0] != 0),
        17 => bytes_json(b),
        18 | 19 | 25 | 142 | 705 | 1042 | 1043 => text(b)?,
        20 => Value::from(i64::from_be_bytes(fixed(b)?)),
        21 => Value::from(i16::from_be_bytes(fixed(b)?)),
        23 => Value::from(i32::from_be_bytes(fixed(b)?)),
        26 => Value::from(u32::from_be_bytes(fixed(b)?)),
        700 => f32_json(f32::from_be_bytes(fixed(b)?)),
        701 => float_json(f64::from_be_bytes(fixed(b)?)),
        1700 => Value::String(numeric(b)?),
        114 => json(b)?,
        3802 => match b.split_first() {
            Some((1, rest)) => json(rest)?,
            _ => return Err("unknown jsonb version".into()),
        },
        4072 => match b.split_first() {
            Some((1, rest)) => text(rest)?,
            _ => return Err("unknown jsonpath version".into()),
        },
        1082 => Value::String(date(i32::from_be_bytes(fixed(b)?))),
        1083 => Value::String(time_of_day(i64::from_be_bytes(fixed(b)?))),
        1266 => {
            let [t @ .., z0, z1, z2, z3] = fixed::<12>(b)?;
            let west = i32::from_be_bytes([z0, z1, z2, z3]);
            Value::String(format!("{}{}", time_of_day(i64::from_be_bytes(t)), offset(-west)))
        }
        1114 => Value::String(timestamp(i64::from_be_bytes(fixed(b)?), "")),
        1184 => Value::String(timestamp(i64::from_be_bytes(fixed(b)?), "Z")),
        1186 => {
            let [m @ .., d0, d1, d2, d3, mo0, mo1, mo2, mo3] = fixed::<16>(b)?;
            Value::String(interval(
                i64::from_be_bytes(m),
                i32::from_be_bytes([d0, d1, d2, d3]),
                i32::from_be_bytes([mo0, mo1, mo2, mo3]),
            ))
        }
        2950 => Value::String(uuid(&fixed::<16>(b)?)),
        650 | 869 => Value::String(inet(b)?),
        829 | 774 => Value::String(b.iter().map(|x| format!("{x:02x}")).collect::<Vec<_>>().join(":")),
        _ if ty.name().eq_ignore_ascii_case("citext") => text(b)?,
        _ => bytes_json(b),
    })
}

/// A value in text format (what a simple-protocol query returns).
fn decode_text(oid: u32, b: &[u8]) -> Result<Value, String> {
    let s = std::str::from_utf8(b).map_err(|e| e.to_string())?;
    Ok(match oid {
        16 => Value::Bool(s == "t"),
        20 | 21 | 23 | 26 => s.parse::<i64>().map(Value::from).map_err(|e| e.to_string())?,
        700 | 701 => s.parse::<f64>().map(float_json).map_err(|e| e.to_string())?,
        114 | 3802 => json(b)?,
        17 => match s.strip_prefix("\\x") {
            Some(hex) => Value::Array(
                (0..hex.len() / 2)
                    .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).map(Value::from))
                    .collect::<Result<_, _>>()
                    .map_err(|e| e.to_string())?,
            ),
            None => bytes_json(b),
        },
        _ => Value::String(s.to_owned()),
    })
}

fn fixed<const N: usize>(b: &[u8]) -> Result<[u8; N], String> {
    b.try_into().map_err(|_| format!("expected {N} bytes, got {}", b.len()))
}

fn text(b: &[u8]) -> Result<Value, String> {
    std::str::from_utf8(b).map(|s| Value::String(s.to_owned())).map_err(|e| e.to_string())
}

fn json(b: &[u8]) -> Result<Value, String> {
    serde_json::from_slice(b).map_err(|e| format!("invalid JSON from the server: {e}"))
}

/// A binary array: dimensions, then each element (length, bytes; -1 for NULL).
fn array(elem: &PgTypeInfo, b: &[u8]) -> Result<Value, String> {
    let mut r = Reader(b);
    let ndim = r.i32()?;
    let _has_nulls = r.i32()?;
    let _elem_oid = r.i32()?;
    if ndim <= 0 {
        return Ok(Value::Array(Vec::new()));
    }
    let mut dims = Vec::with_capacity(ndim as usize);
    for _ in 0..ndim {
        dims.push(usize::try_from(r.i32()?).map_err(|_| "negative array dimension")?);
        let _lower_bound = r.i32()?;
    }
    let total: usize = dims.iter().product();
    let mut items = Vec::with_capacity(total.min(b.len()));
    for _ in 0..total {
        let len = r.i32()?;
        items.push(if len < 0 { Value::Null } else { decode(elem, PgValueFormat::Binary, r.take(len as usize)?)? });
    }
    Ok(nest(&dims, items))
}

fn nest(dims: &[usize], items: Vec<Value>) -> Value {
    if dims.len() <= 1 {
        return Value::Array(items);
    }
    let inner: usize = dims[1..].iter().product();
    let mut items = items.into_iter();
    Value::Array((0..dims[0]).map(|_| nest(&dims[1..], items.by_ref().take(inner).collect())).collect())
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if self.0.len() < n {
            return Err("value shorter than its header says".into());
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }
    fn i32(&mut self) -> Result<i32, String> {
        Ok(i32::from_be_bytes(fixed(self.take(4)?)?))
    }
    fn i16(&mut self) -> Result<i16, String> {
        Ok(i16::from_be_bytes(fixed(self.take(2)?)?))
    }
}

/// `numeric`: digit count, weight (of the first base-10000 digit), sign, display scale, digits.
fn numeric(b: &[u8]) -> Result<String, String> {
    let mut r = Reader(b);
    let ndigits = r.i16()?.max(0) as usize;
    let weight = r.i16()? as i64;
    let sign = r.i16()? as u16;
    let dscale = r.i16()?.max(0) as usize;
    let digits = (0..ndigits).map(|_| r.i16()).collect::<Result<Vec<_>, _>>()?;
    match sign {
        0xC000 => return Ok("NaN".into()),
        0xD000 => return Ok("Infinity".into()),
        0xF000 => return Ok("-Infinity".into()),
        _ => {}
    }
    let digit = |g: i64| if g < 0 { 0 } else { digits.get(g as usize).copied().unwrap_or(0) };
    let mut s = String::new();
    if sign == 0x4000 {
        s.push('-');
    }
    if weight < 0 {
        s.push('0');
    } else {
        for g in 0..=weight {
            let _ = if g == 0 { write!(s, "{}", digit(g)) } else { write!(s, "{:04}", digit(g)) };
        }
    }
    if dscale > 0 {
        let mut frac = String::with_capacity(dscale + 4);
        let mut g = weight + 1;
        while frac.len() < dscale {
            let _ = write!(frac, "{:04}", digit(g));
            g += 1;
        }
        frac.truncate(dscale);
        s.push('.');
        s.push_str(&frac);
    }
    Ok(s)
}

const MICROS_PER_DAY: i64 = 86_400_000_000;
/// Days from 1970-01-01 to 2000-01-01, PostgreSQL's epoch.
const PG_EPOCH_DAYS: i64 = 10_957;

/// Year, month, day of a count of days since 1970-01-01 (proleptic Gregorian).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

fn ymd(days_since_2000: i64) -> String {
    let (y, m, d) = civil_from_days(days_since_2000 + PG_EPOCH_DAYS);
    if y < 0 {
        format!("-{:04}-{m:02}-{d:02}", -y)
    } else {
        format!("{y:04}-{m:02}-{d:02}")
    }
}

fn date(days: i32) -> String {
    match days {
        i32::MAX => "infinity".into(),
        i32::MIN => "-infinity".into(),
        d => ymd(d.into()),
    }
}

/// `HH:MM:SS` with the fraction of a second when there is one, trailing zeros dropped.
fn time_of_day(micros: i64) -> String {
    let secs = micros / 1_000_000;
    let mut s = format!("{:02}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60);
    push_fraction(&mut s, micros % 1_000_000);
    s
}

fn push_fraction(s: &mut String, micros: i64) {
    if micros != 0 {
        let _ = write!(s, ".{:06}", micros.abs());
        while s.ends_with('0') {
            s.pop();
        }
    }
}

fn offset(east_secs: i32) -> String {
    let sign = if east_secs < 0 { '-' } else { '+' };
    let a = east_secs.unsigned_abs();
    let mut s = format!("{sign}{:02}:{:02}", a / 3600, a / 60 % 60);
    if !a.is_multiple_of(60) {
        let _ = write!(s, ":{:02}", a % 60);
    }
    s
}

fn timestamp(micros: i64, zone: &str) -> String {
    match micros {
        i64::MAX => "infinity".into(),
        i64::MIN => "-infinity".into(),
        m => {
            let (days, in_day) = (m.div_euclid(MICROS_PER_DAY), m.rem_euclid(MICROS_PER_DAY));
            format!("{}T{}{zone}", ymd(days), time_of_day(in_day))
        }
    }
}

/// ISO 8601, as PostgreSQL's `intervalstyle = iso_8601` writes it (each part keeps its sign).
fn interval(micros: i64, days: i32, months: i32) -> String {
    let mut s = String::from("P");
    let (years, months) = (months / 12, months % 12);
    for (n, unit) in [(years as i64, 'Y'), (months as i64, 'M'), (days as i64, 'D')] {
        if n != 0 {
            let _ = write!(s, "{n}{unit}");
        }
    }
    if micros != 0 {
        s.push('T');
        let sign = if micros < 0 { "-" } else { "" };
        let a = micros.unsigned_abs();
        let (h, m, sec, frac) = (a / 3_600_000_000, a / 60_000_000 % 60, a / 1_000_000 % 60, a % 1_000_000);
        if h != 0 {
            let _ = write!(s, "{sign}{h}H");
        }
        if m != 0 {
            let _ = write!(s, "{sign}{m}M");
        }
        if sec != 0 || frac != 0 {
            let _ = write!(s, "{sign}{sec}");
            push_fraction(&mut s, frac as i64);
            s.push('S');
        }
    }
    if s == "P" {
        s.push_str("T0S");
    }
    s
}

fn uuid(b: &[u8; 16]) -> String {
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!("{}-{}-{}-{}-{}", &hex[..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..])
}

/// `inet`/`cidr`: family, bits, is-cidr flag, address length, address.
fn inet(b: &[u8]) -> Result<String, String> {
    let [family, bits, is_cidr, len, addr @ ..] = b else { return Err("short inet value".into()) };
    let (text, max) = match (family, *len as usize, addr.len()) {
        (2, 4, 4) => (Ipv4Addr::from(fixed::<4>(addr)?).to_string(), 32),
        (3, 16, 16) => (Ipv6Addr::from(fixed::<16>(addr)?).to_string(), 128),
        _ => return Err("unknown inet family".into()),
    };
    Ok(if *is_cidr != 0 || *bits != max { format!("{text}/{bits}") } else { text })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn num(ndigits: i16, weight: i16, sign: u16, dscale: i16, digits: &[i16]) -> String {
        let mut b = Vec::new();
        for v in [ndigits, weight, sign as i16, dscale] {
            b.extend(v.to_be_bytes());
        }
        for d in digits {
            b.extend(d.to_be_bytes());
        }
        numeric(&b).unwrap()
    }

    #[test]
    fn numerics_keep_every_digit() {
        assert_eq!(num(0, 0, 0, 0, &[]), "0");
        assert_eq!(num(2, 0, 0, 2, &[12, 3400]), "12.34");
        assert_eq!(num(3, 1, 0x4000, 3, &[1, 2345, 6780]), "-12345.678");
        assert_eq!(num(1, -2, 0, 6, &[1200]), "0.000012");
        assert_eq!(num(1, 2, 0, 0, &[5]), "500000000");
        assert_eq!(num(0, 0, 0xC000, 0, &[]), "NaN");
        assert_eq!(num(1, 0, 0, 2, &[7]), "7.00");
    }

    #[test]
    fn dates_and_times_are_rfc_3339() {
        assert_eq!(date(0), "2000-01-01");
        assert_eq!(date(-1), "1999-12-31");
        assert_eq!(date(8825), "2024-02-29");
        assert_eq!(timestamp(0, "Z"), "2000-01-01T00:00:00Z");
        assert_eq!(timestamp(-1, ""), "1999-12-31T23:59:59.999999");
        assert_eq!(timestamp(762_567_845_500_000, "Z"), "2024-03-01T00:24:05.5Z");
        assert_eq!(time_of_day(45_296_120_000), "12:34:56.12");
        assert_eq!(offset(-19_800), "-05:30");
        assert_eq!(interval(14_706_500_000, 3, 14), "P1Y2M3DT4H5M6.5S");
        assert_eq!(interval(-60_000_000, 0, 0), "PT-1M");
        assert_eq!(interval(0, 0, 0), "PT0S");
    }

    #[test]
    fn network_and_uuid_values_read_as_text() {
        assert_eq!(inet(&[2, 32, 0, 4, 10, 0, 0, 1]).unwrap(), "10.0.0.1");
        assert_eq!(inet(&[2, 24, 1, 4, 10, 0, 0, 0]).unwrap(), "10.0.0.0/24");
        let mut v6 = vec![3, 128, 0, 16];
        v6.extend(Ipv6Addr::LOCALHOST.octets());
        assert_eq!(inet(&v6).unwrap(), "::1");
        let u: [u8; 16] = std::array::from_fn(|i| i as u8);
        assert_eq!(uuid(&u), "00010203-0405-0607-0809-0a0b0c0d0e0f");
    }
}
