//! `GET /greet?name=Ada` and its alias `GET /v1/greet`: one handler on two
//! routes; the host tells it which one matched in `x-fn-route`.

use wasi::http::types::{Fields, IncomingRequest, OutgoingBody, OutgoingResponse, ResponseOutparam};

struct Greet;
wasi::http::proxy::export!(Greet);

fn name_from(path_with_query: &str) -> String {
    let query = path_with_query.split_once('?').map(|(_, q)| q).unwrap_or("");
    query
        .split('&')
        .find_map(|kv| kv.strip_prefix("name="))
        .filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
        .unwrap_or("world")
        .to_string()
}

impl wasi::exports::http::incoming_handler::Guest for Greet {
    fn handle(request: IncomingRequest, out: ResponseOutparam) {
        let name = name_from(&request.path_with_query().unwrap_or_default());
        let route = request.headers().get("x-fn-route");
        let route = route.first().map(|r| String::from_utf8_lossy(r).into_owned()).unwrap_or_default();
        let text = format!("Hello, {name}! (via {route})\n");

        let headers = Fields::from_list(&[("content-type".into(), b"text/plain; charset=utf-8".to_vec())]).unwrap();
        let response = OutgoingResponse::new(headers);
        let body = response.body().unwrap();
        ResponseOutparam::set(out, Ok(response));
        let stream = body.write().unwrap();
        stream.blocking_write_and_flush(text.as_bytes()).unwrap();
        drop(stream);
        OutgoingBody::finish(body, None).unwrap();
    }
}
