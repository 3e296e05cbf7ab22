//! The request as a handler sees it, read from `wasi:http`.

use wasi::http::types::{IncomingBody, IncomingRequest, Method as WasiMethod};
use wasi::io::streams::StreamError;

use crate::HttpError;

/// The HTTP methods an operation may be declared for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Post,
    Put,
    Patch,
    Delete,
    Head,
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
    pub const get: Method = Method::Get;
    pub const post: Method = Method::Post;
    pub const put: Method = Method::Put;
    pub const patch: Method = Method::Patch;
    pub const delete: Method = Method::Delete;
    pub const head: Method = Method::Head;
    pub const options: Method = Method::Options;
}

/// One request: method, path, query, headers, the parameters the host
/// extracted, and the body (read on first use).
pub struct Request {
    pub(crate) method: Option<Method>,
    pub(crate) path: String,
    pub(crate) query: String,
    pub(crate) headers: Vec<(String, Vec<u8>)>,
    pub(crate) params: Vec<(String, String)>,
    pub(crate) declared_path: Option<String>,
    pub(crate) body: BodyState,
}

pub(crate) enum BodyState {
    Unread(IncomingRequest),
    Read(Vec<u8>),
    Taken,
}

impl Request {
    pub(crate) fn from_wasi(req: IncomingRequest) -> Self {
        let headers = req.headers().entries();
        let pq = req.path_with_query().unwrap_or_else(|| "/".into());
        let (path, query) = match pq.split_once('?') {
            Some((p, q)) => (p.to_string(), q.to_string()),
            None => (pq, String::new()),
        };
        let params = headers
            .iter()
            .filter_map(|(k, v)| {
                let name = k.strip_prefix("x-fn-param-")?;
                Some((name.to_string(), String::from_utf8_lossy(v).into_owned()))
            })
            .collect();
        let declared_path = headers
            .iter()
            .find(|(k, _)| k == "x-fn-path")
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned());
        Self {
            method: Method::from_wasi(&req.method()),
            path,
            query,
            headers,
            params,
            declared_path,
            body: BodyState::Unread(req),
        }
    }

    /// A request built by hand, for unit tests of handlers.
    pub fn builder(method: Method, path: &str) -> Self {
        let (path, query) = path.split_once('?').unwrap_or((path, ""));
        Self {
            method: Some(method),
            path: path.to_string(),
            query: query.to_string(),
            headers: Vec::new(),
            params: Vec::new(),
            declared_path: None,
            body: BodyState::Read(Vec::new()),
        }
    }

    /// Adds a path parameter (as the host would send it).
    pub fn param(mut self, name: &str, value: &str) -> Self {
        self.params.push((name.to_string(), value.to_string()));
        self
    }

    /// Adds a header.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers
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
        &self.path
    }

    /// The raw query string, without `?`.
    pub fn query(&self) -> &str {
        &self.query
    }

    /// The first value of a header (names are lowercase).
    pub fn header_value(&self, name: &str) -> Option<&[u8]> {
        let name = name.to_ascii_lowercase();
        self.headers.iter().find(|(k, _)| *k == name).map(|(_, v)| v.as_slice())
    }

    /// All headers, in order.
    pub fn headers(&self) -> &[(String, Vec<u8>)] {
        &self.headers
    }

    /// Path parameters, decoded by the host.
    pub fn params(&self) -> &[(String, String)] {
        &self.params
    }

    /// The request id the host assigned (`x-request-id`).
    pub fn request_id(&self) -> Option<String> {
        self.header_value("x-request-id")
            .map(|v| String::from_utf8_lossy(v).into_owned())
    }

    /// The whole body; the first call reads it.
    pub fn body_bytes(&mut self) -> Result<&[u8], HttpError> {
        if let BodyState::Unread(_) = self.body {
            let BodyState::Unread(req) = std::mem::replace(&mut self.body, BodyState::Taken) else {
                unreachable!("checked above")
            };
            self.body = BodyState::Read(read_all(req)?);
        }
        match &self.body {
            BodyState::Read(b) => Ok(b),
            _ => Err(HttpError::internal("the body was already taken")),
        }
    }
}

fn read_all(req: IncomingRequest) -> Result<Vec<u8>, HttpError> {
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
