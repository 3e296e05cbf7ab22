//! The function as a whole: its operations, dispatch, and the OpenAPI
//! fragment that `describe` returns. Both come from one declaration.

use schemars::SchemaGenerator;
use schemars::generate::SchemaSettings;
use serde_json::{Map, Value, json};

use crate::extract::FromRequest;
use crate::request::{Method, Request};
use crate::respond::{HttpError, IntoResponse, Response, ResponseBody};

/// The OpenAPI operation being declared, filled in by extractors and
/// response types.
#[derive(Debug, Default)]
pub struct OperationDoc {
    parameters: Vec<Value>,
    request_body: Option<Value>,
    responses: Map<String, Value>,
}

impl OperationDoc {
    /// Declares a parameter (a later one with the same name and place wins).
    pub fn param(&mut self, p: Value) {
        self.parameters
            .retain(|q| !(q["name"] == p["name"] && q["in"] == p["in"]));
        self.parameters.push(p);
    }
    /// Declares the request body.
    pub fn request_body(&mut self, b: Value) {
        self.request_body = Some(b);
    }
    /// Declares a response for a status (`"200"`, `"default"`, …).
    pub fn response(&mut self, status: &str, r: Value) {
        self.responses.insert(status.to_string(), r);
    }
}

/// Integer formats a schema cannot enforce by itself get their bounds, so
/// the host refuses `2^40` for a `u32` instead of the handler failing.
fn bound_integer_formats(v: &mut Value) {
    match v {
        Value::Object(m) => {
            let bounds: Option<(i128, i128)> = match m.get("format").and_then(Value::as_str) {
                Some("int8") => Some((i8::MIN.into(), i8::MAX.into())),
                Some("uint8") => Some((0, u8::MAX.into())),
                Some("int16") => Some((i16::MIN.into(), i16::MAX.into())),
                Some("uint16") => Some((0, u16::MAX.into())),
                Some("int32") => Some((i32::MIN.into(), i32::MAX.into())),
                Some("uint32") => Some((0, u32::MAX.into())),
                Some("int64") => Some((i64::MIN.into(), i64::MAX.into())),
                Some("uint64") => Some((0, u64::MAX.into())),
                _ => None,
            };
            if let Some((lo, hi)) = bounds {
                let num = |n: i128| serde_json::from_str::<Value>(&n.to_string()).expect("integers are JSON");
                m.entry("minimum").or_insert_with(|| num(lo));
                m.entry("maximum").or_insert_with(|| num(hi));
            }
            m.values_mut().for_each(bound_integer_formats);
        }
        Value::Array(a) => a.iter_mut().for_each(bound_integer_formats),
        _ => {}
    }
}

/// A handler: a function whose arguments are extractors and whose return
/// type is a response.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a wasmfn handler",
    label = "not a handler",
    note = "a handler is a `fn` taking up to 6 extractors (`Path<T>`, `Query<T>`, `Json<T>`, …) and returning a response (`Json<T>`, `Result<Created<T>, HttpError>`, …)"
)]
pub trait Handler<Args>: 'static {
    /// Whether the response streams (see [`IntoResponse::STREAMS`]).
    const STREAMS: bool;
    /// Takes each argument from `req`, runs the handler and makes its
    /// response; an argument that cannot be taken answers with its error.
    fn call(&self, req: &mut Request) -> Response;
    /// Declares the arguments' parameters and body and the return type's
    /// responses. `path_params` are the names in the operation's path template.
    fn describe(op: &mut OperationDoc, generator: &mut SchemaGenerator, path_params: &[String]);
}

macro_rules! handler_for {
    ($($arg:ident),*) => {
        impl<F, R, $($arg,)*> Handler<($($arg,)*)> for F
        where
            F: Fn($($arg),*) -> R + 'static,
            R: IntoResponse,
            $($arg: FromRequest,)*
        {
            const STREAMS: bool = R::STREAMS;
            #[allow(non_snake_case, unused_variables)]
            fn call(&self, req: &mut Request) -> Response {
                $(
                    let $arg = match $arg::from_request(req) {
                        Ok(v) => v,
                        Err(e) => return e.into_response(),
                    };
                )*
                (self)($($arg),*).into_response()
            }
            #[allow(unused_variables)]
            fn describe(op: &mut OperationDoc, generator: &mut SchemaGenerator, path_params: &[String]) {
                $($arg::describe(op, generator, path_params);)*
                R::describe(op, generator);
            }
        }
    };
}

handler_for!();
handler_for!(A1);
handler_for!(A1, A2);
handler_for!(A1, A2, A3);
handler_for!(A1, A2, A3, A4);
handler_for!(A1, A2, A3, A4, A5);
handler_for!(A1, A2, A3, A4, A5, A6);

type Dispatch = Box<dyn Fn(&mut Request) -> Response>;
type Describe = fn(&mut OperationDoc, &mut SchemaGenerator, &[String]);

struct Route {
    method: Method,
    path: &'static str,
    name: &'static str,
    docs: &'static [&'static str],
    streams: bool,
    call: Dispatch,
    describe: Describe,
}

/// A function's operations, declared once: [`App::serve`] dispatches to
/// them and [`App::describe`] documents them.
pub struct App {
    title: Option<&'static str>,
    routes: Vec<Route>,
}

fn template_params(path: &str) -> Vec<String> {
    path.split('/')
        .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
        .map(str::to_string)
        .collect()
}

/// Whether a request path (relative) matches a template like `/{id}`.
fn template_matches(template: &str, path: &str) -> bool {
    let t: Vec<&str> = template.trim_end_matches('/').split('/').collect();
    let p: Vec<&str> = path.trim_end_matches('/').split('/').collect();
    t.len() == p.len()
        && t.iter()
            .zip(&p)
            .all(|(a, b)| (a.starts_with('{') && !b.is_empty()) || a == b)
}

impl App {
    /// A function with no operations yet; `title` becomes the fragment's `info.title`.
    pub fn new(title: Option<&'static str>) -> Self {
        Self {
            title,
            routes: Vec::new(),
        }
    }

    /// Adds an operation. `name` becomes its `operationId`; `docs` its
    /// summary (first line) and description (the rest).
    pub fn route<H, Args>(
        mut self,
        method: Method,
        path: &'static str,
        name: &'static str,
        docs: &'static [&'static str],
        handler: H,
    ) -> Self
    where
        H: Handler<Args>,
    {
        self.routes.push(Route {
            method,
            path,
            name,
            docs,
            streams: H::STREAMS,
            call: Box::new(move |req| handler.call(req)),
            describe: H::describe,
        });
        self
    }

    /// The OpenAPI 3.1 fragment for `wasmfn:function/metadata.describe`.
    pub fn describe(&self) -> String {
        let mut generator = SchemaGenerator::new(SchemaSettings::draft2020_12().with(|s| {
            s.definitions_path = "/components/schemas".into();
            s.meta_schema = None;
        }));
        let mut paths = Map::new();
        for r in &self.routes {
            let mut op = OperationDoc::default();
            let params = template_params(r.path);
            (r.describe)(&mut op, &mut generator, &params);
            for p in &params {
                if !op.parameters.iter().any(|q| q["name"] == *p && q["in"] == "path") {
                    op.param(json!({"name": p, "in": "path", "required": true, "schema": {"type": "string"}}));
                }
            }
            let mut doc = Map::new();
            doc.insert("operationId".into(), json!(r.name));
            let lines: Vec<&str> = r.docs.iter().map(|l| l.trim()).collect();
            if let Some((first, rest)) = lines.split_first() {
                doc.insert("summary".into(), json!(first));
                let rest = rest.join("\n").trim().to_string();
                if !rest.is_empty() {
                    doc.insert("description".into(), json!(rest));
                }
            }
            if !op.parameters.is_empty() {
                doc.insert("parameters".into(), Value::Array(op.parameters));
            }
            if let Some(b) = op.request_body {
                doc.insert("requestBody".into(), b);
            }
            if op.responses.is_empty() {
                op.responses
                    .insert("default".into(), json!({"description": "Response."}));
            }
            doc.insert("responses".into(), Value::Object(op.responses));
            let item = paths.entry(r.path.to_string()).or_insert_with(|| json!({}));
            item[r.method.as_str()] = Value::Object(doc);
        }
        let mut schemas = generator.take_definitions(true);
        for schema in schemas.values_mut() {
            bound_integer_formats(schema);
        }
        for item in paths.values_mut() {
            bound_integer_formats(item);
        }
        let mut fragment = json!({ "paths": paths });
        if !schemas.is_empty() {
            fragment["components"] = json!({ "schemas": schemas });
        }
        if let Some(t) = self.title {
            fragment["info"] = json!({ "title": t });
        }
        fragment.to_string()
    }

    /// Finds the operation for a request and runs it.
    pub fn serve(&self, req: &mut Request) -> Response {
        match self.find(req) {
            Some(r) => (r.call)(req),
            None => HttpError::not_found(format!("no operation for `{}`", req.path())).into_response(),
        }
    }

    /// Runs a request given whole, unless its operation's response streams
    /// (`None`: nothing ran). A hand-built streamed body is gathered whole.
    pub fn serve_whole(&self, req: &mut Request) -> Option<Response> {
        let resp = match self.find(req) {
            Some(r) if r.streams => return None,
            Some(r) => (r.call)(req),
            None => HttpError::not_found(format!("no operation for `{}`", req.path())).into_response(),
        };
        Some(match resp.body {
            ResponseBody::Bytes(_) => resp,
            ResponseBody::Stream(items) => Response {
                body: ResponseBody::Bytes(items.flatten().collect()),
                ..resp
            },
        })
    }

    /// The operation a request is for: that of its method, or for a `HEAD`
    /// without a `head` operation, the path's `get` operation.
    fn find(&self, req: &Request) -> Option<&Route> {
        let method = req.method()?;
        self.find_for(method, req).or_else(|| match method {
            Method::Head => self.find_for(Method::Get, req),
            _ => None,
        })
    }

    fn find_for(&self, method: Method, req: &Request) -> Option<&Route> {
        // The host names the declared path (`x-fn-path`); without it, match
        // the request path, static segments before parameters.
        let path = req.declared_path.as_deref();
        self.routes
            .iter()
            .filter(|r| {
                r.method == method
                    && match path {
                        Some(p) => p == r.path,
                        None => template_matches(r.path, req.path()),
                    }
            })
            .min_by_key(|r| r.path.matches('{').count())
    }
}
