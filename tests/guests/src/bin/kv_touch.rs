//! What one key-value round costs, for the benchmark: `?touch=1` reads the
//! counter `hits` of the store `default` and writes it back plus one (one
//! `get`, one `set`); without it, the same handler touches no store. Both
//! answer `{"hits": N}` (0 untouched).
use wasi::http::types::{IncomingRequest, ResponseOutparam};
use wasmfn_test_guests::*;

mod bindings {
    wit_bindgen::generate!({
        path: "../../wit",
        inline: r#"
            package wasmfn-test:kv-touch;

            world kv-touch {
                import wasi:keyvalue/store@0.2.0-draft;
                export wasi:http/incoming-handler@0.2.12;
            }
        "#,
        world: "wasmfn-test:kv-touch/kv-touch",
        with: {
            "wasi:io/poll@0.2.12": ::wasi::io::poll,
            "wasi:io/error@0.2.12": ::wasi::io::error,
            "wasi:io/streams@0.2.12": ::wasi::io::streams,
            "wasi:clocks/monotonic-clock@0.2.12": ::wasi::clocks::monotonic_clock,
            "wasi:http/types@0.2.12": ::wasi::http::types,
            "wasi:keyvalue/store@0.2.0-draft": generate,
        },
    });
}

use bindings::wasi::keyvalue::store;

struct Guest;
bindings::export!(Guest with_types_in bindings);

fn touch() -> Result<u64, String> {
    let bucket = store::open("default").map_err(|e| format!("{e:?}"))?;
    let hits = match bucket.get("hits").map_err(|e| format!("{e:?}"))? {
        Some(v) => String::from_utf8_lossy(&v).parse::<u64>().unwrap_or(0),
        None => 0,
    } + 1;
    bucket
        .set("hits", hits.to_string().as_bytes())
        .map_err(|e| format!("{e:?}"))?;
    Ok(hits)
}

impl bindings::exports::wasi::http::incoming_handler::Guest for Guest {
    fn handle(req: IncomingRequest, out: ResponseOutparam) {
        let hits = if query(&req, "touch").is_some() { touch() } else { Ok(0) };
        match hits {
            Ok(n) => respond(out, 200, "application/json", format!("{{\"hits\":{n}}}").as_bytes()),
            Err(e) => respond(
                out,
                500,
                "application/json",
                format!("{{\"error\":{}}}", json_str(&e)).as_bytes(),
            ),
        }
    }
}

fn main() {}
