//! `GET /users/{id}`: the folder `users/[id]` makes the route; the host
//! passes the parameter in `x-fn-param-id`.

use wasi::http::types::{Fields, IncomingRequest, OutgoingBody, OutgoingResponse, ResponseOutparam};

struct User;
wasi::http::proxy::export!(User);

fn json_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

impl wasi::exports::http::incoming_handler::Guest for User {
    fn handle(request: IncomingRequest, out: ResponseOutparam) {
        let header = |name: &str| {
            let v = request.headers().get(name);
            v.first().map(|v| String::from_utf8_lossy(v).into_owned()).unwrap_or_default()
        };
        let json = format!(
            "{{\"id\":{},\"route\":{}}}",
            json_string(&header("x-fn-param-id")),
            json_string(&header("x-fn-route"))
        );
        let headers = Fields::from_list(&[("content-type".into(), b"application/json".to_vec())]).unwrap();
        let response = OutgoingResponse::new(headers);
        let body = response.body().unwrap();
        ResponseOutparam::set(out, Ok(response));
        let stream = body.write().unwrap();
        stream.blocking_write_and_flush(json.as_bytes()).unwrap();
        drop(stream);
        OutgoingBody::finish(body, None).unwrap();
    }
}
