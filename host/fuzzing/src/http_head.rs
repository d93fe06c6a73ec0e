//! An HTTP/1.1 request head → the ABI request head a function receives.
//!
//! The bytes are parsed by httparse (hyper's parser) and built into an `http::Request` as hyper
//! builds one; the path is looked up in a route table with parameters and a rest parameter, as
//! the HTTP trigger does; then [`berth_triggers::http::request_head`] writes the head. The oracle:
//! the function sees exactly the method, path, query and visible-ASCII headers of the request,
//! in order, and each route parameter percent-decoded.

use std::sync::OnceLock;

use berth_plugin_api::RVec;
use http::{HeaderName, HeaderValue};

/// Route shapes the trigger serves: static, parameters, several parameters, a rest parameter.
const ROUTES: &[&str] = &["/", "/items", "/items/{id}", "/items/{id}/notes/{note}", "/files/{*path}", "/u/{user}/"];

fn router() -> &'static matchit::Router<()> {
    static ROUTER: OnceLock<matchit::Router<()>> = OnceLock::new();
    ROUTER.get_or_init(|| {
        let mut r = matchit::Router::new();
        for route in ROUTES {
            r.insert(*route, ()).expect("the fuzz routes do not conflict");
        }
        r
    })
}

/// The request `data` holds, as hyper would hand it to the trigger; `None` where hyper would
/// refuse it (400) before Berth sees it.
pub fn request(data: &[u8]) -> Option<http::request::Parts> {
    let mut headers = [httparse::EMPTY_HEADER; 100];
    let mut req = httparse::Request::new(&mut headers);
    let Ok(httparse::Status::Complete(_)) = req.parse(data) else { return None };
    let method = http::Method::from_bytes(req.method?.as_bytes()).ok()?;
    let uri = req.path?.parse::<http::Uri>().ok()?;
    let mut builder = http::Request::builder().method(method).uri(uri);
    for h in req.headers.iter() {
        let name = HeaderName::from_bytes(h.name.as_bytes()).ok()?;
        builder = builder.header(name, HeaderValue::from_bytes(h.value).ok()?);
    }
    Some(builder.body(()).ok()?.into_parts().0)
}

pub fn run(data: &[u8]) {
    let Some(parts) = request(data) else { return };
    let Ok(matched) = router().at(parts.uri.path()) else { return };
    let head = berth_triggers::http::request_head(&parts, &matched.params).finish(RVec::new());

    assert_eq!(head.method(), parts.method.as_str(), "method");
    assert_eq!(head.path(), parts.uri.path(), "path");
    assert_eq!(head.query(), parts.uri.query().unwrap_or(""), "query");
    let sent: Vec<(&str, &str)> =
        parts.headers.iter().filter_map(|(k, v)| Some((k.as_str(), v.to_str().ok()?))).collect();
    let seen: Vec<(&str, &str)> = head.headers.iter().collect();
    assert_eq!(seen, sent, "headers");
    let decoded: Vec<(String, String)> = matched
        .params
        .iter()
        .map(|(k, v)| (k.to_owned(), percent_encoding::percent_decode_str(v).decode_utf8_lossy().into_owned()))
        .collect();
    let params: Vec<(String, String)> = head.params().map(|(k, v)| (k.to_owned(), v.to_owned())).collect();
    assert_eq!(params, decoded, "route parameters");
}
