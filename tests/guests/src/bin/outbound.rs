//! Fetches `?url=` and answers 200 with the upstream status and body, or 502 with the host's error code.
use wasi::http::types::{IncomingRequest, ResponseOutparam};
use wasmfn_test_guests::*;

struct Guest;
wasi::http::proxy::export!(Guest);

impl wasi::exports::http::incoming_handler::Guest for Guest {
    fn handle(req: IncomingRequest, out: ResponseOutparam) {
        let url = query(&req, "url").unwrap_or_default();
        match fetch(&url) {
            Ok((status, body)) => {
                let mut text = format!("upstream {status}: ").into_bytes();
                text.extend_from_slice(&body);
                respond(out, 200, "text/plain", &text);
            }
            Err(e) => respond(out, 502, "text/plain", format!("denied: {e}").as_bytes()),
        }
    }
}

fn main() {}
