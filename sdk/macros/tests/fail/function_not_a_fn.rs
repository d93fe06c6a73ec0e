#[berth::http(GET, "/a")]
struct NotAFunction;

#[berth::queue(stream = "jobs")]
const NOT_EITHER: u32 = 1;

fn main() {}
