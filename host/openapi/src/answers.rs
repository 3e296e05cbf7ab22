//! What the host itself can answer for an operation, stated on it
//! (docs/errors.md): the `servers` of a route restricted to hosts and its
//! `421`, `400` for a path or body the host refuses, `413` for any body
//! over `max_body_bytes`, the caller's `401`/`403`, and the answers around
//! running the function (`429`/`503` overflow, `500`, `504`). The `415`
//! and `422` of a validated operation are stated where its validator is made.

use serde_json::{Map, Value, json};
use wasmfn_manifest::AuthSettings;
use wasmfn_manifest::discovery::FunctionSpec;
use wasmfn_routing::{HostRule, RoutePattern};

use crate::mount::HOST_ERROR;

fn host_error(description: impl Into<String>) -> Value {
    json!({"description": description.into(), "content": {"application/json": {"schema": {"$ref": HOST_ERROR}}}})
}

/// States on `op` (served under `pattern`) every answer the host can give
/// for it, where the function does not declare that status itself.
pub(crate) fn state_host_answers(
    op: &mut Map<String, Value>,
    pattern: &RoutePattern,
    spec: &FunctionSpec,
    auth: Option<&AuthSettings>,
) {
    crate::security::state_on_operation(op, auth);
    if !spec.hosts.is_empty() {
        op.insert("servers".into(), spec.hosts.iter().map(server).collect());
    }
    let Some(responses) = op.get_mut("responses").and_then(Value::as_object_mut) else {
        return;
    };
    let p = &spec.policy;
    responses.entry("400").or_insert_with(|| {
        let body = "the request body broke off before its end (`request_body_failed`, for a function that takes its requests whole)";
        host_error(if pattern.param_names().next().is_some() {
            format!(
                "A path segment is `.` or `..`, is not UTF-8 once decoded, or has a control character (`invalid_path`); or {body}."
            )
        } else {
            format!("The path has a `.` or `..` segment (`invalid_path`), or {body}.")
        })
    });
    if !spec.hosts.is_empty() {
        responses.entry("421").or_insert_with(|| {
            host_error("The request's `Host` is none of this operation's `servers`: `misdirected_request`.")
        });
    }
    // Any request may carry a body, whether or not the operation takes one;
    // the host counts it against the limit before the function sees it.
    responses.entry("413").or_insert_with(|| {
        host_error(format!(
            "The body is over the function's `max_body_bytes` ({} bytes), by its `Content-Length` or as it streams before the response began: `payload_too_large`.",
            p.max_body_bytes
        ))
    });
    // A tenant's request rate (and, with `overflow_status: 429`, its
    // concurrency quota) can answer 429 for any operation; the quotas are
    // the operator's and may change while the document stands.
    responses.entry("429").or_insert_with(|| {
        host_error(if p.overflow_status == 429 {
            "The function's slots and queue are full or the wait ran out, or the API's concurrency quota is reached (`too_many_requests`); or the API's request rate is used up (`rate_limited`). With `Retry-After`."
        } else {
            "The API's request rate is used up (`rate_limited`), with `Retry-After`."
        })
    });
    responses.entry("500").or_insert_with(|| {
        host_error(
            "The function failed (`function_error`), ran out of memory (`out_of_memory`) or answered over `max_response_bytes` (`response_too_large`).",
        )
    });
    responses.entry("503").or_insert_with(|| {
        host_error(
            "The host or the function is at its limits (`service_unavailable`), or the host is shutting down (`shutting_down`); with `Retry-After`.",
        )
    });
    responses.entry("504").or_insert_with(|| {
        host_error(format!(
            "The function sent no response within its `timeout_ms` ({} ms): `gateway_timeout`.",
            p.timeout_ms
        ))
    });
}

/// The server object of one `allow_hosts` entry. wasmfn serves plain HTTP;
/// a proxy in front of it may terminate TLS, so the scheme is a variable.
/// An entry without a port matches every port: the URL names none.
fn server(rule: &HostRule) -> Value {
    let port = rule.port().map(|p| format!(":{p}")).unwrap_or_default();
    let mut variables = json!({"scheme": {
        "enum": ["https", "http"],
        "default": "https",
        "description": "`http` as wasmfn serves it; `https` through a proxy that terminates TLS in front of it.",
    }});
    let url = if rule.is_subdomains() {
        variables["subdomain"] = json!({
            "default": "www",
            "description": format!("Any subdomain of `{}`, of one label or more.", rule.name()),
        });
        format!("{{scheme}}://{{subdomain}}.{}{port}", rule.name())
    } else {
        format!("{{scheme}}://{}{port}", rule.name())
    };
    let on = if rule.port().is_some() { "" } else { ", on any port" };
    json!({
        "url": url,
        "description": format!("Requests whose `Host` is `{rule}`{on} (`invoke.allow_hosts`); any other gets `421`."),
        "variables": variables,
    })
}
