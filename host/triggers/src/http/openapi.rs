//! The OpenAPI 3.1 document of the groups' HTTP functions: what `GET /openapi.json` answers and
//! `berth openapi` prints.
//!
//! Each group's plugin describes its HTTP functions (from their signatures: see the SDK's
//! `berth::openapi`) in its manifest (`GroupManifest::api`); this module turns those into
//! paths, one operation per route, with `operationId` `<group>.<function>`, the group as its
//! tag, route and query parameters, the request body, the success answer, and the host's error
//! body (`#/components/schemas/Error`) for what else it may answer. Schemas of different groups
//! that share a name but differ are kept apart under `<group>.<Name>`.

use std::collections::BTreeMap;

use berth_core::loader::{GroupManifest, TriggerSpec};
use serde_json::{json, Map, Value};

/// Where the document is served, and its title.
#[derive(Debug, Clone, serde::Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct OpenApiConfig {
    /// Serve the document at `path` (default true).
    #[serde(default = "default_true")]
    pub enabled: bool,
    #[serde(default = "default_path")]
    pub path: String,
    #[serde(default = "default_title")]
    pub title: String,
    #[serde(default = "default_version")]
    pub version: String,
}

fn default_true() -> bool {
    true
}
fn default_path() -> String {
    "/openapi.json".into()
}
fn default_title() -> String {
    "Berth functions".into()
}
fn default_version() -> String {
    "1.0.0".into()
}

impl Default for OpenApiConfig {
    fn default() -> Self {
        OpenApiConfig { enabled: true, path: default_path(), title: default_title(), version: default_version() }
    }
}

/// What a group's plugin said of one function (the SDK's `Operation`).
#[derive(Debug, Default, serde::Deserialize)]
struct Described {
    path: Option<Value>,
    query: Option<Value>,
    body: Option<DescribedBody>,
    #[serde(default)]
    response: Option<DescribedAnswer>,
    #[serde(default)]
    errors: bool,
    #[serde(default)]
    validated: bool,
    #[serde(default)]
    doc: String,
}

#[derive(Debug, serde::Deserialize)]
struct DescribedBody {
    content_type: String,
    schema: Value,
}

#[derive(Debug, serde::Deserialize)]
struct DescribedAnswer {
    status: String,
    content_type: Option<String>,
    schema: Option<Value>,
}

/// A group's description as its plugin exports it.
#[derive(Debug, Default, serde::Deserialize)]
struct GroupApi {
    #[serde(default)]
    functions: BTreeMap<String, Described>,
    #[serde(default)]
    schemas: Map<String, Value>,
}

/// The host's error body.
fn error_schema() -> Value {
    json!({
        "type": "object",
        "required": ["error", "message"],
        "properties": {
            "error": { "type": "string", "description": "a short machine-readable code (`not_found`, `validation`)" },
            "message": { "type": "string" },
            "request_id": { "type": "string" },
            "fields": {
                "type": "array",
                "description": "for `validation`: every field that failed",
                "items": {
                    "type": "object",
                    "required": ["path", "message"],
                    "properties": { "path": { "type": "string" }, "message": { "type": "string" } }
                }
            }
        }
    })
}

/// Replaces every `#/components/schemas/<name>` reference with `<prefix><name>`.
fn rename_refs(value: &mut Value, renamed: &BTreeMap<String, String>) {
    match value {
        Value::Object(map) => {
            if let Some(Value::String(r)) = map.get_mut("$ref") {
                if let Some(name) = r.strip_prefix("#/components/schemas/") {
                    if let Some(new) = renamed.get(name) {
                        *r = format!("#/components/schemas/{new}");
                    }
                }
            }
            map.values_mut().for_each(|v| rename_refs(v, renamed));
        }
        Value::Array(items) => items.iter_mut().for_each(|v| rename_refs(v, renamed)),
        _ => {}
    }
}

/// A route in OpenAPI's template syntax (`{*rest}` → `{rest}`), and its parameter names
/// (`*rest` for a rest parameter, which takes the remaining segments, `/` included).
fn template(route: &str) -> (String, Vec<String>) {
    let mut names = Vec::new();
    let path = route
        .split('/')
        .map(|seg| match seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
            Some(name) => {
                names.push(name.to_owned());
                let name = name.trim_start_matches('*');
                format!("{{{name}}}")
            }
            None => seg.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("/");
    (path, names)
}

/// The properties of an object schema (following one `$ref` into `schemas`), with whether each
/// is required.
fn properties(schema: &Value, schemas: &Map<String, Value>) -> Option<Vec<(String, Value, bool)>> {
    let schema = match schema.get("$ref").and_then(Value::as_str) {
        Some(r) => schemas.get(r.strip_prefix("#/components/schemas/")?)?,
        None => schema,
    };
    let props = schema.get("properties")?.as_object()?;
    let required: Vec<&str> = schema
        .get("required")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    Some(props.iter().map(|(k, v)| (k.clone(), v.clone(), required.contains(&k.as_str()))).collect())
}

/// The document for `groups` (their manifests, in serving order).
pub fn document(groups: &[&GroupManifest], config: &OpenApiConfig) -> Value {
    let mut paths: BTreeMap<String, Map<String, Value>> = BTreeMap::new();
    let mut components = Map::new();
    components.insert("Error".into(), error_schema());
    let mut tags = Vec::new();
    for manifest in groups {
        let mut api: GroupApi = manifest
            .api
            .as_deref()
            .and_then(|text| match serde_json::from_str(text) {
                Ok(api) => Some(api),
                Err(e) => {
                    tracing::warn!(group = %manifest.name, error = %e, "the group's API description does not parse; its operations are listed without schemas");
                    None
                }
            })
            .unwrap_or_default();
        // Names another group (or the host) already uses with a different schema get this
        // group's prefix.
        let mut renamed = BTreeMap::new();
        for (name, schema) in &api.schemas {
            if components.get(name).is_some_and(|s| s != schema) {
                renamed.insert(name.clone(), format!("{}.{name}", manifest.name));
            }
        }
        let mut own = std::mem::take(&mut api.schemas);
        for schema in own.values_mut() {
            rename_refs(schema, &renamed);
        }
        let mut any = false;
        for f in &manifest.functions {
            for t in &f.triggers {
                let TriggerSpec::Http { method, route } = t else { continue };
                any = true;
                let mut d = api.functions.remove(&f.name).unwrap_or_default();
                for v in [d.path.as_mut(), d.query.as_mut()].into_iter().flatten() {
                    rename_refs(v, &renamed);
                }
                if let Some(b) = d.body.as_mut() {
                    rename_refs(&mut b.schema, &renamed);
                }
                if let Some(s) = d.response.as_mut().and_then(|r| r.schema.as_mut()) {
                    rename_refs(s, &renamed);
                }
                let (path, names) = template(route);
                let op = operation(&manifest.name, &f.name, &names, &d, &own);
                paths.entry(path).or_default().insert(method.as_str().to_ascii_lowercase(), op);
            }
        }
        for (name, schema) in own {
            let name = renamed.get(&name).cloned().unwrap_or(name);
            components.entry(name).or_insert(schema);
        }
        if any {
            tags.push(json!({ "name": manifest.name, "description": format!("group {} {}", manifest.name, manifest.version) }));
        }
    }
    json!({
        "openapi": "3.1.0",
        "info": { "title": config.title, "version": config.version },
        "tags": tags,
        "paths": paths,
        "components": { "schemas": components },
    })
}

fn operation(group: &str, function: &str, names: &[String], d: &Described, schemas: &Map<String, Value>) -> Value {
    let mut parameters = Vec::new();
    // Route parameters: from `Path<T>` (one property each, or the one parameter), else text.
    let path_props = d.path.as_ref().and_then(|s| properties(s, schemas));
    for raw in names {
        let name = raw.trim_start_matches('*');
        let schema = match (&path_props, &d.path) {
            (Some(props), _) => props.iter().find(|(k, ..)| k == name).map(|(_, s, _)| s.clone()),
            (None, Some(single)) if names.len() == 1 => Some(single.clone()),
            _ => None,
        };
        let mut param = json!({
            "name": name, "in": "path", "required": true,
            "schema": schema.unwrap_or_else(|| json!({ "type": "string" })),
        });
        if raw.starts_with('*') {
            // The remaining segments, `/` included: clients encode each segment, not the `/`.
            param["description"] = json!("the rest of the path (may contain `/`)");
            param["x-berth-rest"] = json!(true);
        }
        parameters.push(param);
    }
    match d.query.as_ref().map(|s| properties(s, schemas)) {
        Some(Some(props)) => {
            for (name, schema, required) in props {
                parameters.push(json!({ "name": name, "in": "query", "required": required, "schema": schema }));
            }
        }
        // A query type without a schema: free-form parameters (OpenAPI's object in form style).
        Some(None) => parameters.push(json!({
            "name": "query", "in": "query", "style": "form", "explode": true,
            "description": "the function reads its query parameters with a type that has no schema",
            "schema": { "type": "object", "additionalProperties": { "type": "string" } },
        })),
        None => {}
    }
    let mut op = Map::new();
    op.insert("operationId".into(), json!(format!("{group}.{function}")));
    op.insert("tags".into(), json!([group]));
    let summary = d.doc.lines().next().unwrap_or_default().trim();
    op.insert("summary".into(), json!(if summary.is_empty() { function } else { summary }));
    if !d.doc.is_empty() {
        op.insert("description".into(), json!(d.doc));
    }
    if !parameters.is_empty() {
        op.insert("parameters".into(), Value::Array(parameters));
    }
    if let Some(b) = &d.body {
        op.insert(
            "requestBody".into(),
            json!({ "required": true, "content": { b.content_type.as_str(): { "schema": b.schema } } }),
        );
    }
    let mut responses = Map::new();
    let answer = d.response.as_ref();
    let status = answer.map_or("200", |a| a.status.as_str());
    let mut ok = json!({ "description": "success" });
    if let Some(a) = answer {
        if let Some(ct) = &a.content_type {
            ok["content"] = json!({ ct.as_str(): { "schema": a.schema.clone().unwrap_or_else(|| json!({})) } });
        }
    }
    responses.insert(status.to_owned(), ok);
    let error = |description: &str| json!({ "description": description, "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } });
    if d.validated {
        responses.insert("422".into(), error("a field failed validation (`validation`, with `fields`)"));
    }
    if d.body.is_some() || d.query.is_some() || !names.is_empty() {
        responses.insert("400".into(), error("the request does not parse"));
    }
    responses.insert(
        "default".into(),
        error(if d.errors { "an error the function or the host answered" } else { "an error the host answered" }),
    );
    op.insert("responses".into(), Value::Object(responses));
    Value::Object(op)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_become_templates_with_their_parameters() {
        assert_eq!(template("/todos/{id}"), ("/todos/{id}".to_owned(), vec!["id".to_owned()]));
        assert_eq!(template("/files/{*name}"), ("/files/{name}".to_owned(), vec!["*name".to_owned()]));
        assert_eq!(template("/a/b"), ("/a/b".to_owned(), vec![]));
    }

    #[test]
    fn references_to_a_renamed_schema_follow_it() {
        let mut v = json!({ "items": { "$ref": "#/components/schemas/Todo" }, "x": [{ "$ref": "#/components/schemas/Other" }] });
        let renamed = BTreeMap::from([("Todo".to_owned(), "g.Todo".to_owned())]);
        rename_refs(&mut v, &renamed);
        assert_eq!(v["items"]["$ref"], "#/components/schemas/g.Todo");
        assert_eq!(v["x"][0]["$ref"], "#/components/schemas/Other");
    }
}
