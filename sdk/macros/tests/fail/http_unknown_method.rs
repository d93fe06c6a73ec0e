#[berth::http(FETCH, "/a")]
async fn a() {}

#[berth::http(get, "/b")]
async fn b() {}

fn main() {}
