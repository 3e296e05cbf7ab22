//! `GET /greet?name=Ada` and its alias `GET /v1/greet` (kept out of the
//! document): one handler on two routes; the host says which one matched.

use schemars::JsonSchema;
use serde::Deserialize;
use wasmfn_sdk::{Headers, Query, Text};

#[derive(Deserialize, JsonSchema)]
struct Who {
    /// Who to greet: letters, digits and `-`.
    #[schemars(length(min = 1, max = 40), regex(pattern = r"^[A-Za-z0-9-]+$"))]
    name: Option<String>,
}

fn greet(Query(who): Query<Who>, headers: Headers) -> Text {
    let name = who.name.unwrap_or_else(|| "world".into());
    let route = headers.get("x-fn-route").unwrap_or_default();
    Text(format!("Hello, {name}! (via {route})\n"))
}

wasmfn_sdk::function! {
    title: "Greeter",
    /// Greets someone.
    get "/" => greet,
}
