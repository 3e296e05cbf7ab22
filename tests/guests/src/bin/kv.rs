//! Every operation of plain `wasi:keyvalue` (store, atomics, batch) over
//! HTTP, knowing nothing of wasmfn. Without `store` it answers
//! `{"pong": true}` and touches no store. Otherwise it opens `store` and
//! runs `op`:
//!
//! - `open`: `{"ok": true}`
//! - `get&key=K`: `{"value": null}` when unset, `{"value": "text"}` for
//!   UTF-8, `{"base64": "…"}` for other bytes
//! - `set&key=K` (the body is the value), `delete&key=K`: `{"ok": true}`
//! - `exists&key=K`: `{"exists": bool}`
//! - `list[&cursor=C]`: `{"keys": [...], "cursor": n | null}`
//! - `increment&key=K&delta=N`: `{"value": n}`
//! - `get-many` (body: a JSON list of keys): `{"values": [null | {"key": k,
//!   "value" | "base64": …}, …]}`
//! - `set-many` (body: a JSON list of `[key, text]`), `delete-many` (body:
//!   a JSON list of keys): `{"ok": true}`
//!
//! A store error answers `{"error": "access-denied" | "no-such-store" |
//! "other", "message": "…"}`, status 403 for `access-denied` and 500
//! otherwise; a request it cannot read answers 400 (`"error": "bad-request"`).
use serde_json::{Value, json};
use wasi::http::types::{IncomingRequest, ResponseOutparam};
use wasmfn_test_guests::*;

mod bindings {
    wit_bindgen::generate!({
        path: "../../wit",
        inline: r#"
            package wasmfn-test:kv;

            world kv {
                import wasi:keyvalue/store@0.2.0-draft;
                import wasi:keyvalue/atomics@0.2.0-draft;
                import wasi:keyvalue/batch@0.2.0-draft;
                export wasi:http/incoming-handler@0.2.12;
            }
        "#,
        world: "wasmfn-test:kv/kv",
        with: {
            "wasi:io/poll@0.2.12": ::wasi::io::poll,
            "wasi:io/error@0.2.12": ::wasi::io::error,
            "wasi:io/streams@0.2.12": ::wasi::io::streams,
            "wasi:clocks/monotonic-clock@0.2.12": ::wasi::clocks::monotonic_clock,
            "wasi:http/types@0.2.12": ::wasi::http::types,
            "wasi:keyvalue/store@0.2.0-draft": generate,
            "wasi:keyvalue/atomics@0.2.0-draft": generate,
            "wasi:keyvalue/batch@0.2.0-draft": generate,
        },
    });
}

use bindings::wasi::keyvalue::{atomics, batch, store};

struct Guest;
bindings::export!(Guest with_types_in bindings);

/// Why a request got no answer of its operation.
enum Failure {
    /// The request itself is wrong (400).
    Bad(String),
    /// The store said no.
    Store(store::Error),
}

impl From<store::Error> for Failure {
    fn from(e: store::Error) -> Self {
        Failure::Store(e)
    }
}

impl bindings::exports::wasi::http::incoming_handler::Guest for Guest {
    fn handle(req: IncomingRequest, out: ResponseOutparam) {
        let (status, body) = match answer(req) {
            Ok(v) => (200, v),
            Err(Failure::Bad(m)) => (400, json!({"error": "bad-request", "message": m})),
            Err(Failure::Store(e)) => {
                let (status, kind, message) = match e {
                    store::Error::AccessDenied => (403, "access-denied", String::new()),
                    store::Error::NoSuchStore => (500, "no-such-store", String::new()),
                    store::Error::Other(m) => (500, "other", m),
                };
                (status, json!({"error": kind, "message": message}))
            }
        };
        respond(out, status, "application/json", body.to_string().as_bytes());
    }
}

fn answer(req: IncomingRequest) -> Result<Value, Failure> {
    let param = |name: &str| query(&req, name).map(|v| decode(&v));
    let Some(name) = param("store") else {
        return Ok(json!({"pong": true}));
    };
    let op = param("op").unwrap_or_default();
    let key = param("key");
    let delta = param("delta");
    let cursor = param("cursor");
    let body = read_body(req).map_err(Failure::Bad)?;
    let key = || key.clone().ok_or_else(|| Failure::Bad(format!("`{op}` needs `key`")));
    let bucket = store::open(&name)?;
    Ok(match op.as_str() {
        "open" => json!({"ok": true}),
        "get" => value_json(None, bucket.get(&key()?)?),
        "set" => {
            bucket.set(&key()?, &body)?;
            json!({"ok": true})
        }
        "delete" => {
            bucket.delete(&key()?)?;
            json!({"ok": true})
        }
        "exists" => json!({"exists": bucket.exists(&key()?)?}),
        "list" => {
            let cursor = cursor.map(|c| number(&c)).transpose()?;
            let page = bucket.list_keys(cursor)?;
            json!({"keys": page.keys, "cursor": page.cursor})
        }
        "increment" => {
            let delta = number(&delta.unwrap_or_default())?;
            json!({"value": atomics::increment(&bucket, &key()?, delta)?})
        }
        "get-many" => {
            let keys: Vec<String> = parse(&body)?;
            let found = batch::get_many(&bucket, &keys)?;
            let values: Vec<Value> = found
                .into_iter()
                .map(|p| match p {
                    Some((k, v)) => value_json(Some(k), Some(v)),
                    None => Value::Null,
                })
                .collect();
            json!({ "values": values })
        }
        "set-many" => {
            let pairs: Vec<(String, String)> = parse(&body)?;
            let pairs: Vec<(String, Vec<u8>)> = pairs.into_iter().map(|(k, v)| (k, v.into_bytes())).collect();
            batch::set_many(&bucket, &pairs)?;
            json!({"ok": true})
        }
        "delete-many" => {
            let keys: Vec<String> = parse(&body)?;
            batch::delete_many(&bucket, &keys)?;
            json!({"ok": true})
        }
        other => return Err(Failure::Bad(format!("no operation `{other}`"))),
    })
}

/// `{"value": …}` or `{"base64": …}` (with `"key"` when given); `{"value": null}` for none.
fn value_json(key: Option<String>, value: Option<Vec<u8>>) -> Value {
    let mut v = match value {
        None => json!({"value": null}),
        Some(bytes) => match String::from_utf8(bytes) {
            Ok(text) => json!({ "value": text }),
            Err(e) => json!({"base64": base64(e.as_bytes())}),
        },
    };
    if let Some(k) = key {
        v["key"] = Value::String(k);
    }
    v
}

fn number(text: &str) -> Result<u64, Failure> {
    text.parse()
        .map_err(|e| Failure::Bad(format!("`{text}` is not a number: {e}")))
}

fn parse<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, Failure> {
    serde_json::from_slice(body).map_err(|e| Failure::Bad(format!("the body: {e}")))
}

/// Decodes a form-encoded query value (`%XX`, and `+` for a space).
fn decode(s: &str) -> String {
    let (b, mut out, mut i) = (s.as_bytes(), Vec::new(), 0);
    while i < b.len() {
        let hex = b
            .get(i + 1..i + 3)
            .and_then(|h| u8::from_str_radix(std::str::from_utf8(h).ok()?, 16).ok());
        match (b[i], hex) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (c, _) => {
                out.push(if c == b'+' { b' ' } else { c });
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Standard base64 with padding.
fn base64(bytes: &[u8]) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | (*b as u32) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ABC[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn main() {}
