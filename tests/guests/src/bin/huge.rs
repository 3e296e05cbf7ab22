//! Answers with `?bytes=N` bytes of `x`, streamed in chunks.
use wasi::http::types::{IncomingRequest, ResponseOutparam};
use wasmfn_test_guests::*;

struct Guest;
wasi::http::proxy::export!(Guest);

impl wasi::exports::http::incoming_handler::Guest for Guest {
    fn handle(req: IncomingRequest, out: ResponseOutparam) {
        let n: usize = query(&req, "bytes").and_then(|v| v.parse().ok()).unwrap_or(64 << 20);
        use wasi::http::types::{Fields, OutgoingBody, OutgoingResponse};
        let resp = OutgoingResponse::new(Fields::new());
        let ob = resp.body().unwrap();
        ResponseOutparam::set(out, Ok(resp));
        let stream = ob.write().unwrap();
        let chunk = vec![b'x'; 4096];
        let mut left = n;
        while left > 0 {
            let k = left.min(chunk.len());
            if stream.blocking_write_and_flush(&chunk[..k]).is_err() {
                return;
            }
            left -= k;
        }
        drop(stream);
        let _ = OutgoingBody::finish(ob, None);
    }
}

fn main() {}
