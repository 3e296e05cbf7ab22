//! Configuration and secrets through the real binary: `config` values from
//! manifests and overlays, secrets from the admin API, `--secrets-dir` and
//! the environment, read by a guest written against plain
//! `wasi:config/store`; per-tenant secrets; the encrypted store across
//! restarts; and secret values kept out of everything the host shows.
//! This module holds what the tests share.

mod at_rest;
mod missing;
mod secrets;
mod sign;
mod tenants;
mod values;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use serde_json::Value;
use tokio::io::AsyncBufReadExt;

use crate::harness::*;
use wasmfn_server::Scope;

/// The `wasmfn serve` child process, its base URL, and everything it has
/// written so far (stderr and stdout, drained by tasks so that it never blocks).
pub(super) struct Host {
    pub child: tokio::process::Child,
    pub base: String,
    pub log: Arc<Mutex<String>>,
    pub client: reqwest::Client,
    /// The state directory made for it when the test names none.
    _state: Option<tempfile::TempDir>,
}

/// Starts `wasmfn serve DIR --listen 127.0.0.1:0 --no-cache FLAGS` with
/// `envs` (and no `WASMFN_SECRET_*` or `OTEL_*` of the shell running the
/// tests); `Err` carries the exit status and log of a process that exited
/// before listening.
pub(super) async fn try_start(
    dir: &Path,
    flags: &[&str],
    envs: &[(&str, &str)],
) -> Result<Host, (std::process::ExitStatus, String)> {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_wasmfn"));
    cmd.args(["serve", dir.to_str().unwrap(), "--listen", "127.0.0.1:0", "--no-cache"])
        .args(flags)
        .env("WASMFN_LOG", "info")
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true);
    for (k, _) in std::env::vars_os() {
        let k = k.to_string_lossy().into_owned();
        if k.starts_with("OTEL_") || k.starts_with("WASMFN_") {
            cmd.env_remove(k);
        }
    }
    cmd.env("WASMFN_LOG", "info");
    for (k, v) in envs {
        cmd.env(k, v);
    }
    // Each host its own state directory unless the test names one: the
    // default is the user's, shared by every test running at once.
    let state = (!flags.contains(&"--state-dir")).then(|| {
        let d = tempfile::tempdir().unwrap();
        cmd.env("WASMFN_STATE_DIR", d.path());
        d
    });
    let mut child = cmd.spawn().unwrap();
    let mut lines = tokio::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let log = Arc::new(Mutex::new(String::new()));
    // Stdout goes to the same record: a value printed there leaks as well.
    let (mut out, sink) = (
        tokio::io::BufReader::new(child.stdout.take().unwrap()).lines(),
        log.clone(),
    );
    tokio::spawn(async move {
        while let Ok(Some(line)) = out.next_line().await {
            push_line(&sink, &line);
        }
    });
    let addr = tokio::time::timeout(Duration::from_secs(120), async {
        while let Ok(Some(line)) = lines.next_line().await {
            let found = line.split("listening on http://").nth(1).map(|a| {
                a.split(|c: char| c.is_whitespace() || c == '"')
                    .next()
                    .unwrap()
                    .to_string()
            });
            push_line(&log, &line);
            if found.is_some() {
                return found;
            }
        }
        None
    })
    .await
    .expect("wasmfn listens or exits within two minutes");
    let Some(addr) = addr else {
        let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
            .await
            .expect("wasmfn exits after closing its stderr")
            .unwrap();
        let text = log.lock().unwrap().clone();
        return Err((status, text));
    };
    let sink = log.clone();
    tokio::spawn(async move {
        while let Ok(Some(line)) = lines.next_line().await {
            push_line(&sink, &line);
        }
    });
    Ok(Host {
        child,
        base: format!("http://{addr}"),
        log,
        client: reqwest::Client::builder().no_proxy().build().unwrap(),
        _state: state,
    })
}

fn push_line(log: &Mutex<String>, line: &str) {
    let mut l = log.lock().unwrap();
    l.push_str(line);
    l.push('\n');
}

/// [`try_start`], which must succeed.
pub(super) async fn start(dir: &Path, flags: &[&str], envs: &[(&str, &str)]) -> Host {
    try_start(dir, flags, envs)
        .await
        .unwrap_or_else(|(status, log)| panic!("wasmfn did not start ({status}):\n{log}"))
}

impl Host {
    pub(super) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Everything the host wrote to stderr and stdout so far.
    pub(super) fn stderr(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Stops the host with SIGTERM and waits for it to exit.
    pub(super) async fn stop(mut self) -> String {
        signal(&self.child, "TERM");
        tokio::time::timeout(Duration::from_secs(30), self.child.wait())
            .await
            .expect("wasmfn stops within 30 s of SIGTERM")
            .unwrap();
        // The drain task ends with the pipe; give it a moment to append the last lines.
        tokio::time::sleep(Duration::from_millis(100)).await;
        self.stderr()
    }

    /// `GET path` (on `host`, when given): status and JSON body (`null` when not JSON).
    pub(super) async fn get_on(&self, host: Option<&str>, path: &str) -> (u16, Value) {
        let mut r = self.client.get(self.url(path));
        if let Some(h) = host {
            r = r.header("host", h);
        }
        let r = r.send().await.unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// What the config guest at `route` answers for `?key=KEY`.
    pub(super) async fn read_key(&self, host: Option<&str>, route: &str, key: &str) -> (u16, Value) {
        self.get_on(host, &format!("{route}?key={key}")).await
    }

    /// `METHOD path` with a bearer token and an optional JSON body.
    pub(super) async fn admin(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> reqwest::Response {
        let mut r = self.client.request(method, self.url(path)).bearer_auth(token);
        if let Some(b) = body {
            r = r.json(&b);
        }
        r.send().await.unwrap()
    }

    /// `PUT {prefix}/secrets/{name}` with `{"value": value}`; `prefix` is
    /// `/_fn` or `/_fn/tenants/{id}`.
    pub(super) async fn put_secret(&self, prefix: &str, name: &str, value: &str, token: &str) -> reqwest::Response {
        let body = serde_json::json!({ "value": value });
        self.admin(
            reqwest::Method::PUT,
            &format!("{prefix}/secrets/{name}"),
            token,
            Some(body),
        )
        .await
    }

    /// A successful admin `GET`, as text (to search) and JSON.
    pub(super) async fn admin_text(&self, path: &str, token: &str) -> (String, Value) {
        let r = self.admin(reqwest::Method::GET, path, token, None).await;
        assert_eq!(r.status(), 200, "GET {path}");
        let text = r.text().await.unwrap();
        let json = serde_json::from_str(&text).unwrap_or_else(|e| panic!("GET {path}: {e}: {text}"));
        (text, json)
    }

    /// The catalog entry of function `name` (in the token's tenant).
    pub(super) async fn function(&self, token: &str, name: &str) -> Value {
        let (_, catalog) = self.admin_text("/_fn/catalog", token).await;
        catalog_entry(&catalog, name)
    }

    /// Polls (ten seconds at most) until the config guest at `route` reads `want` for `key`.
    pub(super) async fn eventually_reads(&self, host: Option<&str>, route: &str, key: &str, want: Value) {
        let want = (200, serde_json::json!({ "get": want }));
        let end = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let got = self.read_key(host, route, key).await;
            if got == want {
                return;
            }
            assert!(
                std::time::Instant::now() < end,
                "{route}?key={key}: still {got:?}, want {want:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Polls until the catalog shows function `name` in state `state`; returns its entry.
    pub(super) async fn eventually_state(&self, token: &str, name: &str, state: &str) -> Value {
        let what = format!("function `{name}` is {state}");
        eventually(Duration::from_secs(10), &what, || async move {
            let f = self.function(token, name).await;
            (f["state"] == state).then_some(f)
        })
        .await
    }

    /// `PUT {prefix}/functions/{name}` (multipart) with the config guest.
    pub(super) async fn deploy(&self, prefix: &str, name: &str, manifest: Value, token: &str) -> reqwest::Response {
        self.deploy_guest(prefix, name, "config", manifest, token).await
    }

    /// `PUT {prefix}/functions/{name}` (multipart) with test guest `guest_name`.
    pub(crate) async fn deploy_guest(
        &self,
        prefix: &str,
        name: &str,
        guest_name: &str,
        manifest: Value,
        token: &str,
    ) -> reqwest::Response {
        let form = reqwest::multipart::Form::new()
            .text("manifest", manifest.to_string())
            .part(
                "component",
                reqwest::multipart::Part::bytes(std::fs::read(guest(guest_name)).unwrap()).file_name("f.wasm"),
            );
        self.client
            .put(self.url(&format!("{prefix}/functions/{name}")))
            .bearer_auth(token)
            .multipart(form)
            .send()
            .await
            .unwrap()
    }
}

/// A token file at `DIR/tokens.json` with one token per `(id, scopes,
/// tenant)`; returns its path and the tokens by id.
pub(super) fn token_file(
    dir: &Path,
    specs: &[(&str, &[Scope], Option<&str>)],
) -> (PathBuf, std::collections::HashMap<String, String>) {
    let mut entries = Vec::new();
    let mut tokens = std::collections::HashMap::new();
    for (id, scopes, tenant) in specs {
        let (token, entry) = wasmfn_server::auth::new_token(id, scopes, *tenant).unwrap();
        entries.push(entry);
        tokens.insert(id.to_string(), token);
    }
    let path = dir.join("tokens.json");
    std::fs::write(&path, Value::Array(entries).to_string()).unwrap();
    (path, tokens)
}

/// A secrets key file as an operator makes one
/// (`head -c 32 /dev/urandom | base64 > key`: with its trailing newline).
pub(super) fn key_file(dir: &Path, name: &str) -> PathBuf {
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .unwrap();
    let path = dir.join(name);
    std::fs::write(
        &path,
        format!("{}\n", base64::engine::general_purpose::STANDARD.encode(bytes)),
    )
    .unwrap();
    path
}

/// `&str`s of `args`.
pub(super) fn strs(args: &[String]) -> Vec<&str> {
    args.iter().map(String::as_str).collect()
}

/// A value no other test uses, so that finding it anywhere means it leaked.
pub(super) fn unique(what: &str) -> String {
    let mut bytes = [0u8; 8];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .unwrap();
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("{what}-{hex}")
}

/// Asserts that none of `values` occurs in `text` (what the host showed as `what`).
pub(super) fn assert_hidden(text: &str, values: &[&str], what: &str) {
    for v in values {
        assert!(!text.contains(v), "a secret value appears in {what}: `{v}` in\n{text}");
    }
}

/// The first value under `key`, anywhere in `v`.
pub(super) fn find_key<'a>(v: &'a Value, key: &str) -> Option<&'a Value> {
    match v {
        Value::Object(m) => m.get(key).or_else(|| m.values().find_map(|x| find_key(x, key))),
        Value::Array(a) => a.iter().find_map(|x| find_key(x, key)),
        _ => None,
    }
}

/// The message the host gives for secret `name` that no provider has.
pub(super) fn unset_message(name: &str) -> String {
    format!(
        "secret `{name}` (in `secrets`) is not set: set it with `PUT /_fn/secrets/{name}`, a file `{name}` in `--secrets-dir`, or `WASMFN_SECRET_{}`",
        name.to_uppercase()
    )
}

/// A manifest for the config guest with `extra` merged in.
pub(super) fn config_manifest(extra: Value) -> Value {
    let mut m = serde_json::json!({ "component": guest("config") });
    if let Value::Object(e) = extra {
        for (k, v) in e {
            m[k] = v;
        }
    }
    m
}
