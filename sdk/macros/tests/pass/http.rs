//! HTTP functions with every option, the plain `group!(...)` form, and calls through the harness.

use berth::testing::TestGroup;
use berth::{Context, Path, Request, Result, StatusCode};

#[berth::http(GET, "/hello/{name}")]
pub async fn hello(Path(name): Path<String>) -> Result<String> {
    Ok(format!("Hello, {name}!"))
}

#[berth::http(POST, "/upload", timeout = "5s", body_limit = "1KiB")]
async fn upload(ctx: Context, body: berth::Bytes) -> (StatusCode, String) {
    (StatusCode::CREATED, format!("{} {}", ctx.request_id(), body.0.len()))
}

/// Options in any order.
#[berth::http(DELETE, "/items/{id}", body_limit = "64 KiB", timeout = "500ms")]
async fn delete(Path(_id): Path<u32>) -> StatusCode {
    StatusCode::NO_CONTENT
}

berth::group!(hello, upload, delete,);

fn main() {
    let def = berth_group();
    let limits: Vec<_> = def.functions.iter().map(|f| (f.name, f.timeout_ms, f.body_limit)).collect();
    assert_eq!(limits, [("hello", 0, 0), ("upload", 5_000, 1024), ("delete", 500, 64 * 1024)]);

    let g = TestGroup::start(def).unwrap();
    let res = g.request(Request::new("GET", "/hello/world")).unwrap();
    assert_eq!(res.body, b"Hello, world!");
    let res = g.request(Request::new("DELETE", "/items/7")).unwrap();
    assert_eq!(res.status, StatusCode::NO_CONTENT);
    // The function stays callable as written.
    assert_eq!(berth::testing::block_on(delete(Path(7))), StatusCode::NO_CONTENT);
}
