//! Computes for `?n=` rounds (a thousand by default) without calling the
//! host, then answers with the result: a request of known CPU cost.
use wasi::http::types::{IncomingRequest, ResponseOutparam};
use wasmfn_test_guests::*;

struct Guest;
wasi::http::proxy::export!(Guest);

impl wasi::exports::http::incoming_handler::Guest for Guest {
    fn handle(req: IncomingRequest, out: ResponseOutparam) {
        let n: u64 = query(&req, "n").and_then(|v| v.parse().ok()).unwrap_or(1000);
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..n {
            for _ in 0..1000 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x = std::hint::black_box(x);
            }
        }
        respond(out, 200, "text/plain", format!("{x}").as_bytes());
    }
}

fn main() {}
