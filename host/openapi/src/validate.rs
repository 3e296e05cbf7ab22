//! Request validation against declared operations, compiled once at load:
//! path, query and header parameters (coerced from text to their declared
//! types) and JSON bodies, reported as FastAPI-style `{loc, msg, type}`.

use http::HeaderMap;
use serde::Serialize;
use serde_json::{Map, Value, json};

/// One validation problem, as FastAPI reports it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Issue {
    /// Where the problem is: `["query", "limit"]`, `["body", "items", 0]`.
    pub loc: Vec<Value>,
    /// What is wrong, for people: `Field required`.
    pub msg: String,
    /// What is wrong, for programs (`missing`, `int_parsing`, a JSON Schema keyword); `type` in JSON.
    #[serde(rename = "type")]
    pub kind: String,
}

impl Issue {
    fn new(loc: Vec<Value>, msg: impl Into<String>, kind: impl Into<String>) -> Self {
        Self {
            loc,
            msg: msg.into(),
            kind: kind.into(),
        }
    }
}

/// Why a request is refused before the guest runs.
#[derive(Debug, Clone, PartialEq)]
pub enum Rejection {
    /// `415`: the body's media type is not one the operation accepts.
    UnsupportedMediaType {
        /// The request's media type, lowercased without parameters; empty when `Content-Type` is missing.
        got: String,
        /// The media types the operation declares.
        expected: Vec<String>,
    },
    /// `422`: the request does not match the declaration.
    Invalid(Vec<Issue>),
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Prim {
    String,
    Integer,
    Number,
    Boolean,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Place {
    Path,
    Query,
    Header,
}

impl Place {
    fn name(self) -> &'static str {
        match self {
            Place::Path => "path",
            Place::Query => "query",
            Place::Header => "header",
        }
    }
}

struct ParamCheck {
    name: String,
    place: Place,
    required: bool,
    array: Option<Prim>,
    prim: Prim,
    validator: Option<jsonschema::Validator>,
}

struct BodyCheck {
    required: bool,
    media: Vec<String>,
    json: Option<jsonschema::Validator>,
}

/// The compiled checks of one operation.
pub struct OperationValidator {
    params: Vec<ParamCheck>,
    body: Option<BodyCheck>,
    /// Response status key (`200`, `4XX`, `default`) → JSON schema.
    responses: Vec<(String, jsonschema::Validator)>,
}

impl std::fmt::Debug for OperationValidator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OperationValidator")
            .field("params", &self.params.iter().map(|p| &p.name).collect::<Vec<_>>())
            .field("body", &self.body.as_ref().map(|b| &b.media))
            .finish()
    }
}

fn prim_of(schema: &Value) -> Prim {
    // `"type": ["integer", "null"]` (an optional value) counts as integer.
    let ty = match schema.get("type") {
        Some(Value::Array(types)) => types.iter().filter_map(Value::as_str).find(|t| *t != "null"),
        Some(t) => t.as_str(),
        None => None,
    };
    match ty {
        Some("integer") => Prim::Integer,
        Some("number") => Prim::Number,
        Some("boolean") => Prim::Boolean,
        _ => Prim::String,
    }
}

/// A schema of an operation that does not compile, and where it is.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{place}: invalid schema: {message}")]
pub struct SchemaError {
    /// Where the schema is: ``parameter `id` ``, `request body`, ``response `200` ``.
    pub place: String,
    /// What the JSON Schema compiler said.
    pub message: String,
}

/// A schema made self-contained: references resolve against `schemas`.
fn compile_schema(
    schema: &Value,
    schemas: &Map<String, Value>,
    place: impl FnOnce() -> String,
) -> Result<jsonschema::Validator, SchemaError> {
    let root = json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "allOf": [schema],
        "components": { "schemas": schemas },
    });
    jsonschema::draft202012::new(&root).map_err(|e| SchemaError {
        place: place(),
        message: e.to_string(),
    })
}

fn is_json(media: &str) -> bool {
    media == "application/json" || media.ends_with("+json")
}

fn media_matches(declared: &str, got: &str) -> bool {
    declared == "*/*"
        || declared == got
        || declared
            .strip_suffix("/*")
            .is_some_and(|t| got.split('/').next() == Some(t))
}

impl OperationValidator {
    /// Compiles the checks of an operation. `inherited` are path-item-level
    /// parameters; `schemas` the function's (namespaced) component schemas.
    pub fn compile(
        op: &Map<String, Value>,
        inherited: &[Value],
        schemas: &Map<String, Value>,
    ) -> Result<Self, SchemaError> {
        let mut params: Vec<ParamCheck> = Vec::new();
        let own = op
            .get("parameters")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        // Operation-level parameters override path-item ones of the same name and place.
        for p in own.iter().chain(inherited.iter()) {
            let name = p["name"].as_str().unwrap_or_default().to_string();
            let place = match p["in"].as_str() {
                Some("path") => Place::Path,
                Some("query") => Place::Query,
                Some("header") => Place::Header,
                _ => continue,
            };
            if params.iter().any(|c| c.name == name && c.place == place) {
                continue;
            }
            let schema = p.get("schema").cloned().unwrap_or(Value::Bool(true));
            let is_array = match schema.get("type") {
                Some(Value::Array(t)) => t.iter().any(|x| x == "array"),
                Some(t) => t == "array",
                None => false,
            };
            let array = is_array.then(|| prim_of(schema.get("items").unwrap_or(&Value::Null)));
            params.push(ParamCheck {
                prim: prim_of(&schema),
                array,
                required: place == Place::Path || p["required"].as_bool().unwrap_or(false),
                validator: Some(compile_schema(&schema, schemas, || format!("parameter `{name}`"))?),
                name: if place == Place::Header {
                    name.to_ascii_lowercase()
                } else {
                    name
                },
                place,
            });
        }
        let body = match op.get("requestBody") {
            None => None,
            Some(b) => {
                let content = b["content"].as_object().cloned().unwrap_or_default();
                let media: Vec<String> = content.keys().map(|k| k.to_ascii_lowercase()).collect();
                let json = match content.iter().find(|(k, _)| is_json(&k.to_ascii_lowercase())) {
                    Some((_, m)) => match m.get("schema") {
                        Some(s) => Some(compile_schema(s, schemas, || "request body".into())?),
                        None => None,
                    },
                    None => None,
                };
                Some(BodyCheck {
                    required: b["required"].as_bool().unwrap_or(false),
                    media,
                    json,
                })
            }
        };
        let mut responses = Vec::new();
        for (status, r) in op.get("responses").and_then(Value::as_object).into_iter().flatten() {
            let json_schema = r["content"]
                .as_object()
                .and_then(|c| c.iter().find(|(k, _)| is_json(&k.to_ascii_lowercase())))
                .and_then(|(_, m)| m.get("schema"));
            if let Some(schema) = json_schema {
                let v = compile_schema(schema, schemas, || format!("response `{status}`"))?;
                responses.push((status.clone(), v));
            }
        }
        Ok(Self {
            params,
            body,
            responses,
        })
    }

    /// Whether a response with this status has a declared JSON schema.
    pub fn has_response_schema(&self, status: u16) -> bool {
        self.response_validator(status).is_some()
    }

    fn response_validator(&self, status: u16) -> Option<&jsonschema::Validator> {
        let exact = status.to_string();
        let range = format!("{}XX", status / 100);
        ["exact", "range", "default"].iter().find_map(|which| {
            let key = match *which {
                "exact" => exact.as_str(),
                "range" => range.as_str(),
                _ => "default",
            };
            self.responses
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(key))
                .map(|(_, v)| v)
        })
    }

    /// Checks a JSON response body against its declared schema; the
    /// problems, for the log.
    pub fn check_response(&self, status: u16, bytes: &[u8]) -> Vec<Issue> {
        let Some(v) = self.response_validator(status) else {
            return Vec::new();
        };
        match serde_json::from_slice::<Value>(bytes) {
            Ok(value) => schema_issues(v, &value, vec![json!("response")]),
            Err(e) => vec![Issue::new(
                vec![json!("response")],
                format!("JSON decode error: {e}"),
                "json_invalid",
            )],
        }
    }

    /// Whether the body must be read whole and checked as JSON.
    pub fn wants_json_body(&self, content_type: Option<&str>) -> bool {
        let media = content_type.map(media_type);
        self.body.as_ref().is_some_and(|b| b.json.is_some()) && media.as_deref().is_none_or(is_json)
    }

    /// Checks parameters and the body's media type; `has_body` is whether
    /// the request carries a body at all.
    pub fn check_head(
        &self,
        path_params: &[(String, String)],
        query: Option<&str>,
        headers: &HeaderMap,
        has_body: bool,
    ) -> Result<(), Rejection> {
        let query_pairs = parse_query(query.unwrap_or(""));
        let mut issues = Vec::new();
        for p in &self.params {
            let values: Vec<&str> = match p.place {
                Place::Path => path_params
                    .iter()
                    .filter(|(k, _)| *k == p.name)
                    .map(|(_, v)| v.as_str())
                    .collect(),
                Place::Query => query_pairs
                    .iter()
                    .filter(|(k, _)| *k == p.name)
                    .map(|(_, v)| v.as_str())
                    .collect(),
                Place::Header => headers
                    .get_all(p.name.as_str())
                    .iter()
                    .filter_map(|v| v.to_str().ok())
                    .collect(),
            };
            let loc = vec![json!(p.place.name()), json!(p.name)];
            if values.is_empty() {
                if p.required {
                    issues.push(Issue::new(loc, "Field required", "missing"));
                }
                continue;
            }
            let value = match p.array {
                Some(item) => {
                    let mut out = Vec::new();
                    for (i, v) in values.iter().enumerate() {
                        let mut l = loc.clone();
                        l.push(json!(i));
                        match coerce(v, item) {
                            Ok(x) => out.push(x),
                            Err((msg, kind)) => issues.push(Issue::new(l, msg, kind)),
                        }
                    }
                    Value::Array(out)
                }
                None => match coerce(values[0], p.prim) {
                    Ok(x) => x,
                    Err((msg, kind)) => {
                        issues.push(Issue::new(loc, msg, kind));
                        continue;
                    }
                },
            };
            if let Some(v) = &p.validator {
                issues.extend(schema_issues(v, &value, loc));
            }
        }
        if let Some(b) = &self.body {
            let got = headers
                .get(http::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .map(media_type);
            match got {
                Some(got) if has_body || got.is_empty() => {
                    if !b.media.iter().any(|d| media_matches(d, &got)) {
                        return Err(Rejection::UnsupportedMediaType {
                            got,
                            expected: b.media.clone(),
                        });
                    }
                }
                // A body without a type may be taken as
                // `application/octet-stream` (RFC 9110, 8.3): accepted where
                // the operation takes that, `*/*` or `application/*`.
                None if has_body && !b.media.iter().any(|d| media_matches(d, "application/octet-stream")) => {
                    return Err(Rejection::UnsupportedMediaType {
                        got: String::new(),
                        expected: b.media.clone(),
                    });
                }
                None if has_body => {}
                _ => {
                    if b.required && !has_body {
                        issues.push(Issue::new(vec![json!("body")], "Field required", "missing"));
                    }
                }
            }
        }
        if issues.is_empty() {
            Ok(())
        } else {
            Err(Rejection::Invalid(issues))
        }
    }

    /// Checks a whole JSON body.
    pub fn check_json_body(&self, bytes: &[u8]) -> Result<(), Rejection> {
        let Some(BodyCheck {
            json: Some(v),
            required,
            ..
        }) = &self.body
        else {
            return Ok(());
        };
        if bytes.is_empty() {
            return if *required {
                Err(Rejection::Invalid(vec![Issue::new(
                    vec![json!("body")],
                    "Field required",
                    "missing",
                )]))
            } else {
                Ok(())
            };
        }
        let value: Value = serde_json::from_slice(bytes).map_err(|e| {
            Rejection::Invalid(vec![Issue::new(
                vec![json!("body")],
                format!("JSON decode error: {e}"),
                "json_invalid",
            )])
        })?;
        let issues = schema_issues(v, &value, vec![json!("body")]);
        if issues.is_empty() {
            Ok(())
        } else {
            Err(Rejection::Invalid(issues))
        }
    }
}

fn media_type(header: &str) -> String {
    header.split(';').next().unwrap_or("").trim().to_ascii_lowercase()
}

fn coerce(text: &str, prim: Prim) -> Result<Value, (&'static str, &'static str)> {
    match prim {
        Prim::String => Ok(Value::String(text.to_string())),
        Prim::Integer => {
            if let Ok(i) = text.parse::<i64>() {
                Ok(Value::from(i))
            } else if let Ok(u) = text.parse::<u64>() {
                Ok(Value::from(u))
            } else {
                // Too large for 64 bits, or written like `2.0`: a number whose
                // integer-ness (and range) the schema decides.
                text.parse::<f64>()
                    .ok()
                    .filter(|f| f.is_finite() && f.fract() == 0.0)
                    .and_then(serde_json::Number::from_f64)
                    .map(Value::Number)
                    .ok_or(("Input should be a valid integer", "int_parsing"))
            }
        }
        Prim::Number => text
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
            .map(Value::Number)
            .ok_or(("Input should be a valid number", "float_parsing")),
        Prim::Boolean => match text {
            "true" | "1" => Ok(Value::Bool(true)),
            "false" | "0" => Ok(Value::Bool(false)),
            _ => Err(("Input should be a valid boolean", "bool_parsing")),
        },
    }
}

fn schema_issues(v: &jsonschema::Validator, value: &Value, base: Vec<Value>) -> Vec<Issue> {
    v.iter_errors(value)
        .map(|e| {
            let mut loc = base.clone();
            let pointer = e.instance_path().to_string();
            for token in pointer.split('/').skip(1) {
                let token = token.replace("~1", "/").replace("~0", "~");
                loc.push(token.parse::<u64>().map(Value::from).unwrap_or(Value::String(token)));
            }
            let keyword = e.kind().keyword().to_string();
            if let jsonschema::error::ValidationErrorKind::Required { property } = e.kind() {
                loc.push(property.clone());
                return Issue::new(loc, "Field required", "missing");
            }
            Issue::new(loc, e.to_string(), keyword)
        })
        .collect()
}

/// `a=1&b=x%20y` → pairs, percent- and `+`-decoded.
pub fn parse_query(q: &str) -> Vec<(String, String)> {
    let decode = |s: &str| {
        let s = s.replace('+', " ");
        percent_encoding::percent_decode_str(&s)
            .decode_utf8_lossy()
            .into_owned()
    };
    q.split('&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (decode(k), decode(v))
        })
        .collect()
}

#[cfg(test)]
mod tests;
