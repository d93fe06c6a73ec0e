#[berth::http(GET, "/a")]
async fn a() {}

berth::group! { nmae: "x", functions: [a] }

berth::group! { functions: [a], routes: ["/a"] }

fn main() {}
