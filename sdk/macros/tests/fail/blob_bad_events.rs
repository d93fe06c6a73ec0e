#[berth::blob(bucket = "a", events = ["created", "modified"])]
async fn a() {}

#[berth::blob(bucket = "b", events = [created])]
async fn b() {}

#[berth::blob(bucket = "c", events = true)]
async fn c() {}

fn main() {}
