#[berth::http(GET, "/a", timeout = "5 parsecs")]
async fn a() {}

#[berth::http(GET, "/b", timeout = "30")]
async fn b() {}

#[berth::http(GET, "/c", timeout = 30)]
async fn c() {}

fn main() {}
