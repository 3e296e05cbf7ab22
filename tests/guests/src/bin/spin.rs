//! Computes forever without calling the host.
use wasi::http::types::{IncomingRequest, ResponseOutparam};
use wasmfn_test_guests::wasi;

struct Guest;
wasi::http::proxy::export!(Guest);

impl wasi::exports::http::incoming_handler::Guest for Guest {
    fn handle(_req: IncomingRequest, _out: ResponseOutparam) {
        let mut n: u64 = 0;
        loop {
            n = std::hint::black_box(n.wrapping_add(1));
        }
    }
}

fn main() {}
