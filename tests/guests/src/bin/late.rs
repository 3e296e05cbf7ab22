//! Keeps running after it has answered, or after it has given up answering:
//! `?mode=stream` sends its head and one chunk, sleeps `?ms=`, sends the
//! rest; `?mode=error` sets an error response, then sleeps; `?mode=drop`
//! drops its response without setting it, sleeps, then panics.
use wasi::http::types::{ErrorCode, Fields, IncomingRequest, OutgoingBody, OutgoingResponse, ResponseOutparam};
use wasmfn_test_guests::*;

struct Guest;
wasi::http::proxy::export!(Guest);

impl wasi::exports::http::incoming_handler::Guest for Guest {
    fn handle(req: IncomingRequest, out: ResponseOutparam) {
        let ms: u64 = query(&req, "ms").and_then(|v| v.parse().ok()).unwrap_or(200);
        let pause = || std::thread::sleep(std::time::Duration::from_millis(ms));
        match query(&req, "mode").as_deref() {
            Some("error") => {
                ResponseOutparam::set(out, Err(ErrorCode::InternalError(Some("gave up".into()))));
                pause();
            }
            Some("drop") => {
                drop(out);
                pause();
                panic!("ended after dropping its response");
            }
            _ => {
                let resp = OutgoingResponse::new(Fields::new());
                let body = resp.body().expect("body taken once");
                ResponseOutparam::set(out, Ok(resp));
                let stream = body.write().expect("stream taken once");
                stream.blocking_write_and_flush(b"first,").expect("write");
                pause();
                stream.blocking_write_and_flush(b"last").expect("write");
                drop(stream);
                OutgoingBody::finish(body, None).expect("finish");
            }
        }
    }
}

fn main() {}
