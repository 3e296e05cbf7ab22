//! Allocates `?mb=N` MiB (default: until allocation fails), then answers.
use wasi::http::types::{IncomingRequest, ResponseOutparam};
use wasmfn_test_guests::*;

struct Guest;
wasi::http::proxy::export!(Guest);

impl wasi::exports::http::incoming_handler::Guest for Guest {
    fn handle(req: IncomingRequest, out: ResponseOutparam) {
        let limit: usize = query(&req, "mb").and_then(|v| v.parse().ok()).unwrap_or(usize::MAX);
        let mut held: Vec<Vec<u8>> = Vec::new();
        while held.len() < limit {
            held.push(vec![1u8; 1 << 20]);
        }
        let total: usize = std::hint::black_box(&held).iter().map(Vec::len).sum();
        respond(out, 200, "text/plain", format!("allocated {total} bytes").as_bytes());
    }
}

fn main() {}
