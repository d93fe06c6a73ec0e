#[berth::http("/a")]
async fn a() {}

#[berth::http(123, "/b")]
async fn b() {}

fn main() {}
