//! Berth example group: the bookmarks API of [`app`], an existing axum app, served under
//! `/axum-app` by wrapping its router. `app.rs` is unchanged by the migration; these lines are
//! all of it (see README.md).

pub mod app;

use std::time::Duration;

use axum::extract::Query;
use axum::routing::get;
use axum::{Extension, Json, Router};
use serde::{Deserialize, Serialize};

berth::axum::group! {
    prefix: "/axum-app",
    router: router(),
}

/// The app's router, plus a route that uses what the app gains in Berth: the call's
/// `berth::Context` (request id, host timers, services).
pub fn router() -> Router {
    app::router().route("/berth/ping", get(ping))
}

#[derive(Deserialize)]
struct PingQuery {
    /// Waits this long on a host timer first (at most one second).
    wait_ms: Option<u64>,
}

#[derive(Serialize)]
struct Pong {
    request_id: String,
    trigger: String,
    waited_ms: u64,
}

/// `GET /axum-app/berth/ping?wait_ms=20`: the request id and trigger of this call, after a wait
/// on the host's timer (`ctx.sleep`, not `tokio::time::sleep`, which a plugin cannot run).
async fn ping(Extension(ctx): Extension<berth::Context>, Query(query): Query<PingQuery>) -> Json<Pong> {
    let waited_ms = query.wait_ms.unwrap_or(0).min(1000);
    if waited_ms > 0 {
        ctx.sleep(Duration::from_millis(waited_ms)).await;
    }
    tracing::info!(waited_ms, "ping");
    Json(Pong { request_id: ctx.request_id().to_owned(), trigger: ctx.trigger().to_owned(), waited_ms })
}
