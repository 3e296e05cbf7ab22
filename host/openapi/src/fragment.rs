//! A function's OpenAPI 3.1 fragment: parsed, checked, every problem named
//! by the JSON pointer where it is.

use http::Method;
use serde_json::{Map, Value};

use wasmfn_routing::{RoutePattern, Segment};

/// Methods an OpenAPI path item may hold.
const OPERATION_KEYS: [&str; 8] = ["get", "put", "post", "delete", "options", "head", "patch", "trace"];
const PATH_ITEM_KEYS: [&str; 4] = ["summary", "description", "parameters", "servers"];
const TOP_KEYS: [&str; 6] = ["openapi", "info", "paths", "components", "tags", "jsonSchemaDialect"];

/// One path the fragment declares, relative to the mount point.
#[derive(Debug, Clone)]
pub struct DeclaredPath {
    /// The path template, parsed; never has a catch-all.
    pub pattern: RoutePattern,
    /// Path-item-level `parameters`, merged into each operation.
    pub parameters: Vec<Value>,
    /// The operation objects, by method, in the fragment's order.
    pub operations: Vec<(Method, Map<String, Value>)>,
}

/// A checked fragment.
#[derive(Debug, Clone, Default)]
pub struct Fragment {
    /// The declared paths, in the fragment's order.
    pub paths: Vec<DeclaredPath>,
    /// `components.schemas`, under the function's own (not yet namespaced) names.
    pub schemas: Map<String, Value>,
    /// The top-level `tags`, each with a string `name`.
    pub tags: Vec<Value>,
    /// The `info` object, whose description becomes the function's tag description.
    pub info: Option<Value>,
}

/// Where a fragment is wrong, and how.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid OpenAPI fragment at `{pointer}`: {message}")]
pub struct FragmentError {
    /// A JSON pointer into the fragment (`` for the whole document).
    pub pointer: String,
    /// What is wrong there.
    pub message: String,
}

fn err(pointer: impl Into<String>, message: impl Into<String>) -> FragmentError {
    FragmentError {
        pointer: pointer.into(),
        message: message.into(),
    }
}

fn escape(token: &str) -> String {
    token.replace('~', "~0").replace('/', "~1")
}

/// The prefix every schema reference in a fragment must have.
pub(crate) const SCHEMA_REF_PREFIX: &str = "#/components/schemas/";

impl Fragment {
    /// Parses and checks fragment text.
    pub fn parse(text: &str) -> Result<Self, FragmentError> {
        let value: Value = serde_json::from_str(text).map_err(|e| err("", format!("not valid JSON: {e}")))?;
        Self::from_value(value)
    }

    /// Checks a parsed fragment.
    pub fn from_value(value: Value) -> Result<Self, FragmentError> {
        let Value::Object(top) = value else {
            return Err(err("", "must be a JSON object with `paths`"));
        };
        for k in top.keys() {
            if !TOP_KEYS.contains(&k.as_str()) && !k.starts_with("x-") {
                return Err(err(
                    format!("/{}", escape(k)),
                    format!("unsupported key `{k}`; a fragment may have {}", TOP_KEYS.join(", ")),
                ));
            }
        }
        let mut fragment = Fragment::default();
        if let Some(info) = top.get("info") {
            if !info.is_object() {
                return Err(err("/info", "must be an object"));
            }
            fragment.info = Some(info.clone());
        }
        match top.get("tags") {
            None => {}
            Some(Value::Array(tags)) => {
                for (i, t) in tags.iter().enumerate() {
                    if !t.get("name").is_some_and(Value::is_string) {
                        return Err(err(format!("/tags/{i}"), "a tag needs a string `name`"));
                    }
                }
                fragment.tags = tags.clone();
            }
            Some(_) => return Err(err("/tags", "must be an array")),
        }
        match top.get("components") {
            None => {}
            Some(Value::Object(c)) => {
                for k in c.keys() {
                    if k != "schemas" && !k.starts_with("x-") {
                        return Err(err(
                            format!("/components/{}", escape(k)),
                            "only `components.schemas` is supported",
                        ));
                    }
                }
                match c.get("schemas") {
                    None => {}
                    Some(Value::Object(s)) => {
                        for (name, schema) in s {
                            if !valid_component_name(name) {
                                return Err(err(
                                    format!("/components/schemas/{}", escape(name)),
                                    "schema names are made of `A-Z a-z 0-9 . _ -`",
                                ));
                            }
                            if !(schema.is_object() || schema.is_boolean()) {
                                return Err(err(
                                    format!("/components/schemas/{}", escape(name)),
                                    "a schema is an object or a boolean",
                                ));
                            }
                        }
                        fragment.schemas = s.clone();
                    }
                    Some(_) => return Err(err("/components/schemas", "must be an object")),
                }
            }
            Some(_) => return Err(err("/components", "must be an object")),
        }
        let paths = match top.get("paths") {
            Some(Value::Object(p)) => p,
            Some(_) => return Err(err("/paths", "must be an object")),
            None => return Err(err("", "`paths` is missing")),
        };
        for (template, item) in paths {
            fragment.paths.push(parse_path(template, item)?);
        }
        check_refs(&Value::Object(top.clone()), "", &fragment.schemas)?;
        Ok(fragment)
    }
}

pub(crate) fn valid_component_name(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

fn parse_path(template: &str, item: &Value) -> Result<DeclaredPath, FragmentError> {
    let at = format!("/paths/{}", escape(template));
    let pattern = RoutePattern::parse(template).map_err(|e| err(&at, e.to_string()))?;
    if pattern.has_catch_all() {
        return Err(err(
            &at,
            "catch-all segments (`{...name}`) cannot be declared in OpenAPI",
        ));
    }
    let Value::Object(item) = item else {
        return Err(err(&at, "a path item must be an object"));
    };
    let mut declared = DeclaredPath {
        pattern,
        parameters: Vec::new(),
        operations: Vec::new(),
    };
    for (k, v) in item {
        let here = format!("{at}/{}", escape(k));
        if let Some(m) = OPERATION_KEYS.iter().find(|m| **m == k) {
            let Value::Object(op) = v else {
                return Err(err(&here, "an operation must be an object"));
            };
            check_operation(&here, op, &declared.pattern)?;
            let method: Method = m.to_ascii_uppercase().parse().expect("known method");
            declared.operations.push((method, op.clone()));
        } else if k == "parameters" {
            declared.parameters = check_parameters(&here, v, &declared.pattern)?;
        } else if !PATH_ITEM_KEYS.contains(&k.as_str()) && !k.starts_with("x-") {
            return Err(err(&here, format!("unsupported key `{k}` in a path item")));
        }
    }
    if declared.operations.is_empty() {
        return Err(err(&at, "declares no operation (`get`, `post`, …)"));
    }
    Ok(declared)
}

fn check_parameters(at: &str, v: &Value, pattern: &RoutePattern) -> Result<Vec<Value>, FragmentError> {
    let Value::Array(list) = v else {
        return Err(err(at, "`parameters` must be an array"));
    };
    let names: Vec<&str> = pattern.param_names().collect();
    for (i, p) in list.iter().enumerate() {
        let here = format!("{at}/{i}");
        let name = p
            .get("name")
            .and_then(Value::as_str)
            .ok_or_else(|| err(&here, "a parameter needs a string `name`"))?;
        let location = p
            .get("in")
            .and_then(Value::as_str)
            .ok_or_else(|| err(&here, "a parameter needs `in`"))?;
        match location {
            "path" => {
                if !names.contains(&name) {
                    return Err(err(
                        &here,
                        format!("path parameter `{name}` is not in the path template"),
                    ));
                }
            }
            "query" | "header" | "cookie" => {}
            other => {
                return Err(err(
                    &here,
                    format!("`in: {other}` is not one of path, query, header, cookie"),
                ));
            }
        }
        if let Some(s) = p.get("schema")
            && !(s.is_object() || s.is_boolean())
        {
            return Err(err(format!("{here}/schema"), "a schema is an object or a boolean"));
        }
    }
    Ok(list.clone())
}

fn check_operation(at: &str, op: &Map<String, Value>, pattern: &RoutePattern) -> Result<(), FragmentError> {
    if let Some(p) = op.get("parameters") {
        check_parameters(&format!("{at}/parameters"), p, pattern)?;
    }
    if let Some(id) = op.get("operationId")
        && !id.is_string()
    {
        return Err(err(format!("{at}/operationId"), "must be a string"));
    }
    if let Some(body) = op.get("requestBody") {
        let here = format!("{at}/requestBody");
        let content = body
            .get("content")
            .and_then(Value::as_object)
            .ok_or_else(|| err(&here, "needs a `content` object"))?;
        for (media, m) in content {
            if !m.is_object() {
                return Err(err(
                    format!("{here}/content/{}", escape(media)),
                    "a media type must be an object",
                ));
            }
        }
    }
    if let Some(r) = op.get("responses")
        && !r.is_object()
    {
        return Err(err(format!("{at}/responses"), "must be an object"));
    }
    Ok(())
}

/// Every `$ref` must point at a schema the fragment declares.
fn check_refs(v: &Value, at: &str, schemas: &Map<String, Value>) -> Result<(), FragmentError> {
    match v {
        Value::Object(m) => {
            for (k, child) in m {
                let here = format!("{at}/{}", escape(k));
                if k == "$ref" {
                    let target = child.as_str().ok_or_else(|| err(&here, "`$ref` must be a string"))?;
                    let name = target.strip_prefix(SCHEMA_REF_PREFIX).ok_or_else(|| {
                        err(
                            &here,
                            format!("`{target}`: only `{SCHEMA_REF_PREFIX}<name>` references are supported"),
                        )
                    })?;
                    if !schemas.contains_key(name) {
                        return Err(err(
                            &here,
                            format!("`{target}` names no schema in `components.schemas`"),
                        ));
                    }
                } else {
                    check_refs(child, &here, schemas)?;
                }
            }
        }
        Value::Array(a) => {
            for (i, child) in a.iter().enumerate() {
                check_refs(child, &format!("{at}/{i}"), schemas)?;
            }
        }
        _ => {}
    }
    Ok(())
}

/// The OpenAPI path template of a pattern (`{...rest}` is shown as `{rest}`).
pub fn template(pattern: &RoutePattern) -> String {
    if pattern.segments().is_empty() {
        return "/".into();
    }
    let mut out = String::new();
    for s in pattern.segments() {
        out.push('/');
        match s {
            Segment::Static(t) => out.push_str(t),
            Segment::Param(n) | Segment::CatchAll(n) => {
                out.push('{');
                out.push_str(n);
                out.push('}');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn good_fragment() {
        let f = Fragment::parse(
            r##"{
              "info": {"title": "Items"},
              "tags": [{"name": "items"}],
              "paths": {
                "/": {"get": {"operationId": "list", "responses": {"200": {"description": "ok",
                        "content": {"application/json": {"schema": {"type": "array", "items": {"$ref": "#/components/schemas/Item"}}}}}}},
                      "post": {"requestBody": {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Item"}}}}}},
                "/{id}": {"parameters": [{"name": "id", "in": "path", "required": true, "schema": {"type": "integer"}}],
                          "get": {}}
              },
              "components": {"schemas": {"Item": {"type": "object"}}}
            }"##,
        )
        .unwrap();
        assert_eq!(f.paths.len(), 2);
        assert_eq!(f.paths[0].operations.len(), 2);
        assert_eq!(f.paths[1].parameters.len(), 1);
        assert_eq!(f.schemas.len(), 1);
    }

    #[test]
    fn bad_fragments_name_the_pointer() {
        let cases = [
            ("[]", "", "must be a JSON object"),
            ("{", "", "not valid JSON"),
            (
                r#"{"paths": {}, "servers": []}"#,
                "/servers",
                "unsupported key `servers`",
            ),
            (r#"{}"#, "", "`paths` is missing"),
            (
                r#"{"paths": {"nope": {"get": {}}}}"#,
                "/paths/nope",
                "must start with `/`",
            ),
            (
                r#"{"paths": {"/a/{b": {"get": {}}}}"#,
                "/paths/~1a~1{b",
                "is not closed",
            ),
            (r#"{"paths": {"/a": {}}}"#, "/paths/~1a", "declares no operation"),
            (
                r#"{"paths": {"/a": {"get": 1}}}"#,
                "/paths/~1a/get",
                "must be an object",
            ),
            (
                r#"{"paths": {"/a": {"fetch": {}}}}"#,
                "/paths/~1a/fetch",
                "unsupported key `fetch`",
            ),
            (
                r#"{"paths": {"/a": {"get": {"parameters": [{"name": "id", "in": "path"}]}}}}"#,
                "/paths/~1a/get/parameters/0",
                "not in the path template",
            ),
            (
                r#"{"paths": {"/a": {"get": {"parameters": [{"name": "q", "in": "body"}]}}}}"#,
                "/paths/~1a/get/parameters/0",
                "`in: body`",
            ),
            (
                r#"{"paths": {"/a": {"get": {"requestBody": {}}}}}"#,
                "/paths/~1a/get/requestBody",
                "needs a `content` object",
            ),
            (
                r##"{"paths": {"/a": {"get": {"responses": {"200": {"$ref": "#/components/responses/Ok"}}}}}}"##,
                "/paths/~1a/get/responses/200/$ref",
                "only `#/components/schemas/<name>`",
            ),
            (
                r##"{"paths": {"/a": {"get": {"x": {"$ref": "#/components/schemas/Missing"}}}}}"##,
                "/paths/~1a/get/x/$ref",
                "names no schema",
            ),
            (
                r#"{"paths": {"/a": {"get": {}}}, "components": {"responses": {}}}"#,
                "/components/responses",
                "only `components.schemas`",
            ),
            (
                r#"{"paths": {"/a": {"get": {}}}, "components": {"schemas": {"a b": {}}}}"#,
                "/components/schemas/a b",
                "schema names",
            ),
            (r#"{"paths": {"/{...r}": {"get": {}}}}"#, "/paths/~1{...r}", "catch-all"),
        ];
        for (text, pointer, message) in cases {
            let e = Fragment::parse(text).expect_err(text);
            assert_eq!(e.pointer, pointer, "{text}: {e}");
            assert!(e.message.contains(message), "{text}: {e}");
        }
    }
}
