//! A plain `wasi:http/proxy` component written against the bare `wasi`
//! crate, knowing nothing of wasmfn: it must run unmodified.
use wasi::http::types::{Fields, IncomingRequest, OutgoingBody, OutgoingResponse, ResponseOutparam};
use wasmfn_test_guests::wasi;

struct Guest;
wasi::http::proxy::export!(Guest);

impl wasi::exports::http::incoming_handler::Guest for Guest {
    fn handle(_req: IncomingRequest, out: ResponseOutparam) {
        let resp = OutgoingResponse::new(Fields::new());
        let body = resp.body().unwrap();
        ResponseOutparam::set(out, Ok(resp));
        body.write()
            .unwrap()
            .blocking_write_and_flush(b"plain hello\n")
            .unwrap();
        OutgoingBody::finish(body, None).unwrap();
    }
}

fn main() {}
