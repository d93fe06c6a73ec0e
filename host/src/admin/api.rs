//! Admin API requests: authentication, routing, and JSON in and out.

use std::convert::Infallible;
use std::path::PathBuf;
use std::sync::Arc;

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

/// Serves one admin request.
pub(super) async fn handle(ctx: Arc<AdminContext>, req: Request<Incoming>) -> Result<Response<Body>, Infallible> {
    if !authorized(&ctx, &req) {
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
            Ok(source) => outcome(swap::swap(d, SwapPlan { group, source }).await),
            Err(res) => res,
        },
        Endpoint::Reload(group) => {
            let source = SwapSource::Reload { only_if_changed: false };
            outcome(swap::swap(d, SwapPlan { group, source }).await)
        }
        Endpoint::Rollback(group) => outcome(swap::swap(d, SwapPlan { group, source: SwapSource::Rollback }).await),
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
}

/// The new version of a deploy: JSON `{"path": ...}` names a file on the host; any other body is
/// the plugin file itself.
async fn deploy_source(ctx: &AdminContext, req: Request<Incoming>) -> Result<SwapSource, Response<Body>> {
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
            error(StatusCode::BAD_REQUEST, "bad_json", &format!("expected {{\"path\": \"/abs/plugin.so\"}}: {e}"))
        })?;
        if !parsed.path.is_absolute() {
            return Err(error(
                StatusCode::BAD_REQUEST,
                "relative_path",
                &format!("`{}`: the path is read by the host, so it must be absolute", parsed.path.display()),
            ));
        }
        return Ok(SwapSource::File(parsed.path));
    }
    if body.is_empty() {
        return Err(error(
            StatusCode::BAD_REQUEST,
            "empty_body",
            "send the plugin file's bytes as the body (application/octet-stream), or JSON {\"path\": \"/abs/plugin.so\"}",
        ));
    }
    Ok(SwapSource::Upload(body))
}
