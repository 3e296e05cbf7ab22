//! Counts the requests its instance has served (a global, as a guest that
//! keeps state between calls would) and says so, in the response and on
//! stdout: with one instance per request, it is always 1.
use std::sync::atomic::{AtomicU32, Ordering};

use wasi::http::types::{IncomingRequest, ResponseOutparam};
use wasmfn_test_guests::*;

static SERVED: AtomicU32 = AtomicU32::new(0);

struct Guest;
wasi::http::proxy::export!(Guest);

impl wasi::exports::http::incoming_handler::Guest for Guest {
    fn handle(req: IncomingRequest, out: ResponseOutparam) {
        let n = SERVED.fetch_add(1, Ordering::Relaxed) + 1;
        let id = header(&req, "x-request-id").unwrap_or_default();
        println!("counter served {n} for {id}");
        let body = format!("{{\"served\":{n},\"request_id\":{}}}", json_str(&id));
        respond(out, 200, "application/json", body.as_bytes());
    }
}

fn main() {}
