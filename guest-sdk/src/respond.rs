//! Responses: what a handler returns, and how each kind declares itself.

use schemars::{JsonSchema, SchemaGenerator};
use serde::Serialize;
use serde_json::{Value, json};

use crate::describe::OperationDoc;

/// A response ready to send.
pub struct Response {
    /// The status code, e.g. `200`.
    pub status: u16,
    /// The headers, in order: names and value bytes
    /// ([`with_header`](Self::with_header) lowercases names).
    pub headers: Vec<(String, Vec<u8>)>,
    /// The body, whole or in pieces.
    pub body: ResponseBody,
}

/// A whole body, or one produced piece by piece while it is sent.
pub enum ResponseBody {
    /// The whole body.
    Bytes(Vec<u8>),
    /// The body's pieces, in order: sent as the iterator yields them when the
    /// handler's return type streams ([`JsonLines`]), else gathered and sent whole.
    Stream(Box<dyn Iterator<Item = Vec<u8>>>),
}

impl Response {
    /// A response with one content type and a whole body.
    pub fn new(status: u16, content_type: &str, body: impl Into<Vec<u8>>) -> Self {
        Self {
            status,
            headers: vec![("content-type".into(), content_type.as_bytes().to_vec())],
            body: ResponseBody::Bytes(body.into()),
        }
    }

    /// Adds a header.
    pub fn with_header(mut self, name: &str, value: &str) -> Self {
        self.headers
            .push((name.to_ascii_lowercase(), value.as_bytes().to_vec()));
        self
    }
}

/// What a handler may return.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be returned from a wasmfn handler",
    label = "this return type is not a response",
    note = "return `Json<T>`, `Created<T>`, `Text`, `NoContent`, `JsonLines<I>`, `Response`, or `Result<_, HttpError>` of one"
)]
pub trait IntoResponse {
    /// Whether the response streams its body while it is made (and so goes
    /// out through `wasi:http`, piece by piece, instead of whole). A
    /// [`Response`] built by hand with a [`ResponseBody::Stream`] is sent
    /// whole; return [`JsonLines`] to stream.
    const STREAMS: bool = false;
    /// Makes the response to send.
    fn into_response(self) -> Response;
    /// Declares the responses this type can produce.
    fn describe(_op: &mut OperationDoc, _generator: &mut SchemaGenerator) {}
}

impl IntoResponse for Response {
    fn into_response(self) -> Response {
        self
    }
    fn describe(op: &mut OperationDoc, _generator: &mut SchemaGenerator) {
        op.response("default", json!({"description": "Response."}));
    }
}

/// `200` with a JSON body; as an argument, a JSON request body.
pub struct Json<T>(pub T);

fn json_response<T: Serialize>(status: u16, value: &T) -> Response {
    match serde_json::to_vec(value) {
        Ok(body) => Response::new(status, "application/json", body),
        Err(e) => HttpError::internal(format!("cannot serialise the response: {e}")).into_response(),
    }
}

fn json_content<T: JsonSchema>(generator: &mut SchemaGenerator) -> Value {
    json!({"application/json": {"schema": generator.subschema_for::<T>()}})
}

impl<T: Serialize + JsonSchema> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        json_response(200, &self.0)
    }
    fn describe(op: &mut OperationDoc, generator: &mut SchemaGenerator) {
        op.response(
            "200",
            json!({"description": "OK", "content": json_content::<T>(generator)}),
        );
    }
}

/// `201 Created` with a JSON body.
pub struct Created<T>(pub T);

impl<T: Serialize + JsonSchema> IntoResponse for Created<T> {
    fn into_response(self) -> Response {
        json_response(201, &self.0)
    }
    fn describe(op: &mut OperationDoc, generator: &mut SchemaGenerator) {
        op.response(
            "201",
            json!({"description": "Created", "content": json_content::<T>(generator)}),
        );
    }
}

/// JSON with a status of its own, declared as such: `JsonStatus::<202, _>(job)`.
pub struct JsonStatus<const CODE: u16, T>(pub T);

impl<const CODE: u16, T: Serialize + JsonSchema> IntoResponse for JsonStatus<CODE, T> {
    fn into_response(self) -> Response {
        json_response(CODE, &self.0)
    }
    fn describe(op: &mut OperationDoc, generator: &mut SchemaGenerator) {
        op.response(
            &CODE.to_string(),
            json!({"description": "Response", "content": json_content::<T>(generator)}),
        );
    }
}

/// Any response with extra headers: `WithHeaders(Json(item), vec![("etag", tag)])`.
pub struct WithHeaders<R>(pub R, pub Vec<(&'static str, String)>);

impl<R: IntoResponse> IntoResponse for WithHeaders<R> {
    const STREAMS: bool = R::STREAMS;
    fn into_response(self) -> Response {
        let mut r = self.0.into_response();
        for (k, v) in self.1 {
            r = r.with_header(k, &v);
        }
        r
    }
    fn describe(op: &mut OperationDoc, generator: &mut SchemaGenerator) {
        R::describe(op, generator);
    }
}

/// `200` with raw bytes and a content type of the handler's choosing.
pub struct Bytes(pub &'static str, pub Vec<u8>);

impl IntoResponse for Bytes {
    fn into_response(self) -> Response {
        Response::new(200, self.0, self.1)
    }
    fn describe(op: &mut OperationDoc, _generator: &mut SchemaGenerator) {
        op.response(
            "200",
            json!({"description": "OK", "content": {"*/*": {"schema": {"type": "string", "format": "binary"}}}}),
        );
    }
}

/// `204 No Content`.
pub struct NoContent;

impl IntoResponse for NoContent {
    fn into_response(self) -> Response {
        Response {
            status: 204,
            headers: Vec::new(),
            body: ResponseBody::Bytes(Vec::new()),
        }
    }
    fn describe(op: &mut OperationDoc, _generator: &mut SchemaGenerator) {
        op.response("204", json!({"description": "No Content"}));
    }
}

/// `200` with a `text/plain` body.
pub struct Text(pub String);

impl IntoResponse for Text {
    fn into_response(self) -> Response {
        Response::new(200, "text/plain; charset=utf-8", self.0)
    }
    fn describe(op: &mut OperationDoc, _generator: &mut SchemaGenerator) {
        op.response(
            "200",
            json!({"description": "OK", "content": {"text/plain": {"schema": {"type": "string"}}}}),
        );
    }
}

/// `200` with JSON Lines, one item per line, streamed as the iterator
/// yields. The item schema is declared as the media type's `itemSchema`.
pub struct JsonLines<I>(pub I);

/// The media type of [`JsonLines`].
pub const JSON_LINES: &str = "application/jsonl";

impl<I, T> IntoResponse for JsonLines<I>
where
    I: IntoIterator<Item = T> + 'static,
    T: Serialize + JsonSchema,
{
    const STREAMS: bool = true;
    fn into_response(self) -> Response {
        let lines = self.0.into_iter().map(|item| {
            let mut line = serde_json::to_vec(&item).unwrap_or_else(|e| {
                serde_json::to_vec(&json!({"error": {"code": "serialisation", "message": e.to_string()}}))
                    .unwrap_or_default()
            });
            line.push(b'\n');
            line
        });
        Response {
            status: 200,
            headers: vec![("content-type".into(), JSON_LINES.as_bytes().to_vec())],
            body: ResponseBody::Stream(Box::new(lines)),
        }
    }
    fn describe(op: &mut OperationDoc, generator: &mut SchemaGenerator) {
        let item = generator.subschema_for::<T>();
        op.response(
            "200",
            json!({"description": "JSON Lines: one JSON value per line, each matching `itemSchema`",
                   "content": {JSON_LINES: {"itemSchema": item}}}),
        );
    }
}

/// An error a handler returns; becomes `{"error": {"code", "message"}}`
/// with its status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct HttpError {
    /// The status to answer with, e.g. `404`; not part of the body.
    #[serde(skip)]
    pub status: u16,
    /// A short code for programs, e.g. `not_found`.
    pub code: String,
    /// What went wrong, for people.
    pub message: String,
}

/// The body of an [`HttpError`].
#[derive(Serialize, JsonSchema)]
pub struct ErrorBody {
    /// The error's code and message.
    pub error: HttpError,
}

impl HttpError {
    /// An error with any status and code: `HttpError::new(402, "payment_required", "top up first")`.
    pub fn new(status: u16, code: &str, message: impl Into<String>) -> Self {
        Self {
            status,
            code: code.to_string(),
            message: message.into(),
        }
    }
    /// `400 bad_request`: the request cannot be served as sent.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "bad_request", message)
    }
    /// `404 not_found`: what the request names does not exist.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(404, "not_found", message)
    }
    /// `409 conflict`: the request clashes with the current state, e.g. a duplicate.
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(409, "conflict", message)
    }
    /// `500 internal`: the function failed; not the client's fault.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(500, "internal", message)
    }
}

impl std::fmt::Display for HttpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.status, self.code, self.message)
    }
}

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        let status = self.status;
        json_response(status, &ErrorBody { error: self })
    }
    fn describe(op: &mut OperationDoc, generator: &mut SchemaGenerator) {
        op.response(
            "default",
            json!({"description": "Error", "content": json_content::<ErrorBody>(generator)}),
        );
    }
}

impl<R: IntoResponse> IntoResponse for Result<R, HttpError> {
    const STREAMS: bool = R::STREAMS;
    fn into_response(self) -> Response {
        match self {
            Ok(r) => r.into_response(),
            Err(e) => e.into_response(),
        }
    }
    fn describe(op: &mut OperationDoc, generator: &mut SchemaGenerator) {
        R::describe(op, generator);
        HttpError::describe(op, generator);
    }
}
