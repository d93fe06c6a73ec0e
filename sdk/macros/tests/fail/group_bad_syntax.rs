mod handlers {
    #[berth::http(GET, "/a")]
    pub async fn a() {}
}

berth::group!(a b);

berth::group!("a");

berth::group!(handlers::a);

berth::group! { functions: a }

berth::group! { name: my_group, functions: [a] }

berth::group! { functions: [a] name: "x" }

berth::group! { functions = [a] }

fn main() {}
