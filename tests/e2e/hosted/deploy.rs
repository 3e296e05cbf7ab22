//! Deploy, refusals, rollback, undeploy, audit and restart, through the
//! API and `wasmfn deploy`.

use serde_json::json;

use super::*;

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
