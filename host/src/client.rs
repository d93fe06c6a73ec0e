//! `berth client --lang ts`: a typed TypeScript client from the OpenAPI document of the groups
//! (what `GET /openapi.json` serves and `berth openapi` prints).
//!
//! The client has no dependencies: it calls the host with the platform's `fetch` (browsers,
//! Node.js 18+, Deno, Bun). Each component schema becomes a TypeScript type; each HTTP function
//! becomes one method, `client.<group>.<function>(path parameters..., body?, query?, options?)`,
//! resolving to the function's answer type and rejecting with a `BerthError` that carries the
//! status, Berth's error code, the request id and, for validation errors, the failing fields.
//! Names are camelCase for functions and parameters and PascalCase for types.
//!
//! The runtime part (`client/runtime.ts`) is the same in every client; the rest is written from
//! the document here.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use serde_json::{Map, Value};

/// The language-independent runtime of the TypeScript client.
const TS_RUNTIME: &str = include_str!("client/runtime.ts");

/// Why a document cannot become a client.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("the document is not OpenAPI 3.x (its `openapi` field is {0}); give berth client the output of `berth openapi` or a host's /openapi.json")]
    NotOpenApi(String),
    #[error("operation {method} {path} has no operationId of the form `<group>.<function>` (found {found:?}); Berth's documents always name them, so this document was not written by Berth")]
    OperationId { method: String, path: String, found: Option<String> },
    #[error("two operations become the same client method `{group}.{method}`: {first} and {second}; rename one of the functions")]
    Clash { group: String, method: String, first: String, second: String },
    #[error("the document has no HTTP functions: nothing to call (are the groups in berth.toml loaded, and do they have #[berth::http] functions?)")]
    Empty,
}

/// Identifiers a type may not take: the runtime's own and the globals a client uses.
const RESERVED_TYPES: &[&str] = &[
    "BerthError",
    "FieldError",
    "ClientOptions",
    "CallOptions",
    "Client",
    "Operation",
    "BodyKind",
    "AnswerKind",
    "Error",
    "Response",
    "Request",
    "Headers",
    "Blob",
    "Promise",
    "Record",
    "Array",
    "Object",
    "String",
    "Number",
    "Boolean",
    "Date",
    "Map",
    "Set",
    "URL",
    "URLSearchParams",
    "AbortSignal",
    "BodyInit",
];

/// Words a parameter (a variable) may not be named.
const RESERVED_WORDS: &[&str] = &[
    "break",
    "case",
    "catch",
    "class",
    "const",
    "continue",
    "debugger",
    "default",
    "delete",
    "do",
    "else",
    "enum",
    "export",
    "extends",
    "false",
    "finally",
    "for",
    "function",
    "if",
    "import",
    "in",
    "instanceof",
    "new",
    "null",
    "return",
    "super",
    "switch",
    "this",
    "throw",
    "true",
    "try",
    "typeof",
    "var",
    "void",
    "while",
    "with",
    "let",
    "static",
    "yield",
    "await",
    "implements",
    "interface",
    "package",
    "private",
    "protected",
    "public",
    "arguments",
    "eval",
    "body",
    "query",
    "options",
    "client",
];

fn words(name: &str) -> Vec<String> {
    // Splits on anything not alphanumeric, and before an upper-case letter that follows a
    // lower-case one (`listTodos`, `list_todos` and `list-todos` are the same words).
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut prev_lower = false;
    for c in name.chars() {
        if !c.is_ascii_alphanumeric() {
            if !cur.is_empty() {
                out.push(std::mem::take(&mut cur));
            }
            prev_lower = false;
            continue;
        }
        if c.is_ascii_uppercase() && prev_lower && !cur.is_empty() {
            out.push(std::mem::take(&mut cur));
        }
        prev_lower = c.is_ascii_lowercase() || c.is_ascii_digit();
        cur.push(c);
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

fn capitalised(word: &str) -> String {
    let mut c = word.chars();
    match c.next() {
        Some(f) => f.to_ascii_uppercase().to_string() + c.as_str(),
        None => String::new(),
    }
}

/// `list_todos` → `listTodos`; a name starting with a digit gets a `_`.
fn camel(name: &str) -> String {
    let mut out = String::new();
    for (i, w) in words(name).iter().enumerate() {
        if i == 0 {
            out.push_str(&w.to_ascii_lowercase());
        } else {
            out.push_str(&capitalised(&w.to_ascii_lowercase()));
        }
    }
    if out.is_empty() || out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, '_');
    }
    out
}

/// `todo.Todo` → `TodoTodo`, keeping the case inside words (`HTTPError` stays).
fn pascal(name: &str) -> String {
    let mut out: String = words(name).iter().map(|w| capitalised(w)).collect();
    if out.is_empty() || out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, 'T');
    }
    out
}

/// A variable name for a parameter.
fn variable(name: &str) -> String {
    let v = camel(name);
    if RESERVED_WORDS.contains(&v.as_str()) {
        format!("{v}_")
    } else {
        v
    }
}

/// A property key: bare when it is an identifier, quoted otherwise.
fn key(name: &str) -> String {
    let ident = name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_' || c == '$')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$');
    if ident {
        name.to_owned()
    } else {
        Value::String(name.to_owned()).to_string()
    }
}

/// A JSDoc comment of `text` at `indent`, or nothing.
fn jsdoc(text: Option<&str>, indent: &str) -> String {
    let Some(text) = text.map(str::trim).filter(|t| !t.is_empty()) else { return String::new() };
    let text = text.replace("*/", "*\\/");
    let lines: Vec<&str> = text.lines().collect();
    if lines.len() == 1 {
        return format!("{indent}/** {} */\n", lines[0]);
    }
    let mut out = format!("{indent}/**\n");
    for l in lines {
        let _ = writeln!(out, "{indent} *{}{}", if l.is_empty() { "" } else { " " }, l);
    }
    let _ = writeln!(out, "{indent} */");
    out
}

/// Turns JSON Schemas (the 2020-12 dialect OpenAPI 3.1 uses) into TypeScript types.
struct Types {
    /// Component schema name → its TypeScript name.
    names: BTreeMap<String, String>,
}

impl Types {
    fn new(schemas: &Map<String, Value>) -> Types {
        let mut names = BTreeMap::new();
        let mut taken: BTreeSet<String> = RESERVED_TYPES.iter().map(|s| (*s).to_owned()).collect();
        for name in schemas.keys() {
            let base = match pascal(name) {
                // The host's error body: `Error` would shadow the global.
                n if n == "Error" => "ErrorBody".to_owned(),
                n if taken.contains(&n) => format!("{n}Type"),
                n => n,
            };
            let mut ident = base.clone();
            let mut i = 2;
            while !taken.insert(ident.clone()) {
                ident = format!("{base}{i}");
                i += 1;
            }
            names.insert(name.clone(), ident);
        }
        Types { names }
    }

    fn reference(&self, r: &str) -> String {
        let name = r
            .strip_prefix("#/components/schemas/")
            .or_else(|| r.strip_prefix("#/$defs/"))
            .or_else(|| r.strip_prefix("#/definitions/"));
        match name.and_then(|n| self.names.get(n)) {
            Some(ident) => ident.clone(),
            None => "unknown".to_owned(),
        }
    }

    /// The type of `schema`; `indent` is the indentation of the line it starts on.
    fn ts(&self, schema: &Value, indent: &str) -> String {
        let obj = match schema {
            Value::Bool(true) => return "unknown".into(),
            Value::Bool(false) => return "never".into(),
            Value::Object(o) => o,
            _ => return "unknown".into(),
        };
        if let Some(r) = obj.get("$ref").and_then(Value::as_str) {
            return self.reference(r);
        }
        if let Some(c) = obj.get("const") {
            return literal(c);
        }
        if let Some(Value::Array(values)) = obj.get("enum") {
            return union(values.iter().map(literal).collect());
        }
        for (k, join) in [("oneOf", " | "), ("anyOf", " | "), ("allOf", " & ")] {
            if let Some(Value::Array(parts)) = obj.get(k) {
                let mut base = obj.clone();
                base.remove(k);
                let mut types: Vec<String> = parts.iter().map(|p| self.ts(p, indent)).collect();
                // Properties beside the combinator (an internally tagged enum's shared ones).
                if base.contains_key("properties") {
                    let shared = self.ts(&Value::Object(base), indent);
                    types = types.into_iter().map(|t| format!("{} & {shared}", paren(&t))).collect();
                }
                types.dedup();
                return if join == " | " {
                    union(types)
                } else {
                    types.iter().map(|t| paren(t)).collect::<Vec<_>>().join(join)
                };
            }
        }
        match obj.get("type") {
            Some(Value::Array(kinds)) => {
                let types = kinds
                    .iter()
                    .filter_map(Value::as_str)
                    .map(|k| {
                        let mut one = obj.clone();
                        one.insert("type".into(), Value::String(k.to_owned()));
                        self.ts(&Value::Object(one), indent)
                    })
                    .collect();
                union(types)
            }
            Some(Value::String(kind)) => match kind.as_str() {
                "string" => "string".into(),
                "integer" | "number" => "number".into(),
                "boolean" => "boolean".into(),
                "null" => "null".into(),
                "array" => self.array(obj, indent),
                "object" => self.object(obj, indent),
                _ => "unknown".into(),
            },
            _ if obj.contains_key("properties") || obj.contains_key("additionalProperties") => self.object(obj, indent),
            _ if obj.contains_key("items") || obj.contains_key("prefixItems") => self.array(obj, indent),
            _ => "unknown".into(),
        }
    }

    fn array(&self, obj: &Map<String, Value>, indent: &str) -> String {
        if let Some(Value::Array(items)) = obj.get("prefixItems") {
            let parts: Vec<String> = items.iter().map(|i| self.ts(i, indent)).collect();
            return format!("[{}]", parts.join(", "));
        }
        match obj.get("items") {
            Some(items) => format!("{}[]", paren(&self.ts(items, indent))),
            None => "unknown[]".into(),
        }
    }

    fn object(&self, obj: &Map<String, Value>, indent: &str) -> String {
        let props = obj.get("properties").and_then(Value::as_object);
        let extra = match obj.get("additionalProperties") {
            None | Some(Value::Bool(false)) => None,
            Some(s) => Some(self.ts(s, indent)),
        };
        let Some(props) = props.filter(|p| !p.is_empty()) else {
            return format!("Record<string, {}>", extra.unwrap_or_else(|| "unknown".into()));
        };
        let required: BTreeSet<&str> =
            obj.get("required").and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str).collect();
        let inner = format!("{indent}  ");
        let mut out = String::from("{\n");
        for (name, schema) in props {
            out.push_str(&jsdoc(schema.get("description").and_then(Value::as_str), &inner));
            let optional = if required.contains(name.as_str()) { "" } else { "?" };
            let _ = writeln!(out, "{inner}{}{optional}: {};", key(name), self.ts(schema, &inner));
        }
        if let Some(extra) = extra {
            // An index signature must admit every property's type too.
            let _ = writeln!(out, "{inner}[key: string]: unknown; // additional properties: {extra}");
        }
        let _ = write!(out, "{indent}}}");
        out
    }
}

fn literal(v: &Value) -> String {
    match v {
        Value::String(_) | Value::Number(_) | Value::Bool(_) | Value::Null => v.to_string(),
        _ => "unknown".into(),
    }
}

fn union(mut types: Vec<String>) -> String {
    let mut seen = BTreeSet::new();
    types.retain(|t| seen.insert(t.clone()));
    match types.len() {
        0 => "never".into(),
        1 => types.remove(0),
        _ => types.iter().map(|t| paren(t)).collect::<Vec<_>>().join(" | "),
    }
}

/// `t` wrapped in parentheses when it is a union or intersection (so `[]` or `&` binds right).
fn paren(t: &str) -> String {
    let mut depth = 0i32;
    for c in t.chars() {
        match c {
            '{' | '(' | '[' | '<' => depth += 1,
            '}' | ')' | ']' | '>' => depth -= 1,
            '|' | '&' if depth == 0 => return format!("({t})"),
            _ => {}
        }
    }
    t.to_owned()
}

/// One HTTP function of the document, as a client method.
struct Method {
    group: String,
    name: String,
    operation_id: String,
    http_method: String,
    /// The path as a template literal body (`/todos/${segment(id)}`).
    path: String,
    /// `(variable, type)` of each route parameter, in route order.
    path_params: Vec<(String, String)>,
    /// The query object's type and whether any of its properties is required.
    query: Option<(String, bool)>,
    /// The body's kind (`json`, `text`, `bytes`) and type.
    body: Option<(&'static str, String)>,
    /// The answer's kind and type.
    answer: (&'static str, String),
    doc: Option<String>,
}

const METHODS: &[&str] = &["get", "put", "post", "delete", "options", "head", "patch", "trace"];

fn content_kind(content_type: &str) -> &'static str {
    let ct = content_type.to_ascii_lowercase();
    if ct.starts_with("application/json") || (ct.starts_with("application/") && ct.contains("+json")) {
        "json"
    } else if ct.starts_with("text/") {
        "text"
    } else {
        "bytes"
    }
}

fn methods(doc: &Value, types: &Types) -> Result<Vec<Method>, ClientError> {
    let mut out = Vec::new();
    let paths = doc.get("paths").and_then(Value::as_object).cloned().unwrap_or_default();
    for (path, item) in &paths {
        let Some(item) = item.as_object() else { continue };
        for (method, op) in item {
            if !METHODS.contains(&method.as_str()) {
                continue;
            }
            let found = op.get("operationId").and_then(Value::as_str);
            let Some((group, function)) = found.and_then(|id| id.split_once('.')) else {
                return Err(ClientError::OperationId {
                    method: method.to_ascii_uppercase(),
                    path: path.clone(),
                    found: found.map(str::to_owned),
                });
            };
            let params: Vec<&Value> = item
                .get("parameters")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .chain(op.get("parameters").and_then(Value::as_array).into_iter().flatten())
                .collect();
            let in_ = |p: &&Value, place: &str| p.get("in").and_then(Value::as_str) == Some(place);
            // The path with each `{name}` replaced by its encoded argument.
            let mut path_params = Vec::new();
            let mut template = String::new();
            for seg in path.split('/').skip(1) {
                template.push('/');
                match seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                    Some(name) => {
                        let p = params
                            .iter()
                            .find(|p| in_(p, "path") && p.get("name").and_then(Value::as_str) == Some(name));
                        let ty = p.and_then(|p| p.get("schema")).map_or("string".into(), |s| types.ts(s, "    "));
                        let is_rest = p.and_then(|p| p.get("x-berth-rest")).and_then(Value::as_bool) == Some(true);
                        let var = variable(name);
                        let _ = write!(template, "${{{}({var})}}", if is_rest { "rest" } else { "segment" });
                        path_params.push((var, ty));
                    }
                    None => template.push_str(&seg.replace('`', "\\`").replace("${", "\\${")),
                }
            }
            let query_params: Vec<&&Value> = params.iter().filter(|p| in_(p, "query")).collect();
            let query = (!query_params.is_empty()).then(|| {
                let mut ty = String::from("{ ");
                let mut any_required = false;
                let free_form = query_params.iter().any(|p| {
                    p.get("style").and_then(Value::as_str) == Some("form")
                        && p.pointer("/schema/type").and_then(Value::as_str) == Some("object")
                });
                if free_form {
                    // Parameters the document cannot name: any, of the types a URL can carry.
                    ty.push_str("[name: string]: string | number | boolean | null | undefined | (string | number | boolean)[]; ");
                }
                for p in query_params.iter().filter(|_| !free_form) {
                    let name = p.get("name").and_then(Value::as_str).unwrap_or_default();
                    let required = p.get("required").and_then(Value::as_bool) == Some(true);
                    any_required |= required;
                    let schema = p.get("schema").cloned().unwrap_or(Value::Bool(true));
                    let _ = write!(ty, "{}{}: {}; ", key(name), if required { "" } else { "?" }, types.ts(&schema, "    "));
                }
                ty.push('}');
                (ty, any_required)
            });
            let body = op.pointer("/requestBody/content").and_then(Value::as_object).and_then(|c| c.iter().next()).map(
                |(ct, media)| {
                    let kind = content_kind(ct);
                    let ty = match kind {
                        "json" => media.get("schema").map_or("unknown".into(), |s| types.ts(s, "    ")),
                        "text" => "string".into(),
                        _ => "Blob | ArrayBuffer | Uint8Array".into(),
                    };
                    (kind, ty)
                },
            );
            let responses = op.get("responses").and_then(Value::as_object);
            let success = responses
                .into_iter()
                .flatten()
                .find(|(status, _)| status.starts_with('2'))
                .map(|(status, r)| (status.as_str(), r));
            let answer = match success {
                None => ("auto", "unknown".to_owned()),
                Some((status, r)) => match r.get("content").and_then(Value::as_object).and_then(|c| c.iter().next()) {
                    None if status == "204" => ("none", "void".to_owned()),
                    None => ("auto", "unknown".to_owned()),
                    Some((ct, media)) => match content_kind(ct) {
                        "json" => ("json", media.get("schema").map_or("unknown".into(), |s| types.ts(s, "    "))),
                        "text" => ("text", "string".into()),
                        _ => ("bytes", "Blob".into()),
                    },
                },
            };
            let summary = op.get("summary").and_then(Value::as_str);
            let description = op.get("description").and_then(Value::as_str);
            let doc_text = match (summary, description) {
                (_, Some(d)) => Some(d.to_owned()),
                (Some(s), None) => Some(s.to_owned()),
                _ => None,
            };
            out.push(Method {
                group: group.to_owned(),
                name: camel(function),
                operation_id: format!("{group}.{function}"),
                http_method: method.to_ascii_uppercase(),
                path: template,
                path_params,
                query,
                body,
                answer,
                doc: Some(match doc_text {
                    Some(d) if d.contains(path.as_str()) => format!("{d}\n\n(`{group}.{function}`)"),
                    Some(d) => format!("{d}\n\n`{} {path}` (`{group}.{function}`)", method.to_ascii_uppercase()),
                    None => format!("`{} {path}` (`{group}.{function}`)", method.to_ascii_uppercase()),
                }),
            });
        }
    }
    Ok(out)
}

/// A generated client: its source, and how many functions it calls.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Generated {
    pub code: String,
    pub functions: usize,
}

/// The TypeScript client of `doc`, an OpenAPI 3.x document as Berth writes it.
pub fn typescript(doc: &Value) -> Result<Generated, ClientError> {
    let version = doc.get("openapi");
    if !version.and_then(Value::as_str).is_some_and(|v| v.starts_with("3.")) {
        return Err(ClientError::NotOpenApi(version.map_or("missing".into(), Value::to_string)));
    }
    let schemas = doc.pointer("/components/schemas").and_then(Value::as_object).cloned().unwrap_or_default();
    let types = Types::new(&schemas);
    let methods = methods(doc, &types)?;
    if methods.is_empty() {
        return Err(ClientError::Empty);
    }

    // Groups in the document's tag order, then any others in first-seen order.
    let mut order: Vec<String> = doc
        .get("tags")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|t| t.get("name").and_then(Value::as_str).map(str::to_owned))
        .collect();
    for m in &methods {
        if !order.contains(&m.group) {
            order.push(m.group.clone());
        }
    }
    let mut by_group: Vec<(String, Vec<&Method>)> = Vec::new();
    for g in &order {
        let ms: Vec<&Method> = methods.iter().filter(|m| &m.group == g).collect();
        if ms.is_empty() {
            continue;
        }
        let mut seen: BTreeMap<&str, &str> = BTreeMap::new();
        for m in &ms {
            if let Some(first) = seen.insert(&m.name, &m.operation_id) {
                return Err(ClientError::Clash {
                    group: g.clone(),
                    method: m.name.clone(),
                    first: first.to_owned(),
                    second: m.operation_id.clone(),
                });
            }
        }
        by_group.push((g.clone(), ms));
    }

    let title = doc.pointer("/info/title").and_then(Value::as_str).unwrap_or("Berth functions");
    let api_version = doc.pointer("/info/version").and_then(Value::as_str).unwrap_or("");
    let mut out = String::new();
    let _ = writeln!(
        out,
        "// The typed client of {title} {api_version}, generated by `berth client --lang ts` from its OpenAPI\n// document. Do not edit: regenerate it when the functions change."
    );
    out.push_str("/* eslint-disable */\n\n");
    out.push_str(TS_RUNTIME);
    // The path encoders the methods use (a client compiled with `noUnusedLocals` has no others).
    if methods.iter().any(|m| m.path.contains("${segment(")) {
        out.push_str("\n/** A path parameter as one URL segment. */\nfunction segment(value: unknown): string {\n  return encodeURIComponent(String(value));\n}\n");
    }
    if methods.iter().any(|m| m.path.contains("${rest(")) {
        out.push_str("\n/** A rest parameter (`{*path}`): its `/`-separated parts, each encoded. */\nfunction rest(value: unknown): string {\n  return String(value).split(\"/\").map(encodeURIComponent).join(\"/\");\n}\n");
    }

    out.push_str("\n// ---- The functions' types. ----\n\n");
    for (name, schema) in &schemas {
        let ident = &types.names[name];
        out.push_str(&jsdoc(
            schema.get("description").and_then(Value::as_str).or(schema.get("title").and_then(Value::as_str)),
            "",
        ));
        let ty = types.ts(schema, "");
        if ty.starts_with("{\n") {
            let _ = writeln!(out, "export interface {ident} {ty}\n");
        } else {
            let _ = writeln!(out, "export type {ident} = {ty};\n");
        }
    }

    out.push_str("// ---- The functions, one method per HTTP function, by group. ----\n\n");
    out.push_str("export interface Client {\n");
    for (group, ms) in &by_group {
        let _ = writeln!(out, "  /** The `{group}` group. */");
        let _ = writeln!(out, "  {}: {{", key(&camel(group)));
        for m in ms {
            out.push_str(&jsdoc(m.doc.as_deref(), "    "));
            let _ = writeln!(out, "    {}({}): Promise<{}>;", key(&m.name), signature(m), m.answer.1);
        }
        out.push_str("  };\n");
    }
    out.push_str("}\n\n");

    out.push_str("/** A client of the host at `options.baseUrl` (default: the page's own origin). */\n");
    out.push_str("export function createClient(client: ClientOptions = {}): Client {\n  return {\n");
    for (group, ms) in &by_group {
        let _ = writeln!(out, "    {}: {{", key(&camel(group)));
        for m in ms {
            let mut args: Vec<String> = m.path_params.iter().map(|(v, _)| v.clone()).collect();
            if m.body.is_some() {
                args.push("body".into());
            }
            if m.query.is_some() {
                args.push("query".into());
            }
            args.push("options".into());
            let body_kind = m.body.as_ref().map_or(String::new(), |(k, _)| format!(", body: \"{k}\""));
            let _ = writeln!(
                out,
                "      {}: ({}) =>\n        send(client, {{ id: \"{}\", method: \"{}\"{body_kind}, answer: \"{}\" }}, `{}`, {}, {}, options) as Promise<{}>,",
                key(&m.name),
                args.join(", "),
                m.operation_id,
                m.http_method,
                m.answer.0,
                m.path,
                if m.query.is_some() { "query" } else { "undefined" },
                if m.body.is_some() { "body" } else { "undefined" },
                m.answer.1,
            );
        }
        out.push_str("    },\n");
    }
    out.push_str("  };\n}\n");
    out.push_str("\n/** The client of the page's own origin. */\nexport const api: Client = createClient();\n");
    Ok(Generated { code: out, functions: methods.len() })
}

fn signature(m: &Method) -> String {
    let mut args: Vec<String> = m.path_params.iter().map(|(v, t)| format!("{v}: {t}")).collect();
    if let Some((_, t)) = &m.body {
        args.push(format!("body: {t}"));
    }
    if let Some((t, required)) = &m.query {
        args.push(format!("query{}: {t}", if *required { "" } else { "?" }));
    }
    args.push("options?: CallOptions".into());
    args.join(", ")
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn names_follow_typescript_conventions() {
        assert_eq!(camel("list_todos"), "listTodos");
        assert_eq!(camel("users-api"), "usersApi");
        assert_eq!(camel("getHTTP"), "getHttp");
        assert_eq!(pascal("todo.Todo"), "TodoTodo");
        assert_eq!(pascal("HTTPError"), "HTTPError");
        assert_eq!(variable("delete"), "delete_");
        assert_eq!(key("content-type"), "\"content-type\"");
        assert_eq!(key("title"), "title");
    }

    #[test]
    fn schemas_become_types() {
        let schemas = json!({ "Todo": {}, "Error": {} });
        let t = Types::new(schemas.as_object().unwrap());
        assert_eq!(t.names["Error"], "ErrorBody", "the global Error is not shadowed");
        let ts = |v: Value| t.ts(&v, "");
        assert_eq!(ts(json!({ "type": ["string", "null"] })), "string | null");
        assert_eq!(ts(json!({ "type": "array", "items": { "$ref": "#/components/schemas/Todo" } })), "Todo[]");
        assert_eq!(ts(json!({ "type": "array", "items": { "type": ["integer", "null"] } })), "(number | null)[]");
        assert_eq!(ts(json!({ "enum": ["a", "b"] })), "\"a\" | \"b\"");
        assert_eq!(
            ts(json!({ "type": "object", "additionalProperties": { "type": "integer" } })),
            "Record<string, number>"
        );
        assert_eq!(
            ts(
                json!({ "type": "object", "properties": { "a": { "type": "string" }, "b-c": { "type": "boolean" } }, "required": ["a"] })
            ),
            "{\n  a: string;\n  \"b-c\"?: boolean;\n}"
        );
        assert_eq!(ts(json!({ "oneOf": [{ "const": 1 }, { "$ref": "#/components/schemas/Nope" }] })), "1 | unknown");
        assert_eq!(ts(json!({ "prefixItems": [{ "type": "string" }, { "type": "number" }] })), "[string, number]");
        assert_eq!(ts(json!(true)), "unknown");
    }

    #[test]
    fn rest_and_free_form_query_parameters_keep_their_meaning() {
        let doc = json!({ "openapi": "3.1.0", "paths": { "/files/{path}": { "get": {
            "operationId": "store.fetch_file",
            "parameters": [
                { "name": "path", "in": "path", "required": true, "schema": { "type": "string" }, "x-berth-rest": true },
                { "name": "query", "in": "query", "style": "form", "explode": true, "schema": { "type": "object" } }
            ],
            "responses": { "200": { "description": "ok", "content": { "application/octet-stream": { "schema": {} } } } }
        } } } });
        let ts = typescript(&doc).unwrap().code;
        assert!(ts.contains("fetchFile(path: string, query?: { [name: string]: "), "{ts}");
        assert!(ts.contains("): Promise<Blob>;"), "{ts}");
        assert!(ts.contains("`/files/${rest(path)}`") && ts.contains("function rest("), "{ts}");
        assert!(!ts.contains("function segment("), "an unused encoder is left out: {ts}");
    }

    #[test]
    fn a_document_not_from_berth_is_refused_with_the_reason() {
        let e = typescript(&json!({ "swagger": "2.0" })).unwrap_err();
        assert!(e.to_string().contains("not OpenAPI 3.x"), "{e}");
        let e = typescript(&json!({ "openapi": "3.1.0", "paths": { "/a": { "get": { "operationId": "a" } } } }))
            .unwrap_err();
        assert!(e.to_string().contains("GET /a") && e.to_string().contains("\"a\""), "{e}");
        let e = typescript(&json!({ "openapi": "3.1.0", "paths": {} })).unwrap_err();
        assert!(matches!(e, ClientError::Empty), "{e}");
        let clash = json!({ "openapi": "3.1.0", "paths": {
            "/a": { "get": { "operationId": "g.list_all" } },
            "/b": { "get": { "operationId": "g.listAll" } } } });
        let e = typescript(&clash).unwrap_err();
        assert!(e.to_string().contains("g.list_all") && e.to_string().contains("g.listAll"), "{e}");
    }
}
