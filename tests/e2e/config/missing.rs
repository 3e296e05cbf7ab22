//! A secret listed and set nowhere: the function fails at load with a
//! message that says how to set it, the others serve, and a deploy that
//! lists it is refused.

use reqwest::Method;
use serde_json::json;

use super::*;

#[tokio::test]
async fn a_listed_secret_no_provider_has_fails_the_function_at_load_and_refuses_a_deploy() {
    let fx = Fixture::new();
    let present = unique("present-value");
    fx.file(
        "needs_key/fn.config.json",
        &config_manifest(json!({"secrets": ["api_key"]})).to_string(),
    )
    .file(
        "fine/fn.config.json",
        &config_manifest(json!({"config": {"x": "y"}})).to_string(),
    );
    let (tokens_path, t) = token_file(fx.path(), &[("root", &[Scope::Admin], None)]);
    let state = tempfile::tempdir().unwrap();
    let h = start(
        fx.path(),
        &[
            "--admin-tokens",
            tokens_path.to_str().unwrap(),
            "--state-dir",
            state.path().to_str().unwrap(),
        ],
        &[("WASMFN_SECRET_PRESENT", &present)],
    )
    .await;

    let f = h.function(&t["root"], "needs_key").await;
    assert_eq!(f["state"], "failed", "{f:#}");
    let error = f["error"].as_str().unwrap();
    assert!(error.contains(&unset_message("api_key")), "{error}");
    assert_eq!(h.get_on(None, "/needs_key").await.0, 404);
    assert_eq!(h.get_on(None, "/fine").await, (200, json!({"all": {"x": "y"}})));
    let (_, status) = h.admin_text("/_fn/status", &t["root"]).await;
    assert_eq!(status["status"], "degraded", "{status}");
    assert_eq!(status["functions"], json!({"loaded": 1, "failed": 1}), "{status}");

    // A deploy that lists it: refused, with the same message; nothing changes.
    let r = h
        .deploy("/_fn", "dep", json!({"secrets": ["present", "api_key"]}), &t["root"])
        .await;
    let (code, body) = error_code(r, 422).await;
    assert_eq!(code, "invalid_function");
    let msg = body["error"]["message"].as_str().unwrap();
    assert!(msg.contains(&unset_message("api_key")), "{msg}");
    assert_hidden(&body.to_string(), &[&present], "the refusal");
    assert_eq!(h.get_on(None, "/dep").await.0, 404);
    let r = h.admin(Method::GET, "/_fn/functions/dep", &t["root"], None).await;
    assert_eq!(error_code(r, 404).await.0, "function_not_found");

    // A deploy whose secrets are all set serves them.
    let r = h
        .deploy(
            "/_fn",
            "dep",
            json!({"config": {"mode": "deployed"}, "secrets": ["present"]}),
            &t["root"],
        )
        .await;
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    assert_eq!(
        h.get_on(None, "/dep").await,
        (200, json!({"all": {"mode": "deployed", "present": present}}))
    );
    assert_eq!(h.read_key(None, "/dep", "api_key").await, (200, json!({"get": null})));
    let (catalog, _) = h.admin_text("/_fn/catalog", &t["root"]).await;
    assert_hidden(&catalog, &[&present], "the catalog");
    let (listed, _) = h.admin_text("/_fn/functions/dep", &t["root"]).await;
    assert_hidden(&listed, &[&present], "the function's listing");
    let (audit, _) = h.admin_text("/_fn/audit", &t["root"]).await;
    assert_hidden(&audit, &[&present], "the audit log");
    let log = h.stop().await;
    assert_hidden(&log, &[&present], "the host's log");
}
