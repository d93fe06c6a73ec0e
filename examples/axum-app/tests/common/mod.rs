//! What the app's original tests need, for either side of the migration: a [`Client`] that
//! sends a request and reads the answer, over the plain router ([`RouterClient`], as the tests
//! ran before) or over real HTTP to the Berth group ([`ServerClient`]).

#![allow(dead_code, reason = "each test crate uses its own part")]

pub mod cases;

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::body::Body;
use axum::Router;
use berth::testing::{TestGroup, TestServer};
use serde_json::Value;
use tower::ServiceExt as _;

/// A request's answer: status, headers (lower-case names), body.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("the answer ({}) is not JSON ({e}): {}", self.status, self.text()))
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Sends requests to the app, wherever it is served.
pub trait Client {
    /// The path the app is served under (`""` for the plain router).
    fn base(&self) -> &str;
    /// `method path` (a path of the app, without [`Client::base`]) with a body.
    fn send(&self, method: &str, path: &str, content_type: Option<&str>, body: Vec<u8>) -> impl Future<Output = Reply>;

    fn get(&self, path: &str) -> impl Future<Output = Reply> {
        self.send("GET", path, None, Vec::new())
    }
    fn delete(&self, path: &str) -> impl Future<Output = Reply> {
        self.send("DELETE", path, None, Vec::new())
    }
    fn json(&self, method: &str, path: &str, body: &Value) -> impl Future<Output = Reply> {
        self.send(method, path, Some("application/json"), serde_json::to_vec(body).expect("JSON"))
    }
}

/// The app's router, called in-process with `tower::ServiceExt::oneshot` (the original tests).
pub struct RouterClient(pub Router);

impl Client for RouterClient {
    fn base(&self) -> &str {
        ""
    }
    async fn send(&self, method: &str, path: &str, content_type: Option<&str>, body: Vec<u8>) -> Reply {
        let mut req = axum::http::Request::builder().method(method).uri(path);
        if let Some(ct) = content_type {
            req = req.header("content-type", ct);
        }
        let req = req.body(Body::from(body)).expect("a valid request");
        let res = self.0.clone().oneshot(req).await.expect("a router never fails");
        let (parts, body) = res.into_parts();
        let body = axum::body::to_bytes(body, usize::MAX).await.expect("the body is read");
        Reply {
            status: parts.status.as_u16(),
            headers: parts
                .headers
                .iter()
                .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or_default().to_owned()))
                .collect(),
            body: body.to_vec(),
        }
    }
}

/// The Berth group served over real HTTP by the host's listener, the app under `/axum-app`.
pub struct ServerClient(pub TestServer);

impl ServerClient {
    pub fn start() -> Self {
        ServerClient(TestGroup::start(axum_app::berth_group()).expect("the group starts").serve().expect("it serves"))
    }
}

impl Client for ServerClient {
    fn base(&self) -> &str {
        "/axum-app"
    }
    async fn send(&self, method: &str, path: &str, content_type: Option<&str>, body: Vec<u8>) -> Reply {
        let mut req = self.0.request(method, &format!("{}{path}", self.base())).body(body);
        if let Some(ct) = content_type {
            req = req.header("content-type", ct);
        }
        let res = req.send();
        Reply {
            status: res.status().as_u16(),
            headers: res
                .headers()
                .iter()
                .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or_default().to_owned()))
                .collect(),
            body: res.bytes().to_vec(),
        }
    }
}

/// A name no other test uses (the group's state is shared by every test of the binary, as by
/// every request to one plugin version).
pub fn unique(what: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!("{what}-{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed))
}
