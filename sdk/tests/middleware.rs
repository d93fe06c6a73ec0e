//! Author middleware (`berth::group! { middleware: [...] }`): order before and after the
//! function, short-circuit, and the same chain in-process and over HTTP.

use std::sync::Mutex;

use berth::testing::TestGroup;
use berth::{Context, Error, Next, Request, Response, Result, StatusCode};
use serde_json::{json, Value};

/// The `x-tag` of every request the function handled.
static HANDLED: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Outermost: marks the request, and on the way out answers `x-chain`: what `gate` answered, then
/// itself.
async fn outer(ctx: Context, req: Request, next: Next) -> Result<Response> {
    let res = next.run(ctx, req.with_header("x-outer", "1")).await?;
    let order = format!("{}>outer", res.header("x-order").unwrap_or(""));
    Ok(res.with_header("x-chain", &order))
}

/// Inner: refuses `x-block` before the function runs; says whether `outer` ran first.
async fn gate(ctx: Context, req: Request, next: Next) -> Result<Response> {
    if req.header("x-block").is_some() {
        return Err(Error::new(StatusCode::FORBIDDEN, "blocked", format!("`{}` blocked by the gate", next.function())));
    }
    let saw_outer = if req.header("x-outer").is_some() { "after-outer" } else { "first" };
    let trigger = ctx.trigger().to_owned();
    let res = next.run(ctx, req.with_header("x-gate", saw_outer).with_header("x-trigger", &trigger)).await?;
    Ok(res.with_header("x-order", "gate"))
}

#[berth::http(GET, "/seen")]
async fn seen(req: Request) -> berth::Json<Value> {
    HANDLED.lock().unwrap().extend(req.header("x-tag").map(str::to_owned));
    berth::Json(
        json!({ "outer": req.header("x-outer"), "gate": req.header("x-gate"), "trigger": req.header("x-trigger") }),
    )
}

berth::group! {
    name: "mw",
    functions: [seen],
    middleware: [outer, gate],
}

#[test]
fn middleware_runs_in_order_around_the_function() {
    let g = TestGroup::start(berth_group()).unwrap();
    let res = g.request(Request::new("GET", "/seen")).unwrap();
    assert_eq!(res.header("x-chain"), Some("gate>outer"), "inner after-phase first, then outer");
    let body: Value = res.json_body().unwrap();
    assert_eq!(body, json!({ "outer": "1", "gate": "after-outer", "trigger": "test" }));
}

#[test]
fn a_middleware_that_answers_stops_the_chain() {
    let g = TestGroup::start(berth_group()).unwrap();
    let err = g
        .request(Request::new("GET", "/seen").with_header("x-block", "1").with_header("x-tag", "blocked-1"))
        .unwrap_err();
    assert_eq!((err.status(), err.code()), (StatusCode::FORBIDDEN, "blocked"));
    assert_eq!(err.message(), "`seen` blocked by the gate");
    assert!(!HANDLED.lock().unwrap().iter().any(|t| t == "blocked-1"), "the function did not run");
    g.request(Request::new("GET", "/seen").with_header("x-tag", "passed-1")).unwrap();
    assert!(HANDLED.lock().unwrap().iter().any(|t| t == "passed-1"), "it runs when the gate lets it");
}

#[test]
fn over_http_the_chain_is_the_same() {
    let server = TestGroup::start(berth_group()).unwrap().serve().unwrap();
    let res = server.get("/seen").send();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.header("x-chain"), Some("gate>outer"));
    assert_eq!(res.json::<Value>()["trigger"], "http");
    let blocked = server.get("/seen").header("x-block", "yes").send();
    assert_eq!(blocked.status(), StatusCode::FORBIDDEN);
    assert_eq!(blocked.json::<Value>()["error"], "blocked");
    assert!(blocked.header("x-request-id").is_some());
}
