//! The request a function receives, and the extractors that take typed pieces out of it.
//!
//! A [`Request`] keeps the request as the host handed it over (its head in one buffer, its body
//! in another), so a call copies nothing it does not use: the accessors borrow, and only taking
//! the body as owned bytes ([`Request::take_body`]) copies it.

use berth_plugin_api::{HttpRequest, RVec, Tuple2};
use serde::de::DeserializeOwned;

use crate::{Context, Error, Result};

/// An HTTP request (or, for event triggers, the event data as the body).
#[derive(Debug, Clone, Default)]
pub struct Request {
    inner: HttpRequest,
}

impl Request {
    /// A request with method and path (and query, after `?`), for tests.
    pub fn new(method: &str, path_and_query: &str) -> Self {
        let (path, query) = path_and_query.split_once('?').unwrap_or((path_and_query, ""));
        Request { inner: HttpRequest::new(method, path, query) }
    }
    /// The request as the host sent it (nothing is copied).
    pub(crate) fn from_abi(inner: HttpRequest) -> Self {
        Request { inner }
    }
    /// An event as the host sent it, in the CloudEvents HTTP binary mode: the data as the body,
    /// the attributes as `ce-*` headers.
    pub(crate) fn from_event(e: berth_plugin_api::Event) -> Self {
        let mut req = Request::new("POST", "");
        let head = &mut req.inner.headers;
        head.push("ce-specversion", "1.0");
        head.push("ce-id", &e.id);
        head.push("ce-source", &e.source);
        head.push("ce-type", &e.ty);
        for (k, v) in [("ce-subject", &e.subject), ("ce-time", &e.time), ("content-type", &e.datacontenttype)] {
            if let Some(v) = v.as_ref().into_option() {
                head.push(k, v);
            }
        }
        for Tuple2(k, v) in &e.extensions {
            head.push(&format!("ce-{k}"), v);
        }
        req.inner.body = e.data;
        req
    }
    /// Adds a route parameter (builder style, for tests).
    pub fn with_param(mut self, name: &str, value: &str) -> Self {
        self.inner.push_param(name, value);
        self
    }
    /// Adds a header (builder style); the name is stored lower-case.
    pub fn with_header(mut self, name: &str, value: &str) -> Self {
        self.inner.headers.push(&name.to_ascii_lowercase(), value);
        self
    }
    /// Sets the body (builder style).
    pub fn with_body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.inner.body = RVec::from(body.into());
        self
    }
    /// Sets a JSON body and content type (builder style).
    pub fn with_json<T: serde::Serialize>(self, value: &T) -> Self {
        let body = serde_json::to_vec(value).expect("serialising a test body");
        self.with_header("content-type", "application/json").with_body(body)
    }
    /// Replaces the route parameters (the test harness's router).
    pub(crate) fn set_params(&mut self, params: Vec<(String, String)>) {
        self.inner.params = RVec::new();
        for (k, v) in params {
            self.inner.push_param(&k, &v);
        }
    }
    /// The method, upper-case (`GET`).
    pub fn method(&self) -> &str {
        self.inner.method()
    }
    /// The path, without the query string.
    pub fn path(&self) -> &str {
        self.inner.path()
    }
    /// The raw query string, without `?` (see [`Request::query`] to decode it).
    pub fn raw_query(&self) -> &str {
        self.inner.query()
    }
    /// Every header as (lower-case name, value), repeated headers repeatedly.
    pub fn headers(&self) -> impl Iterator<Item = (&str, &str)> + '_ {
        self.inner.headers.iter()
    }
    /// The first header with this (case-insensitive) name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.inner.headers.find(name)
    }
    /// Every route parameter as (name, percent-decoded value).
    pub fn params(&self) -> impl Iterator<Item = (&str, &str)> + '_ {
        self.inner.params()
    }
    /// A route parameter by name.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params().find(|(k, _)| *k == name).map(|(_, v)| v)
    }
    /// The body.
    pub fn body(&self) -> &[u8] {
        &self.inner.body
    }
    /// Takes the body out as owned bytes, leaving it empty.
    pub fn take_body(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.inner.body).into_vec()
    }
    /// The query string decoded into `T`.
    pub fn query<T: DeserializeOwned>(&self) -> Result<T> {
        serde_urlencoded::from_str(self.raw_query())
            .map_err(|e| Error::bad_request(format!("invalid query string `{}`: {e}", self.raw_query())))
    }
    /// The body decoded as JSON.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T> {
        serde_json::from_slice(self.body()).map_err(|e| Error::bad_request(format!("invalid JSON body: {e}")))
    }
    /// The body as UTF-8 text.
    pub fn text(&self) -> Result<&str> {
        std::str::from_utf8(self.body()).map_err(|_| Error::bad_request("the body is not valid UTF-8"))
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
        let mut params = req.params();
        if let (Some((name, value)), None) = (params.next(), params.next()) {
            // A single parameter: as a bare value first (`Path<u64>`, `Path<String>`), then as a
            // struct with one field.
            let scalar = match T::deserialize(param::ParamDeserializer(value)) {
                Ok(v) => return Ok(Path(v)),
                Err(e) => e,
            };
            return serde_urlencoded::from_str::<T>(&serde_urlencoded::to_string([(name, value)]).unwrap_or_default())
                .map(Path)
                .map_err(|_| Error::bad_request(format!("invalid path parameter `{name}` = `{value}`: {scalar}")));
        }
        let encoded = serde_urlencoded::to_string(req.params().collect::<Vec<_>>()).unwrap_or_default();
        serde_urlencoded::from_str(&encoded)
            .map(Path)
            .map_err(|e| Error::bad_request(format!("invalid path parameters: {e}")))
    }
}

mod param {
    use serde::de::{self, IntoDeserializer, Unexpected, Visitor};
    use serde::forward_to_deserialize_any;

    /// Deserializes one route parameter as the target type asks: text for strings, parsed for
    /// numbers, `bool` and `char`, a unit variant for enums, `Some` for options.
    pub(super) struct ParamDeserializer<'a>(pub(super) &'a str);

    macro_rules! parse {
        ($($method:ident => $visit:ident),* $(,)?) => {$(
            fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
                match self.0.parse() {
                    Ok(v) => visitor.$visit(v),
                    Err(_) => Err(de::Error::invalid_value(Unexpected::Str(self.0), &visitor)),
                }
            }
        )*};
    }

    impl<'de> de::Deserializer<'de> for ParamDeserializer<'_> {
        type Error = de::value::Error;

        fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
            visitor.visit_str(self.0)
        }

        parse! {
            deserialize_bool => visit_bool,
            deserialize_i8 => visit_i8, deserialize_i16 => visit_i16,
            deserialize_i32 => visit_i32, deserialize_i64 => visit_i64, deserialize_i128 => visit_i128,
            deserialize_u8 => visit_u8, deserialize_u16 => visit_u16,
            deserialize_u32 => visit_u32, deserialize_u64 => visit_u64, deserialize_u128 => visit_u128,
            deserialize_f32 => visit_f32, deserialize_f64 => visit_f64,
            deserialize_char => visit_char,
        }

        fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
            visitor.visit_some(self)
        }

        fn deserialize_newtype_struct<V: Visitor<'de>>(
            self,
            _name: &'static str,
            visitor: V,
        ) -> Result<V::Value, Self::Error> {
            visitor.visit_newtype_struct(self)
        }

        fn deserialize_enum<V: Visitor<'de>>(
            self,
            _name: &'static str,
            _variants: &'static [&'static str],
            visitor: V,
        ) -> Result<V::Value, Self::Error> {
            visitor.visit_enum(IntoDeserializer::<de::value::Error>::into_deserializer(self.0.to_owned()))
        }

        forward_to_deserialize_any! {
            str string bytes byte_buf unit unit_struct seq tuple tuple_struct map struct identifier ignored_any
        }
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
        Ok(Headers(req.headers().map(|(k, v)| (k.to_owned(), v.to_owned())).collect()))
    }
}

/// The raw body.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Bytes(pub Vec<u8>);

impl FromCall for Bytes {
    fn from_call(_ctx: &Context, req: &mut Request) -> Result<Self> {
        Ok(Bytes(req.take_body()))
    }
}

impl FromCall for String {
    fn from_call(_ctx: &Context, req: &mut Request) -> Result<Self> {
        String::from_utf8(req.take_body()).map_err(|_| Error::bad_request("the body is not valid UTF-8"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path<T: DeserializeOwned>(req: Request) -> Result<T> {
        let ctx = Context::new("t".into(), 0, crate::testing::test_host(serde_json::json!({})), "test");
        Path::<T>::from_call(&ctx, &mut { req }).map(|Path(v)| v)
    }

    #[derive(Debug, serde::Deserialize, PartialEq)]
    #[serde(rename_all = "lowercase")]
    enum Color {
        Red,
        Blue,
    }

    #[derive(Debug, serde::Deserialize, PartialEq)]
    struct Ids {
        user: u64,
        post: String,
    }

    #[derive(Debug, serde::Deserialize, PartialEq)]
    struct One {
        id: u32,
    }

    #[test]
    fn a_single_parameter_parses_as_the_type_asks() {
        let one = |v: &str| Request::new("GET", "/x").with_param("id", v);
        assert_eq!(path::<String>(one("hello world")).unwrap(), "hello world");
        assert_eq!(path::<String>(one("42")).unwrap(), "42");
        assert_eq!(path::<u64>(one("42")).unwrap(), 42);
        assert_eq!(path::<i64>(one("-7")).unwrap(), -7);
        assert_eq!(path::<f64>(one("2.5")).unwrap(), 2.5);
        assert!(path::<bool>(one("true")).unwrap());
        assert_eq!(path::<Option<u8>>(one("9")).unwrap(), Some(9));
        assert_eq!(path::<Color>(one("blue")).unwrap(), Color::Blue);
        assert_eq!(path::<One>(one("5")).unwrap(), One { id: 5 });
    }

    #[test]
    fn a_parameter_that_does_not_parse_is_a_400_naming_it() {
        let err = path::<u64>(Request::new("GET", "/x").with_param("id", "abc")).unwrap_err();
        assert_eq!(err.status(), http::StatusCode::BAD_REQUEST);
        assert!(err.message().contains("`id` = `abc`"), "{}", err.message());
        assert!(err.message().contains("u64"), "{}", err.message());
        let err = path::<Color>(Request::new("GET", "/x").with_param("c", "green")).unwrap_err();
        assert!(err.message().contains("green"), "{}", err.message());
        let err = path::<u8>(Request::new("GET", "/x").with_param("n", "300")).unwrap_err();
        assert_eq!(err.status(), http::StatusCode::BAD_REQUEST);
    }

    #[test]
    fn several_parameters_fill_a_struct() {
        let req = Request::new("GET", "/u/7/p/intro").with_param("user", "7").with_param("post", "intro");
        assert_eq!(path::<Ids>(req).unwrap(), Ids { user: 7, post: "intro".into() });
        let bad = Request::new("GET", "/u/x/p/intro").with_param("user", "x").with_param("post", "intro");
        assert_eq!(path::<Ids>(bad).unwrap_err().status(), http::StatusCode::BAD_REQUEST);
    }

    #[test]
    fn accessors_borrow_what_the_host_sent() {
        let mut req = Request::new("POST", "/a/b?x=1&y=2")
            .with_header("Content-Type", "text/plain")
            .with_param("p", "v")
            .with_body("hi");
        assert_eq!((req.method(), req.path(), req.raw_query()), ("POST", "/a/b", "x=1&y=2"));
        assert_eq!(req.header("content-type"), Some("text/plain"));
        assert_eq!(req.headers().collect::<Vec<_>>(), [("content-type", "text/plain")]);
        assert_eq!(req.param("p"), Some("v"));
        assert_eq!(req.text().unwrap(), "hi");
        assert_eq!(req.take_body(), b"hi");
        assert!(req.body().is_empty());
    }
}

/// An extractor whose value is checked with its `garde` rules (cargo feature `validate`):
/// `Valid<Json<T>>`, `Valid<Query<T>>`, `Valid<Path<T>>`. A value that breaks a rule answers 422
/// `validation` with every failing field (see [`Error::validation`]); one that does not parse is
/// the inner extractor's 400.
///
/// ```ignore
/// #[derive(serde::Deserialize, garde::Validate)]
/// struct NewNote {
///     #[garde(length(chars, min = 1, max = 200))]
///     text: String,
///     #[garde(range(min = 1, max = 5))]
///     priority: u8,
/// }
///
/// #[berth::http(POST, "/notes")]
/// async fn add(Valid(Json(note)): Valid<Json<NewNote>>) -> berth::Result<StatusCode> { ... }
/// ```
///
/// Add `garde = { version = "0.23", features = ["derive"] }` (and the rule features you use,
/// such as `email`) to the group's dependencies.
#[cfg(feature = "validate")]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Valid<E>(pub E);

/// Checks `value` with its `garde` rules: `Err` is 422 `validation` with every failing field, as
/// [`Valid`] answers. For values that do not come through an extractor (an exported service's
/// request: `berth::validate(&req)?`).
#[cfg(feature = "validate")]
pub fn validate<T: garde::Validate>(value: &T) -> Result<()>
where
    T::Context: Default,
{
    value.validate().map_err(|report| {
        Error::validation(
            report
                .iter()
                .map(|(path, e)| crate::FieldError { path: path.to_string(), message: e.message().to_owned() })
                .collect(),
        )
    })
}

#[cfg(feature = "validate")]
macro_rules! valid_extractors {
    ($($wrapper:ident),*) => {$(
        impl<T> FromCall for Valid<$wrapper<T>>
        where
            T: DeserializeOwned + garde::Validate,
            T::Context: Default,
        {
            fn from_call(ctx: &Context, req: &mut Request) -> Result<Self> {
                let $wrapper(value) = $wrapper::<T>::from_call(ctx, req)?;
                validate(&value)?;
                Ok(Valid($wrapper(value)))
            }
        }
    )*};
}

#[cfg(feature = "validate")]
valid_extractors!(Json, Query, Path);
