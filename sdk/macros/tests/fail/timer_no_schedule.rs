#[berth::timer]
async fn a() {}

#[berth::timer(timezone = "Europe/Paris")]
async fn b() {}

fn main() {}
