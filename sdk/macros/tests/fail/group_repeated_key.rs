#[berth::http(GET, "/a")]
async fn a() {}

berth::group! { name: "one", functions: [a], name: "two" }

fn main() {}
