//! Reads the whole request body, then answers with it (or with the read error, as 400).
use wasi::http::types::{IncomingRequest, ResponseOutparam};
use wasmfn_test_guests::*;

struct Guest;
wasi::http::proxy::export!(Guest);

impl wasi::exports::http::incoming_handler::Guest for Guest {
    fn handle(req: IncomingRequest, out: ResponseOutparam) {
        match read_body(req) {
            Ok(body) => {
                let len = body.len().to_string();
                respond_with(
                    out,
                    200,
                    &[("content-type", "application/octet-stream"), ("x-body-len", &len)],
                    &body,
                );
            }
            Err(e) => respond(out, 400, "text/plain", format!("body error: {e}").as_bytes()),
        }
    }
}

fn main() {}
