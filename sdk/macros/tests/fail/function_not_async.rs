#[berth::http(GET, "/a")]
fn a() {}

fn main() {}
