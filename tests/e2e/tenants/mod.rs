//! Tenants on one host: routing by `Host`, tokens bound to a tenant,
//! quotas, per-tenant documents; callers authenticated by the host (API
//! keys, JWTs) and CORS; many tenants at once. This module holds what the
//! tests share.

mod auth;
mod fairness;
mod isolation;
mod many;
mod quotas;
mod schemathesis;
mod swagger;

use std::collections::HashMap;
use std::path::Path;

use serde_json::{Value, json};

use crate::harness::*;
use wasmfn_server::{AdminAccess, AdminTokens, HostConfig, Scope};

/// Token id → (scopes, tenant).
type TokenSpec<'a> = (&'a str, &'a [Scope], Option<&'a str>);

/// A host on `dir` with a state directory and the tokens given; returns
/// the host, the tokens by id, and the state directory (kept alive).
pub(super) async fn hosted(
    dir: &Path,
    specs: &[TokenSpec<'_>],
) -> (TestHost, HashMap<String, String>, tempfile::TempDir) {
    let state = tempfile::tempdir().unwrap();
    let (config, tokens) = hosted_config(dir, state.path(), specs);
    (TestHost::start_with(config).await, tokens, state)
}

/// The configuration [`hosted`] starts, to start it again on the same state.
pub(super) fn hosted_config(
    dir: &Path,
    state: &Path,
    specs: &[TokenSpec<'_>],
) -> (HostConfig, HashMap<String, String>) {
    let mut entries = Vec::new();
    let mut tokens = HashMap::new();
    for (id, scopes, tenant) in specs {
        let (token, entry) = wasmfn_server::auth::new_token(id, scopes, *tenant).unwrap();
        entries.push(entry);
        tokens.insert(id.to_string(), token);
    }
    let mut config = HostConfig::new(dir);
    config.state_dir = Some(state.to_path_buf());
    config.admin = AdminAccess {
        tokens: Some(AdminTokens::parse(Path::new("tokens.json"), &Value::Array(entries).to_string()).unwrap()),
        ..AdminAccess::default()
    };
    (config, tokens)
}

/// `METHOD path` with a bearer token and an optional JSON body.
pub(super) async fn admin(
    h: &TestHost,
    method: reqwest::Method,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> reqwest::Response {
    let mut r = h.client.request(method, h.url(path)).bearer_auth(token);
    if let Some(b) = body {
        r = r.json(&b);
    }
    r.send().await.unwrap()
}

/// Defines tenant `id` with `settings`, expecting `status`.
pub(super) async fn put_tenant(h: &TestHost, token: &str, id: &str, settings: Value, status: u16) -> Value {
    let r = admin(
        h,
        reqwest::Method::PUT,
        &format!("/_fn/tenants/{id}"),
        token,
        Some(settings),
    )
    .await;
    assert_eq!(r.status().as_u16(), status, "PUT tenant {id}");
    r.json().await.unwrap_or(Value::Null)
}

/// Deploys `guest` as function `name` of `tenant` with `manifest`.
pub(super) async fn deploy(
    h: &TestHost,
    token: &str,
    tenant: &str,
    name: &str,
    manifest: Value,
    guest_name: &str,
) -> reqwest::Response {
    deploy_file(h, token, tenant, name, manifest, &guest(guest_name)).await
}

/// Deploys the component at `component` as function `name` of `tenant` with `manifest`.
pub(super) async fn deploy_file(
    h: &TestHost,
    token: &str,
    tenant: &str,
    name: &str,
    manifest: Value,
    component: &std::path::Path,
) -> reqwest::Response {
    let form = reqwest::multipart::Form::new()
        .text("manifest", manifest.to_string())
        .part(
            "component",
            reqwest::multipart::Part::bytes(std::fs::read(component).unwrap()).file_name("f.wasm"),
        );
    h.client
        .put(h.url(&format!("/_fn/tenants/{tenant}/functions/{name}")))
        .bearer_auth(token)
        .multipart(form)
        .send()
        .await
        .unwrap()
}

/// `GET path` sent for host `host`.
pub(super) async fn get_on(h: &TestHost, host: &str, path: &str) -> reqwest::Response {
    h.client.get(h.url(path)).header("host", host).send().await.unwrap()
}

/// A probe's answer as JSON.
pub(super) async fn probe(resp: reqwest::Response) -> Value {
    assert_eq!(resp.status(), 200);
    resp.json().await.unwrap()
}

pub(super) fn probe_manifest(route: &str) -> Value {
    json!({"invoke": {"routes": [route]}})
}
