// Five fields: the seconds are missing.
#[berth::timer("*/5 * * * *")]
async fn a() {}

fn main() {}
