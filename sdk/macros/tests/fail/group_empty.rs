berth::group!();

berth::group! { name: "no-functions" }

fn main() {}
