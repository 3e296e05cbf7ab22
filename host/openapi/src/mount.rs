//! Mounting a function's declared paths under each of its routes, with
//! schema names namespaced, `$ref`s rewritten, prefix parameters declared
//! and a validator compiled per operation.

use std::sync::Arc;

use http::{HeaderValue, Method};
use serde_json::{Map, Value, json};

use super::answers::state_host_answers;
use super::fragment::{Fragment, SCHEMA_REF_PREFIX, template};
use super::validate::{OperationValidator, SchemaError};
use wasmfn_manifest::AuthSettings;
use wasmfn_manifest::discovery::FunctionSpec;
use wasmfn_routing::{RoutePattern, Segment};

/// The host's error schemas in the document.
pub(crate) const HOST_ERROR: &str = "#/components/schemas/wasmfn.Error";
pub(crate) const HOST_VALIDATION_ERROR: &str = "#/components/schemas/wasmfn.ValidationError";

/// The schemas of the errors the host itself answers with.
pub fn host_schemas() -> Map<String, Value> {
    let error = json!({
        "type": "object",
        "description": "An error answered by the host, never by a function.",
        "required": ["error", "request_id"],
        "properties": {
            "error": {"type": "object", "required": ["code", "message"], "properties": {
                "code": {"type": "string"}, "message": {"type": "string"}, "details": {}}},
            "request_id": {"type": "string"}
        }
    });
    let validation = json!({
        "type": "object",
        "description": "`422`: what does not match the declared operation, FastAPI style.",
        "required": ["error", "request_id"],
        "properties": {
            "error": {"type": "object", "required": ["code", "message", "details"], "properties": {
                "code": {"const": "validation_error"},
                "message": {"type": "string"},
                "details": {"type": "array", "items": {"type": "object", "required": ["loc", "msg", "type"], "properties": {
                    "loc": {"type": "array", "items": {"type": ["string", "integer"]}},
                    "msg": {"type": "string"},
                    "type": {"type": "string"}}}}}},
            "request_id": {"type": "string"}
        }
    });
    let mut m = Map::new();
    m.insert("wasmfn.Error".into(), error);
    m.insert("wasmfn.ValidationError".into(), validation);
    m
}

/// One operation as it appears in the document, with its request checks.
#[derive(Debug)]
pub struct Operation {
    /// The operation object as shown in the document: refs namespaced, host answers added.
    pub doc: Value,
    /// The request checks; `None` for a function without a fragment.
    pub validator: Option<Arc<OperationValidator>>,
}

/// One route a function serves: a mount point joined with a declared path.
#[derive(Debug)]
pub struct Mount {
    /// The full route: the function's route joined with the declared path.
    pub pattern: RoutePattern,
    /// The path as the function declared it, relative to its mount point
    /// (sent to the guest as `x-fn-path`); `None` without a fragment.
    pub declared_path: Option<String>,
    /// Methods this mount answers: the declared operations, or the manifest's methods.
    pub methods: Vec<Method>,
    /// Whether the mount appears in the OpenAPI document (`include_in_schema`).
    pub in_schema: bool,
    /// The operation of each method.
    pub operations: Vec<(Method, Arc<Operation>)>,
    /// `x-fn-route` and `x-fn-path` as sent to the guest, made once here
    /// rather than on every request (`None`: not a valid header value).
    pub route_header: Option<HeaderValue>,
    /// `x-fn-path`, made the same way; also `None` without a declared path.
    pub path_header: Option<HeaderValue>,
    /// How callers of this route authenticate: its route's `auth`, else the function's.
    pub auth: Option<AuthSettings>,
}

impl Mount {
    fn new(
        pattern: RoutePattern,
        declared_path: Option<String>,
        methods: Vec<Method>,
        in_schema: bool,
        operations: Vec<(Method, Arc<Operation>)>,
        auth: Option<&AuthSettings>,
    ) -> Self {
        let route_header = HeaderValue::from_str(&pattern.to_string()).ok();
        let path_header = declared_path.as_deref().and_then(|p| HeaderValue::from_str(p).ok());
        Self {
            pattern,
            declared_path,
            methods,
            in_schema,
            operations,
            route_header,
            path_header,
            auth: auth.cloned(),
        }
    }

    /// The operation for a method (`HEAD` falls back to `GET`).
    pub fn operation(&self, method: &Method) -> Option<&Arc<Operation>> {
        let find = |m: &Method| self.operations.iter().find(|(om, _)| om == m).map(|(_, o)| o);
        find(method).or_else(|| {
            if *method == Method::HEAD {
                find(&Method::GET)
            } else {
                None
            }
        })
    }
}

/// A function's name made into a schema-name prefix: `users/[id]` → `users.id`.
pub fn namespace(name: &str) -> String {
    if name == "." {
        return "root".into();
    }
    let mut out = String::new();
    for part in name.split('/') {
        let clean: String = part
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
            .collect();
        if clean.is_empty() {
            continue;
        }
        if !out.is_empty() {
            out.push('.');
        }
        out.push_str(&clean);
    }
    if out.is_empty() { "fn".into() } else { out }
}

/// Rewrites `#/components/schemas/X` to `#/components/schemas/{ns}.X`.
pub(crate) fn rewrite_refs(v: &mut Value, ns: &str) {
    match v {
        Value::Object(m) => {
            for (k, child) in m.iter_mut() {
                if k == "$ref" {
                    if let Some(name) = child.as_str().and_then(|s| s.strip_prefix(SCHEMA_REF_PREFIX)) {
                        *child = Value::String(format!("{SCHEMA_REF_PREFIX}{ns}.{name}"));
                    }
                } else {
                    rewrite_refs(child, ns);
                }
            }
        }
        Value::Array(a) => a.iter_mut().for_each(|c| rewrite_refs(c, ns)),
        _ => {}
    }
}

/// OpenAPI 3.2's `itemSchema` (the schema of each item of a streamed
/// media type such as JSON Lines) becomes `x-itemSchema`: the document is
/// 3.1, whose validators refuse the 3.2 keyword.
fn downgrade_item_schemas(op: &mut Value) {
    let Some(responses) = op.get_mut("responses").and_then(Value::as_object_mut) else {
        return;
    };
    for response in responses.values_mut() {
        let Some(content) = response.get_mut("content").and_then(Value::as_object_mut) else {
            continue;
        };
        for media in content.values_mut() {
            if let Some(m) = media.as_object_mut()
                && let Some(item) = m.remove("itemSchema")
            {
                m.insert("x-itemSchema".into(), item);
                m.entry("schema").or_insert_with(|| {
                    json!({"type": "string", "description": "A stream of items, one per line; each matches `x-itemSchema`."})
                });
            }
        }
    }
}

/// The fragment's schemas under their namespaced names.
pub fn namespaced_schemas(fragment: Option<&Fragment>, ns: &str) -> Map<String, Value> {
    let mut out = Map::new();
    if let Some(f) = fragment {
        for (name, schema) in &f.schemas {
            let mut s = schema.clone();
            rewrite_refs(&mut s, ns);
            out.insert(format!("{ns}.{name}"), s);
        }
    }
    out
}

fn sanitize(s: &str) -> String {
    let out: String = s
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    out.trim_matches('_').to_string()
}

fn prefix_params(prefix: &RoutePattern) -> Vec<Value> {
    let mut params: Vec<Value> = prefix
        .segments()
        .iter()
        .filter_map(|s| match s {
            Segment::Param(n) => Some(json!({"name": n, "in": "path", "required": true, "schema": {"type": "string"}})),
            Segment::CatchAll(n) => Some(json!({"name": n, "in": "path", "required": true,
                "description": "one or more path segments, joined with `/`", "schema": {"type": "string"}})),
            Segment::Static(_) => None,
        })
        .collect();
    constrain_path_params(&mut params);
    params
}

/// Path parameters reach the function in headers, so the host refuses
/// ASCII control characters in them (`400`); the document says so.
const NO_CONTROL_CHARACTERS: &str = "^[^\\u0000-\\u001F\\u007F]*$";

fn constrain_path_params(params: &mut [Value]) {
    for p in params.iter_mut().filter(|p| p["in"] == "path") {
        let schema = p.get("schema").cloned().unwrap_or(json!({}));
        let textual = match schema.get("type") {
            None => schema.get("$ref").is_none(),
            Some(Value::Array(t)) => t.iter().any(|x| x == "string"),
            Some(t) => t == "string",
        };
        let done = schema["pattern"] == NO_CONTROL_CHARACTERS
            || schema["allOf"]
                .as_array()
                .is_some_and(|a| a.iter().any(|x| x["pattern"] == NO_CONTROL_CHARACTERS));
        if !textual || done {
            continue;
        }
        p["schema"] = match schema.get("pattern") {
            None => {
                let mut s = schema;
                s["pattern"] = json!(NO_CONTROL_CHARACTERS);
                s
            }
            Some(_) => json!({"allOf": [schema, {"pattern": NO_CONTROL_CHARACTERS}]}),
        };
    }
}

fn has_param(list: &[Value], name: &str) -> bool {
    list.iter().any(|p| p["name"] == name && p["in"] == "path")
}

/// Why a function's operations cannot be mounted under its routes.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum MountError {
    /// A declared path does not join the route it is mounted under.
    #[error("cannot mount `{path}` under route `{route}`: {source}")]
    Join {
        /// The path as the function declared it.
        path: String,
        /// The route it was to be mounted under.
        route: String,
        /// Why the two do not join.
        source: wasmfn_routing::PatternError,
    },
    /// An operation's schemas do not compile into a validator.
    #[error("operation `{method} {path}`: {source}")]
    Schema {
        /// The operation's method.
        method: http::Method,
        /// The operation's mounted path.
        path: String,
        /// The schema that does not compile.
        source: SchemaError,
    },
}

/// Every route of a function, expanded by its fragment when it has one.
pub fn build_mounts(spec: &FunctionSpec, ns: &str, fragment: Option<&Fragment>) -> Result<Vec<Mount>, MountError> {
    let mut schemas = namespaced_schemas(fragment, ns);
    schemas.extend(host_schemas());
    let mut mounts = Vec::new();
    for (i, prefix) in spec.routes.iter().enumerate() {
        let in_schema = !spec.schema_hidden.contains(prefix);
        let auth = spec
            .route_auth
            .iter()
            .find(|(p, _)| p == prefix)
            .map(|(_, a)| a)
            .or(spec.policy.auth.as_ref());
        let alias = if i == 0 {
            String::new()
        } else {
            format!(".{}", sanitize(&prefix.to_string()))
        };
        let from_prefix = prefix_params(prefix);
        let Some(fragment) = fragment else {
            let operations = spec
                .methods
                .iter()
                .map(|m| {
                    let mut doc = json!({
                        "operationId": format!("{ns}.{}{alias}", m.as_str().to_ascii_lowercase()),
                        "summary": spec.description.clone().unwrap_or_else(|| format!("Function `{}`", spec.name)),
                        "tags": [ns],
                        "parameters": from_prefix,
                        "responses": {"default": {"description": format!("The response of function `{}`.", spec.name)}},
                    });
                    // Its own answers are the `default`; the host's are stated as for any other.
                    if let Some(op) = doc.as_object_mut() {
                        state_host_answers(op, prefix, spec, auth);
                    }
                    (m.clone(), Arc::new(Operation { doc, validator: None }))
                })
                .collect();
            mounts.push(Mount::new(
                prefix.clone(),
                None,
                spec.methods.clone(),
                in_schema,
                operations,
                auth,
            ));
            continue;
        };
        for declared in &fragment.paths {
            let pattern = RoutePattern::join(prefix, &declared.pattern).map_err(|source| MountError::Join {
                path: template(&declared.pattern),
                route: prefix.to_string(),
                source,
            })?;
            let mut operations = Vec::new();
            for (method, op) in &declared.operations {
                let mut doc = Value::Object(op.clone());
                rewrite_refs(&mut doc, ns);
                downgrade_item_schemas(&mut doc);
                let mut params: Vec<Value> = doc["parameters"].as_array().cloned().unwrap_or_default();
                let mut inherited = declared.parameters.clone();
                inherited.iter_mut().for_each(|p| rewrite_refs(p, ns));
                for p in &inherited {
                    if !params.iter().any(|q| q["name"] == p["name"] && q["in"] == p["in"]) {
                        params.push(p.clone());
                    }
                }
                for p in &from_prefix {
                    if !has_param(&params, p["name"].as_str().unwrap_or_default()) {
                        params.push(p.clone());
                    }
                }
                let path_part = sanitize(&template(&declared.pattern));
                let base_id = op
                    .get("operationId")
                    .and_then(Value::as_str)
                    .map(str::to_string)
                    .unwrap_or_else(|| {
                        format!(
                            "{}_{}",
                            method.as_str().to_ascii_lowercase(),
                            if path_part.is_empty() { "root".into() } else { path_part }
                        )
                    });
                constrain_path_params(&mut params);
                let d = doc.as_object_mut().expect("operations are objects");
                d.insert("operationId".into(), json!(format!("{ns}.{base_id}{alias}")));
                if !params.is_empty() {
                    d.insert("parameters".into(), Value::Array(params.clone()));
                }
                if !d.contains_key("tags") {
                    d.insert("tags".into(), json!([ns]));
                }
                if !d.contains_key("responses") {
                    d.insert("responses".into(), json!({"default": {"description": "Response."}}));
                }
                // The host answers these before the function runs.
                let responses = d["responses"].as_object_mut().expect("checked when parsed");
                responses.entry("422").or_insert_with(|| {
                    json!({"description": "The request does not match this operation (checked by the host).",
                           "content": {"application/json": {"schema": {"$ref": HOST_VALIDATION_ERROR}}}})
                });
                if d.contains_key("requestBody") {
                    let responses = d["responses"].as_object_mut().expect("checked when parsed");
                    responses.entry("415").or_insert_with(|| {
                        json!({"description": "Unsupported `Content-Type` (checked by the host).",
                               "content": {"application/json": {"schema": {"$ref": HOST_ERROR}}}})
                    });
                }
                let validator = OperationValidator::compile(d, &[], &schemas).map_err(|source| MountError::Schema {
                    method: method.clone(),
                    path: template(&pattern),
                    source,
                })?;
                // What the host answers while or instead of running the
                // function; added after the validator is made, so that a
                // function's own undeclared 500 is never checked against the
                // host's error schema.
                state_host_answers(d, &pattern, spec, auth);
                operations.push((
                    method.clone(),
                    Arc::new(Operation {
                        doc,
                        validator: Some(Arc::new(validator)),
                    }),
                ));
            }
            let methods = operations.iter().map(|(m, _)| m.clone()).collect();
            mounts.push(Mount::new(
                pattern,
                Some(template(&declared.pattern)),
                methods,
                in_schema,
                operations,
                auth,
            ));
        }
    }
    Ok(mounts)
}
