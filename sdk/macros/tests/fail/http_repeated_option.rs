#[berth::http(GET, "/a", timeout = "1s", body_limit = "1KiB", timeout = "2s")]
async fn a() {}

fn main() {}
