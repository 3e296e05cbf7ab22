//! What a function's `auth` says in the document: a security scheme per
//! distinct way of authenticating (an API key's place and name, a JWT
//! issuer), and on each operation its `security` requirement with the
//! scopes, and the host's 401 and 403 answers.

use serde_json::{Map, Value, json};
use wasmfn_manifest::{AuthScheme, AuthSettings, KeyLocation};

use crate::mount::HOST_ERROR;

/// The name and object of the security scheme `auth` uses; `None` for `type: none`.
pub fn security_scheme(auth: &AuthSettings) -> Option<(String, Value)> {
    match &auth.scheme {
        AuthScheme::None => None,
        AuthScheme::ApiKey(k) => {
            let place = match k.location {
                KeyLocation::Header => "header",
                KeyLocation::Query => "query",
            };
            Some((
                format!("api_key.{place}.{}", sanitize(&k.name)),
                json!({
                    "type": "apiKey",
                    "in": place,
                    "name": k.name,
                    "description": "An API key of this API, checked by the host before the function runs.",
                }),
            ))
        }
        AuthScheme::Jwt(j) => Some((
            format!("jwt.{}", sanitize(&j.issuer)),
            json!({
                "type": "http",
                "scheme": "bearer",
                "bearerFormat": "JWT",
                "description": format!(
                    "A JWT from `{}` for audience {}, signed with {}; checked by the host before the function runs.",
                    j.issuer,
                    j.audiences.iter().map(|a| format!("`{a}`")).collect::<Vec<_>>().join(" or "),
                    j.algorithms.join(", ")
                ),
            }),
        )),
    }
}

/// Scheme names keep to the characters OpenAPI tools handle everywhere.
fn sanitize(s: &str) -> String {
    let s = s.trim_start_matches("https://").trim_start_matches("http://");
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// States `auth` on an operation: its `security` requirement (empty for
/// `type: none`, which opens it) and the host's 401 and, with scopes, 403.
pub(crate) fn state_on_operation(op: &mut Map<String, Value>, auth: Option<&AuthSettings>) {
    let Some(auth) = auth else { return };
    let Some((name, _)) = security_scheme(auth) else {
        op.insert("security".into(), json!([]));
        return;
    };
    op.insert("security".into(), json!([{ name: auth.required_scopes }]));
    let Some(responses) = op.get_mut("responses").and_then(Value::as_object_mut) else {
        return;
    };
    let error = |d: &str| json!({"description": d, "content": {"application/json": {"schema": {"$ref": HOST_ERROR}}}});
    responses.entry("401").or_insert_with(|| {
        error("No credentials, or credentials the host does not accept (`unauthorized`, with `WWW-Authenticate`).")
    });
    if !auth.required_scopes.is_empty() {
        responses
            .entry("403")
            .or_insert_with(|| error("The credentials lack a required scope (`forbidden`, with `WWW-Authenticate`)."));
    }
}
