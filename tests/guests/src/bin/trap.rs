//! Panics: the host must answer 500 and keep serving.
use wasmfn_test_guests::*;
use wasi::http::types::{IncomingRequest, ResponseOutparam};

struct Guest;
wasi::http::proxy::export!(Guest);

impl wasi::exports::http::incoming_handler::Guest for Guest {
    fn handle(req: IncomingRequest, out: ResponseOutparam) {
        let _ = (req, out);
        panic!("this guest always fails");
    }
}

fn main() {}
