#[berth::timer(every = "1m", overlap = "yes")]
async fn a() {}

#[berth::timer(every = "1m", timezone = Europe::Paris)]
async fn b() {}

#[berth::timer("0 * * * * *" timezone = "UTC")]
async fn c() {}

fn main() {}
