#[berth::timer("0 * * * * *", every = "1m")]
async fn a() {}

fn main() {}
