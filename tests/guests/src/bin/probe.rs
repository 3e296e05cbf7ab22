//! Answers with what the host told it: method, path, routing headers, request id,
//! verified caller facts (`x-fn-auth-*`).
use wasi::http::types::{IncomingRequest, ResponseOutparam};
use wasmfn_test_guests::*;

struct Guest;
wasi::http::proxy::export!(Guest);

impl wasi::exports::http::incoming_handler::Guest for Guest {
    fn handle(req: IncomingRequest, out: ResponseOutparam) {
        let h = |n: &str| header(&req, n).map(|v| json_str(&v)).unwrap_or_else(|| "null".into());
        let mut params: Vec<String> = req
            .headers()
            .entries()
            .into_iter()
            .filter(|(k, _)| k.starts_with("x-fn-param-"))
            .map(|(k, v)| {
                format!(
                    "{}:{}",
                    json_str(&k["x-fn-param-".len()..]),
                    json_str(&String::from_utf8_lossy(&v))
                )
            })
            .collect();
        params.sort();
        let method = format!("{:?}", req.method());
        let body = format!(
            "{{\"method\":{},\"path\":{},\"route\":{},\"function\":{},\"request_id\":{},\"params\":{{{}}},\"spoof\":{},\"auth\":{{\"subject\":{},\"scopes\":{},\"key_id\":{}}}}}",
            json_str(&method),
            json_str(&req.path_with_query().unwrap_or_default()),
            h("x-fn-route"),
            h("x-fn-function"),
            h("x-request-id"),
            params.join(","),
            h("x-fn-spoof"),
            h("x-fn-auth-subject"),
            h("x-fn-auth-scopes"),
            h("x-fn-auth-key-id"),
        );
        respond(out, 200, "application/json", body.as_bytes());
    }
}

fn main() {}
