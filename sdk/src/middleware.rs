//! Author middleware: code that runs around every call of a group's functions, declared in
//! `berth::group! { functions: [...], middleware: [timing, tenant] }` (outermost first).
//!
//! ```ignore
//! use berth::{Context, Next, Request, Response, Result};
//!
//! /// Refuses calls without a tenant, and tells the function which one it is.
//! async fn tenant(ctx: Context, req: Request, next: Next) -> Result<Response> {
//!     let Some(tenant) = req.header("x-tenant").map(str::to_owned) else {
//!         return Err(berth::Error::bad_request("`x-tenant` is required"));   // short-circuit
//!     };
//!     let res = next.run(ctx, req.with_header("x-tenant-checked", &tenant)).await?;
//!     Ok(res.with_header("x-tenant", &tenant))                               // after the handler
//! }
//! ```
//!
//! A middleware sees the request before the function (and may change it or answer instead, by
//! returning without calling [`Next::run`]) and the answer after it. It runs for every trigger;
//! [`Context::trigger`] says which (`http`, `timer`, `queue`, ...), [`Next::function`] which
//! function the call is for. Host layers (CORS, auth, access log in `berth.toml`) run before it.

use std::future::Future;
use std::sync::Arc;

use crate::__private::{FunctionDef, Handler, HandlerFuture};
use crate::{Context, Request, Response, Result};

/// One middleware, as `berth::group!` stores it.
#[derive(Clone)]
pub struct Middleware(Arc<dyn Fn(Context, Request, Next) -> HandlerFuture + Send + Sync>);

impl std::fmt::Debug for Middleware {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Middleware")
    }
}

impl Middleware {
    /// Wraps `f`, an `async fn(Context, Request, Next) -> Result<Response>`.
    pub fn new<F, Fut>(f: F) -> Self
    where
        F: Fn(Context, Request, Next) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Response>> + Send + 'static,
    {
        Middleware(Arc::new(move |ctx, req, next| Box::pin(f(ctx, req, next))))
    }
}

/// The rest of the chain: the middleware after this one, then the function.
pub struct Next {
    chain: Arc<[Middleware]>,
    at: usize,
    handler: Handler,
    function: &'static str,
}

impl Next {
    /// Runs the rest of the chain with `ctx` and `req` (changed or not) and returns its answer.
    pub async fn run(self, ctx: Context, req: Request) -> Result<Response> {
        match self.chain.get(self.at) {
            Some(m) => {
                let m = m.clone();
                let next = Next { at: self.at + 1, ..self };
                (m.0)(ctx, req, next).await
            }
            None => (self.handler)(ctx, req).await,
        }
    }

    /// The name of the function the call is for.
    pub fn function(&self) -> &'static str {
        self.function
    }
}

/// The call of `f` through `chain`.
pub(crate) fn run(chain: &Arc<[Middleware]>, f: &FunctionDef, ctx: Context, req: Request) -> HandlerFuture {
    let next = Next { chain: chain.clone(), at: 0, handler: f.handler, function: f.name };
    Box::pin(next.run(ctx, req))
}
