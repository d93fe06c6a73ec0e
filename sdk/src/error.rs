//! Errors a handler returns; each knows the HTTP status it maps to.

use std::borrow::Cow;
use std::fmt;

use http::StatusCode;

/// `Result` with the SDK's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A handler error: a status, a short machine-readable code and a message for the caller.
///
/// Any `std::error::Error` converts into a 500 `internal` error, so `?` works on library errors;
/// use the constructors to pick a status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    status: StatusCode,
    code: Cow<'static, str>,
    message: String,
    /// For a validation error: each field that failed and why.
    fields: Vec<FieldError>,
}

/// One field of a request that failed validation: where it is (`name`, `items[2].qty`; empty for
/// the value as a whole) and why.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FieldError {
    pub path: String,
    pub message: String,
}

impl Error {
    /// An error with an explicit status and code.
    pub fn new(status: StatusCode, code: impl Into<Cow<'static, str>>, message: impl Into<String>) -> Self {
        Self { status, code: code.into(), message: message.into(), fields: Vec::new() }
    }
    /// 400 `bad_request`.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }
    /// 404 `not_found`.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }
    /// 409 `conflict`.
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "conflict", message)
    }
    /// 422 `unprocessable`.
    pub fn unprocessable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, "unprocessable", message)
    }
    /// 500 `internal`.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
    }
    /// 503 `unavailable`.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message)
    }
    /// 422 `validation`, listing every field that failed. The caller gets
    /// `{"error": "validation", "message": "...", "request_id": "...", "fields": [{"path": "name",
    /// "message": "..."}]}`.
    pub fn validation(fields: Vec<FieldError>) -> Self {
        let listed: Vec<String> = fields
            .iter()
            .map(|f| if f.path.is_empty() { f.message.clone() } else { format!("`{}`: {}", f.path, f.message) })
            .collect();
        let message = match listed.len() {
            0 => "the request is invalid".to_owned(),
            _ => format!("invalid request: {}", listed.join("; ")),
        };
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, "validation", message).with_fields(fields)
    }
    /// The same error, listing `fields` (what [`Error::validation`] does).
    pub fn with_fields(mut self, fields: Vec<FieldError>) -> Self {
        self.fields = fields;
        self
    }
    /// The fields that failed validation (empty for any other error).
    pub fn fields(&self) -> &[FieldError] {
        &self.fields
    }
    pub fn status(&self) -> StatusCode {
        self.status
    }
    pub fn code(&self) -> &str {
        &self.code
    }
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}: {}", self.status.as_u16(), self.code, self.message)
    }
}

impl<E: std::error::Error + Send + Sync + 'static> From<E> for Error {
    fn from(e: E) -> Self {
        Error::internal(e.to_string())
    }
}
