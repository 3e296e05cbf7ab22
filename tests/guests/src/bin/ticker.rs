//! Keeps count of scheduled runs in its key-value store `default`. A
//! request with `x-fn-schedule: ID` (and `x-fn-schedule-run: TICK`, the
//! time its run is for) adds 1 to `started:ID:TICK` as it starts, then to
//! `runs:ID` and `attempts:ID:TICK` as it ends, and
//! records `method:ID` and `body:ID`. Its JSON body may say
//! `{"fail_first": n}`: the first `n` attempts of a tick answer 500 (after
//! counting); `{"sleep_ms": n}`: wait that long first. A request without
//! the header answers the store: `?key=K` → `{"value": text | null}`,
//! otherwise every key and value as one object.
use serde_json::{Map, Value, json};
use wasi::http::types::{IncomingRequest, ResponseOutparam};
use wasmfn_test_guests::*;

mod bindings {
    wit_bindgen::generate!({
        path: "../../wit",
        inline: r#"
            package wasmfn-test:ticker;

            world ticker {
                import wasi:keyvalue/store@0.2.0-draft;
                import wasi:keyvalue/atomics@0.2.0-draft;
                export wasi:http/incoming-handler@0.2.12;
            }
        "#,
        world: "wasmfn-test:ticker/ticker",
        with: {
            "wasi:io/poll@0.2.12": ::wasi::io::poll,
            "wasi:io/error@0.2.12": ::wasi::io::error,
            "wasi:io/streams@0.2.12": ::wasi::io::streams,
            "wasi:clocks/monotonic-clock@0.2.12": ::wasi::clocks::monotonic_clock,
            "wasi:http/types@0.2.12": ::wasi::http::types,
            "wasi:keyvalue/store@0.2.0-draft": generate,
            "wasi:keyvalue/atomics@0.2.0-draft": generate,
        },
    });
}

use bindings::wasi::keyvalue::{atomics, store};

struct Guest;
bindings::export!(Guest with_types_in bindings);

impl bindings::exports::wasi::http::incoming_handler::Guest for Guest {
    fn handle(req: IncomingRequest, out: ResponseOutparam) {
        let (status, body) = match answer(req) {
            Ok(r) => r,
            Err(e) => (500, json!({"error": format!("{e:?}")})),
        };
        respond(out, status, "application/json", body.to_string().as_bytes());
    }
}

fn answer(req: IncomingRequest) -> Result<(u16, Value), store::Error> {
    let bucket = store::open("default")?;
    let Some(id) = header(&req, "x-fn-schedule") else {
        if let Some(key) = query(&req, "key") {
            let value = bucket.get(&key)?.map(|v| String::from_utf8_lossy(&v).into_owned());
            return Ok((200, json!({ "value": value })));
        }
        let mut all = Map::new();
        let mut cursor = None;
        loop {
            let page = bucket.list_keys(cursor)?;
            for k in page.keys {
                let v = bucket.get(&k)?.map(|v| String::from_utf8_lossy(&v).into_owned());
                all.insert(k, json!(v));
            }
            match page.cursor {
                Some(c) => cursor = Some(c),
                None => break,
            }
        }
        return Ok((200, Value::Object(all)));
    };
    let tick = header(&req, "x-fn-schedule-run").unwrap_or_default();
    let method = format!("{:?}", req.method());
    let body = read_body(req).unwrap_or_default();
    let asked: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    atomics::increment(&bucket, &format!("started:{id}:{tick}"), 1)?;
    if let Some(ms) = asked["sleep_ms"].as_u64() {
        wasi::clocks::monotonic_clock::subscribe_duration(ms * 1_000_000).block();
    }
    atomics::increment(&bucket, &format!("runs:{id}"), 1)?;
    let attempt = atomics::increment(&bucket, &format!("attempts:{id}:{tick}"), 1)?;
    bucket.set(&format!("method:{id}"), method.as_bytes())?;
    bucket.set(&format!("body:{id}"), &body)?;
    if attempt <= asked["fail_first"].as_u64().unwrap_or(0) {
        return Ok((500, json!({"failed": attempt})));
    }
    Ok((200, json!({"attempt": attempt})))
}

fn main() {}
