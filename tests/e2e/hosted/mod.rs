//! The hosted runtime, through the real binary: admin tokens and scopes,
//! the tokenless rules, deploy / rollback / undeploy through the API and
//! the CLI, durable state across restarts and `kill -9`, the audit log,
//! the admin listener with TLS, and the request-head limit. This module
//! holds what the tests share.

mod access;
mod deploy;
mod lifecycle;
mod listeners;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

use crate::harness::*;

/// `PUT /_fn/functions/NAME` with the parts given.
pub(super) async fn put(
    client: &reqwest::Client,
    base: &str,
    token: Option<&str>,
    name: &str,
    manifest: &str,
    component: Vec<u8>,
) -> reqwest::Response {
    let form = reqwest::multipart::Form::new()
        .text("manifest", manifest.to_string())
        .part(
            "component",
            reqwest::multipart::Part::bytes(component).file_name("f.wasm"),
        );
    let mut r = client.put(format!("{base}/_fn/functions/{name}")).multipart(form);
    if let Some(t) = token {
        r = r.bearer_auth(t);
    }
    r.send().await.unwrap()
}

pub(super) fn read(p: &Path) -> Vec<u8> {
    std::fs::read(p).unwrap()
}

/// `METHOD base+path` with a bearer token.
pub(super) async fn call(
    client: &reqwest::Client,
    method: reqwest::Method,
    base: &str,
    path: &str,
    token: Option<&str>,
) -> reqwest::Response {
    let mut r = client.request(method, format!("{base}{path}"));
    if let Some(t) = token {
        r = r.bearer_auth(t);
    }
    r.send().await.unwrap()
}

/// Kills the server and returns every line it logged.
pub(super) async fn stop_and_collect_log(mut served: Served) -> String {
    served.child.start_kill().unwrap();
    let mut all = String::new();
    while let Ok(Ok(Some(line))) = tokio::time::timeout(Duration::from_secs(10), served.log.next_line()).await {
        all.push_str(&line);
        all.push('\n');
    }
    all
}

/// The functions listing's entry for `name`.
pub(super) async fn listed(c: &reqwest::Client, base: &str, token: &str, name: &str) -> Value {
    let r = call(
        c,
        reqwest::Method::GET,
        base,
        &format!("/_fn/functions/{name}"),
        Some(token),
    )
    .await;
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

pub(super) fn sha256(bytes: &[u8]) -> String {
    wasmfn_server::state::sha256_hex(bytes)
}
