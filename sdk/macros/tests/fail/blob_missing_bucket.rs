#[berth::blob(events = ["created"])]
async fn a() {}

#[berth::blob("uploads")]
async fn b() {}

fn main() {}
