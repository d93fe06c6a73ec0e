#[berth::http(GET, "/a")]
async fn a<T: Default>() {}

fn main() {}
