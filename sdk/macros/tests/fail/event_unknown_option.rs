#[berth::queue(steam = "a")]
async fn a() {}

#[berth::blob(bucket = "b", prefix = "in/")]
async fn b() {}

#[berth::timer(every = "1m", retries = 3)]
async fn c() {}

fn main() {}
