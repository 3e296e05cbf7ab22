//! `GET /hello`: the smallest function there is (the README shows it whole).

use wasi::http::types::{Fields, IncomingRequest, OutgoingBody, OutgoingResponse, ResponseOutparam};

struct Hello;
wasi::http::proxy::export!(Hello);

impl wasi::exports::http::incoming_handler::Guest for Hello {
    fn handle(_request: IncomingRequest, out: ResponseOutparam) {
        let response = OutgoingResponse::new(Fields::new());
        let body = response.body().unwrap();
        ResponseOutparam::set(out, Ok(response));
        body.write().unwrap().blocking_write_and_flush(b"Hello from wasmfn!\n").unwrap();
        OutgoingBody::finish(body, None).unwrap();
    }
}
