#[berth::http(POST, "/a", body_limit = "lots")]
async fn a() {}

#[berth::http(POST, "/b", body_limit = "10 XB")]
async fn b() {}

fn main() {}
