//! Built with the Rust SDK: reads its configuration and secrets through
//! `wasmfn_sdk::config` and `wasmfn_sdk::secret`. `/config` answers the
//! `greeting` config value, the `api_key` secret, the secret `unlisted`
//! (which a manifest does not list) and every key; `/limits` sums the
//! JSON list in config `limits` (`get_json`, whose error answers 500).

use wasmfn_sdk::{HttpError, Response, Text, config, secret};
use wasmfn_test_guests::json_str;

fn or_null(v: Option<String>) -> String {
    v.map(|v| json_str(&v)).unwrap_or_else(|| "null".into())
}

/// What the function reads.
fn read() -> Response {
    let keys: Vec<String> = config::get_all().keys().map(|k| json_str(k)).collect();
    let body = format!(
        "{{\"greeting\":{},\"api_key\":{},\"unlisted\":{},\"keys\":[{}]}}",
        or_null(config::get("greeting")),
        or_null(secret::get("api_key")),
        or_null(secret::get("unlisted")),
        keys.join(",")
    );
    Response::new(200, "application/json", body)
}

/// The sum of config `limits`, a JSON list of numbers.
fn limits() -> Result<Text, HttpError> {
    let limits: Vec<u32> = config::get_json("limits")?.unwrap_or_default();
    Ok(Text(limits.iter().sum::<u32>().to_string()))
}

wasmfn_sdk::function! {
    get "/config" => read,
    get "/limits" => limits,
}

fn main() {}
