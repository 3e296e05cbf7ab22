//! A `wasi:http@0.3` component (`wasi:http/service`, an async `handle`)
//! written against the plain WIT with `wit-bindgen`'s async support, that
//! also describes itself through `wasmfn:function/metadata`. Its paths,
//! below wherever it is mounted (it dispatches on `x-fn-path`):
//!
//! - `GET /hello`: a short answer.
//! - `POST /echo`: the request body streamed back as it arrives, by a task
//!   that runs after `handle` returned.
//! - `GET /stream?chunks=N&size=S`: N chunks of S bytes, written after the
//!   response head went out.
//! - `GET /count`: how many requests this instance has handled (a global).
//! - `GET /wait?ms=N`: answers after waiting N ms on the host's clock, with
//!   the most requests that waited on this instance at once.
//! - `GET /spin`: computes forever.
//! - `GET /grow?mb=N`: allocates and touches N MiB.
//! - `GET /trap`: panics.
//! - `GET /fetch?url=U`: a GET of `U` through `wasi:http/client`; its
//!   status and body, or the error code (400 without `url`).
use std::sync::atomic::{AtomicU32, Ordering};

use wit_bindgen::StreamResult;

mod p3 {
    wit_bindgen::generate!({
        path: "../../wit/p3",
        world: "wasmfn:service/service",
        generate_all,
    });
}

mod metadata {
    wit_bindgen::generate!({
        path: "../../wit",
        inline: r#"
            package wasmfn-test:http3;

            world described {
                export wasmfn:function/metadata@0.1.0;
            }
        "#,
        world: "wasmfn-test:http3/described",
    });
}

use p3::exports::wasi::http::handler::Guest as Handler;
use p3::wasi::http::client;
use p3::wasi::http::types::{ErrorCode, Fields, Method, Request, Response, Scheme};
use p3::{wit_future, wit_stream};

static HANDLED: AtomicU32 = AtomicU32::new(0);
static WAITING: AtomicU32 = AtomicU32::new(0);
/// The most requests that waited on this instance at once.
static PEAK: AtomicU32 = AtomicU32::new(0);

struct Component;

p3::export!(Component with_types_in p3);
metadata::export!(Component with_types_in metadata);

impl metadata::exports::wasmfn::function::metadata::Guest for Component {
    fn describe() -> String {
        let op = |summary: &str| format!(r#"{{"summary":"{summary}","responses":{{"200":{{"description":"OK"}}}}}}"#);
        let get = |path: &str, summary: &str| format!(r#""{path}":{{"get":{}}}"#, op(summary));
        let paths = [
            get("/hello", "A wasi:http 0.3 hello"),
            format!(r#""/echo":{{"post":{}}}"#, op("The body, streamed back")),
            get("/stream", "Chunks written after the head"),
            get("/count", "Requests this instance has handled"),
            // A parameter the host checks before the guest runs.
            r#""/wait":{"get":{"summary":"An answer after a wait","parameters":[{"name":"ms","in":"query","required":true,"schema":{"type":"integer","minimum":0,"maximum":10000}}],"responses":{"200":{"description":"OK"}}}}"#.to_string(),
            get("/spin", "Computes forever"),
            get("/grow", "Allocates memory"),
            get("/trap", "Panics"),
            get("/fetch", "A GET through wasi:http/client"),
        ];
        format!(r#"{{"paths":{{{}}}}}"#, paths.join(","))
    }
}

fn query(path: &str, key: &str) -> Option<String> {
    let (_, q) = path.split_once('?')?;
    q.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        (k == key).then(|| v.to_string())
    })
}

fn text(status: u16, body: String) -> Response {
    let headers = Fields::from_list(&[("content-type".to_string(), b"text/plain".to_vec())]).unwrap();
    let (mut tx, rx) = wit_stream::new();
    let (_, trailers) = wit_future::new(|| Ok(None));
    let (response, _) = Response::new(headers, Some(rx), trailers);
    response.set_status_code(status).unwrap();
    wit_bindgen::spawn(async move {
        tx.write_all(body.into_bytes()).await;
    });
    response
}

impl Handler for Component {
    async fn handle(request: Request) -> Result<Response, ErrorCode> {
        let handled = HANDLED.fetch_add(1, Ordering::Relaxed) + 1;
        let path = request.get_path_with_query().unwrap_or_default();
        // The declared path the host matched (`x-fn-path`), wherever the
        // function is mounted.
        let route = match request.get_headers().get("x-fn-path").first() {
            Some(declared) => String::from_utf8_lossy(declared).into_owned(),
            None => path.split('?').next().unwrap_or_default().to_string(),
        };
        match route.as_str() {
            "/hello" => Ok(text(200, "hello from wasi:http 0.3\n".into())),
            "/count" => Ok(text(200, format!("{handled}\n"))),
            "/echo" => {
                let method = format!("{:?}", request.get_method());
                let (_, done) = wit_future::new(|| Ok(()));
                let (mut body, _trailers) = Request::consume_body(request, done);
                let (mut tx, rx) = wit_stream::new();
                let (_, trailers) = wit_future::new(|| Ok(None));
                let headers = Fields::from_list(&[("x-echo-method".to_string(), method.into_bytes())]).unwrap();
                let (response, _) = Response::new(headers, Some(rx), trailers);
                wit_bindgen::spawn(async move {
                    let mut chunk = Vec::with_capacity(16 << 10);
                    loop {
                        let (status, buf) = body.read(chunk).await;
                        chunk = buf;
                        match status {
                            StreamResult::Complete(_) => {
                                chunk = tx.write_all(chunk).await;
                                if !chunk.is_empty() {
                                    break;
                                }
                            }
                            StreamResult::Dropped | StreamResult::Cancelled => break,
                        }
                    }
                });
                Ok(response)
            }
            "/stream" => {
                let chunks: usize = query(&path, "chunks").and_then(|v| v.parse().ok()).unwrap_or(4);
                let size: usize = query(&path, "size").and_then(|v| v.parse().ok()).unwrap_or(1024);
                let (mut tx, rx) = wit_stream::new();
                let (_, trailers) = wit_future::new(|| Ok(None));
                let (response, _) = Response::new(Fields::new(), Some(rx), trailers);
                wit_bindgen::spawn(async move {
                    for i in 0..chunks {
                        let byte = b'a' + (i % 26) as u8;
                        if !tx.write_all(vec![byte; size]).await.is_empty() {
                            break;
                        }
                    }
                });
                Ok(response)
            }
            "/wait" => {
                let ms: u64 = query(&path, "ms").and_then(|v| v.parse().ok()).unwrap_or(100);
                let together = WAITING.fetch_add(1, Ordering::SeqCst) + 1;
                PEAK.fetch_max(together, Ordering::SeqCst);
                p3::wasi::clocks::monotonic_clock::wait_for(ms * 1_000_000).await;
                WAITING.fetch_sub(1, Ordering::SeqCst);
                let peak = PEAK.load(Ordering::SeqCst);
                Ok(text(200, format!("waited {ms} ms; at most {peak} waiting at once\n")))
            }
            "/spin" => {
                let mut x: u64 = 0;
                loop {
                    x = std::hint::black_box(x.wrapping_add(1));
                }
            }
            "/grow" => {
                let mb: usize = query(&path, "mb").and_then(|v| v.parse().ok()).unwrap_or(1);
                let mut v: Vec<u8> = Vec::new();
                v.resize(mb << 20, 1);
                Ok(text(200, format!("grew {} bytes\n", std::hint::black_box(v).len())))
            }
            "/trap" => panic!("the guest panics on purpose"),
            "/fetch" => {
                let Some(url) = query(&path, "url") else {
                    return Ok(text(400, "missing url\n".into()));
                };
                let rest = url.strip_prefix("http://").unwrap_or(&url);
                let (authority, path_with_query) = match rest.find('/') {
                    Some(i) => (&rest[..i], &rest[i..]),
                    None => (rest, "/"),
                };
                let (_, trailers) = wit_future::new(|| Ok(None));
                let (outgoing, _) = Request::new(Fields::new(), None, trailers, None);
                outgoing.set_method(&Method::Get).unwrap();
                outgoing.set_scheme(Some(&Scheme::Http)).unwrap();
                outgoing.set_authority(Some(authority)).unwrap();
                outgoing.set_path_with_query(Some(path_with_query)).unwrap();
                match client::send(outgoing).await {
                    Err(code) => Ok(text(502, format!("outbound error: {code:?}\n"))),
                    Ok(answer) => {
                        let status = answer.get_status_code();
                        let (_, done) = wit_future::new(|| Ok(()));
                        let (body, _) = Response::consume_body(answer, done);
                        let bytes = body.collect().await;
                        Ok(text(
                            200,
                            format!("upstream {status}: {}", String::from_utf8_lossy(&bytes)),
                        ))
                    }
                }
            }
            _ => Ok(text(404, format!("no route {route}\n"))),
        }
    }
}

fn main() {}
