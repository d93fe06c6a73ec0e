#[berth::http(GET, "/a", timout = "1s")]
async fn a() {}

#[berth::http(GET, "/b", retries = 3)]
async fn b() {}

fn main() {}
