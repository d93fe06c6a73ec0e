#[berth::http]
async fn a() {}

#[berth::http(GET)]
async fn b() {}

#[berth::http(GET "/c")]
async fn c() {}

#[berth::http(GET, /d)]
async fn d() {}

fn main() {}
