//! The blob function end to end through `berth::testing`: a zip is put into the `uploads`
//! bucket, the blob-created event the trigger would deliver reaches `unzip`, and the files land
//! in the `extracted` bucket (both buckets are local directories of the test group).

use std::io::{Cursor, Write};

use berth::testing::{self, TestGroup};
use berth::{Request, StatusCode};
use serde_json::{json, Value};
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

fn start() -> TestGroup {
    TestGroup::start(unzip::berth_group()).unwrap_or_else(|e| panic!("the unzip group starts: {e}"))
}

/// Puts `data` into the `uploads` bucket as the uploader would, and returns the event the blob
/// trigger delivers for it.
fn upload(g: &TestGroup, name: &str, data: Vec<u8>) -> berth::Event {
    let ctx = g.group_context();
    let size = data.len() as u64;
    let info = g.block_on(async { ctx.blob("uploads")?.put(name, data).await }).expect("the bucket takes the zip");
    assert_eq!(info.size, size);
    testing::blob_created("uploads", name, size)
}

/// Every object of the `extracted` bucket with its content.
fn extracted(g: &TestGroup) -> Vec<(String, Vec<u8>)> {
    let ctx = g.group_context();
    g.block_on(async {
        let bucket = ctx.blob("extracted")?;
        let mut out = Vec::new();
        for info in bucket.list("").await? {
            let data = bucket.get(&info.name).await?.unwrap_or_default();
            out.push((info.name, data));
        }
        Ok::<_, berth::ServiceError>(out)
    })
    .expect("the bucket lists")
}

#[test]
fn a_zip_put_into_uploads_is_extracted_by_the_blob_function() {
    let g = start();
    let event = upload(&g, "photos.zip", zip_of(&[("a.txt", b"alpha"), ("dir/b.txt", b"beta")]));

    let res = g.event("unzip", event).unwrap();
    assert_eq!(res.status, StatusCode::OK);
    let answer: Value = res.json_body().unwrap();
    assert_eq!(answer, json!({ "archive": "photos.zip", "files": ["photos/a.txt", "photos/dir/b.txt"] }));

    assert_eq!(
        extracted(&g),
        vec![("photos/a.txt".to_owned(), b"alpha".to_vec()), ("photos/dir/b.txt".to_owned(), b"beta".to_vec())]
    );
    let res = g.request(Request::new("GET", "/extracted/photos/dir/b.txt")).unwrap();
    assert_eq!(res.body, b"beta");
    assert!(g.data_dir().join("blob/extracted/photos/a.txt").is_file());
}

#[test]
fn an_unsafe_archive_is_refused_and_nothing_is_written() {
    let g = start();
    let event = upload(&g, "evil.zip", zip_of(&[("fine.txt", b"ok"), ("../escape.txt", b"pwned")]));
    let e = g.event("unzip", event).unwrap_err();
    assert_eq!(e.status(), StatusCode::UNPROCESSABLE_ENTITY, "permanent: the trigger dead-letters it: {e}");
    assert!(e.message().contains("../escape.txt"), "{e}");
    assert!(extracted(&g).is_empty());
}

#[test]
fn limits_come_from_the_group_config() {
    let g = TestGroup::builder(unzip::berth_group()).config(json!({ "max_entries": 1 })).start().unwrap();
    let event = upload(&g, "two.zip", zip_of(&[("1", b"1"), ("2", b"2")]));
    let e = g.event("unzip", event).unwrap_err();
    assert_eq!(e.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(e.message().contains("2 entries; at most 1"), "{e}");
}

#[test]
fn an_event_for_an_object_that_is_gone_is_not_found() {
    let g = start();
    let e = g.event("unzip", testing::blob_created("uploads", "missing.zip", 10)).unwrap_err();
    assert_eq!(e.status(), StatusCode::NOT_FOUND, "{e}");
}
