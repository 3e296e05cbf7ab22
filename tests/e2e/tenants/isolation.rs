//! Two tenants with the same routes on different hosts, tokens that keep
//! to their tenant, hosts that belong to one tenant, per-tenant documents
//! and audit, and all of it again after a restart.

use reqwest::Method;
use serde_json::{Value, json};

use super::*;

#[tokio::test]
async fn tenants_route_by_host_and_tokens_keep_to_their_tenant() {
    let fx = Fixture::new();
    fx.function("hello", "probe", json!({}));
    let specs: &[TokenSpec] = &[
        ("root", &[Scope::Admin], None),
        ("acme-ci", &[Scope::Deploy, Scope::Read], Some("acme")),
        ("acme-admin", &[Scope::Admin], Some("acme")),
        ("globex-ci", &[Scope::Deploy, Scope::Read], Some("globex")),
    ];
    let state = tempfile::tempdir().unwrap();
    let (config, t) = hosted_config(fx.path(), state.path(), specs);
    let h = TestHost::start_with(config.clone()).await;

    // Tenants and their hosts; a host belongs to one tenant.
    let acme = put_tenant(
        &h,
        &t["root"],
        "acme",
        json!({"hosts": ["acme.test", "*.acme.test"]}),
        201,
    )
    .await;
    assert_eq!(acme["id"], "acme");
    put_tenant(&h, &t["root"], "globex", json!({"hosts": ["globex.test"]}), 201).await;
    let r = admin(
        &h,
        Method::PUT,
        "/_fn/tenants/evil",
        &t["root"],
        Some(json!({"hosts": ["api.acme.test"]})),
    )
    .await;
    let (code, body) = error_code(r, 409).await;
    assert_eq!(code, "tenant_conflict");
    assert!(
        body["error"]["message"].as_str().unwrap().contains("tenant `acme`"),
        "{body}"
    );
    let r = admin(&h, Method::PUT, "/_fn/tenants/Bad_Id", &t["root"], Some(json!({}))).await;
    assert_eq!(error_code(r, 422).await.0, "invalid_tenant");
    let r = admin(
        &h,
        Method::PUT,
        "/_fn/tenants/x",
        &t["root"],
        Some(json!({"hosts": ["https://x.test"]})),
    )
    .await;
    let (code, body) = error_code(r, 422).await;
    assert_eq!(code, "invalid_tenant");
    assert!(
        body["error"]["message"].as_str().unwrap().contains("field `hosts[0]`"),
        "{body}"
    );

    // A tenant's token cannot create tenants, nor act on the whole host.
    let r = admin(&h, Method::PUT, "/_fn/tenants/new", &t["acme-admin"], Some(json!({}))).await;
    assert_eq!(error_code(r, 403).await.0, "forbidden");
    for path in ["/_fn/status"] {
        let r = admin(&h, Method::GET, path, &t["acme-ci"], None).await;
        assert_eq!(error_code(r, 403).await.0, "forbidden", "{path}");
    }
    let r = admin(&h, Method::POST, "/_fn/reload", &t["acme-ci"], None).await;
    assert_eq!(error_code(r, 403).await.0, "forbidden");

    // The same route in both tenants, each answered by its own function.
    for (tenant, token, name) in [("acme", "acme-ci", "hello-a"), ("globex", "globex-ci", "hello-g")] {
        let r = deploy(&h, &t[token], tenant, name, probe_manifest("/hello"), "probe").await;
        assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    }
    assert_eq!(
        probe(get_on(&h, "acme.test", "/hello").await).await["function"],
        "hello-a"
    );
    assert_eq!(
        probe(get_on(&h, "eu.acme.test:8080", "/hello").await).await["function"],
        "hello-a"
    );
    assert_eq!(
        probe(get_on(&h, "GLOBEX.test", "/hello").await).await["function"],
        "hello-g"
    );
    // Any other host is the tenant `default`'s: the functions directory.
    assert_eq!(probe(h.get("/hello").await).await["function"], "hello");
    assert_eq!(
        probe(get_on(&h, "unknown.test", "/hello").await).await["function"],
        "hello"
    );

    // Another tenant's objects do not exist for a tenant token (404, not 403).
    for (method, path) in [
        (Method::GET, "/_fn/tenants/globex"),
        (Method::GET, "/_fn/tenants/globex/functions"),
        (Method::GET, "/_fn/tenants/globex/functions/hello-g"),
        (Method::DELETE, "/_fn/tenants/globex/functions/hello-g"),
        (Method::POST, "/_fn/tenants/globex/functions/hello-g/rollback"),
        (Method::GET, "/_fn/tenants/globex/api-keys"),
        (Method::GET, "/_fn/functions"),
        (Method::GET, "/_fn/functions/hello"),
        (Method::GET, "/_fn/catalog?tenant=globex"),
    ] {
        let r = admin(&h, method.clone(), path, &t["acme-ci"], None).await;
        assert_eq!(error_code(r, 404).await.0, "tenant_not_found", "{method} {path}");
    }
    let r = deploy(&h, &t["acme-ci"], "globex", "hello-g", probe_manifest("/x"), "probe").await;
    assert_eq!(error_code(r, 404).await.0, "tenant_not_found");
    assert_eq!(
        probe(get_on(&h, "globex.test", "/hello").await).await["function"],
        "hello-g"
    );

    // What a tenant token sees: its tenant, its catalog, its audit.
    let list: Value = admin(&h, Method::GET, "/_fn/tenants", &t["acme-ci"], None)
        .await
        .json()
        .await
        .unwrap();
    let ids: Vec<&str> = list["tenants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["acme"]);
    let all: Value = admin(&h, Method::GET, "/_fn/tenants", &t["root"], None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(all["tenants"].as_array().unwrap().len(), 3, "{all}");
    let catalog: Value = admin(&h, Method::GET, "/_fn/catalog", &t["acme-ci"], None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(catalog["tenant"], "acme");
    let names: Vec<&str> = catalog["functions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["hello-a"]);
    let audit: Value = admin(&h, Method::GET, "/_fn/audit", &t["acme-ci"], None)
        .await
        .json()
        .await
        .unwrap();
    let entries = audit["entries"].as_array().unwrap();
    assert!(!entries.is_empty());
    assert!(entries.iter().all(|e| e["tenant"] == "acme"), "{audit:#}");
    let audit: Value = admin(&h, Method::GET, "/_fn/audit", &t["root"], None)
        .await
        .json()
        .await
        .unwrap();
    assert!(
        audit["entries"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["tenant"] == "globex")
    );

    // Each tenant's document, on its host, holds its functions only.
    let doc: Value = get_on(&h, "acme.test", "/_fn/openapi.json").await.json().await.unwrap();
    let tags: Vec<&str> = doc["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(tags, ["hello-a"]);
    let doc: Value = h.json("/_fn/openapi.json").await;
    let tags: Vec<&str> = doc["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(tags, ["hello"]);

    // All of it again after a restart on the same state directory.
    let _drained = h.host.stop().await.unwrap();
    let h = TestHost::start_with(config).await;
    assert_eq!(
        probe(get_on(&h, "acme.test", "/hello").await).await["function"],
        "hello-a"
    );
    assert_eq!(
        probe(get_on(&h, "globex.test", "/hello").await).await["function"],
        "hello-g"
    );
    assert_eq!(probe(h.get("/hello").await).await["function"], "hello");

    // Deleting a tenant frees its hosts: they serve `default` again.
    let r = admin(&h, Method::DELETE, "/_fn/tenants/globex", &t["root"], None).await;
    assert_eq!(r.status(), 204);
    assert_eq!(
        probe(get_on(&h, "globex.test", "/hello").await).await["function"],
        "hello"
    );
    let r = admin(&h, Method::DELETE, "/_fn/tenants/default", &t["root"], None).await;
    assert_eq!(error_code(r, 409).await.0, "tenant_conflict");
    let _drained = h.host.stop().await.unwrap();
}
