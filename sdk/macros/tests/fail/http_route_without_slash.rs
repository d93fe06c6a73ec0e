#[berth::http(GET, "hello/{name}")]
async fn hello() {}

fn main() {}
