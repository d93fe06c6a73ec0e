#[berth::queue("orders", stream = "orders")]
async fn a() {}

#[berth::queue(stream = "a", queue = "b")]
async fn b() {}

fn main() {}
