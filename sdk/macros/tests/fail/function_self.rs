struct Handlers;

impl Handlers {
    #[berth::http(GET, "/a")]
    async fn a(&self) {}
}

fn main() {}
