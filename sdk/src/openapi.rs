//! What an HTTP function's signature says about its API, for the host's OpenAPI document.
//!
//! `#[berth::http]` generates, for each function, a describer that looks at the types of its
//! arguments and its return value: `Json<T>` (also inside `Valid`) is the request body,
//! `Path<T>` the route parameters, `Query<T>` the query parameters, and the success answer is
//! what the return type says (`Json<T>`, text, no content). Types that implement
//! [`schemars::JsonSchema`] get their schema; others are described as "any JSON" (or text). A
//! handler returning `Result` may answer the host's error body.
//!
//! Derive `schemars::JsonSchema` on request and response types (add `schemars = "1"` to the
//! group's dependencies) to get their schemas in `/openapi.json` and in the TypeScript client.
//!
//! The selection is autoref specialization over the concrete types the macro sees: a probe
//! `&&&Probe<T>` has a method from the most specific trait that applies.

use std::marker::PhantomData;

use schemars::{JsonSchema, SchemaGenerator};
use serde::Serialize;
use serde_json::{json, Value};

use crate::request::{Bytes, Json, Path, Query};

/// What one function's signature describes.
#[derive(Debug, Default, Serialize)]
pub struct Operation {
    /// The schema of `Path<T>`'s `T` (an object with one property per parameter, or the one
    /// parameter's schema).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<Value>,
    /// The schema of `Query<T>`'s `T`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub query: Option<Value>,
    /// The request body: content type and schema.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body: Option<Body>,
    /// The success answer.
    pub response: Answer,
    /// The handler returns `Result` (it may answer the error body).
    pub errors: bool,
    /// The body or query is checked with `garde` rules (it may answer 422 `validation`).
    pub validated: bool,
    /// The handler's doc comment.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub doc: String,
}

/// A request body.
#[derive(Debug, Serialize)]
pub struct Body {
    pub content_type: &'static str,
    pub schema: Value,
}

/// The success answer of an operation.
#[derive(Debug, Serialize)]
pub struct Answer {
    /// `200`, `204`, or `2XX` when the handler picks its status at run time.
    pub status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content_type: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schema: Option<Value>,
}

impl Default for Answer {
    fn default() -> Self {
        Answer { status: "200", content_type: None, schema: None }
    }
}

/// Collects the operations of a group, with the schemas they refer to.
pub struct Describer {
    generator: SchemaGenerator,
    pub(crate) op: Operation,
}

impl Default for Describer {
    fn default() -> Self {
        let mut settings = schemars::generate::SchemaSettings::draft2020_12();
        settings.definitions_path = "#/components/schemas/".into();
        Describer { generator: settings.into_generator(), op: Operation::default() }
    }
}

impl Describer {
    fn schema<T: JsonSchema>(&mut self) -> Value {
        self.generator.subschema_for::<T>().to_value()
    }

    /// The operation described so far, and a fresh one for the next function.
    pub(crate) fn take(&mut self) -> Operation {
        std::mem::take(&mut self.op)
    }

    /// Every named schema the operations refer to (`#/components/schemas/<name>`).
    pub(crate) fn schemas(&mut self) -> serde_json::Map<String, Value> {
        self.generator.take_definitions(true)
    }

    #[doc(hidden)]
    pub fn set_doc(&mut self, doc: &str) {
        self.op.doc = doc.trim().to_owned();
    }

    #[doc(hidden)]
    pub fn set_errors(&mut self) {
        self.op.errors = true;
    }
}

/// A type the describer looks at.
#[doc(hidden)]
pub struct Probe<T: ?Sized>(PhantomData<fn() -> Box<T>>);

impl<T: ?Sized> Probe<T> {
    #[allow(clippy::new_without_default)]
    pub fn new() -> Self {
        Probe(PhantomData)
    }
}

// === arguments ===

/// Arguments whose value type has a schema.
#[doc(hidden)]
pub trait ArgSchema {
    fn describe_arg(&self, d: &mut Describer);
}

/// Arguments of a known kind without a schema.
#[doc(hidden)]
pub trait ArgKind {
    fn describe_arg(&self, d: &mut Describer);
}

/// Anything else (`Context`, `Request`, `Headers`): nothing to say.
#[doc(hidden)]
pub trait ArgOther {
    fn describe_arg(&self, d: &mut Describer);
}

impl<T: JsonSchema> ArgSchema for &&Probe<Json<T>> {
    fn describe_arg(&self, d: &mut Describer) {
        let schema = d.schema::<T>();
        d.op.body = Some(Body { content_type: "application/json", schema });
    }
}

impl<T: JsonSchema> ArgSchema for &&Probe<Path<T>> {
    fn describe_arg(&self, d: &mut Describer) {
        d.op.path = Some(d.schema::<T>());
    }
}

impl<T: JsonSchema> ArgSchema for &&Probe<Query<T>> {
    fn describe_arg(&self, d: &mut Describer) {
        d.op.query = Some(d.schema::<T>());
    }
}

#[cfg(feature = "validate")]
impl<T: JsonSchema> ArgSchema for &&Probe<crate::Valid<Json<T>>> {
    fn describe_arg(&self, d: &mut Describer) {
        (&&&Probe::<Json<T>>::new()).describe_arg(d);
        d.op.validated = true;
    }
}

#[cfg(feature = "validate")]
impl<T: JsonSchema> ArgSchema for &&Probe<crate::Valid<Query<T>>> {
    fn describe_arg(&self, d: &mut Describer) {
        (&&&Probe::<Query<T>>::new()).describe_arg(d);
        d.op.validated = true;
    }
}

#[cfg(feature = "validate")]
impl<T: JsonSchema> ArgSchema for &&Probe<crate::Valid<Path<T>>> {
    fn describe_arg(&self, d: &mut Describer) {
        (&&&Probe::<Path<T>>::new()).describe_arg(d);
        d.op.validated = true;
    }
}

impl<T> ArgKind for &Probe<Json<T>> {
    fn describe_arg(&self, d: &mut Describer) {
        d.op.body = Some(Body { content_type: "application/json", schema: json!({}) });
    }
}

#[cfg(feature = "validate")]
impl<T> ArgKind for &Probe<crate::Valid<Json<T>>> {
    fn describe_arg(&self, d: &mut Describer) {
        d.op.body = Some(Body { content_type: "application/json", schema: json!({}) });
        d.op.validated = true;
    }
}

/// A query type without a schema: free-form parameters.
impl<T> ArgKind for &Probe<Query<T>> {
    fn describe_arg(&self, d: &mut Describer) {
        d.op.query = Some(json!({ "type": "object" }));
    }
}

#[cfg(feature = "validate")]
impl<T> ArgKind for &Probe<crate::Valid<Query<T>>> {
    fn describe_arg(&self, d: &mut Describer) {
        d.op.query = Some(json!({ "type": "object" }));
        d.op.validated = true;
    }
}

impl ArgKind for &Probe<String> {
    fn describe_arg(&self, d: &mut Describer) {
        d.op.body = Some(Body { content_type: "text/plain", schema: json!({ "type": "string" }) });
    }
}

impl ArgKind for &Probe<Bytes> {
    fn describe_arg(&self, d: &mut Describer) {
        d.op.body = Some(Body { content_type: "application/octet-stream", schema: json!({}) });
    }
}

impl<T: ?Sized> ArgOther for Probe<T> {
    fn describe_arg(&self, _d: &mut Describer) {}
}

// === the success answer ===

/// Answers whose body type has a schema.
#[doc(hidden)]
pub trait AnswerSchema {
    fn describe_answer(&self, d: &mut Describer);
}

/// Answers of a known kind.
#[doc(hidden)]
pub trait AnswerKind {
    fn describe_answer(&self, d: &mut Describer);
}

/// Anything else (`Response`): a 200 of unknown content.
#[doc(hidden)]
pub trait AnswerOther {
    fn describe_answer(&self, d: &mut Describer);
}

fn json_answer(status: &'static str, schema: Value) -> Answer {
    Answer { status, content_type: Some("application/json"), schema: Some(schema) }
}

impl<T: JsonSchema> AnswerSchema for &&Probe<Json<T>> {
    fn describe_answer(&self, d: &mut Describer) {
        let schema = d.schema::<T>();
        d.op.response = json_answer("200", schema);
    }
}

impl<T: JsonSchema> AnswerSchema for &&Probe<(crate::StatusCode, Json<T>)> {
    fn describe_answer(&self, d: &mut Describer) {
        let schema = d.schema::<T>();
        d.op.response = json_answer("2XX", schema);
    }
}

impl<T> AnswerKind for &Probe<Json<T>> {
    fn describe_answer(&self, d: &mut Describer) {
        d.op.response = json_answer("200", json!({}));
    }
}

impl<T> AnswerKind for &Probe<(crate::StatusCode, Json<T>)> {
    fn describe_answer(&self, d: &mut Describer) {
        d.op.response = json_answer("2XX", json!({}));
    }
}

fn text_answer() -> Answer {
    Answer { status: "200", content_type: Some("text/plain"), schema: Some(json!({ "type": "string" })) }
}

impl AnswerKind for &Probe<String> {
    fn describe_answer(&self, d: &mut Describer) {
        d.op.response = text_answer();
    }
}

impl AnswerKind for &Probe<&'static str> {
    fn describe_answer(&self, d: &mut Describer) {
        d.op.response = text_answer();
    }
}

impl AnswerKind for &Probe<()> {
    fn describe_answer(&self, d: &mut Describer) {
        d.op.response = Answer { status: "204", content_type: None, schema: None };
    }
}

impl AnswerKind for &Probe<crate::StatusCode> {
    fn describe_answer(&self, d: &mut Describer) {
        d.op.response = Answer { status: "2XX", content_type: None, schema: None };
    }
}

impl<T: ?Sized> AnswerOther for Probe<T> {
    fn describe_answer(&self, d: &mut Describer) {
        d.op.response = Answer::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, schemars::JsonSchema)]
    #[allow(dead_code)]
    struct Note {
        text: String,
        stars: Option<u8>,
    }

    #[allow(dead_code)]
    struct NoSchema;

    #[test]
    #[allow(clippy::needless_borrow, reason = "the probe's three borrows are what selects the trait")]
    fn arguments_and_answers_are_told_apart_by_their_types() {
        let mut d = Describer::default();
        (&&&Probe::<Json<Note>>::new()).describe_arg(&mut d);
        (&&&Probe::<Path<u64>>::new()).describe_arg(&mut d);
        (&&&Probe::<crate::Context>::new()).describe_arg(&mut d);
        (&&&Probe::<(crate::StatusCode, Json<Note>)>::new()).describe_answer(&mut d);
        let op = d.take();
        assert_eq!(op.body.as_ref().unwrap().schema, json!({ "$ref": "#/components/schemas/Note" }));
        assert_eq!(op.path, Some(json!({ "type": "integer", "format": "uint64", "minimum": 0 })));
        assert_eq!(op.response.status, "2XX");
        let schemas = d.schemas();
        assert_eq!(schemas["Note"]["required"], json!(["text"]), "{:?}", schemas);

        (&&&Probe::<Json<NoSchema>>::new()).describe_arg(&mut d);
        (&&&Probe::<()>::new()).describe_answer(&mut d);
        let op = d.take();
        assert_eq!(op.body.unwrap().schema, json!({}), "JSON without a schema is any JSON");
        assert_eq!(op.response.status, "204");
    }
}
