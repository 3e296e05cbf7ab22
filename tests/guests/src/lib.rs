//! Small helpers shared by the test guests: respond, read the body, read
//! the query. Each guest is one `src/bin/*.rs`, built as its own component.

pub use wasi;
use wasi::http::types::{Fields, IncomingBody, IncomingRequest, OutgoingBody, OutgoingResponse, ResponseOutparam};
use wasi::io::streams::StreamError;

/// Sends a whole response.
pub fn respond(out: ResponseOutparam, status: u16, content_type: &str, body: &[u8]) {
    respond_with(out, status, &[("content-type", content_type)], body);
}

/// Sends a whole response with extra headers.
pub fn respond_with(out: ResponseOutparam, status: u16, headers: &[(&str, &str)], body: &[u8]) {
    let list: Vec<(String, Vec<u8>)> = headers
        .iter()
        .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
        .collect();
    let resp = OutgoingResponse::new(Fields::from_list(&list).expect("valid headers"));
    resp.set_status_code(status).expect("valid status");
    let ob = resp.body().expect("body taken once");
    ResponseOutparam::set(out, Ok(resp));
    write_body(ob, body);
}

/// Writes `body` into an outgoing body and finishes it.
pub fn write_body(ob: OutgoingBody, body: &[u8]) {
    let stream = ob.write().expect("stream taken once");
    for chunk in body.chunks(4096) {
        stream.blocking_write_and_flush(chunk).expect("write");
    }
    drop(stream);
    OutgoingBody::finish(ob, None).expect("finish");
}

/// Reads the whole request body, or says why it could not.
pub fn read_body(req: IncomingRequest) -> Result<Vec<u8>, String> {
    let body = req.consume().map_err(|_| "body already taken".to_string())?;
    let stream = body.stream().map_err(|_| "stream already taken".to_string())?;
    let mut buf = Vec::new();
    loop {
        match stream.blocking_read(64 * 1024) {
            Ok(chunk) => buf.extend_from_slice(&chunk),
            Err(StreamError::Closed) => break,
            Err(StreamError::LastOperationFailed(e)) => return Err(e.to_debug_string()),
        }
    }
    drop(stream);
    IncomingBody::finish(body);
    Ok(buf)
}

/// One query parameter, not decoded.
pub fn query(req: &IncomingRequest, key: &str) -> Option<String> {
    let pq = req.path_with_query()?;
    let q = pq.split_once('?')?.1;
    q.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        (k == key).then(|| v.to_string())
    })
}

/// The first value of a request header.
pub fn header(req: &IncomingRequest, name: &str) -> Option<String> {
    req.headers()
        .get(name)
        .first()
        .map(|v| String::from_utf8_lossy(v).into_owned())
}

/// A JSON string literal.
pub fn json_str(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Sends a GET to `url` (`http://authority/path`) through
/// `wasi:http/outgoing-handler`; the error is the host's error code.
pub fn fetch(url: &str) -> Result<(u16, Vec<u8>), String> {
    use wasi::http::outgoing_handler;
    use wasi::http::types::{OutgoingRequest, Scheme};
    let (scheme, rest) = url.split_once("://").ok_or("url needs a scheme")?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let req = OutgoingRequest::new(Fields::new());
    let scheme = if scheme == "https" { Scheme::Https } else { Scheme::Http };
    req.set_scheme(Some(&scheme)).map_err(|_| "bad scheme")?;
    req.set_authority(Some(authority)).map_err(|_| "bad authority")?;
    req.set_path_with_query(Some(path)).map_err(|_| "bad path")?;
    let fut = outgoing_handler::handle(req, None).map_err(|e| format!("{e:?}"))?;
    let resp = loop {
        match fut.get() {
            Some(r) => break r,
            None => fut.subscribe().block(),
        }
    };
    let resp = resp
        .map_err(|_| "response taken twice")?
        .map_err(|e| format!("{e:?}"))?;
    let status = resp.status();
    let body = resp.consume().map_err(|_| "body taken twice")?;
    let stream = body.stream().map_err(|_| "stream taken twice")?;
    let mut buf = Vec::new();
    loop {
        match stream.blocking_read(64 * 1024) {
            Ok(chunk) => buf.extend_from_slice(&chunk),
            Err(StreamError::Closed) => break,
            Err(StreamError::LastOperationFailed(e)) => return Err(e.to_debug_string()),
        }
    }
    Ok((status, buf))
}
