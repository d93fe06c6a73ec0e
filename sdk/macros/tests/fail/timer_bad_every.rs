#[berth::timer(every = "soon")]
async fn a() {}

#[berth::timer(every = 30)]
async fn b() {}

fn main() {}
