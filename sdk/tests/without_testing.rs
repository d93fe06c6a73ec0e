//! Without the `testing` feature the harness has no backends: a declared service answers an
//! error that names the feature to enable.
#![cfg(not(feature = "testing"))]

use berth::testing::TestGroup;
use berth::{Context, Request, Result};

#[berth::http(GET, "/kv")]
async fn kv(ctx: Context) -> Result<String> {
    ctx.kv("cache")?;
    Ok("unreachable".into())
}

berth::group! {
    name: "plain",
    functions: [kv],
    services: [kv("cache")],
}

#[test]
fn services_answer_an_error_naming_the_feature() {
    let g = TestGroup::start(berth_group()).unwrap();
    let e = g.request(Request::new("GET", "/kv")).unwrap_err();
    assert!(e.message().contains("`testing` feature") && e.message().contains("dev-dependencies"), "{e}");
}
