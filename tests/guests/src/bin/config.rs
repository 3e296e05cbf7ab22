//! Reads its configuration through plain `wasi:config/store`, knowing
//! nothing of wasmfn: `?key=K` answers `{"get": value-or-null}` from
//! `get(K)`; without `key`, `{"all": {k: v, …}}` from `get-all()`; an
//! error of the store answers `{"error": "…"}` with status 500.
use wasi::http::types::{IncomingRequest, ResponseOutparam};
use wasmfn_test_guests::*;

mod bindings {
    wit_bindgen::generate!({
        path: "../../wit",
        inline: r#"
            package wasmfn-test:config;

            world config {
                import wasi:config/store@0.2.0-rc.1;
                export wasi:http/incoming-handler@0.2.12;
            }
        "#,
        world: "wasmfn-test:config/config",
        with: {
            "wasi:io/poll@0.2.12": ::wasi::io::poll,
            "wasi:io/error@0.2.12": ::wasi::io::error,
            "wasi:io/streams@0.2.12": ::wasi::io::streams,
            "wasi:clocks/monotonic-clock@0.2.12": ::wasi::clocks::monotonic_clock,
            "wasi:http/types@0.2.12": ::wasi::http::types,
            "wasi:config/store@0.2.0-rc.1": generate,
        },
    });
}

use bindings::wasi::config::store;

struct Guest;
bindings::export!(Guest with_types_in bindings);

impl bindings::exports::wasi::http::incoming_handler::Guest for Guest {
    fn handle(req: IncomingRequest, out: ResponseOutparam) {
        let answer = match query(&req, "key") {
            Some(key) => store::get(&key).map(|v| {
                let v = v.map(|v| json_str(&v)).unwrap_or_else(|| "null".into());
                format!("{{\"get\":{v}}}")
            }),
            None => store::get_all().map(|all| {
                let pairs: Vec<String> = all
                    .iter()
                    .map(|(k, v)| format!("{}:{}", json_str(k), json_str(v)))
                    .collect();
                format!("{{\"all\":{{{}}}}}", pairs.join(","))
            }),
        };
        match answer {
            Ok(body) => respond(out, 200, "application/json", body.as_bytes()),
            Err(e) => {
                let msg = match e {
                    store::Error::Upstream(m) => format!("upstream: {m}"),
                    store::Error::Io(m) => format!("io: {m}"),
                };
                let body = format!("{{\"error\":{}}}", json_str(&msg));
                respond(out, 500, "application/json", body.as_bytes());
            }
        }
    }
}

fn main() {}
