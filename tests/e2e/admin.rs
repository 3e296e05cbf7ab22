//! Health and catalog, and broken functions beside good ones.

use serde_json::json;

use crate::harness::*;

#[tokio::test]
async fn broken_functions_are_reported_and_the_rest_serve() {
    let f = Fixture::new();
    f.function("good", "probe", json!({"description": "works"}))
        .file("garbage/fn.config.json", r#"{"component": "garbage.wasm"}"#)
        .file("garbage/garbage.wasm", "this is not wasm")
        .file("core/fn.config.json", r#"{"component": "core.wasm"}"#)
        .file("missing/fn.config.json", r#"{"component": "nowhere.wasm"}"#)
        .file(
            "malformed/fn.config.json",
            r#"{"component": "x.wasm", "timeout_ms": "soon""#,
        )
        .file(
            "badpolicy/fn.config.json",
            r#"{"component": "x.wasm", "overflow_status": 500}"#,
        );
    // A core module (not a component): magic plus version 1.
    std::fs::write(f.path().join("core/core.wasm"), b"\0asm\x01\0\0\0").unwrap();
    let t = TestHost::start(f.path()).await;

    assert_eq!(t.get("/good").await.status(), 200);

    let health = t.json("/_fn/status").await;
    assert_eq!(health["status"], "degraded");
    assert_eq!(health["functions"], json!({"loaded": 1, "failed": 5}));
    assert_eq!(health["version"], env!("CARGO_PKG_VERSION"));
    assert!(health["uptime_seconds"].is_u64());

    let errors: Vec<(String, String)> = t.json("/_fn/catalog").await["functions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["state"] == "failed")
        .map(|f| {
            (
                f["name"].as_str().unwrap().to_string(),
                f["error"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let want = [
        (
            "badpolicy",
            "field `overflow_status`: `500` is not allowed: expected 429 or 503",
        ),
        ("core", "is not a WebAssembly component: it is a core module"),
        (
            "garbage",
            "is not a WebAssembly component: it does not start with the `\\0asm` header",
        ),
        ("malformed", "not valid JSON"),
        ("missing", "cannot read component"),
    ];
    assert_eq!(errors.len(), want.len(), "{errors:#?}");
    for ((name, error), (want_name, want_error)) in errors.iter().zip(want) {
        assert_eq!(name, want_name);
        assert!(error.contains(want_error), "{name}: {error}");
    }
    for (name, error) in &errors[1..] {
        if name != "malformed" {
            assert!(error.contains(&format!("{name}/")), "error names the file: {error}");
        }
    }
}

#[tokio::test]
async fn a_component_without_the_http_handler_is_reported() {
    let f = Fixture::new();
    f.function("ok", "probe", json!({}))
        .function("command", "no_handler", json!({}));
    let t = TestHost::start(f.path()).await;
    assert_eq!(t.get("/ok").await.status(), 200);
    let failed = t.function("command").await;
    assert_eq!(failed["state"], "failed");
    let error = failed["error"].as_str().unwrap();
    assert!(
        error.contains("does not export `wasi:http/incoming-handler@0.2.x`"),
        "{error}"
    );
    assert!(error.contains("no_handler.wasm"), "{error}");
    let (code, _) = error_code(t.get("/command").await, 404).await;
    assert_eq!(code, "not_found");
}

#[tokio::test]
async fn catalog_lists_routes_policy_and_counters() {
    let f = Fixture::new();
    f.file("fn.config.json", r#"{"timeout_ms": 1234}"#)
        .function(
            "api/items",
            "probe",
            json!({"invoke": {"methods": ["GET", "POST"], "allow_hosts": ["*.example.org"]}, "max_queue": 3}),
        )
        .function("trap", "trap", json!({}));
    let t = TestHost::start(f.path()).await;

    let items = t.function("api/items").await;
    assert_eq!(items["state"], "ready");
    assert_eq!(items["routes"], json!(["/api/items"]));
    assert_eq!(items["methods"], json!(["GET", "POST"]));
    assert_eq!(items["allow_hosts"], json!(["*.example.org"]));
    assert_eq!(items["policy"]["timeout_ms"], 1234, "overlay cascades");
    assert_eq!(items["policy"]["max_queue"], 3, "own value wins");
    assert_eq!(items["policy"]["max_body_bytes"], 10 * 1024 * 1024, "default");
    assert_eq!(items["policy"]["allowed_outbound_hosts"], json!([]));
    assert!(items["component"].as_str().unwrap().ends_with("probe.wasm"));

    let catalog = t.json("/_fn/catalog").await;
    assert_eq!(
        catalog["mapped_routes"]["/api/items"],
        json!([{"function": "api/items", "methods": ["GET", "HEAD", "POST"], "hosts": ["*.example.org"], "force_url": false}])
    );

    // A trap is a 500 with the request id; details stay in the log.
    let (code, body) = error_code(t.get("/trap").await, 500).await;
    assert_eq!(code, "function_error");
    assert!(!body.to_string().contains("always fails"), "trap details leak: {body}");
    let stats = &t.function("trap").await["stats"];
    assert_eq!(
        (stats["requests"].as_u64(), stats["trapped"].as_u64()),
        (Some(1), Some(1))
    );
    // And the function keeps serving.
    error_code(t.get("/trap").await, 500).await;
    assert_eq!(t.function("trap").await["stats"]["trapped"], 2);

    let (code, _) = error_code(t.get("/_fn/nothing").await, 404).await;
    assert_eq!(code, "not_found");
}
