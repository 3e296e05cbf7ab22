//! `GET /internal`, served only when the request is for `admin.localhost`
//! (`invoke.allow_hosts`); any other host gets `421` from the host.

use schemars::JsonSchema;
use serde::Serialize;
use wasmfn_sdk::Json;

#[derive(Serialize, JsonSchema)]
struct Status {
    area: String,
    ok: bool,
}

fn status() -> Json<Status> {
    Json(Status {
        area: "internal".into(),
        ok: true,
    })
}

wasmfn_sdk::function! {
    /// Internal status.
    get "/" => status,
}
