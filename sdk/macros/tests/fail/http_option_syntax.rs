#[berth::http(GET, "/a", timeout: "1s")]
async fn a() {}

#[berth::http(GET, "/b", timeout)]
async fn b() {}

#[berth::http(GET, "/c", timeout = "1s" body_limit = "1KiB")]
async fn c() {}

#[berth::http(GET, "/d", "1s")]
async fn d() {}

#[berth::http(GET, "/e" timeout = "1s")]
async fn e() {}

fn main() {}
