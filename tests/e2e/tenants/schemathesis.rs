//! Schemathesis, every phase, against one tenant's own document: the
//! `items` example deployed into tenant `acme` behind an API key, its
//! document fetched on acme's host (acme's operations only, with the key's
//! security scheme), and every request sent on that host with the key,
//! while the tenant `default` serves another function.

use reqwest::Method;
use serde_json::{Value, json};

use super::*;
use crate::openapi::{SCHEMATHESIS_ALL_CHECKS, schemathesis};

const HOST: &str = "acme.localhost";

/// Deploys the example in `functions/{folder}` (built by the harness) as
/// function `name` of `tenant`: its own manifest, with `extra` merged in.
async fn deploy_example(
    h: &TestHost,
    token: &str,
    tenant: &str,
    name: &str,
    folder: &str,
    extra: Value,
) -> reqwest::Response {
    let dir = tokio::task::spawn_blocking(examples).await.unwrap().join(folder);
    let text = std::fs::read_to_string(dir.join("fn.config.json")).unwrap();
    let mut manifest: Value = serde_json::from_str(&text).unwrap();
    for (k, v) in extra.as_object().unwrap() {
        manifest[k] = v.clone();
    }
    let component = dir.join(manifest["component"].as_str().unwrap());
    deploy_file(h, token, tenant, name, manifest, &component).await
}

/// The document's paths, sorted.
fn paths_of(doc: &Value) -> Vec<&str> {
    let mut paths: Vec<&str> = doc["paths"].as_object().unwrap().keys().map(String::as_str).collect();
    paths.sort_unstable();
    paths
}

#[tokio::test]
async fn schemathesis_finds_nothing_against_a_tenants_authenticated_document() {
    // The tenant `default` serves `hello` from the functions directory.
    let fx = Fixture::new();
    fx.function("hello", "probe", json!({}));
    let (h, t, _state) = hosted(fx.path(), &[("root", &[Scope::Admin], None)]).await;
    let root = t["root"].as_str();
    put_tenant(&h, root, "acme", json!({"hosts": [HOST]}), 201).await;
    let auth = json!({"auth": {"type": "api_key", "in": "header", "name": "x-api-key"}});
    let r = deploy_example(&h, root, "acme", "items", "items", auth).await;
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    let r = admin(
        &h,
        Method::POST,
        "/_fn/tenants/acme/api-keys",
        root,
        Some(json!({"id": "schemathesis"})),
    )
    .await;
    assert_eq!(r.status(), 201);
    let key = r.json::<Value>().await.unwrap()["key"].as_str().unwrap().to_string();

    // The host refuses acme's function without the key, or with a wrong
    // one, before it runs: what `ignored_auth` would find otherwise.
    let items = |key: Option<&str>| {
        let mut r = h.client.get(h.url("/items")).header("host", HOST);
        if let Some(k) = key {
            r = r.header("x-api-key", k);
        }
        r.send()
    };
    let r = items(None).await.unwrap();
    assert_eq!(
        r.headers()["www-authenticate"],
        "ApiKey realm=\"acme\", in=\"header\", name=\"x-api-key\""
    );
    assert_eq!(error_code(r, 401).await.0, "unauthorized");
    let r = items(Some("wfk_wrong")).await.unwrap();
    assert_eq!(error_code(r, 401).await.0, "unauthorized");
    let r = items(Some(&key)).await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap().as_array().unwrap().len(), 4);
    // `/items` is acme's only: the tenant `default` has none.
    assert_eq!(h.get("/items").await.status(), 404);

    // Acme's document holds acme's operations only, each behind the key.
    let text = get_on(&h, HOST, "/_fn/openapi.json").await.text().await.unwrap();
    let doc: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(paths_of(&doc), ["/items", "/items/export", "/items/{id}"]);
    let schemes = doc["components"]["securitySchemes"].as_object().unwrap();
    assert_eq!(schemes.len(), 1, "{schemes:?}");
    let (scheme, key_scheme) = schemes.iter().next().unwrap();
    assert_eq!(key_scheme["type"], "apiKey");
    assert_eq!(key_scheme["in"], "header");
    assert_eq!(key_scheme["name"], "x-api-key");
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            assert_eq!(op["security"], json!([{scheme: []}]), "{method} {path}");
            assert!(op["responses"]["401"].is_object(), "{method} {path}: no 401");
        }
    }
    // The tenant `default`'s document is another: `hello`, without keys.
    let default_doc = h.json("/_fn/openapi.json").await;
    let default_paths = paths_of(&default_doc);
    assert!(default_paths.contains(&"/hello"), "{default_paths:?}");
    assert!(
        !default_paths.iter().any(|p| p.starts_with("/items")),
        "{default_paths:?}"
    );
    assert!(default_doc["components"].get("securitySchemes").is_none());

    // Schemathesis on acme's document as served, every request sent on
    // acme's host and with the key.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("acme.openapi.json");
    std::fs::write(&file, &text).unwrap();
    let host_header = format!("Host: {HOST}");
    let key_header = format!("x-api-key: {key}");
    // Every check as for the examples (`ignored_auth` among them: with the
    // key sent explicitly it asks again without it and with a wrong one,
    // and expects `401`); `items` keeps its items in acme's store.
    let said = schemathesis(
        &h,
        file.to_str().unwrap(),
        SCHEMATHESIS_ALL_CHECKS,
        &["-H", &host_header, "-H", &key_header],
    )
    .await;
    for phase in ["Examples", "Coverage", "Fuzzing", "Stateful"] {
        assert!(said.contains(&format!("✅ {phase}")), "{phase}: {said}");
    }
    assert!(said.contains("API Links:"), "the stateful phase found no links: {said}");

    // Its requests reached acme's `items` (the one above aside).
    let catalog: Value = admin(&h, Method::GET, "/_fn/catalog?tenant=acme", root, None)
        .await
        .json()
        .await
        .unwrap();
    let stats = &catalog["functions"][0]["stats"];
    assert_eq!(catalog["functions"][0]["name"], "items");
    assert!(stats["requests"].as_u64().unwrap() > 1, "{stats}");
    let _drained = h.host.stop().await.unwrap();
}
