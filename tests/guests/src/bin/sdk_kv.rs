//! Built with the Rust SDK: keeps a visit counter and the last visit in
//! the key-value store `default` through `wasmfn_sdk::kv::Store`.
//! `POST /kv` counts a visit (`increment`), records it as JSON
//! (`set_json`) and answers the count, the store's keys and what opening
//! the store `private` (which no manifest lists) answered; `GET /kv/last`
//! answers the last visit (`get_json`).

use serde_json::{Value, json};
use wasmfn_sdk::kv::{Error, Store};
use wasmfn_sdk::{Body, HttpError, Json};

fn visit(Body(body): Body) -> Result<Json<Value>, HttpError> {
    let store = Store::open("default")?;
    let visits = store.increment("visits", 1)?;
    let body = String::from_utf8_lossy(&body).into_owned();
    store.set_json("last", &json!({"by": "rs", "body": body, "visits": visits}))?;
    let mut keys: Vec<String> = store.keys().collect::<Result<_, _>>()?;
    keys.sort();
    let denied = match Store::open("private") {
        Err(Error::AccessDenied { .. }) => "access-denied".to_string(),
        Err(e) => e.to_string(),
        Ok(_) => "opened".to_string(),
    };
    Ok(Json(json!({"visits": visits, "keys": keys, "denied": denied})))
}

fn last() -> Result<Json<Value>, HttpError> {
    Ok(Json(Store::open("default")?.get_json("last")?.unwrap_or(Value::Null)))
}

wasmfn_sdk::function! {
    post "/kv" => visit,
    get "/kv/last" => last,
}

fn main() {}
