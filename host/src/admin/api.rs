//! Admin API requests: authentication, routing, and JSON in and out.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use berth_core::auth_limit::Surface;
use berth_core::error::{bearer_token, error_response, json_error, pretty_json_response as json, same_secret, Body};
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;

use super::AdminContext;
use crate::swap::{self, SwapError, SwapPlan, SwapSource};

fn error(status: StatusCode, code: &str, message: &str) -> Response<Body> {
    json_error(status, code, message, None)
}

fn authorized(ctx: &AdminContext, req: &Request<Incoming>) -> bool {
    bearer_token(req.headers()).is_some_and(|t| same_secret(t.as_bytes(), ctx.token.as_bytes()))
}

/// Serves one admin request from `peer`.
pub(super) async fn handle(
    ctx: Arc<AdminContext>,
    req: Request<Incoming>,
    peer: SocketAddr,
) -> Result<Response<Body>, Infallible> {
    if let Err(throttled) = ctx.limiter.check(Surface::Admin, peer.ip()) {
        return Ok(throttled.response(Surface::Admin, None));
    }
    if !authorized(&ctx, &req) {
        ctx.limiter.failed(Surface::Admin, peer.ip());
        let mut res = error(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "missing or wrong token: send `Authorization: Bearer <token>` ([admin] token, BERTH_ADMIN__TOKEN, or \
             the generated one in <data_dir>/admin.token)",
        );
        res.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        return Ok(res);
    }
    let path = req.uri().path().trim_matches('/').to_owned();
    let method = req.method().clone();
    let d = &ctx.deployments;
    let res = match endpoint(&method, &path) {
        Endpoint::List => json(StatusCode::OK, &d.status().await),
        Endpoint::Libraries => json(StatusCode::OK, &d.status().await.libraries),
        Endpoint::Show(name) => {
            let status = d.status().await;
            match status.groups.iter().find(|g| g.name == name) {
                Some(g) => json(StatusCode::OK, g),
                None => error(StatusCode::NOT_FOUND, "not_loaded", &format!("no group `{name}` is serving")),
            }
        }
        Endpoint::Unload(name) => outcome(swap::unload(d, &name).await),
        Endpoint::Deploy(group) => match deploy_source(&ctx, req).await {
            Ok((source, sha256)) => outcome(swap::swap(d, SwapPlan { group, source, sha256 }).await),
            Err(res) => res,
        },
        Endpoint::Reload(group) => {
            let source = SwapSource::Reload { only_if_changed: false };
            outcome(swap::swap(d, SwapPlan::new(group, source)).await)
        }
        Endpoint::Rollback(group) => outcome(swap::swap(d, SwapPlan::new(group, SwapSource::Rollback)).await),
        Endpoint::WrongMethod => {
            error(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", &format!("{method} is not allowed on /{path}"))
        }
        Endpoint::NotFound => error(
            StatusCode::NOT_FOUND,
            "not_found",
            &format!(
                "no admin endpoint /{path}; see GET /groups, POST /groups/{{name}}/deploy|reload|rollback, \
                 DELETE /groups/{{name}}, GET /libraries"
            ),
        ),
    };
    Ok(res)
}

/// What a request asks for (owned, so that nothing borrowed from the request lives across awaits).
enum Endpoint {
    List,
    Libraries,
    Show(String),
    Unload(String),
    Deploy(String),
    Reload(String),
    Rollback(String),
    WrongMethod,
    NotFound,
}

fn endpoint(method: &Method, path: &str) -> Endpoint {
    let segments: Vec<&str> = path.split('/').collect();
    let name = |n: &str| n.to_owned();
    match (method, segments.as_slice()) {
        (&Method::GET, ["groups"]) => Endpoint::List,
        (&Method::GET, ["libraries"]) => Endpoint::Libraries,
        (&Method::GET, ["groups", n]) => Endpoint::Show(name(n)),
        (&Method::DELETE, ["groups", n]) => Endpoint::Unload(name(n)),
        (&Method::POST, ["groups", n, "deploy"]) => Endpoint::Deploy(name(n)),
        (&Method::POST, ["groups", n, "reload"]) => Endpoint::Reload(name(n)),
        (&Method::POST, ["groups", n, "rollback"]) => Endpoint::Rollback(name(n)),
        (_, ["groups"] | ["libraries"] | ["groups", _] | ["groups", _, "deploy" | "reload" | "rollback"]) => {
            Endpoint::WrongMethod
        }
        _ => Endpoint::NotFound,
    }
}

fn outcome(result: Result<swap::SwapReport, SwapError>) -> Response<Body> {
    match result {
        Ok(report) => json(StatusCode::OK, &report),
        Err(e) => error_response(&e, None),
    }
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct DeployPath {
    path: PathBuf,
    #[serde(default)]
    sha256: Option<String>,
}

/// The `sha256` a deploy pins: `?sha256=<hex>` in the query (for an upload) or `"sha256"` in
/// the JSON body, normalised; both must agree when both are given. The error is the message of
/// a 400 `bad_sha256`.
fn deploy_pin(query: Option<&str>, body: Option<&str>) -> Result<Option<String>, String> {
    let parse = |raw: &str, at: &str| crate::config::normalize_sha256(raw).map_err(|e| format!("{at} `{raw}` {e}"));
    let query = query.map(|q| parse(q, "query parameter sha256")).transpose()?;
    let body = body.map(|b| parse(b, "`sha256` of the JSON body")).transpose()?;
    match (query, body) {
        (Some(q), Some(b)) if q != b => Err(format!("the query pins sha256 {q} and the JSON body {b}; send one")),
        (q, b) => Ok(q.or(b)),
    }
}

fn bad_pin(message: String) -> Response<Body> {
    error(StatusCode::BAD_REQUEST, "bad_sha256", &message)
}

/// The value of query parameter `name` (hex needs no percent-decoding; anything else is left
/// for [`deploy_pin`] to refuse).
fn query_param<'a>(query: Option<&'a str>, name: &str) -> Option<&'a str> {
    query?.split('&').find_map(|pair| pair.strip_prefix(name)?.strip_prefix('='))
}

/// The new version of a deploy, and the sha256 it pins: JSON `{"path": ..., "sha256": ...}`
/// names a file on the host; any other body is the plugin file itself (`?sha256=` pins it).
async fn deploy_source(
    ctx: &AdminContext,
    req: Request<Incoming>,
) -> Result<(SwapSource, Option<String>), Response<Body>> {
    let query_pin = query_param(req.uri().query(), "sha256").map(str::to_owned);
    let is_json = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    let limit = ctx.max_upload;
    let body = match Limited::new(req.into_body(), limit as usize).collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) if e.downcast_ref::<http_body_util::LengthLimitError>().is_some() => {
            return Err(error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too_large",
                &format!("the upload is larger than admin.max_upload ({limit} bytes)"),
            ))
        }
        Err(e) => return Err(error(StatusCode::BAD_REQUEST, "bad_body", &format!("could not read the body: {e}"))),
    };
    if is_json {
        let parsed: DeployPath = serde_json::from_slice(&body).map_err(|e| {
            error(
                StatusCode::BAD_REQUEST,
                "bad_json",
                &format!("expected {{\"path\": \"/abs/plugin.so\", \"sha256\": \"<hex, optional>\"}}: {e}"),
            )
        })?;
        if !parsed.path.is_absolute() {
            return Err(error(
                StatusCode::BAD_REQUEST,
                "relative_path",
                &format!("`{}`: the path is read by the host, so it must be absolute", parsed.path.display()),
            ));
        }
        let pin = deploy_pin(query_pin.as_deref(), parsed.sha256.as_deref()).map_err(bad_pin)?;
        return Ok((SwapSource::File(parsed.path), pin));
    }
    if body.is_empty() {
        return Err(error(
            StatusCode::BAD_REQUEST,
            "empty_body",
            "send the plugin file's bytes as the body (application/octet-stream), or JSON {\"path\": \"/abs/plugin.so\"}",
        ));
    }
    let pin = deploy_pin(query_pin.as_deref(), None).map_err(bad_pin)?;
    Ok((SwapSource::Upload(body), pin))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHA: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

    #[test]
    fn a_deploy_pin_comes_from_the_query_or_the_json_body_normalised() {
        assert_eq!(query_param(Some(&format!("a=1&sha256={SHA}")), "sha256"), Some(SHA));
        assert_eq!(query_param(Some("sha256x=1"), "sha256"), None);
        assert_eq!(query_param(None, "sha256"), None);
        assert_eq!(deploy_pin(Some(&SHA.to_uppercase()), None).ok().flatten().as_deref(), Some(SHA));
        assert_eq!(deploy_pin(None, Some(SHA)).ok().flatten().as_deref(), Some(SHA));
        assert_eq!(deploy_pin(Some(SHA), Some(SHA)).ok().flatten().as_deref(), Some(SHA));
        assert!(deploy_pin(None, None).is_ok_and(|p| p.is_none()));
        let bad = deploy_pin(Some("abc"), None).unwrap_err();
        assert!(bad.contains("query parameter sha256 `abc`") && bad.contains("64 hex digits"), "{bad}");
        let other = "0".repeat(64);
        let both = deploy_pin(Some(SHA), Some(&other)).unwrap_err();
        assert!(both.contains(SHA) && both.contains(&other), "{both}");
    }
}
