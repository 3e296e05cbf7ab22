//! Panics: the host must answer 500 and keep serving.
use wasi::http::types::{IncomingRequest, ResponseOutparam};
use wasmfn_test_guests::*;

struct Guest;
wasi::http::proxy::export!(Guest);

impl wasi::exports::http::incoming_handler::Guest for Guest {
    fn handle(req: IncomingRequest, out: ResponseOutparam) {
        let _ = (req, out);
        panic!("this guest always fails");
    }
}

fn main() {}
