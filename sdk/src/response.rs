//! What a handler returns.

use berth_plugin_api::HeadBuilder;
use http::StatusCode;
use serde::Serialize;

use crate::{Error, Json, Result};

/// An HTTP response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: StatusCode,
    /// Header names (lower-case) and values in one buffer, handed to the host as they are.
    headers: HeadBuilder,
    pub body: Vec<u8>,
}

impl Response {
    /// A response with a status and an empty body.
    pub fn new(status: StatusCode) -> Self {
        Response { status, headers: HeadBuilder::default(), body: Vec::new() }
    }
    /// The headers, for the host.
    pub(crate) fn into_parts(self) -> (StatusCode, berth_plugin_api::Head, Vec<u8>) {
        (self.status, self.headers.finish(), self.body)
    }
    /// A JSON response.
    pub fn json<T: Serialize>(status: StatusCode, value: &T) -> Result<Self> {
        let body = serde_json::to_vec(value).map_err(|e| Error::internal(format!("serialising the response: {e}")))?;
        Ok(Response::new(status).with_header("content-type", "application/json").with_body(body))
    }
    /// Adds a header (builder style).
    pub fn with_header(mut self, name: &str, value: &str) -> Self {
        // Room for a typical few headers at the first one, instead of growing in steps.
        self.headers.reserve(64, 2);
        self.headers.push(name, value, true);
        self
    }
    /// Sets the body (builder style).
    pub fn with_body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }
    /// The first header with this name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v)
    }
    /// Every header as (lower-case name, value).
    pub fn headers(&self) -> impl Iterator<Item = (&str, &str)> + '_ {
        self.headers.iter()
    }
    /// The body parsed as JSON (for tests).
    pub fn json_body<T: serde::de::DeserializeOwned>(&self) -> Result<T> {
        serde_json::from_slice(&self.body)
            .map_err(|e| Error::internal(format!("response is not the expected JSON: {e}")))
    }
}

/// Anything a handler may return.
pub trait IntoResponse {
    fn into_response(self) -> Result<Response>;
}

impl IntoResponse for Response {
    fn into_response(self) -> Result<Response> {
        Ok(self)
    }
}

impl<T: Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Result<Response> {
        Response::json(StatusCode::OK, &self.0)
    }
}

impl IntoResponse for String {
    fn into_response(self) -> Result<Response> {
        Ok(Response::new(StatusCode::OK).with_header("content-type", "text/plain; charset=utf-8").with_body(self))
    }
}

/// Raw bytes answer 200 `application/octet-stream`.
impl IntoResponse for Vec<u8> {
    fn into_response(self) -> Result<Response> {
        Ok(Response::new(StatusCode::OK).with_header("content-type", "application/octet-stream").with_body(self))
    }
}

impl IntoResponse for &'static str {
    fn into_response(self) -> Result<Response> {
        self.to_owned().into_response()
    }
}

/// `()` answers 204 No Content.
impl IntoResponse for () {
    fn into_response(self) -> Result<Response> {
        Ok(Response::new(StatusCode::NO_CONTENT))
    }
}

impl IntoResponse for StatusCode {
    fn into_response(self) -> Result<Response> {
        Ok(Response::new(self))
    }
}

/// Overrides the status of the inner response: `(StatusCode::CREATED, Json(todo))`.
impl<T: IntoResponse> IntoResponse for (StatusCode, T) {
    fn into_response(self) -> Result<Response> {
        let mut r = self.1.into_response()?;
        r.status = self.0;
        Ok(r)
    }
}

impl<T: IntoResponse, E: Into<Error>> IntoResponse for std::result::Result<T, E> {
    fn into_response(self) -> Result<Response> {
        self.map_err(Into::into).and_then(IntoResponse::into_response)
    }
}
