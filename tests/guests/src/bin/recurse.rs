//! Recurses `?depth=N` times (default: until the stack overflows).
use wasi::http::types::{IncomingRequest, ResponseOutparam};
use wasmfn_test_guests::*;

struct Guest;
wasi::http::proxy::export!(Guest);

impl wasi::exports::http::incoming_handler::Guest for Guest {
    fn handle(req: IncomingRequest, out: ResponseOutparam) {
        fn down(n: u64, max: u64) -> u64 {
            if n >= max {
                return n;
            }
            let r = down(std::hint::black_box(n + 1), max);
            std::hint::black_box(r)
        }
        let max: u64 = query(&req, "depth").and_then(|v| v.parse().ok()).unwrap_or(u64::MAX);
        let reached = down(0, max);
        respond(out, 200, "text/plain", format!("depth {reached}").as_bytes());
    }
}

fn main() {}
