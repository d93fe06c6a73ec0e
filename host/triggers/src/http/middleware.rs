//! Host layers around the groups' HTTP routes, set in `berth.toml` for every group
//! (`[middleware]`) or one (`[groups.middleware]`, which replaces the host's per layer):
//!
//! - **CORS** (`cors`): allowed origins (or `*`), methods, headers, credentials, max age; a
//!   preflight (`OPTIONS` with `Origin` and `Access-Control-Request-Method`) is answered 204
//!   here for any route, and every answer to an allowed origin carries the CORS headers (a 401
//!   too, so that the page can read it).
//! - **Auth** (`auth`): `kind = "bearer"` (`Authorization: Bearer <token>`) or `"api_key"` (a
//!   header, `x-api-key` by default) checked against tokens from the environment or files,
//!   compared in constant time; a request without a valid one gets 401 before the function runs.
//!   Failures are counted per client by the host's [`AuthLimiter`]: past its limit a client
//!   gets 429 `too_many_attempts` (with `retry-after`) without its token being checked.
//!   `kind = "none"` exempts a group from the host's.
//! - **Access log** (`access_log = true`): one `berth::access` line per request with method,
//!   path, status, duration, group, function and request id.
//!
//! Order: access log (outermost), CORS, auth, then the group's own SDK middleware and the
//! function. A host with no layers configured pays one atomic load per request.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use berth_core::auth_limit::{AuthLimiter, Surface};
use berth_core::error::{json_error, Body};
use http::{header, HeaderMap, HeaderValue, Method, Response, StatusCode};
use serde::Deserialize;

/// `[middleware]` or `[groups.middleware]`.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct MiddlewareConfig {
    #[serde(default)]
    pub cors: Option<CorsConfig>,
    #[serde(default)]
    pub auth: Option<AuthConfig>,
    /// One `berth::access` log line per request.
    #[serde(default)]
    pub access_log: Option<bool>,
}

/// `[middleware.cors]`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CorsConfig {
    /// Origins allowed to call (`https://app.example.com`), or `["*"]` for any.
    pub allow_origins: Vec<String>,
    #[serde(default = "default_methods")]
    pub allow_methods: Vec<String>,
    #[serde(default = "default_headers")]
    pub allow_headers: Vec<String>,
    /// Response headers the page may read besides the simple ones (`x-request-id` always).
    #[serde(default)]
    pub expose_headers: Vec<String>,
    #[serde(default)]
    pub allow_credentials: bool,
    /// How long a browser may cache a preflight.
    #[serde(default, with = "humantime_serde")]
    pub max_age: Option<Duration>,
}

fn default_methods() -> Vec<String> {
    ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"].map(String::from).to_vec()
}

fn default_headers() -> Vec<String> {
    ["content-type", "authorization", "x-request-id"].map(String::from).to_vec()
}

/// `[middleware.auth]`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    pub kind: AuthKind,
    /// For `api_key`: the header that carries the key.
    #[serde(default)]
    pub header: Option<String>,
    /// Where the accepted tokens are: `{ env = "API_TOKEN" }` or `{ file = "/run/secrets/t" }`.
    #[serde(default)]
    pub tokens: Vec<TokenSource>,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum AuthKind {
    Bearer,
    ApiKey,
    /// No auth for this group, whatever the host's `[middleware.auth]` says.
    None,
}

/// Where one token comes from.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub enum TokenSource {
    Env(String),
    File(std::path::PathBuf),
}

/// Why the middleware configuration cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum MiddlewareError {
    #[error("{scope} cors: {message}")]
    Cors { scope: String, message: String },
    #[error("{scope} auth: {message}")]
    Auth { scope: String, message: String },
}

struct Cors {
    any_origin: bool,
    origins: Vec<HeaderValue>,
    methods: HeaderValue,
    headers: HeaderValue,
    expose: HeaderValue,
    credentials: bool,
    max_age: Option<HeaderValue>,
}

struct Auth {
    kind: AuthKind,
    header: header::HeaderName,
    tokens: Vec<Vec<u8>>,
    /// Counts failures per client (none: unlimited).
    limiter: Option<Arc<AuthLimiter>>,
}

/// The layers one group's routes go through.
pub struct LayerSet {
    cors: Option<Cors>,
    auth: Option<Auth>,
    access_log: bool,
}

/// Every group's layers: the host's, and those of the groups that set their own (`None`: the
/// group's settings leave it without any).
#[derive(Default)]
pub struct Layers {
    host: Option<Arc<LayerSet>>,
    groups: HashMap<String, Option<Arc<LayerSet>>>,
}

fn header_list(items: &[String], scope: &str) -> Result<HeaderValue, MiddlewareError> {
    HeaderValue::from_str(&items.join(", ")).map_err(|_| MiddlewareError::Cors {
        scope: scope.to_owned(),
        message: format!("`{}` is not a header value", items.join(", ")),
    })
}

impl Cors {
    fn new(c: &CorsConfig, scope: &str) -> Result<Cors, MiddlewareError> {
        let bad = |message: String| MiddlewareError::Cors { scope: scope.to_owned(), message };
        if c.allow_origins.is_empty() {
            return Err(bad("`allow_origins` is empty: name the origins (`https://app.example.com`) or `*`".into()));
        }
        let any_origin = c.allow_origins.iter().any(|o| o == "*");
        if any_origin && c.allow_credentials {
            return Err(bad(
                "`allow_origins = [\"*\"]` with `allow_credentials = true` is refused by browsers: name the origins"
                    .into(),
            ));
        }
        let mut origins = Vec::new();
        for o in c.allow_origins.iter().filter(|o| *o != "*") {
            if !(o.starts_with("http://") || o.starts_with("https://")) || o.ends_with('/') {
                return Err(bad(format!(
                    "origin `{o}` must be a scheme and host (`https://app.example.com`), no path"
                )));
            }
            origins.push(HeaderValue::from_str(o).map_err(|_| bad(format!("origin `{o}` is not a header value")))?);
        }
        for m in &c.allow_methods {
            Method::from_bytes(m.as_bytes()).map_err(|_| bad(format!("`{m}` is not an HTTP method")))?;
        }
        let mut expose = c.expose_headers.clone();
        if !expose.iter().any(|h| h.eq_ignore_ascii_case("x-request-id")) {
            expose.push("x-request-id".into());
        }
        Ok(Cors {
            any_origin,
            origins,
            methods: header_list(&c.allow_methods, scope)?,
            headers: header_list(&c.allow_headers, scope)?,
            expose: header_list(&expose, scope)?,
            credentials: c.allow_credentials,
            max_age: c.max_age.map(|d| HeaderValue::from(d.as_secs())),
        })
    }

    /// The `Access-Control-Allow-Origin` value for this request's origin, when it is allowed.
    fn allowed(&self, headers: &HeaderMap) -> Option<HeaderValue> {
        let origin = headers.get(header::ORIGIN)?;
        if self.any_origin {
            return Some(HeaderValue::from_static("*"));
        }
        self.origins.iter().any(|o| o == origin).then(|| origin.clone())
    }

    fn decorate(&self, allow: HeaderValue, res: &mut Response<Body>) {
        let h = res.headers_mut();
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, allow);
        if !self.any_origin {
            h.append(header::VARY, HeaderValue::from_static("origin"));
        }
        if self.credentials {
            h.insert(header::ACCESS_CONTROL_ALLOW_CREDENTIALS, HeaderValue::from_static("true"));
        }
        h.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, self.expose.clone());
    }
}

impl Auth {
    fn new(
        c: &AuthConfig,
        scope: &str,
        env: &dyn Fn(&str) -> Option<String>,
        limiter: Option<&Arc<AuthLimiter>>,
    ) -> Result<Auth, MiddlewareError> {
        let bad = |message: String| MiddlewareError::Auth { scope: scope.to_owned(), message };
        let header = match (c.kind, &c.header) {
            (AuthKind::ApiKey, Some(h)) => {
                header::HeaderName::from_bytes(h.as_bytes()).map_err(|_| bad(format!("`{h}` is not a header name")))?
            }
            (AuthKind::ApiKey, None) => header::HeaderName::from_static("x-api-key"),
            (_, Some(_)) => return Err(bad("`header` is for `kind = \"api_key\"`".into())),
            (_, None) => header::AUTHORIZATION,
        };
        let mut tokens = Vec::new();
        for source in &c.tokens {
            let token = match source {
                TokenSource::Env(var) => env(var).ok_or_else(|| {
                    bad(format!("token variable `{var}` is not set: export it, or remove it from `tokens`"))
                })?,
                TokenSource::File(path) => std::fs::read_to_string(path)
                    .map_err(|e| bad(format!("cannot read token file `{}`: {e}", path.display())))?,
            };
            let token = token.trim_end_matches(['\n', '\r']);
            if token.len() < 16 {
                return Err(bad(format!(
                    "a token of {} bytes is too short to guess safely: use at least 16 (e.g. `openssl rand -hex 32`)",
                    token.len()
                )));
            }
            tokens.push(token.as_bytes().to_vec());
        }
        if c.kind != AuthKind::None && tokens.is_empty() {
            return Err(bad("`tokens` is empty: every request would be refused".into()));
        }
        Ok(Auth { kind: c.kind, header, tokens, limiter: limiter.cloned() })
    }

    fn admits(&self, headers: &HeaderMap) -> bool {
        let given = headers.get(&self.header).map(HeaderValue::as_bytes);
        let given = match (self.kind, given) {
            (AuthKind::None, _) => return true,
            (AuthKind::Bearer, Some(v)) => match v.get(..7) {
                Some(scheme) if scheme.eq_ignore_ascii_case(b"bearer ") => &v[7..],
                _ => return false,
            },
            (AuthKind::ApiKey, Some(v)) => v,
            (_, None) => return false,
        };
        // Every token is compared, so the time says nothing about which one nearly matched.
        self.tokens.iter().fold(false, |ok, t| berth_core::error::same_secret(given, t) | ok)
    }
}

impl LayerSet {
    fn new(
        c: &MiddlewareConfig,
        scope: &str,
        env: &dyn Fn(&str) -> Option<String>,
        limiter: Option<&Arc<AuthLimiter>>,
    ) -> Result<Option<LayerSet>, MiddlewareError> {
        let cors = c.cors.as_ref().map(|c| Cors::new(c, scope)).transpose()?;
        let auth = c.auth.as_ref().map(|a| Auth::new(a, scope, env, limiter)).transpose()?;
        let access_log = c.access_log.unwrap_or(false);
        let auth = auth.filter(|a| a.kind != AuthKind::None);
        Ok((cors.is_some() || auth.is_some() || access_log).then_some(LayerSet { cors, auth, access_log }))
    }

    /// The answer to a CORS preflight, when these layers have CORS.
    pub fn preflight_answer(&self, parts: &http::request::Parts) -> Option<Response<Body>> {
        self.cors.as_ref().map(|cors| self.preflight(cors, parts))
    }

    /// What answers before the function runs: a preflight, a refused credential, or (after too
    /// many refused ones from `peer`, when the listener knows it) a 429.
    pub fn before(
        &self,
        parts: &http::request::Parts,
        peer: Option<IpAddr>,
        request_id: &str,
    ) -> Option<Response<Body>> {
        if let Some(cors) = &self.cors {
            if parts.method == Method::OPTIONS && parts.headers.contains_key(header::ACCESS_CONTROL_REQUEST_METHOD) {
                return Some(self.preflight(cors, parts));
            }
        }
        let auth = self.auth.as_ref()?;
        let limit = auth.limiter.as_deref().zip(peer);
        if let Some((limiter, ip)) = limit {
            if let Err(throttled) = limiter.check(Surface::Middleware, ip) {
                return Some(throttled.response(Surface::Middleware, Some(request_id)));
            }
        }
        if auth.admits(&parts.headers) {
            return None;
        }
        if let Some((limiter, ip)) = limit {
            limiter.failed(Surface::Middleware, ip);
        }
        let what = match auth.kind {
            AuthKind::ApiKey => format!("a valid `{}` header", auth.header),
            _ => "`authorization: Bearer <token>`".to_owned(),
        };
        let mut res =
            json_error(StatusCode::UNAUTHORIZED, "unauthorized", &format!("this route needs {what}"), Some(request_id));
        if auth.kind == AuthKind::Bearer {
            res.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        Some(res)
    }

    fn preflight(&self, cors: &Cors, parts: &http::request::Parts) -> Response<Body> {
        let mut res = Response::new(Body::default());
        let Some(allow) = cors.allowed(&parts.headers) else {
            // Not an allowed origin: no CORS headers, so the browser refuses the call.
            *res.status_mut() = StatusCode::FORBIDDEN;
            return res;
        };
        *res.status_mut() = StatusCode::NO_CONTENT;
        cors.decorate(allow, &mut res);
        let h = res.headers_mut();
        h.insert(header::ACCESS_CONTROL_ALLOW_METHODS, cors.methods.clone());
        h.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, cors.headers.clone());
        if let Some(age) = &cors.max_age {
            h.insert(header::ACCESS_CONTROL_MAX_AGE, age.clone());
        }
        res
    }

    /// Decorates the answer (CORS headers) and logs it.
    pub fn after(
        &self,
        parts: &http::request::Parts,
        mut res: Response<Body>,
        started: std::time::Instant,
        target: (&str, &str),
        request_id: &str,
    ) -> Response<Body> {
        if let Some(cors) = &self.cors {
            if let Some(allow) = cors.allowed(&parts.headers) {
                cors.decorate(allow, &mut res);
            }
        }
        if self.access_log {
            tracing::info!(
                target: "berth::access",
                request_id,
                method = %parts.method,
                path = %parts.uri.path(),
                status = res.status().as_u16(),
                duration_ms = started.elapsed().as_secs_f64() * 1000.0,
                group = target.0,
                function = target.1,
                "request"
            );
        }
        res
    }
}

impl Layers {
    /// The layers of `host` (`[middleware]`) and of each group that sets its own; `env` reads
    /// token variables, `limiter` counts refused tokens per client.
    pub fn new<'a>(
        host: &MiddlewareConfig,
        groups: impl IntoIterator<Item = (&'a str, &'a MiddlewareConfig)>,
        env: &dyn Fn(&str) -> Option<String>,
        limiter: Option<&Arc<AuthLimiter>>,
    ) -> Result<Layers, MiddlewareError> {
        let host_set = LayerSet::new(host, "[middleware]", env, limiter)?.map(Arc::new);
        let mut sets = HashMap::new();
        for (group, c) in groups {
            if *c == MiddlewareConfig::default() {
                continue;
            }
            // A group's own layer replaces the host's of the same kind.
            let merged = MiddlewareConfig {
                cors: c.cors.clone().or_else(|| host.cors.clone()),
                auth: c.auth.clone().or_else(|| host.auth.clone()),
                access_log: c.access_log.or(host.access_log),
            };
            let scope = format!("[groups.middleware] of group `{group}`");
            sets.insert(group.to_owned(), LayerSet::new(&merged, &scope, env, limiter)?.map(Arc::new));
        }
        Ok(Layers { host: host_set, groups: sets })
    }

    /// The layers of `group`'s routes, if any.
    pub fn for_group(&self, group: &str) -> Option<&Arc<LayerSet>> {
        if self.groups.is_empty() {
            return self.host.as_ref();
        }
        match self.groups.get(group) {
            Some(own) => own.as_ref(),
            None => self.host.as_ref(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(method: &str, headers: &[(&str, &str)]) -> http::request::Parts {
        let mut b = http::Request::builder().method(method).uri("/x");
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(()).unwrap().into_parts().0
    }

    fn env(var: &str) -> Option<String> {
        (var == "TOKEN").then(|| "0123456789abcdef-token".to_owned())
    }

    fn toml(text: &str) -> MiddlewareConfig {
        toml::from_str(text).unwrap()
    }

    #[test]
    fn bearer_and_api_key_tokens_are_checked() {
        let host = toml("[auth]\nkind = \"bearer\"\ntokens = [{ env = \"TOKEN\" }]\n");
        let layers = Layers::new(&host, [], &env, None).unwrap();
        let set = layers.for_group("g").unwrap();
        assert!(set.before(&parts("GET", &[("authorization", "Bearer 0123456789abcdef-token")]), None, "r").is_none());
        assert!(set.before(&parts("GET", &[("authorization", "bearer 0123456789abcdef-token")]), None, "r").is_none());
        for wrong in ["Bearer 0123456789abcdef-tokeN", "Basic 0123456789abcdef-token", "Bearer", ""] {
            let res = set.before(&parts("GET", &[("authorization", wrong)]), None, "r").expect("refused");
            assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "{wrong}");
        }
        let pre = parts("OPTIONS", &[("origin", "https://a.example"), ("access-control-request-method", "GET")]);
        assert!(set.preflight_answer(&pre).is_none(), "no CORS, no preflight answer (the route's 405 stands)");
        let key = toml("[auth]\nkind = \"api_key\"\nheader = \"x-key\"\ntokens = [{ env = \"TOKEN\" }]\n");
        let layers = Layers::new(&key, [], &env, None).unwrap();
        let set = layers.for_group("g").unwrap();
        assert!(set.before(&parts("GET", &[("x-key", "0123456789abcdef-token")]), None, "r").is_none());
        assert!(set.before(&parts("GET", &[("x-api-key", "0123456789abcdef-token")]), None, "r").is_some());
    }

    #[test]
    fn refused_tokens_are_limited_per_peer_and_the_limit_answers_unchecked() {
        use berth_core::auth_limit::{AuthLimitSettings, AuthLimiter};
        let settings = AuthLimitSettings { max_failures: 2, window: Duration::from_secs(60), max_clients: 10 };
        let limiter = Arc::new(AuthLimiter::new(settings, &berth_core::Metrics::new()));
        let host = toml("[auth]\nkind = \"bearer\"\ntokens = [{ env = \"TOKEN\" }]\n");
        let layers = Layers::new(&host, [], &env, Some(&limiter)).unwrap();
        let set = layers.for_group("g").unwrap();
        let (right, wrong) = (
            parts("GET", &[("authorization", "Bearer 0123456789abcdef-token")]),
            parts("GET", &[("authorization", "Bearer guess")]),
        );
        let (a, b) = (Some("10.0.0.1".parse().unwrap()), Some("10.0.0.2".parse().unwrap()));
        assert!(set.before(&right, a, "r").is_none(), "a success is not counted");
        for _ in 0..2 {
            assert_eq!(set.before(&wrong, a, "r").unwrap().status(), StatusCode::UNAUTHORIZED);
        }
        let res = set.before(&right, a, "r").expect("throttled, even with the right token");
        assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(res.headers()[header::RETRY_AFTER], "60");
        assert!(set.before(&right, b, "r").is_none(), "another peer is unaffected");
        assert!(set.before(&right, None, "r").is_none(), "no peer (a platform event): not limited");
        limiter.advance(Duration::from_secs(60));
        assert!(set.before(&right, a, "r").is_none(), "the window ended");
    }

    #[test]
    fn a_group_can_replace_or_drop_the_hosts_layers() {
        let host = toml("access_log = true\n[auth]\nkind = \"bearer\"\ntokens = [{ env = \"TOKEN\" }]\n");
        let public = toml("[auth]\nkind = \"none\"\n");
        let layers = Layers::new(&host, [("public", &public)], &env, None).unwrap();
        assert!(layers.for_group("public").unwrap().before(&parts("GET", &[]), None, "r").is_none());
        let quiet = toml("[auth]\nkind = \"none\"\n");
        let bare = Layers::new(
            &toml("[auth]\nkind = \"bearer\"\ntokens = [{ env = \"TOKEN\" }]\n"),
            [("quiet", &quiet)],
            &env,
            None,
        )
        .unwrap();
        assert!(bare.for_group("quiet").is_none(), "a group its settings leave without layers has none");
        assert!(layers.for_group("public").unwrap().access_log, "the host's access log still applies");
        assert!(layers.for_group("private").unwrap().before(&parts("GET", &[]), None, "r").is_some());
        assert!(Layers::new(&MiddlewareConfig::default(), [], &env, None).unwrap().for_group("g").is_none());
    }

    #[test]
    fn bad_settings_are_refused_with_what_to_do() {
        let cases = [
            ("[auth]\nkind = \"bearer\"\ntokens = [{ env = \"MISSING\" }]\n", "`MISSING` is not set"),
            ("[auth]\nkind = \"bearer\"\n", "`tokens` is empty"),
            ("[auth]\nkind = \"bearer\"\ntokens = [{ file = \"/no/such/token\" }]\n", "/no/such/token"),
            ("[cors]\nallow_origins = []\n", "`allow_origins` is empty"),
            ("[cors]\nallow_origins = [\"*\"]\nallow_credentials = true\n", "name the origins"),
            ("[cors]\nallow_origins = [\"app.example.com\"]\n", "must be a scheme and host"),
        ];
        for (text, want) in cases {
            let err = Layers::new(&toml(text), [], &env, None).err().expect(text).to_string();
            assert!(err.contains(want), "{text}: {err}");
        }
        let err = Layers::new(
            &toml("[auth]\nkind = \"bearer\"\ntokens = [{ env = \"SHORT\" }]\n"),
            [],
            &|_| Some("abc".to_owned()),
            None,
        )
        .err()
        .unwrap()
        .to_string();
        assert!(err.contains("too short"), "{err}");
    }

    #[test]
    fn cors_answers_preflights_and_decorates_allowed_origins_only() {
        let c = toml("[cors]\nallow_origins = [\"https://app.example.com\"]\nmax_age = \"10m\"\n");
        let layers = Layers::new(&c, [], &env, None).unwrap();
        let set = layers.for_group("g").unwrap();
        let pre = parts("OPTIONS", &[("origin", "https://app.example.com"), ("access-control-request-method", "PUT")]);
        let res = set.before(&pre, None, "r").expect("a preflight is answered");
        assert_eq!(res.status(), StatusCode::NO_CONTENT);
        assert_eq!(res.headers()["access-control-allow-origin"], "https://app.example.com");
        assert_eq!(res.headers()["access-control-max-age"], "600");
        assert!(res.headers()["access-control-allow-methods"].to_str().unwrap().contains("PUT"));
        let evil = parts("OPTIONS", &[("origin", "https://evil.example"), ("access-control-request-method", "PUT")]);
        let res = set.before(&evil, None, "r").unwrap();
        assert_eq!(res.status(), StatusCode::FORBIDDEN);
        assert!(!res.headers().contains_key("access-control-allow-origin"));

        let get = parts("GET", &[("origin", "https://app.example.com")]);
        let res = set.after(&get, Response::new(Body::default()), std::time::Instant::now(), ("g", "f"), "r");
        assert_eq!(res.headers()["access-control-allow-origin"], "https://app.example.com");
        assert_eq!(res.headers()["vary"], "origin");
        assert!(res.headers()["access-control-expose-headers"].to_str().unwrap().contains("x-request-id"));
        let other = parts("GET", &[("origin", "https://evil.example")]);
        let res = set.after(&other, Response::new(Body::default()), std::time::Instant::now(), ("g", "f"), "r");
        assert!(!res.headers().contains_key("access-control-allow-origin"));
    }
}
