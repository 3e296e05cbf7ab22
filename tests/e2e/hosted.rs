//! The hosted runtime, through the real binary: admin tokens and scopes,
//! the tokenless rules, deploy / rollback / undeploy through the API and
//! the CLI, durable state across restarts and `kill -9`, the audit log,
//! the admin listener with TLS, and the request-head limit.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde_json::{Value, json};

use crate::harness::*;

/// `wasmfn ARGS`, its exit status, stdout and stderr.
fn wasmfn(args: &[&str], envs: &[(&str, &str)]) -> (bool, String, String) {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_wasmfn"));
    cmd.args(args).env("WASMFN_LOG", "warn");
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run wasmfn");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Tokens made with `wasmfn token create`, one per `(id, scopes)`, and the token file listing them.
fn tokens(dir: &Path, specs: &[(&str, &[&str])]) -> (PathBuf, HashMap<String, String>) {
    let mut entries = Vec::new();
    let mut tokens = HashMap::new();
    for (id, scopes) in specs {
        let mut args = vec!["token", "create", "--id", id];
        for s in *scopes {
            args.extend(["--scope", s]);
        }
        let (ok, out, err) = wasmfn(&args, &[]);
        assert!(ok, "{err}");
        let lines: Vec<&str> = out.lines().collect();
        let token = lines[1].trim().to_string();
        assert!(token.starts_with("wfn_"), "{out}");
        let entry: Value = serde_json::from_str(lines.last().unwrap()).unwrap();
        assert_eq!(entry["id"], *id);
        assert!(
            !out.contains(&format!("\"{token}\"")),
            "the file holds the digest, not the token"
        );
        entries.push(entry);
        tokens.insert(id.to_string(), token);
    }
    let path = dir.join("tokens.json");
    std::fs::write(&path, serde_json::to_string_pretty(&entries).unwrap()).unwrap();
    (path, tokens)
}

/// Starts `wasmfn serve DIR --listen 127.0.0.1:0 FLAGS`.
async fn serve(dir: &Path, flags: &[&str]) -> Served {
    let mut args = vec!["serve", dir.to_str().unwrap(), "--listen", "127.0.0.1:0", "--no-cache"];
    args.extend_from_slice(flags);
    Served::start(&args, &[], Duration::from_secs(120)).await
}

/// `PUT /_fn/functions/NAME` with the parts given.
async fn put(
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

fn read(p: &Path) -> Vec<u8> {
    std::fs::read(p).unwrap()
}

/// `METHOD base+path` with a bearer token.
async fn call(
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
async fn stop_and_collect_log(mut served: Served) -> String {
    served.child.start_kill().unwrap();
    let mut all = String::new();
    while let Ok(Ok(Some(line))) = tokio::time::timeout(Duration::from_secs(10), served.log.next_line()).await {
        all.push_str(&line);
        all.push('\n');
    }
    all
}

#[tokio::test]
async fn admin_tokens_and_scopes_guard_the_admin_surface_and_the_public_part_stays_open() {
    let fx = Fixture::new();
    fx.function("dirfn", "probe", json!({}));
    let (file, t) = tokens(
        fx.path(),
        &[("reader", &["read"]), ("ci", &["deploy"]), ("root", &["admin"])],
    );
    let served = serve(fx.path(), &["--admin-tokens", file.to_str().unwrap()]).await;
    let base = served.base.clone();
    let c = reqwest::Client::new();
    use reqwest::Method;

    // Public: health says status and version only; ready, the document and the docs.
    let health: Value = call(&c, Method::GET, &base, "/_fn/health", None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(health, json!({"status": "ok", "version": env!("CARGO_PKG_VERSION")}));
    for p in ["/_fn/ready", "/_fn/openapi.json", "/_fn/docs", "/dirfn"] {
        assert_eq!(call(&c, Method::GET, &base, p, None).await.status(), 200, "{p}");
    }

    for (method, path, scope) in [
        (Method::GET, "/_fn/catalog", "read"),
        (Method::GET, "/_fn/status", "read"),
        (Method::GET, "/_fn/functions", "read"),
        (Method::GET, "/_fn/audit", "read"),
        (Method::POST, "/_fn/reload", "deploy"),
        (Method::POST, "/_fn/functions/x/rollback", "deploy"),
        (Method::DELETE, "/_fn/functions/x", "deploy"),
    ] {
        let r = call(&c, method.clone(), &base, path, None).await;
        assert_eq!(
            r.headers()["www-authenticate"].to_str().unwrap(),
            "Bearer realm=\"wasmfn\""
        );
        let (code, body) = error_code(r, 401).await;
        assert_eq!(code, "unauthorized");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains(&format!("scope `{scope}`")),
            "{body}"
        );
        let r = call(&c, method.clone(), &base, path, Some("wfn_not-a-token")).await;
        assert!(
            r.headers()["www-authenticate"]
                .to_str()
                .unwrap()
                .contains("invalid_token")
        );
        error_code(r, 401).await;
        // The scope decides: read for reads, deploy for writes, admin for both.
        let (allowed, refused) = if scope == "read" {
            ("reader", "ci")
        } else {
            ("ci", "reader")
        };
        let r = call(&c, method.clone(), &base, path, Some(&t[refused])).await;
        assert!(
            r.headers()["www-authenticate"]
                .to_str()
                .unwrap()
                .contains(&format!("error=\"insufficient_scope\", scope=\"{scope}\""))
        );
        let (code, body) = error_code(r, 403).await;
        assert_eq!(code, "forbidden");
        assert!(body["error"]["message"].as_str().unwrap().contains(refused), "{body}");
        for who in [allowed, "root"] {
            let status = call(&c, method.clone(), &base, path, Some(&t[who])).await.status();
            // Rollback and undeploy of a function that is not deployed: let in, then 404.
            let expected = if path.contains("/x") { 404 } else { 200 };
            assert_eq!(status, expected, "{method} {path} as {who}");
        }
    }
    let status: Value = call(&c, Method::GET, &base, "/_fn/status", Some(&t["reader"]))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(status["functions"]["loaded"], 1);
    assert!(status["state_dir"].is_string());
    assert_eq!(status["admin"], json!({"tokens": 3, "loopback_writes": false}));

    // Tokens never reach the log; the ids do.
    let log = stop_and_collect_log(served).await;
    for token in t.values() {
        assert!(!log.contains(token.as_str()), "a token was logged");
    }
    assert!(log.contains("admin write"), "{log}");
}

#[tokio::test]
async fn without_tokens_serve_is_read_only_on_loopback_and_dev_may_write() {
    let fx = Fixture::new();
    fx.function("dirfn", "probe", json!({}));
    let c = reqwest::Client::new();
    let served = serve(fx.path(), &[]).await;
    assert_eq!(
        c.get(format!("{}/_fn/catalog", served.base))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let (code, body) = error_code(c.post(format!("{}/_fn/reload", served.base)).send().await.unwrap(), 403).await;
    assert_eq!(code, "forbidden");
    let msg = body["error"]["message"].as_str().unwrap();
    assert!(msg.contains("read-only") && msg.contains("--admin-tokens"), "{msg}");
    let r = put(&c, &served.base, None, "x", "{}", read(&guest("probe"))).await;
    error_code(r, 403).await;
    drop(served);

    let mut args = vec![
        "dev",
        fx.path().to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
        "--no-cache",
    ];
    args.push("--drain-timeout-ms");
    args.push("1000");
    let dev = Served::start(&args, &[], Duration::from_secs(120)).await;
    let r = c.post(format!("{}/_fn/reload", dev.base)).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let r = put(&c, &dev.base, None, "hello", "{}", read(&guest("probe"))).await;
    assert_eq!(r.status(), 201);
    assert_eq!(c.get(format!("{}/hello", dev.base)).send().await.unwrap().status(), 200);
}

/// The functions listing's entry for `name`.
async fn listed(c: &reqwest::Client, base: &str, token: &str, name: &str) -> Value {
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

#[tokio::test]
async fn deploy_refusals_rollback_undeploy_audit_and_restart() {
    let fx = Fixture::new();
    fx.function("taken", "probe", json!({}));
    let state = tempfile::tempdir().unwrap();
    let (file, t) = tokens(fx.path(), &[("root", &["admin"])]);
    let flags = [
        "--admin-tokens",
        file.to_str().unwrap(),
        "--state-dir",
        state.path().to_str().unwrap(),
        "--max-deploy-bytes",
        "3000000",
    ];
    let served = serve(fx.path(), &flags).await;
    let (base, root) = (served.base.clone(), t["root"].as_str());
    let c = reqwest::Client::new();
    let (v1, v2) = (read(&guest("probe")), read(&guest("hello_plain")));

    let r = put(&c, &base, Some(root), "hello", r#"{"description": "v1"}"#, v1.clone()).await;
    assert_eq!(r.status(), 201);
    let first: Value = r.json().await.unwrap();
    assert_eq!(first["name"], "hello");
    assert_eq!(first["routes"], json!(["/hello"]));
    assert_eq!(first["state"], "ready");
    let d1 = first["digest"].as_str().unwrap().to_string();
    assert!(d1.starts_with("sha256:") && d1.len() == 71, "{d1}");
    assert_eq!(c.get(format!("{base}/hello")).send().await.unwrap().status(), 200);

    // The same bytes again: 200, nothing changes.
    let r = put(&c, &base, Some(root), "hello", r#"{"description": "v1"}"#, v1.clone()).await;
    assert_eq!(r.status(), 200);
    let again: Value = r.json().await.unwrap();
    assert_eq!(again["changed"], false);
    assert_eq!(
        listed(&c, &base, root, "hello").await["versions"]
            .as_array()
            .unwrap()
            .len(),
        1
    );

    // A second version, on two routes.
    let m2 = r#"{"description": "v2", "invoke": {"routes": ["/hello", "/hi"]}}"#;
    let r = put(&c, &base, Some(root), "hello", m2, v2.clone()).await;
    assert_eq!(r.status(), 200);
    let second: Value = r.json().await.unwrap();
    let d2 = second["digest"].as_str().unwrap().to_string();
    assert_ne!(d1, d2);
    assert_eq!(c.get(format!("{base}/hi")).send().await.unwrap().status(), 200);
    let entry = listed(&c, &base, root, "hello").await;
    assert_eq!(entry["origin"], "deployed");
    assert_eq!(entry["digest"], d2);
    assert_eq!(entry["versions"][0]["digest"], d2);
    assert_eq!(entry["versions"][0]["deployed_by"], "root");
    assert_eq!(entry["versions"][1]["digest"], d1);

    // Refusals leave everything as it was.
    let catalog_before = call(&c, reqwest::Method::GET, &base, "/_fn/catalog", Some(root))
        .await
        .json::<Value>()
        .await
        .unwrap()["mapped_routes"]
        .clone();
    let garbage = b"not a component".to_vec();
    let big = vec![0u8; 4_000_000];
    // (name, manifest, component, status, code, what the message says)
    type Refusal<'a> = (&'a str, &'a str, Vec<u8>, u16, &'a str, &'a str);
    let refusals: Vec<Refusal> = vec![
        (
            "hello",
            r#"{"timeout_ms": "soon"}"#,
            v1.clone(),
            422,
            "invalid_function",
            "hello/fn.config.json`: field `timeout_ms`",
        ),
        ("hello", "{", v1.clone(), 422, "invalid_function", "not valid JSON"),
        (
            "hello",
            "{}",
            garbage,
            422,
            "invalid_function",
            "is not a WebAssembly component",
        ),
        (
            "hello",
            r#"{"invoke": {"routes": ["/taken"]}}"#,
            v1.clone(),
            409,
            "deploy_conflict",
            "`taken`",
        ),
        ("taken", "{}", v1.clone(), 409, "deploy_conflict", "functions directory"),
        (
            "Bad_Name",
            "{}",
            v1.clone(),
            422,
            "invalid_function",
            "is not a function name",
        ),
        ("hello", "{}", big, 413, "deploy_too_large", "--max-deploy-bytes"),
    ];
    for (name, manifest, component, status, code, needle) in refusals {
        let r = put(&c, &base, Some(root), name, manifest, component).await;
        let (got, body) = error_code(r, status).await;
        assert_eq!(got, code, "{body}");
        let msg = body["error"]["message"].as_str().unwrap();
        assert!(msg.contains(needle), "{name} {manifest}: {msg}");
        assert_eq!(
            listed(&c, &base, root, "hello").await["digest"],
            d2,
            "unchanged after {code}"
        );
        assert_eq!(c.get(format!("{base}/hi")).send().await.unwrap().status(), 200);
    }
    let r = c
        .put(format!("{base}/_fn/functions/hello"))
        .bearer_auth(root)
        .multipart(reqwest::multipart::Form::new().text("manifest", "{}"))
        .send()
        .await
        .unwrap();
    let (_, body) = error_code(r, 400).await;
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("`component` is missing")
    );
    let catalog_after = call(&c, reqwest::Method::GET, &base, "/_fn/catalog", Some(root))
        .await
        .json::<Value>()
        .await
        .unwrap()["mapped_routes"]
        .clone();
    assert_eq!(catalog_before, catalog_after);

    // Rollback: the previous version serves again, once.
    let r = call(
        &c,
        reqwest::Method::POST,
        &base,
        "/_fn/functions/hello/rollback",
        Some(root),
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["digest"], d1);
    assert_eq!(c.get(format!("{base}/hi")).send().await.unwrap().status(), 404);
    assert_eq!(c.get(format!("{base}/hello")).send().await.unwrap().status(), 200);
    let r = call(
        &c,
        reqwest::Method::POST,
        &base,
        "/_fn/functions/hello/rollback",
        Some(root),
    )
    .await;
    assert_eq!(error_code(r, 409).await.0, "no_previous_version");

    // The catalog and the document show it beside the directory's function.
    let catalog: Value = call(&c, reqwest::Method::GET, &base, "/_fn/catalog", Some(root))
        .await
        .json()
        .await
        .unwrap();
    let origins: Vec<(String, String)> = catalog["functions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (f["name"].as_str().unwrap().into(), f["origin"].as_str().unwrap().into()))
        .collect();
    assert_eq!(
        origins,
        [
            ("hello".into(), "deployed".into()),
            ("taken".into(), "directory".into())
        ]
    );
    let doc: Value = c
        .get(format!("{base}/_fn/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        doc["paths"].get("/hello").is_some() && doc["paths"].get("/taken").is_some(),
        "{doc}"
    );
    let origin = |tag: &str| {
        doc["tags"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["name"] == tag)
            .unwrap_or_else(|| panic!("no tag {tag}: {doc}"))["x-wasmfn-origin"]
            .clone()
    };
    assert_eq!(origin("hello"), "deployed");
    assert_eq!(origin("taken"), "directory");

    // Undeploy: 204, then 404 for its routes and for the name.
    let r = call(&c, reqwest::Method::DELETE, &base, "/_fn/functions/hello", Some(root)).await;
    assert_eq!(r.status(), 204);
    assert_eq!(c.get(format!("{base}/hello")).send().await.unwrap().status(), 404);
    let r = call(&c, reqwest::Method::DELETE, &base, "/_fn/functions/hello", Some(root)).await;
    assert_eq!(error_code(r, 404).await.0, "function_not_found");
    let r = call(&c, reqwest::Method::DELETE, &base, "/_fn/functions/taken", Some(root)).await;
    assert_eq!(error_code(r, 409).await.0, "deploy_conflict");

    // The audit log: every write, with the token's id and the result.
    let audit: Value = call(&c, reqwest::Method::GET, &base, "/_fn/audit?limit=100", Some(root))
        .await
        .json()
        .await
        .unwrap();
    let entries = audit["entries"].as_array().unwrap();
    let summary: Vec<(String, u64)> = entries
        .iter()
        .map(|e| (e["action"].as_str().unwrap().to_string(), e["status"].as_u64().unwrap()))
        .collect();
    let want: Vec<(&str, u64)> = vec![
        ("deploy", 201),
        ("deploy", 200),
        ("deploy", 200),
        ("deploy", 422),
        ("deploy", 422),
        ("deploy", 422),
        ("deploy", 409),
        ("deploy", 409),
        ("deploy", 422),
        ("deploy", 413),
        ("deploy", 400),
        ("rollback", 200),
        ("rollback", 409),
        ("undeploy", 204),
        ("undeploy", 404),
        ("undeploy", 409),
    ];
    assert_eq!(
        summary,
        want.iter().map(|(a, s)| (a.to_string(), *s)).collect::<Vec<_>>()
    );
    for e in entries {
        assert_eq!(e["token"], "root");
        assert!(!e["request_id"].as_str().unwrap().is_empty());
        assert!(e["time"].as_str().unwrap().ends_with('Z'));
    }
    assert_eq!(entries[2]["old_digest"], d1);
    assert_eq!(entries[2]["new_digest"], d2);
    assert_eq!(entries[11]["old_digest"], d2);
    assert_eq!(entries[11]["new_digest"], d1);
    let r = call(&c, reqwest::Method::GET, &base, "/_fn/audit?limit=2", Some(root)).await;
    assert_eq!(r.json::<Value>().await.unwrap()["entries"].as_array().unwrap().len(), 2);

    // A restart serves exactly what was deployed.
    let r = put(
        &c,
        &base,
        Some(root),
        "again",
        m2.replace("/hello", "/again").as_str(),
        v2.clone(),
    )
    .await;
    assert_eq!(r.status(), 201);
    drop(stop_and_collect_log(served).await);
    let served = serve(fx.path(), &flags).await;
    let base = served.base.clone();
    assert_eq!(c.get(format!("{base}/again")).send().await.unwrap().status(), 200);
    assert_eq!(c.get(format!("{base}/hi")).send().await.unwrap().status(), 200);
    assert_eq!(c.get(format!("{base}/hello")).send().await.unwrap().status(), 404);
    assert_eq!(listed(&c, &base, root, "again").await["digest"], d2);
    // Only the blobs of what is deployed stay.
    let blobs = std::fs::read_dir(state.path().join("blobs/sha256")).unwrap().count();
    assert_eq!(blobs, 2, "the component and the manifest of `again`");
}

#[tokio::test]
async fn each_example_language_deploys_through_the_api_and_through_wasmfn_deploy() {
    let examples = examples();
    let fx = Fixture::new();
    let (file, t) = tokens(fx.path(), &[("ci", &["deploy", "read"])]);
    let cache = examples_cache();
    let mut args = vec![
        "serve",
        fx.path().to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
        "--cache-dir",
        cache.to_str().unwrap(),
        "--admin-tokens",
        file.to_str().unwrap(),
    ];
    args.extend(["--drain-timeout-ms", "2000"]);
    let served = Served::start(&args, &[], Duration::from_secs(120)).await;
    let base = served.base.clone();
    let c = reqwest::Client::new();
    let token = t["ci"].as_str();

    // Through the API: the manifest as written, the component it names.
    for name in ["convert", "tally", "hello"] {
        let dir = examples.join(name);
        let manifest = std::fs::read_to_string(dir.join("fn.config.json")).unwrap();
        let r = put(
            &c,
            &base,
            Some(token),
            name,
            &manifest,
            read(&dir.join(format!("{name}.wasm"))),
        )
        .await;
        assert_eq!(r.status(), 201, "{name}: {}", r.text().await.unwrap());
    }
    let post = |path: &str, body: Value| c.post(format!("{base}{path}")).json(&body).send();
    let r = post("/convert/kelvin", json!({"value": 0, "unit": "celsius"}))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = post("/tally/words", json!({"text": "one two three"})).await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(c.get(format!("{base}/hello")).send().await.unwrap().status(), 200);
    // Their operations are in the document, as the components describe them.
    let doc: Value = c
        .get(format!("{base}/_fn/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(doc["paths"].get("/convert/{to}").is_some(), "{doc}");

    // Through `wasmfn deploy`, under other names (so on `/cli-…`): build
    // (up to date), upload.
    let toolchains = build_options().toolchains_dir;
    let env = [("WASMFN_URL", base.as_str()), ("WASMFN_TOKEN", token)];
    for name in ["convert", "tally", "hello"] {
        let dir = examples.join(name);
        let as_name = format!("cli-{name}");
        let (ok, out, err) = wasmfn(
            &[
                "deploy",
                dir.to_str().unwrap(),
                "--name",
                &as_name,
                "--toolchains-dir",
                toolchains.to_str().unwrap(),
            ],
            &env,
        );
        assert!(ok, "{err}");
        assert!(out.contains(&format!("{as_name}: deployed (new), sha256:")), "{out}");
    }
    let r = post("/cli-convert/kelvin", json!({"value": 0, "unit": "celsius"}))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = post("/cli-tally/words", json!({"text": "one two"})).await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(c.get(format!("{base}/cli-hello")).send().await.unwrap().status(), 200);
    let (ok, out, err) = wasmfn(&["functions"], &env);
    assert!(ok, "{err}");
    for name in ["cli-convert", "cli-tally", "cli-hello"] {
        let row = out
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("{out}"));
        assert!(row.contains("deployed") && row.contains("ready"), "{row}");
    }
    // Errors come back as the host gave them.
    let (ok, _, err) = wasmfn(&["rollback", "cli-hello"], &env);
    assert!(!ok);
    assert!(
        err.contains("409 no_previous_version") && err.contains("request id"),
        "{err}"
    );
    let (ok, out, err) = wasmfn(&["undeploy", "cli-hello"], &env);
    assert!(ok, "{err}");
    assert!(out.contains("cli-hello: undeployed"));
    let (ok, _, err) = wasmfn(
        &["functions"],
        &[("WASMFN_URL", base.as_str()), ("WASMFN_TOKEN", "wfn_wrong")],
    );
    assert!(!ok && err.contains("401 unauthorized"), "{err}");
}

#[tokio::test]
async fn undeploys_and_deploys_under_load_fail_no_request_of_other_functions_and_drain_their_own() {
    let fx = Fixture::new();
    fx.function("keep", "probe", json!({}));
    let (file, t) = tokens(fx.path(), &[("ci", &["admin"])]);
    let served = serve(
        fx.path(),
        &["--drain-timeout-ms", "10000", "--admin-tokens", file.to_str().unwrap()],
    )
    .await;
    let base = served.base.clone();
    let token = t["ci"].as_str();
    let c = reqwest::Client::new();
    let stop = Arc::new(AtomicBool::new(false));
    let clients = hammer(&c, format!("{base}/keep"), 8, stop.clone(), |_| String::new());
    let (probe, plain) = (read(&guest("probe")), read(&guest("hello_plain")));
    for i in 0..10 {
        let component = if i % 2 == 0 { probe.clone() } else { plain.clone() };
        let r = put(&c, &base, Some(token), "churn", "{}", component).await;
        assert!(r.status().is_success(), "{}", r.text().await.unwrap());
        let r = call(&c, reqwest::Method::DELETE, &base, "/_fn/functions/churn", Some(token)).await;
        assert_eq!(r.status(), 204);
    }
    stop.store(true, Ordering::Relaxed);
    let mut answered = 0;
    for h in clients {
        let (failures, kinds) = h.await.unwrap();
        assert_eq!(failures, 0, "a request of `keep` failed while `churn` came and went");
        answered += kinds.len();
    }
    assert!(answered > 50, "{answered}");

    // A request in flight on an undeployed function finishes on its version.
    let r = put(
        &c,
        &base,
        Some(token),
        "slow",
        r#"{"timeout_ms": 20000}"#,
        read(&guest("slow")),
    )
    .await;
    assert_eq!(r.status(), 201);
    let slow = tokio::spawn(c.get(format!("{base}/slow?ms=2500")).send());
    tokio::time::sleep(Duration::from_millis(800)).await;
    let r = call(&c, reqwest::Method::DELETE, &base, "/_fn/functions/slow", Some(token)).await;
    assert_eq!(r.status(), 204);
    assert_eq!(c.get(format!("{base}/slow?ms=1")).send().await.unwrap().status(), 404);
    let r = slow.await.unwrap().unwrap();
    assert_eq!(
        r.status(),
        200,
        "the request in flight finished on the undeployed version"
    );
}

#[tokio::test]
async fn a_replaced_version_that_outlives_its_drain_is_interrupted() {
    let fx = Fixture::new();
    let (file, t) = tokens(fx.path(), &[("ci", &["admin"])]);
    let served = serve(
        fx.path(),
        &["--drain-timeout-ms", "500", "--admin-tokens", file.to_str().unwrap()],
    )
    .await;
    let (base, token) = (served.base.clone(), t["ci"].as_str());
    let c = reqwest::Client::new();
    let r = put(
        &c,
        &base,
        Some(token),
        "slow",
        r#"{"timeout_ms": 20000}"#,
        read(&guest("slow")),
    )
    .await;
    assert_eq!(r.status(), 201);
    let slow = tokio::spawn(c.get(format!("{base}/slow?ms=8000")).send());
    tokio::time::sleep(Duration::from_millis(500)).await;
    let started = std::time::Instant::now();
    let r = call(&c, reqwest::Method::DELETE, &base, "/_fn/functions/slow", Some(token)).await;
    assert_eq!(r.status(), 204);
    let r = slow.await.unwrap().unwrap();
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
    assert_eq!(r.headers()["retry-after"], "1");
    assert_eq!(error_code(r, 503).await.0, "version_retired");
}

#[tokio::test]
async fn kill_9_during_deploys_always_leaves_a_whole_version() {
    let fx = Fixture::new();
    let state = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    let (file, t) = tokens(fx.path(), &[("ci", &["admin"])]);
    let token = t["ci"].clone();
    let a = read(&guest("probe"));
    let b = read(&guest("hello_plain"));
    let digests = [format!("sha256:{}", sha256(&a)), format!("sha256:{}", sha256(&b))];
    let flags = [
        "serve",
        fx.path().to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
        "--cache-dir",
        cache.path().to_str().unwrap(),
        "--state-dir",
        state.path().to_str().unwrap(),
        "--admin-tokens",
        file.to_str().unwrap(),
    ];
    let c = reqwest::Client::new();
    let mut deployed = 0;
    for round in 0..8u64 {
        let served = Served::start(&flags, &[], Duration::from_secs(120)).await;
        let base = served.base.clone();
        if round == 0 {
            let r = put(&c, &base, Some(&token), "f", "{}", a.clone()).await;
            assert_eq!(r.status(), 201);
        } else {
            // What the last round left: one whole version, serving.
            let entry = listed(&c, &base, &token, "f").await;
            assert_eq!(entry["state"], "ready", "round {round}: {entry}");
            let digest = entry["digest"].as_str().unwrap();
            assert!(digests.iter().any(|d| d == digest), "{digest}");
            let body = c.get(format!("{base}/f")).send().await.unwrap();
            assert_eq!(body.status(), 200, "round {round}");
        }
        let stop = Arc::new(AtomicBool::new(false));
        let deployer = {
            let (c, base, token, stop) = (c.clone(), base.clone(), token.clone(), stop.clone());
            let (a, b) = (a.clone(), b.clone());
            tokio::spawn(async move {
                let mut i = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let (component, desc) = if i.is_multiple_of(2) {
                        (a.clone(), "a")
                    } else {
                        (b.clone(), "b")
                    };
                    let manifest = format!(r#"{{"description": "{desc} {i}"}}"#);
                    let form = reqwest::multipart::Form::new()
                        .text("manifest", manifest)
                        .part("component", reqwest::multipart::Part::bytes(component));
                    let r = c
                        .put(format!("{base}/_fn/functions/f"))
                        .bearer_auth(&token)
                        .multipart(form)
                        .send()
                        .await;
                    if r.is_ok_and(|r| r.status() == 200) {
                        i += 1;
                    }
                }
                i
            })
        };
        tokio::time::sleep(Duration::from_millis(150 + 97 * round)).await;
        let mut child = served.child;
        child.start_kill().unwrap();
        child.wait().await.unwrap();
        stop.store(true, Ordering::Relaxed);
        deployed += deployer.await.unwrap();
    }
    assert!(deployed >= 8, "only {deployed} deploys finished between the kills");
    let served = Served::start(&flags, &[], Duration::from_secs(120)).await;
    assert_eq!(listed(&c, &served.base, &token, "f").await["state"], "ready");
}

fn sha256(bytes: &[u8]) -> String {
    wasmfn_server::state::sha256_hex(bytes)
}

/// A CA, a server certificate for `localhost` and 127.0.0.1, and a client
/// certificate, written as PEM files under `dir`.
fn certificates(dir: &Path) -> HashMap<&'static str, PathBuf> {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name.push(rcgen::DnType::CommonName, "wasmfn test CA");
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let server_key = KeyPair::generate().unwrap();
    let server = CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
        .unwrap()
        .signed_by(&server_key, &ca_cert, &ca_key)
        .unwrap();
    let client_key = KeyPair::generate().unwrap();
    let mut client_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    client_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "deployer");
    client_params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    let client = client_params.signed_by(&client_key, &ca_cert, &ca_key).unwrap();
    let mut out = HashMap::new();
    for (name, pem) in [
        ("ca", ca_cert.pem()),
        ("server", server.pem()),
        ("server_key", server_key.serialize_pem()),
        ("client", client.pem()),
        ("client_key", client_key.serialize_pem()),
    ] {
        let p = dir.join(format!("{name}.pem"));
        std::fs::write(&p, pem).unwrap();
        out.insert(name, p);
    }
    out
}

/// The admin listener's address, from its log line.
async fn admin_addr(served: &mut Served) -> String {
    let line = served.line_with("admin surface on").await;
    line.split("://").nth(1).unwrap().split('/').next().unwrap().to_string()
}

#[tokio::test]
async fn the_admin_listener_serves_tls_with_and_without_client_certificates() {
    let fx = Fixture::new();
    fx.function("dirfn", "probe", json!({}));
    let certs = certificates(fx.path());
    let p = |k: &str| certs[k].to_str().unwrap().to_string();
    let ca = reqwest::Certificate::from_pem(&std::fs::read(&certs["ca"]).unwrap()).unwrap();
    let tls_client = reqwest::Client::builder()
        .use_rustls_tls()
        .add_root_certificate(ca.clone())
        .build()
        .unwrap();
    let plain = reqwest::Client::new();

    let (cert, key) = (p("server"), p("server_key"));
    let mut served = serve(
        fx.path(),
        &[
            "--admin-listen",
            "127.0.0.1:0",
            "--admin-tls-cert",
            &cert,
            "--admin-tls-key",
            &key,
        ],
    )
    .await;
    let admin = admin_addr(&mut served).await;
    let port = admin.rsplit(':').next().unwrap();
    let r = tls_client
        .get(format!("https://localhost:{port}/_fn/catalog"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.version(), reqwest::Version::HTTP_2, "ALPN offers h2");
    // The function listener serves none of the admin surface, only the public part.
    let base = served.base.clone();
    let (code, _) = error_code(plain.get(format!("{base}/_fn/catalog")).send().await.unwrap(), 404).await;
    assert_eq!(code, "not_found");
    assert_eq!(
        plain.get(format!("{base}/_fn/health")).send().await.unwrap().status(),
        200
    );
    assert_eq!(plain.get(format!("{base}/dirfn")).send().await.unwrap().status(), 200);
    // And the admin listener serves no function.
    let r = tls_client
        .get(format!("https://localhost:{port}/dirfn"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    // Plain HTTP to the TLS listener gets nowhere.
    assert!(plain.get(format!("http://{admin}/_fn/catalog")).send().await.is_err());
    drop(served);

    let client_ca = p("ca");
    let mut served = serve(
        fx.path(),
        &[
            "--admin-listen",
            "127.0.0.1:0",
            "--admin-tls-cert",
            &cert,
            "--admin-tls-key",
            &key,
            "--admin-client-ca",
            &client_ca,
        ],
    )
    .await;
    let admin = admin_addr(&mut served).await;
    let port = admin.rsplit(':').next().unwrap().to_string();
    let url = format!("https://localhost:{port}/_fn/catalog");
    assert!(
        tls_client.get(&url).send().await.is_err(),
        "no client certificate, no connection"
    );
    let mut identity = std::fs::read(&certs["client"]).unwrap();
    identity.extend(std::fs::read(&certs["client_key"]).unwrap());
    let with_cert = reqwest::Client::builder()
        .use_rustls_tls()
        .add_root_certificate(ca)
        .identity(reqwest::Identity::from_pem(&identity).unwrap())
        .build()
        .unwrap();
    assert_eq!(with_cert.get(&url).send().await.unwrap().status(), 200);
    // The CLI too, with its certificate flags.
    let (ok, out, err) = wasmfn(
        &[
            "functions",
            "--url",
            &format!("https://localhost:{port}"),
            "--ca-cert",
            &p("ca"),
            "--client-cert",
            &p("client"),
            "--client-key",
            &p("client_key"),
        ],
        &[],
    );
    assert!(ok, "{err}");
    assert!(out.contains("dirfn") && out.contains("directory"), "{out}");
}

#[tokio::test]
async fn request_heads_over_the_limit_get_431() {
    let fx = Fixture::new();
    fx.function("dirfn", "probe", json!({}));
    let c = reqwest::Client::new();
    let big = "x".repeat(100 * 1024);
    let served = serve(fx.path(), &[]).await;
    let r = c
        .get(format!("{}/dirfn", served.base))
        .header("x-big", &big)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 431);
    // Just under the default 64 KiB passes.
    let r = c
        .get(format!("{}/dirfn", served.base))
        .header("x-big", "x".repeat(60 * 1024))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    drop(served);
    let served = serve(fx.path(), &["--max-header-bytes", "262144"]).await;
    let r = c
        .get(format!("{}/dirfn", served.base))
        .header("x-big", &big)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let (ok, _, err) = wasmfn(
        &["serve", fx.path().to_str().unwrap(), "--max-header-bytes", "100"],
        &[],
    );
    assert!(!ok && err.contains("--max-header-bytes"), "{err}");
}

#[tokio::test]
async fn sighup_reads_the_token_file_again_and_a_broken_one_changes_nothing() {
    let fx = Fixture::new();
    fx.function("dirfn", "probe", json!({}));
    let (file, old) = tokens(fx.path(), &[("old", &["read"])]);
    let mut served = serve(fx.path(), &["--admin-tokens", file.to_str().unwrap()]).await;
    let c = reqwest::Client::new();
    let base = served.base.clone();
    let catalog = |token: String| {
        let c = c.clone();
        let url = format!("{base}/_fn/catalog");
        async move { c.get(url).bearer_auth(token).send().await.unwrap().status() }
    };
    assert_eq!(catalog(old["old"].clone()).await, 200);
    let hup = |child: &tokio::process::Child| {
        let pid = child.id().unwrap().to_string();
        assert!(
            std::process::Command::new("kill")
                .args(["-s", "HUP", &pid])
                .status()
                .unwrap()
                .success()
        );
    };
    // Rotate: the file now holds another token only.
    let (_, new) = tokens(fx.path(), &[("new", &["read"])]);
    hup(&served.child);
    served.line_with("SIGHUP: admin tokens read again").await;
    assert_eq!(catalog(new["new"].clone()).await, 200);
    assert_eq!(catalog(old["old"].clone()).await, 401);
    // A broken file is refused, and the tokens in force stay.
    std::fs::write(&file, "[{\"id\": \"x\"").unwrap();
    hup(&served.child);
    let line = served.line_with("SIGHUP: admin tokens unchanged").await;
    assert!(line.contains("tokens.json"), "{line}");
    assert_eq!(catalog(new["new"].clone()).await, 200);
}
