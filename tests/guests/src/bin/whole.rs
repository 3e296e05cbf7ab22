//! Built with the Rust SDK, so requests reach it whole
//! (`wasmfn:function/handler`): answers that the host must refuse, an
//! answer that streams (and so goes through `wasi:http` instead), and one
//! that shows what the request looked like from inside.

use wasmfn_sdk::{Body, JsonLines, RequestInfo, Response, Text, WithHeaders};

/// A hop-by-hop header: not the guest's to send.
fn hop_by_hop() -> Response {
    Response::new(200, "text/plain", "x").with_header("connection", "close")
}

/// A status no response may have.
fn bad_status() -> Response {
    Response::new(1000, "text/plain", "x")
}

/// A `content-length` that is not the body's.
fn wrong_length() -> Response {
    Response::new(200, "text/plain", "four").with_header("content-length", "5")
}

/// A streamed response with a hop-by-hop header.
fn lines_hop_by_hop() -> WithHeaders<JsonLines<Vec<u32>>> {
    WithHeaders(JsonLines(vec![1]), vec![("connection", "close".into())])
}

/// 2,000 bytes, whole.
fn big() -> Text {
    Text("x".repeat(2000))
}

/// Three lines, streamed.
fn lines() -> JsonLines<Vec<u32>> {
    JsonLines(vec![1, 2, 3])
}

/// The request as the guest saw it.
fn seen(info: RequestInfo, Body(body): Body) -> Text {
    let header = |n: &str| {
        info.headers
            .iter()
            .find(|(k, _)| k == n)
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
            .unwrap_or_default()
    };
    Text(format!(
        "method={:?} path={} query={} x-fn-path={} x-test={} body={}",
        info.method,
        info.path,
        info.query,
        header("x-fn-path"),
        header("x-test"),
        String::from_utf8_lossy(&body)
    ))
}

wasmfn_sdk::function! {
    get "/hop-by-hop" => hop_by_hop,
    get "/bad-status" => bad_status,
    get "/wrong-length" => wrong_length,
    get "/lines" => lines,
    get "/big" => big,
    get "/lines-hop-by-hop" => lines_hop_by_hop,
    post "/seen" => seen,
}

fn main() {}
