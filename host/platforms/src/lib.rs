//! Per-platform entry shims. Each one translates a platform's protocol into Berth's request and
//! event model, and nothing more: routing, limits, services, metrics and logs stay the host's.
//!
//! - [`detect`]: which platform this process was started on, and why.
//! - [`config`]: the `[platform]` section of `berth.toml` (which function receives a platform's
//!   schedules, queues, buckets, CloudEvents types and everything else).
//! - [`Shim`]: what every shim works with (the HTTP router, the dispatcher, the targets).
//! - The platforms: [`lambda`] (Runtime API loop), [`fc`] (Alibaba Cloud FC custom runtime),
//!   [`scf`] (Tencent SCF: runtime API loop and web functions), [`kubeless`], [`knative`]
//!   (Serving plus CloudEvents). [`serve_http`] is the listener handler of the HTTP-shaped ones.

pub mod config;
pub mod detect;
pub mod events;
pub mod fc;
pub mod http_event;
pub mod knative;
pub mod kubeless;
pub mod lambda;
pub mod runtime_api;
pub mod scf;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use berth_core::error::Body;
use berth_core::serving::ServingGroups;
use berth_core::{Dispatcher, Metrics};
use berth_triggers::http::HttpTrigger;
use http::{Request, Response};
use hyper::body::Incoming;

pub use config::{FunctionRef, PlatformConfig};
pub use detect::{detect, Detected, Platform};

/// What a shim works with: the host's HTTP router and dispatcher, and where events go.
pub struct Shim {
    pub platform: Platform,
    pub http: Arc<HttpTrigger>,
    pub dispatcher: Arc<Dispatcher>,
    pub serving: Arc<ServingGroups>,
    pub metrics: Metrics,
    pub config: PlatformConfig,
    /// kubeless: `FUNC_HANDLER` (and `MOD_NAME`), the function non-routed calls go to.
    pub handler: Option<FunctionRef>,
    /// kubeless: `FUNC_TIMEOUT`, every call's deadline.
    pub func_timeout: Option<std::time::Duration>,
    /// kubeless's own metric names, registered next to Berth's.
    kubeless_metrics: Option<kubeless::KubelessMetrics>,
    /// Knative: CloudEvents already answered, by source and id.
    seen: knative::Seen,
}

impl Shim {
    /// The shim for `platform`; `env` reads the platform's environment variables.
    pub fn new(
        platform: Platform,
        config: PlatformConfig,
        http: Arc<HttpTrigger>,
        dispatcher: Arc<Dispatcher>,
        serving: Arc<ServingGroups>,
        metrics: Metrics,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Self {
        let handler = match platform {
            Platform::Kubeless => kubeless::handler(env).or_else(|| config.invoke.clone()),
            _ => None,
        };
        let func_timeout = match platform {
            Platform::Kubeless => kubeless::func_timeout(env),
            _ => None,
        };
        let kubeless_metrics = (platform == Platform::Kubeless).then(|| kubeless::KubelessMetrics::register(&metrics));
        if platform == Platform::Knative {
            knative::register_info(&metrics, env);
        }
        Shim {
            platform,
            http,
            dispatcher,
            serving,
            metrics,
            config,
            handler,
            func_timeout,
            kubeless_metrics,
            seen: knative::Seen::default(),
        }
    }
}

impl Shim {
    /// The platform's request id from header `name`, else a fresh one.
    pub fn request_id(&self, headers: &http::HeaderMap, name: &str) -> String {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
            .unwrap_or_else(|| self.http.request_ids.next())
    }
}

/// The listener handler of the platforms that call Berth over HTTP (FC, SCF web functions,
/// kubeless, Knative); anything else is served as standalone Berth serves it.
pub async fn serve_http(
    shim: Arc<Shim>,
    req: Request<Incoming>,
    peer: SocketAddr,
) -> Result<Response<Body>, Infallible> {
    Ok(match shim.platform {
        Platform::Fc => fc::handle(&shim, req, peer).await,
        Platform::ScfWeb => scf::web_handle(&shim, req, peer).await,
        Platform::Kubeless => kubeless::handle(&shim, req, peer).await,
        Platform::Knative => knative::handle(&shim, req, peer).await,
        Platform::Standalone | Platform::Lambda | Platform::Scf => {
            return berth_triggers::http::handle(shim.http.clone(), req, peer).await
        }
    })
}
