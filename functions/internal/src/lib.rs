//! `GET /internal`, served only when the request is for `admin.localhost`
//! (`invoke.allow_hosts`); any other host gets `421` from the host.

use wasi::http::types::{Fields, IncomingRequest, OutgoingBody, OutgoingResponse, ResponseOutparam};

struct Internal;
wasi::http::proxy::export!(Internal);

impl wasi::exports::http::incoming_handler::Guest for Internal {
    fn handle(_request: IncomingRequest, out: ResponseOutparam) {
        let headers = Fields::from_list(&[("content-type".into(), b"application/json".to_vec())]).unwrap();
        let response = OutgoingResponse::new(headers);
        let body = response.body().unwrap();
        ResponseOutparam::set(out, Ok(response));
        let stream = body.write().unwrap();
        stream.blocking_write_and_flush(br#"{"area":"internal","ok":true}"#).unwrap();
        drop(stream);
        OutgoingBody::finish(body, None).unwrap();
    }
}
