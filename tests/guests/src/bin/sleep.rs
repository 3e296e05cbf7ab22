//! Sleeps through the wasi clock, far longer than any test timeout.
use wasi::http::types::{IncomingRequest, ResponseOutparam};
use wasmfn_test_guests::*;

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
