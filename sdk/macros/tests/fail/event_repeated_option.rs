#[berth::queue(stream = "a", concurrency = 2, concurrency = 4)]
async fn a() {}

#[berth::blob(bucket = "b", events = ["created"], events = ["deleted"])]
async fn b() {}

fn main() {}
