//! Extractors: handler arguments that take what they need from the
//! request, and declare it in the document.

use schemars::{JsonSchema, SchemaGenerator};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::describe::OperationDoc;
use crate::{HttpError, Json, Request};

/// What a handler may take as an argument.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be a wasmfn handler argument",
    label = "not an extractor",
    note = "take `Path<T>`, `Query<T>`, `Json<T>`, `Headers`, `Body` or `RequestInfo`, where `T: Deserialize + JsonSchema`"
)]
pub trait FromRequest: Sized {
    /// Takes the argument from the request; an error (usually `400`) is
    /// answered instead of running the handler.
    fn from_request(req: &mut Request) -> Result<Self, HttpError>;
    /// Declares what this extractor reads. `path_params` are the names in
    /// the operation's path template.
    fn describe(_op: &mut OperationDoc, _generator: &mut SchemaGenerator, _path_params: &[String]) {}
}

/// The object schema of `T`, with its definitions resolved one level.
fn object_schema<T: JsonSchema>(generator: &mut SchemaGenerator) -> (Value, Vec<String>) {
    let mut schema = generator.subschema_for::<T>().to_value();
    if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
        let name = r.rsplit('/').next().unwrap_or_default().to_string();
        if let Some(def) = generator.definitions().get(&name) {
            schema = def.clone();
        }
    }
    let required = schema["required"]
        .as_array()
        .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_string)).collect())
        .unwrap_or_default();
    (schema, required)
}

/// Deserialises `pairs` into `T`: a struct by field name, or (one pair) a
/// single value.
fn from_pairs<T: DeserializeOwned>(pairs: &[(String, String)], what: &str) -> Result<T, HttpError> {
    let encoded = serde_urlencoded::to_string(pairs).map_err(|e| HttpError::bad_request(format!("{what}: {e}")))?;
    match serde_urlencoded::from_str::<T>(&encoded) {
        Ok(v) => Ok(v),
        Err(struct_err) => match pairs {
            [(_, value)] => serde_json::from_str::<T>(value)
                .or_else(|_| serde_json::from_value::<T>(Value::String(value.clone())))
                .map_err(|e| HttpError::bad_request(format!("{what}: {e}"))),
            _ => Err(HttpError::bad_request(format!("{what}: {struct_err}"))),
        },
    }
}

fn integral_floats_to_integers(v: &mut Value) {
    match v {
        Value::Number(n) if n.is_f64() => {
            let f = n.as_f64().unwrap_or(f64::NAN);
            if f.fract() == 0.0 && f.abs() < 9.0e15 {
                *v = Value::from(f as i64);
            }
        }
        Value::Array(a) => a.iter_mut().for_each(integral_floats_to_integers),
        Value::Object(m) => m.values_mut().for_each(integral_floats_to_integers),
        _ => {}
    }
}

/// Declares the `400` an extractor answers when the host-checked input
/// still does not fit the Rust type.
fn declare_bad_request(op: &mut OperationDoc, generator: &mut SchemaGenerator) {
    op.response(
        "400",
        json!({"description": "The input passed the schema but does not fit the handler's types.",
               "content": {"application/json": {"schema": generator.subschema_for::<crate::ErrorBody>()}}}),
    );
}

/// Path parameters: a struct whose fields are named like the template's
/// parameters, or a single value for a one-parameter path.
pub struct Path<T>(pub T);

impl<T: DeserializeOwned + JsonSchema> FromRequest for Path<T> {
    fn from_request(req: &mut Request) -> Result<Self, HttpError> {
        from_pairs(req.params(), "path parameters").map(Path)
    }
    fn describe(op: &mut OperationDoc, generator: &mut SchemaGenerator, path_params: &[String]) {
        let (schema, _) = object_schema::<T>(generator);
        let props = schema["properties"].as_object().cloned();
        for name in path_params {
            let s = match &props {
                Some(p) => p.get(name).cloned().unwrap_or(json!({"type": "string"})),
                None if path_params.len() == 1 => schema.clone(),
                None => json!({"type": "string"}),
            };
            op.param(json!({"name": name, "in": "path", "required": true, "schema": s}));
        }
        declare_bad_request(op, generator);
    }
}

/// Query parameters: a struct, one field per parameter; `Option` fields
/// are optional.
pub struct Query<T>(pub T);

impl<T: DeserializeOwned + JsonSchema> FromRequest for Query<T> {
    fn from_request(req: &mut Request) -> Result<Self, HttpError> {
        serde_urlencoded::from_str::<T>(req.query())
            .map(Query)
            .map_err(|e| HttpError::bad_request(format!("query: {e}")))
    }
    fn describe(op: &mut OperationDoc, generator: &mut SchemaGenerator, _path_params: &[String]) {
        let (schema, required) = object_schema::<T>(generator);
        if let Some(props) = schema["properties"].as_object() {
            for (name, s) in props {
                let mut p = json!({"name": name, "in": "query", "required": required.contains(name), "schema": s});
                if let Some(d) = s.get("description") {
                    p["description"] = d.clone();
                }
                op.param(p);
            }
        }
        declare_bad_request(op, generator);
    }
}

impl<T: DeserializeOwned + JsonSchema> FromRequest for Json<T> {
    fn from_request(req: &mut Request) -> Result<Self, HttpError> {
        let body = req.body_bytes()?;
        // The host has checked the body against the schema, for which `1.0`
        // is an integer; Rust's integer types want `1`.
        let mut value: Value =
            serde_json::from_slice(body).map_err(|e| HttpError::bad_request(format!("body: {e}")))?;
        integral_floats_to_integers(&mut value);
        serde_json::from_value(value)
            .map(Json)
            .map_err(|e| HttpError::bad_request(format!("body: {e}")))
    }
    fn describe(op: &mut OperationDoc, generator: &mut SchemaGenerator, _path_params: &[String]) {
        op.request_body(json!({
            "required": true,
            "content": {"application/json": {"schema": generator.subschema_for::<T>()}}
        }));
        declare_bad_request(op, generator);
    }
}

impl<T: DeserializeOwned + JsonSchema> FromRequest for Option<Json<T>> {
    fn from_request(req: &mut Request) -> Result<Self, HttpError> {
        if req.body_bytes()?.is_empty() {
            return Ok(None);
        }
        Json::<T>::from_request(req).map(Some)
    }
    fn describe(op: &mut OperationDoc, generator: &mut SchemaGenerator, _path_params: &[String]) {
        op.request_body(json!({
            "required": false,
            "content": {"application/json": {"schema": generator.subschema_for::<T>()}}
        }));
    }
}

/// The whole body as bytes, any content type.
pub struct Body(pub Vec<u8>);

impl FromRequest for Body {
    fn from_request(req: &mut Request) -> Result<Self, HttpError> {
        Ok(Body(req.body_bytes()?.to_vec()))
    }
    fn describe(op: &mut OperationDoc, _generator: &mut SchemaGenerator, _path_params: &[String]) {
        op.request_body(json!({"content": {"*/*": {"schema": {"type": "string", "format": "binary"}}}}));
    }
}

/// Every request header (lowercase names).
pub struct Headers(pub Vec<(String, Vec<u8>)>);

impl Headers {
    /// The first value of `name`, as text.
    pub fn get(&self, name: &str) -> Option<String> {
        let name = name.to_ascii_lowercase();
        self.0
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
    }
}

impl FromRequest for Headers {
    fn from_request(req: &mut Request) -> Result<Self, HttpError> {
        Ok(Headers(req.headers().to_vec()))
    }
}

/// Method, path, query, headers and request id, without the body.
pub struct RequestInfo {
    /// The method; `None` for one no operation can be declared for (`TRACE`, …).
    pub method: Option<crate::Method>,
    /// The path as the client sent it (percent-encoded), without the query.
    pub path: String,
    /// The raw query string, without `?`; empty when there is none.
    pub query: String,
    /// The id the host assigned to the request (`x-request-id`), as in its logs.
    pub request_id: Option<String>,
    /// Every header, in order (lowercase names, values as bytes).
    pub headers: Vec<(String, Vec<u8>)>,
}

impl FromRequest for RequestInfo {
    fn from_request(req: &mut Request) -> Result<Self, HttpError> {
        Ok(RequestInfo {
            method: req.method(),
            path: req.path().to_string(),
            query: req.query().to_string(),
            request_id: req.request_id(),
            headers: req.headers().to_vec(),
        })
    }
}
