//! The request as a handler sees it, given whole by the host or read from
//! `wasi:http`.

use std::cell::OnceCell;

use wasi::http::types::{Fields, IncomingBody, IncomingRequest, Method as WasiMethod};
use wasi::io::streams::StreamError;

use crate::HttpError;

/// The HTTP methods an operation may be declared for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// `GET`, declared with `get`; its operation also serves `HEAD` requests
    /// of a path without a `head` operation.
    Get,
    /// `POST`, declared with `post`.
    Post,
    /// `PUT`, declared with `put`.
    Put,
    /// `PATCH`, declared with `patch`.
    Patch,
    /// `DELETE`, declared with `delete`.
    Delete,
    /// `HEAD`, declared with `head`; without one, a `HEAD` request is served
    /// by the path's `get` operation.
    Head,
    /// `OPTIONS`, declared with `options`.
    Options,
}

impl Method {
    /// The lowercase name OpenAPI uses.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "get",
            Method::Post => "post",
            Method::Put => "put",
            Method::Patch => "patch",
            Method::Delete => "delete",
            Method::Head => "head",
            Method::Options => "options",
        }
    }

    /// From a method name as it appears on the wire (`GET`).
    fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "GET" => Method::Get,
            "POST" => Method::Post,
            "PUT" => Method::Put,
            "PATCH" => Method::Patch,
            "DELETE" => Method::Delete,
            "HEAD" => Method::Head,
            "OPTIONS" => Method::Options,
            _ => return None,
        })
    }

    fn from_wasi(m: &WasiMethod) -> Option<Self> {
        Some(match m {
            WasiMethod::Get => Method::Get,
            WasiMethod::Post => Method::Post,
            WasiMethod::Put => Method::Put,
            WasiMethod::Patch => Method::Patch,
            WasiMethod::Delete => Method::Delete,
            WasiMethod::Head => Method::Head,
            WasiMethod::Options => Method::Options,
            _ => return None,
        })
    }
}

/// Method names usable in [`function!`](crate::function): `get "/" => handler`.
#[allow(non_upper_case_globals)]
pub mod methods {
    use super::Method;
    /// `get "/path" => handler`: a `GET` operation.
    pub const get: Method = Method::Get;
    /// `post "/path" => handler`: a `POST` operation.
    pub const post: Method = Method::Post;
    /// `put "/path" => handler`: a `PUT` operation.
    pub const put: Method = Method::Put;
    /// `patch "/path" => handler`: a `PATCH` operation.
    pub const patch: Method = Method::Patch;
    /// `delete "/path" => handler`: a `DELETE` operation.
    pub const delete: Method = Method::Delete;
    /// `head "/path" => handler`: a `HEAD` operation.
    pub const head: Method = Method::Head;
    /// `options "/path" => handler`: an `OPTIONS` operation.
    pub const options: Method = Method::Options;
}

/// One request: method, path, query, headers, the parameters the host
/// extracted, and the body.
///
/// Only what a handler uses is read from the host: the path, the headers
/// and the parameters on first use, the body when it is asked for. Every
/// read is a call out of the sandbox, so a handler that needs none of them
/// pays for none.
pub struct Request {
    pub(crate) method: Option<Method>,
    /// The request's headers as a host resource (a child of `source`, so
    /// declared, and dropped, before it).
    fields: Option<Fields>,
    source: Option<IncomingRequest>,
    uri: OnceCell<(String, String)>,
    headers: OnceCell<Vec<(String, Vec<u8>)>>,
    params: OnceCell<Vec<(String, String)>>,
    pub(crate) declared_path: Option<String>,
    pub(crate) body: BodyState,
}

pub(crate) enum BodyState {
    Unread,
    Read(Vec<u8>),
    Taken,
}

impl Request {
    pub(crate) fn from_wasi(req: IncomingRequest) -> Self {
        let fields = req.headers();
        // The operation the host matched; the one header every request needs.
        let declared_path = fields
            .get("x-fn-path")
            .into_iter()
            .next()
            .map(|v| String::from_utf8_lossy(&v).into_owned());
        Self {
            method: Method::from_wasi(&req.method()),
            fields: Some(fields),
            source: Some(req),
            uri: OnceCell::new(),
            headers: OnceCell::new(),
            params: OnceCell::new(),
            declared_path,
            body: BodyState::Unread,
        }
    }

    /// A request the host gave whole (`wasmfn:function/handler`): nothing
    /// left to read from the host.
    pub(crate) fn from_whole(
        method: &str,
        path_with_query: &str,
        headers: Vec<(String, Vec<u8>)>,
        body: Vec<u8>,
    ) -> Self {
        let (path, query) = path_with_query.split_once('?').unwrap_or((path_with_query, ""));
        let declared_path = headers
            .iter()
            .find(|(k, _)| k == "x-fn-path")
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned());
        Self {
            method: Method::from_name(method),
            fields: None,
            source: None,
            uri: OnceCell::from((path.to_string(), query.to_string())),
            headers: OnceCell::from(headers),
            params: OnceCell::new(),
            declared_path,
            body: BodyState::Read(body),
        }
    }

    /// A request built by hand, for unit tests of handlers.
    pub fn builder(method: Method, path: &str) -> Self {
        let (path, query) = path.split_once('?').unwrap_or((path, ""));
        Self {
            method: Some(method),
            fields: None,
            source: None,
            uri: OnceCell::from((path.to_string(), query.to_string())),
            headers: OnceCell::from(Vec::new()),
            params: OnceCell::from(Vec::new()),
            declared_path: None,
            body: BodyState::Read(Vec::new()),
        }
    }

    /// Adds a path parameter (as the host would send it).
    pub fn param(mut self, name: &str, value: &str) -> Self {
        self.params_mut().push((name.to_string(), value.to_string()));
        self
    }

    /// Adds a header.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers_mut()
            .push((name.to_ascii_lowercase(), value.as_bytes().to_vec()));
        self
    }

    /// Sets the body.
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = BodyState::Read(body.into());
        self
    }

    /// The method.
    pub fn method(&self) -> Option<Method> {
        self.method
    }

    /// The path, as the client sent it (percent-encoded).
    pub fn path(&self) -> &str {
        &self.uri().0
    }

    /// The raw query string, without `?`.
    pub fn query(&self) -> &str {
        &self.uri().1
    }

    fn uri(&self) -> &(String, String) {
        self.uri.get_or_init(|| {
            let pq = self
                .source
                .as_ref()
                .and_then(|r| r.path_with_query())
                .unwrap_or_else(|| "/".into());
            match pq.split_once('?') {
                Some((p, q)) => (p.to_string(), q.to_string()),
                None => (pq, String::new()),
            }
        })
    }

    /// The first value of a header (names are lowercase).
    pub fn header_value(&self, name: &str) -> Option<&[u8]> {
        let name = name.to_ascii_lowercase();
        self.headers()
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_slice())
    }

    /// All headers, in order.
    pub fn headers(&self) -> &[(String, Vec<u8>)] {
        self.headers
            .get_or_init(|| self.fields.as_ref().map(Fields::entries).unwrap_or_default())
    }

    /// Path parameters, decoded by the host (it sends each as an
    /// `x-fn-param-NAME` header).
    pub fn params(&self) -> &[(String, String)] {
        self.params.get_or_init(|| {
            self.headers()
                .iter()
                .filter_map(|(k, v)| {
                    let name = k.strip_prefix("x-fn-param-")?;
                    Some((name.to_string(), String::from_utf8_lossy(v).into_owned()))
                })
                .collect()
        })
    }

    fn headers_mut(&mut self) -> &mut Vec<(String, Vec<u8>)> {
        self.headers();
        self.headers.get_mut().expect("initialised above")
    }

    fn params_mut(&mut self) -> &mut Vec<(String, String)> {
        self.params();
        self.params.get_mut().expect("initialised above")
    }

    /// The request id the host assigned (`x-request-id`).
    pub fn request_id(&self) -> Option<String> {
        self.header_value("x-request-id")
            .map(|v| String::from_utf8_lossy(v).into_owned())
    }

    /// The whole body; the first call reads it.
    pub fn body_bytes(&mut self) -> Result<&[u8], HttpError> {
        if let BodyState::Unread = self.body {
            self.body = BodyState::Taken;
            let Some(req) = &self.source else {
                return Err(HttpError::internal("the request has no body to read"));
            };
            self.body = BodyState::Read(read_all(req)?);
        }
        match &self.body {
            BodyState::Read(b) => Ok(b),
            _ => Err(HttpError::internal("the body was already taken")),
        }
    }
}

fn read_all(req: &IncomingRequest) -> Result<Vec<u8>, HttpError> {
    let body = req
        .consume()
        .map_err(|_| HttpError::internal("the body was already taken"))?;
    let stream = body
        .stream()
        .map_err(|_| HttpError::internal("the body stream was already taken"))?;
    let mut buf = Vec::new();
    loop {
        match stream.blocking_read(64 * 1024) {
            Ok(chunk) => buf.extend_from_slice(&chunk),
            Err(StreamError::Closed) => break,
            Err(StreamError::LastOperationFailed(e)) => {
                return Err(HttpError::bad_request(format!(
                    "the request body failed: {}",
                    e.to_debug_string()
                )));
            }
        }
    }
    drop(stream);
    IncomingBody::finish(body);
    Ok(buf)
}
