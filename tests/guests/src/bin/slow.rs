//! Tells `?probe=` (a test fixture) it entered, sleeps `?ms=`, tells it it left, answers.
use wasi::http::types::{IncomingRequest, ResponseOutparam};
use wasmfn_test_guests::*;

struct Guest;
wasi::http::proxy::export!(Guest);

impl wasi::exports::http::incoming_handler::Guest for Guest {
    fn handle(req: IncomingRequest, out: ResponseOutparam) {
        let probe = query(&req, "probe");
        let ms: u64 = query(&req, "ms").and_then(|v| v.parse().ok()).unwrap_or(300);
        if let Some(p) = &probe {
            if let Err(e) = fetch(&format!("{p}/enter")) {
                return respond(out, 500, "text/plain", format!("probe enter failed: {e}").as_bytes());
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(ms));
        if let Some(p) = &probe {
            let _ = fetch(&format!("{p}/leave"));
        }
        respond(out, 200, "text/plain", b"done");
    }
}

fn main() {}
