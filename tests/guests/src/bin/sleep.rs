//! Sleeps through the wasi clock, far longer than any test timeout.
use wasmfn_test_guests::*;
use wasi::http::types::{IncomingRequest, ResponseOutparam};

struct Guest;
wasi::http::proxy::export!(Guest);

impl wasi::exports::http::incoming_handler::Guest for Guest {
    fn handle(req: IncomingRequest, out: ResponseOutparam) {
        let _ = &req;
        std::thread::sleep(std::time::Duration::from_secs(120));
        respond(out, 200, "text/plain", b"woke up");
    }
}

fn main() {}
