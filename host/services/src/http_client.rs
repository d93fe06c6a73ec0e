//! Outbound HTTP for functions: one pooled client per group, with timeouts, a response size
//! limit and the group's outbound policy ([`crate::outbound`]): every call, every redirect hop
//! and every address a name resolves to is checked against the group's
//! `allowed_outbound_hosts`. TLS through rustls (ring provider).

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use berth_plugin_api::{
    service_error_kind as kind, HeadBuilder, HttpClient, OutboundRequest, Response, ServiceError, ServiceResult, Tuple2,
};
use prometheus::core::{AtomicU64, GenericCounter};

use crate::config::HttpClientConfig;
use crate::outbound::{Host, OutboundPolicy, Refusal};
use berth_core::host_future::FutureExt as _;
use berth_core::metrics::{Metrics, ServiceMetrics};

/// How many redirects a call follows (each checked against the list).
const MAX_REDIRECTS: usize = 10;

/// Resolves a host name to its addresses. The client checks the answer against the group's
/// policy before it connects; tests give one that answers what they need.
pub trait Lookup: Send + Sync + 'static {
    fn lookup(&self, name: &str) -> Pin<Box<dyn Future<Output = std::io::Result<Vec<IpAddr>>> + Send>>;
}

/// The system resolver (`getaddrinfo`, through tokio).
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemLookup;

impl Lookup for SystemLookup {
    fn lookup(&self, name: &str) -> Pin<Box<dyn Future<Output = std::io::Result<Vec<IpAddr>>> + Send>> {
        let name = name.to_owned();
        Box::pin(async move { Ok(tokio::net::lookup_host((name.as_str(), 0)).await?.map(|a| a.ip()).collect()) })
    }
}

/// reqwest's resolver for one group: looks the name up, then refuses an answer in a guarded
/// range (no DNS rebinding past the list).
struct GuardedResolver {
    policy: Arc<OutboundPolicy>,
    lookup: Arc<dyn Lookup>,
}

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let (policy, lookup, name) = (self.policy.clone(), self.lookup.clone(), name.as_str().to_owned());
        Box::pin(async move {
            let addrs = lookup.lookup(&name).await?;
            if addrs.is_empty() {
                return Err(format!("`{name}` resolved to no address").into());
            }
            policy.check_resolved(&name, &addrs)?;
            Ok(Box::new(addrs.into_iter().map(|ip| SocketAddr::new(ip, 0))) as reqwest::dns::Addrs)
        })
    }
}

/// `berth_outbound_refused_total{group,reason}` of one group, resolved when it is installed.
#[derive(Clone)]
struct RefusedCounters {
    not_listed: GenericCounter<AtomicU64>,
    redirect: GenericCounter<AtomicU64>,
    address: GenericCounter<AtomicU64>,
}

impl RefusedCounters {
    fn new(metrics: &Metrics, group: &str) -> Self {
        let family = metrics.register_once(|| {
            prometheus::IntCounterVec::new(
                prometheus::Opts::new(
                    "berth_outbound_refused_total",
                    "Outbound HTTP calls refused by the group's allowed_outbound_hosts (not_listed, redirect, address)",
                ),
                &["group", "reason"],
            )
            .expect("valid metric")
        });
        let c = |reason: &str| family.with_label_values(&[group, reason]);
        RefusedCounters { not_listed: c("not_listed"), redirect: c("redirect"), address: c("address") }
    }

    fn count(&self, r: &Refusal) {
        match r.reason() {
            "redirect" => self.redirect.inc(),
            "address" => self.address.inc(),
            _ => self.not_listed.inc(),
        }
    }
}

/// Checks a URL against the policy: its scheme, host and port on the list, and an IP host not
/// in a guarded range (an IP host never reaches the resolver).
fn check_url(policy: &OutboundPolicy, url: &reqwest::Url, redirect_from: Option<&str>) -> Result<(), Refusal> {
    let host = Host::parse(url.host_str().unwrap_or_default());
    policy.check(url.scheme(), host, url.port_or_known_default().unwrap_or(0), redirect_from)
}

/// The refusal somewhere in `e`'s sources (the resolver's and the redirect policy's errors
/// come back wrapped).
fn refusal_in<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a Refusal> {
    let mut cur = Some(e);
    while let Some(err) = cur {
        if let Some(r) = err.downcast_ref::<Refusal>() {
            return Some(r);
        }
        cur = err.source();
    }
    None
}

/// One group's outbound client.
#[derive(Clone)]
pub struct OutboundClient {
    client: reqwest::Client,
    timeout: Duration,
    max_response: u64,
    metrics: ServiceMetrics,
    policy: Arc<OutboundPolicy>,
    refused: RefusedCounters,
}

impl OutboundClient {
    /// The client of the group `policy` is for, resolving names with the system resolver.
    /// Built when the group is installed; `metrics` gets `berth_outbound_refused_total`.
    pub fn new(cfg: &HttpClientConfig, metrics: &Metrics, policy: OutboundPolicy) -> Self {
        Self::with_lookup(cfg, metrics, policy, Arc::new(SystemLookup))
    }

    /// [`OutboundClient::new`] with another resolver (tests map names to the addresses they need).
    pub fn with_lookup(
        cfg: &HttpClientConfig,
        metrics: &Metrics,
        policy: OutboundPolicy,
        lookup: Arc<dyn Lookup>,
    ) -> Self {
        // Idempotent: the first caller installs ring as the process's rustls provider.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let refused = RefusedCounters::new(metrics, &policy.group);
        let policy = Arc::new(policy);
        let hops = policy.clone();
        let redirects = reqwest::redirect::Policy::custom(move |attempt| {
            if attempt.previous().len() > MAX_REDIRECTS {
                return attempt.error(format!("more than {MAX_REDIRECTS} redirects"));
            }
            let from = attempt.previous().last().map(|u| u.to_string());
            match check_url(&hops, attempt.url(), Some(from.as_deref().unwrap_or("the call"))) {
                Ok(()) => attempt.follow(),
                Err(refusal) => attempt.error(refusal),
            }
        });
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10).min(cfg.timeout))
            .user_agent(concat!("berth/", env!("CARGO_PKG_VERSION")))
            .redirect(redirects)
            .dns_resolver(Arc::new(GuardedResolver { policy: policy.clone(), lookup }))
            .build()
            .unwrap_or_default();
        OutboundClient {
            client,
            timeout: cfg.timeout,
            max_response: cfg.max_response_size.as_u64(),
            metrics: metrics.service("http"),
            policy,
            refused,
        }
    }

    /// The refused call as a service error, counted.
    fn refused(&self, mut refusal: Refusal, url: &reqwest::Url) -> ServiceError {
        if refusal.scheme.is_empty() {
            // From the resolver, which knows only the name.
            refusal.scheme = url.scheme().to_owned();
            refusal.port = url.port_or_known_default().unwrap_or(0);
        }
        self.refused.count(&refusal);
        ServiceError::new(kind::NOT_DECLARED, "http", refusal.to_string())
    }

    /// Sends one request.
    pub async fn fetch(&self, req: OutboundRequest) -> Result<Response, ServiceError> {
        let err = |k: u8, m: String| ServiceError::new(k, "http", m);
        let method = reqwest::Method::from_bytes(req.method.as_bytes())
            .map_err(|_| err(kind::INVALID, format!("invalid method `{}`", req.method)))?;
        let url = reqwest::Url::parse(req.url.as_str())
            .map_err(|e| err(kind::INVALID, format!("invalid url `{}`: {e}", req.url)))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(err(kind::INVALID, format!("url `{url}`: only http and https are supported")));
        }
        if let Err(refusal) = check_url(&self.policy, &url, None) {
            return Err(self.refused(refusal, &url));
        }
        let timeout = match req.timeout_ms {
            0 => self.timeout,
            ms => Duration::from_millis(ms).min(self.timeout),
        };
        let mut builder = self.client.request(method, url.clone()).timeout(timeout).body(req.body.into_vec());
        for Tuple2(k, v) in req.headers.iter() {
            builder = builder.header(k.as_str(), v.as_str());
        }
        let mut res = builder.send().await.map_err(|e| {
            if let Some(refusal) = refusal_in(&e) {
                return self.refused(refusal.clone(), e.url().unwrap_or(&url));
            }
            let k = if e.is_timeout() { kind::TIMEOUT } else { kind::UNAVAILABLE };
            err(k, format!("{} {url}: {e}", req.method))
        })?;
        let status = res.status().as_u16();
        let mut headers = HeadBuilder::with_capacity(0, res.headers().len());
        for (k, v) in res.headers() {
            if let Ok(v) = v.to_str() {
                headers.push(k.as_str(), v, false);
            }
        }
        let headers = headers.finish();
        if res.content_length().is_some_and(|n| n > self.max_response) {
            return Err(err(kind::TOO_LARGE, format!("{url} answered more than {} bytes", self.max_response)));
        }
        let mut body = Vec::new();
        loop {
            match res.chunk().await {
                Ok(Some(chunk)) => {
                    if body.len() as u64 + chunk.len() as u64 > self.max_response {
                        return Err(err(
                            kind::TOO_LARGE,
                            format!("{url} answered more than {} bytes", self.max_response),
                        ));
                    }
                    body.extend_from_slice(&chunk);
                }
                Ok(None) => break,
                Err(e) => {
                    let k = if e.is_timeout() { kind::TIMEOUT } else { kind::UNAVAILABLE };
                    return Err(err(k, format!("reading the answer of {url}: {e}")));
                }
            }
        }
        Ok(Response { status, headers, body: body.into() })
    }
}

impl HttpClient for OutboundClient {
    fn fetch(&self, request: OutboundRequest) -> ServiceResult<Response> {
        let c = self.clone();
        async move { c.metrics.observe("fetch", c.fetch(request)).await }.into_ffi()
    }
}
