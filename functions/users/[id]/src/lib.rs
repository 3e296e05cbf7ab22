//! `GET /users/{id}`: the folder `users/[id]` makes the route; the host
//! passes the parameter, and `Path` reads it.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use wasmfn_sdk::{Json, Path, RequestInfo};

#[derive(Deserialize, JsonSchema)]
struct UserPath {
    id: String,
}

/// The user as this function sees it.
#[derive(Serialize, JsonSchema)]
struct User {
    /// The `id` from the path, decoded.
    id: String,
    /// The route pattern that matched.
    route: String,
}

fn show(Path(p): Path<UserPath>, info: RequestInfo) -> Json<User> {
    let route = info
        .headers
        .iter()
        .find(|(k, _)| k == "x-fn-route")
        .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
        .unwrap_or_default();
    Json(User { id: p.id, route })
}

wasmfn_sdk::function! {
    title: "Users",
    /// Shows one user.
    get "/" => show,
}
