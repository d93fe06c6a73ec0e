//! The request a function receives, and the extractors that take typed pieces out of it.

use serde::de::DeserializeOwned;

use crate::{Context, Error, Result};

/// An HTTP request (or, for event triggers, the event data as the body).
#[derive(Debug, Clone, Default)]
pub struct Request {
    pub method: String,
    pub path: String,
    /// Raw query string without `?`.
    pub query: String,
    /// Lower-case header names.
    pub headers: Vec<(String, String)>,
    /// Route parameters, percent-decoded.
    pub params: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    /// A request with method and path (and query, after `?`), for tests.
    pub fn new(method: &str, path_and_query: &str) -> Self {
        let (path, query) = path_and_query.split_once('?').unwrap_or((path_and_query, ""));
        Request { method: method.into(), path: path.into(), query: query.into(), ..Default::default() }
    }
    /// Adds a route parameter (builder style, for tests).
    pub fn with_param(mut self, name: &str, value: &str) -> Self {
        self.params.push((name.into(), value.into()));
        self
    }
    /// Sets a JSON body and content type (builder style).
    pub fn with_json<T: serde::Serialize>(mut self, value: &T) -> Self {
        self.body = serde_json::to_vec(value).expect("serialising a test body");
        self.headers.push(("content-type".into(), "application/json".into()));
        self
    }
    /// A route parameter by name.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
    /// The first header with this (case-insensitive) name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
    /// The query string decoded into `T`.
    pub fn query<T: DeserializeOwned>(&self) -> Result<T> {
        serde_urlencoded::from_str(&self.query)
            .map_err(|e| Error::bad_request(format!("invalid query string `{}`: {e}", self.query)))
    }
    /// The body decoded as JSON.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T> {
        serde_json::from_slice(&self.body).map_err(|e| Error::bad_request(format!("invalid JSON body: {e}")))
    }
    /// The body as UTF-8 text.
    pub fn text(&self) -> Result<&str> {
        std::str::from_utf8(&self.body).map_err(|_| Error::bad_request("the body is not valid UTF-8"))
    }
}

/// Something a handler argument can be built from. Implement it to make your own extractor.
pub trait FromCall: Sized {
    /// Builds the value; an error answers the call without running the handler.
    fn from_call(ctx: &Context, req: &mut Request) -> Result<Self>;
}

impl FromCall for Request {
    fn from_call(_ctx: &Context, req: &mut Request) -> Result<Self> {
        Ok(std::mem::take(req))
    }
}

impl FromCall for Context {
    fn from_call(ctx: &Context, _req: &mut Request) -> Result<Self> {
        Ok(ctx.clone())
    }
}

/// JSON in (as an argument: the body, 400 if it does not parse) and out (as a return value).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Json<T>(pub T);

impl<T: DeserializeOwned> FromCall for Json<T> {
    fn from_call(_ctx: &Context, req: &mut Request) -> Result<Self> {
        req.json().map(Json)
    }
}

/// Route parameters: a struct with one field per parameter, or a single value for a route with
/// exactly one parameter (`Path<u64>` for `/todos/{id}`). 400 when they do not parse.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Path<T>(pub T);

impl<T: DeserializeOwned> FromCall for Path<T> {
    fn from_call(_ctx: &Context, req: &mut Request) -> Result<Self> {
        if let [(name, value)] = req.params.as_slice() {
            // A single parameter: try it as a bare value first (`Path<u64>`, `Path<String>`).
            let single = serde_json::from_str::<T>(value)
                .or_else(|_| serde_json::from_value::<T>(serde_json::Value::String(value.clone())));
            if let Ok(v) = single {
                return Ok(Path(v));
            }
            return serde_urlencoded::from_str::<T>(&serde_urlencoded::to_string([(name, value)]).unwrap_or_default())
                .map(Path)
                .map_err(|e| Error::bad_request(format!("invalid path parameter `{name}` = `{value}`: {e}")));
        }
        let encoded = serde_urlencoded::to_string(&req.params).unwrap_or_default();
        serde_urlencoded::from_str(&encoded)
            .map(Path)
            .map_err(|e| Error::bad_request(format!("invalid path parameters: {e}")))
    }
}

/// The query string decoded into `T`; 400 when it does not parse.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Query<T>(pub T);

impl<T: DeserializeOwned> FromCall for Query<T> {
    fn from_call(_ctx: &Context, req: &mut Request) -> Result<Self> {
        req.query().map(Query)
    }
}

/// All request headers (lower-case names).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Headers(pub Vec<(String, String)>);

impl Headers {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

impl FromCall for Headers {
    fn from_call(_ctx: &Context, req: &mut Request) -> Result<Self> {
        Ok(Headers(req.headers.clone()))
    }
}

/// The raw body.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Bytes(pub Vec<u8>);

impl FromCall for Bytes {
    fn from_call(_ctx: &Context, req: &mut Request) -> Result<Self> {
        Ok(Bytes(std::mem::take(&mut req.body)))
    }
}

impl FromCall for String {
    fn from_call(_ctx: &Context, req: &mut Request) -> Result<Self> {
        String::from_utf8(std::mem::take(&mut req.body)).map_err(|_| Error::bad_request("the body is not valid UTF-8"))
    }
}
