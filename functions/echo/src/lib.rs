//! `POST /echo`: streams the request body back as it arrives, never
//! holding more than one chunk.

use wasi::http::types::{Fields, IncomingBody, IncomingRequest, OutgoingBody, OutgoingResponse, ResponseOutparam};
use wasi::io::streams::StreamError;

struct Echo;
wasi::http::proxy::export!(Echo);

impl wasi::exports::http::incoming_handler::Guest for Echo {
    fn handle(request: IncomingRequest, out: ResponseOutparam) {
        let content_type = request.headers().get("content-type");
        let content_type = content_type
            .first()
            .cloned()
            .unwrap_or_else(|| b"application/octet-stream".to_vec());
        let headers = Fields::from_list(&[("content-type".into(), content_type)]).unwrap();
        let response = OutgoingResponse::new(headers);
        let out_body = response.body().unwrap();
        let in_body = request.consume().unwrap();
        ResponseOutparam::set(out, Ok(response));

        let input = in_body.stream().unwrap();
        let output = out_body.write().unwrap();
        loop {
            match output.blocking_splice(&input, 64 * 1024) {
                Ok(_) => {}
                Err(StreamError::Closed) => break,
                // The request body failed (e.g. it crossed the size limit):
                // leave without finishing, which cuts the response.
                Err(StreamError::LastOperationFailed(_)) => return,
            }
        }
        drop(input);
        drop(output);
        IncomingBody::finish(in_body);
        OutgoingBody::finish(out_body, None).unwrap();
    }
}
