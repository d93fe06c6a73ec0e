#[berth::queue]
async fn a() {}

#[berth::queue(concurrency = 4)]
async fn b() {}

fn main() {}
