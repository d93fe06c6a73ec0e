#[berth::queue(stream = "a", concurrency = "4")]
async fn a() {}

#[berth::queue(stream = "b", concurrency = -1)]
async fn b() {}

#[berth::queue(stream = "c", max_attempts = 99999999999)]
async fn c() {}

fn main() {}
