//! The `unzip` example group: a `.zip` uploaded to the `uploads` bucket is extracted into the
//! `extracted` bucket under the archive's name (Midway's upload-then-decompress case).
//!
//! The archive is checked completely before anything is written: entry count, declared and
//! actual uncompressed sizes (a zip bomb lies about neither for long: every entry is read
//! through a hard byte limit), and entry names that would escape the target (`../`, absolute
//! paths, backslashes). A refused archive answers 422, which the blob trigger treats as
//! permanent: the event is dead-lettered with the reason instead of being retried.
//!
//! Limits come from `[groups.config]`: `max_entries` (default 1000), `max_total_bytes`
//! (100 MiB), `max_entry_bytes` (25 MiB).

use std::io::{Cursor, Read};

use berth::{Context, Error, Event, Json, Path, Result, StatusCode};
use serde::{Deserialize, Serialize};

/// What extraction may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_entries: usize,
    pub max_total_bytes: u64,
    pub max_entry_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max_entries: 1000, max_total_bytes: 100 << 20, max_entry_bytes: 25 << 20 }
    }
}

impl Limits {
    fn from_config(config: &serde_json::Value) -> Limits {
        let d = Limits::default();
        let get = |k: &str, v: u64| config.get(k).and_then(serde_json::Value::as_u64).unwrap_or(v);
        Limits {
            max_entries: get("max_entries", d.max_entries as u64) as usize,
            max_total_bytes: get("max_total_bytes", d.max_total_bytes),
            max_entry_bytes: get("max_entry_bytes", d.max_entry_bytes),
        }
    }
}

/// Why an archive was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    NotAZip(String),
    TooManyEntries { count: usize, max: usize },
    EntryTooLarge { name: String, max: u64 },
    TotalTooLarge { max: u64 },
    UnsafeName(String),
    Corrupt { name: String, message: String },
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::NotAZip(e) => write!(f, "not a readable zip archive: {e}"),
            Refusal::TooManyEntries { count, max } => write!(f, "{count} entries; at most {max} are extracted"),
            Refusal::EntryTooLarge { name, max } => {
                write!(f, "entry `{name}` expands past {max} bytes (zip bomb?)")
            }
            Refusal::TotalTooLarge { max } => write!(f, "the archive expands past {max} bytes in total (zip bomb?)"),
            Refusal::UnsafeName(n) => write!(f, "entry name `{n}` would escape the target directory"),
            Refusal::Corrupt { name, message } => write!(f, "entry `{name}` is corrupt: {message}"),
        }
    }
}

/// Checks and decompresses a whole archive in memory: either every file, or a refusal.
pub fn extract(data: &[u8], limits: &Limits) -> std::result::Result<Vec<(String, Vec<u8>)>, Refusal> {
    let mut archive = zip::ZipArchive::new(Cursor::new(data)).map_err(|e| Refusal::NotAZip(e.to_string()))?;
    if archive.len() > limits.max_entries {
        return Err(Refusal::TooManyEntries { count: archive.len(), max: limits.max_entries });
    }
    let mut files = Vec::new();
    let mut total: u64 = 0;
    for i in 0..archive.len() {
        let entry = archive.by_index(i).map_err(|e| Refusal::NotAZip(e.to_string()))?;
        let raw_name =
            entry.name().map_err(|e| Refusal::Corrupt { name: format!("#{i}"), message: e.to_string() })?.into_owned();
        if raw_name.contains('\\') || raw_name.starts_with('/') || entry.enclosed_name().is_none() {
            return Err(Refusal::UnsafeName(raw_name));
        }
        if raw_name.split('/').any(|seg| seg == "..") {
            return Err(Refusal::UnsafeName(raw_name));
        }
        if entry.is_dir() {
            continue;
        }
        if entry.size() > limits.max_entry_bytes {
            return Err(Refusal::EntryTooLarge { name: raw_name, max: limits.max_entry_bytes });
        }
        // Never trust the declared size: read through a hard limit, one byte past it to detect a lie.
        let budget = limits.max_entry_bytes.min(limits.max_total_bytes - total);
        let mut out = Vec::new();
        entry
            .take(budget + 1)
            .read_to_end(&mut out)
            .map_err(|e| Refusal::Corrupt { name: raw_name.clone(), message: e.to_string() })?;
        if out.len() as u64 > budget {
            return Err(if out.len() as u64 > limits.max_entry_bytes {
                Refusal::EntryTooLarge { name: raw_name, max: limits.max_entry_bytes }
            } else {
                Refusal::TotalTooLarge { max: limits.max_total_bytes }
            });
        }
        total += out.len() as u64;
        files.push((raw_name, out));
    }
    Ok(files)
}

#[derive(Debug, Deserialize)]
struct Notification {
    #[serde(rename = "Records")]
    records: Vec<Record>,
}

#[derive(Debug, Deserialize)]
struct Record {
    s3: S3,
}

#[derive(Debug, Deserialize)]
struct S3 {
    object: Object,
}

#[derive(Debug, Deserialize)]
struct Object {
    key: String,
}

#[derive(Debug, Serialize)]
pub struct Extracted {
    pub archive: String,
    pub files: Vec<String>,
}

/// Extracts every `.zip` created in `uploads` into `extracted/<archive name>/`.
#[berth::blob(bucket = "uploads", events = ["created"], timeout = "2m")]
async fn unzip(ctx: Context, event: Event) -> Result<Json<Extracted>> {
    let note: Notification = event.json()?;
    let key =
        note.records.into_iter().next().map(|r| r.s3.object.key).ok_or_else(|| Error::bad_request("no record"))?;
    let Some(stem) = key.strip_suffix(".zip") else {
        return Ok(Json(Extracted { archive: key, files: Vec::new() }));
    };
    let data = ctx.blob("uploads")?.get(&key).await?.ok_or_else(|| Error::not_found(format!("`{key}` is gone")))?;
    let limits = Limits::from_config(&ctx.config());
    let files = extract(&data, &limits).map_err(|r| Error::unprocessable(format!("archive `{key}` refused: {r}")))?;
    let out = ctx.blob("extracted")?;
    let mut names = Vec::with_capacity(files.len());
    for (name, bytes) in files {
        let target = format!("{stem}/{name}");
        out.put(&target, bytes).await?;
        names.push(target);
    }
    tracing::info!(archive = %key, files = names.len(), "archive extracted");
    Ok(Json(Extracted { archive: key, files: names }))
}

/// `PUT /uploads/{*name}`: stores the body in `uploads` (which triggers `unzip`).
#[berth::http(PUT, "/uploads/{*name}", body_limit = "64MiB")]
async fn upload(
    ctx: Context,
    Path(name): Path<String>,
    body: berth::Bytes,
) -> Result<(StatusCode, Json<serde_json::Value>)> {
    let info = ctx.blob("uploads")?.put(&name, body.0).await?;
    Ok((StatusCode::CREATED, Json(serde_json::json!({ "name": info.name, "size": info.size }))))
}

/// `GET /extracted/{*name}`: one extracted file.
#[berth::http(GET, "/extracted/{*name}")]
async fn download(ctx: Context, Path(name): Path<String>) -> Result<Vec<u8>> {
    ctx.blob("extracted")?.get(&name).await?.ok_or_else(|| Error::not_found(format!("no extracted file `{name}`")))
}

berth::group! {
    functions: [unzip, upload, download],
    services: [blob("uploads"), blob("extracted")],
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;
    use zip::write::SimpleFileOptions;

    fn zip_of(entries: &[(&str, &[u8])]) -> Vec<u8> {
        let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
        let opts = SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
        for (name, data) in entries {
            w.start_file(*name, opts).unwrap();
            w.write_all(data).unwrap();
        }
        w.finish().unwrap().into_inner()
    }

    #[test]
    fn extracts_a_normal_archive() {
        let data = zip_of(&[("a.txt", b"alpha"), ("dir/b.txt", b"beta")]);
        let files = extract(&data, &Limits::default()).unwrap();
        assert_eq!(files, vec![("a.txt".to_owned(), b"alpha".to_vec()), ("dir/b.txt".to_owned(), b"beta".to_vec())]);
    }

    #[test]
    fn a_zip_bomb_is_refused() {
        // 64 MiB of zeros compresses to well under 100 KiB.
        let zeros = vec![0u8; 64 << 20];
        let data = zip_of(&[("bomb.bin", &zeros)]);
        assert!(data.len() < 200_000, "the bomb should be small: {} bytes", data.len());
        let limits = Limits { max_entries: 10, max_total_bytes: 8 << 20, max_entry_bytes: 8 << 20 };
        assert_eq!(extract(&data, &limits), Err(Refusal::EntryTooLarge { name: "bomb.bin".into(), max: 8 << 20 }));
        // Many small entries that add up past the total are refused too.
        let chunk = vec![0u8; 3 << 20];
        let data = zip_of(&[("1", &chunk), ("2", &chunk), ("3", &chunk)]);
        assert_eq!(extract(&data, &limits), Err(Refusal::TotalTooLarge { max: 8 << 20 }));
    }

    #[test]
    fn path_escapes_are_refused() {
        for evil in ["../evil.txt", "a/../../evil.txt", "/etc/passwd"] {
            let data = zip_of(&[("fine.txt", b"ok"), (evil, b"pwned")]);
            assert_eq!(extract(&data, &Limits::default()), Err(Refusal::UnsafeName(evil.into())), "{evil}");
        }
    }

    #[test]
    fn too_many_entries_and_garbage_are_refused() {
        let data = zip_of(&[("1", b"1"), ("2", b"2"), ("3", b"3")]);
        let limits = Limits { max_entries: 2, ..Limits::default() };
        assert_eq!(extract(&data, &limits), Err(Refusal::TooManyEntries { count: 3, max: 2 }));
        assert!(matches!(extract(b"not a zip", &Limits::default()), Err(Refusal::NotAZip(_))));
    }
}
