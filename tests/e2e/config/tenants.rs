//! Each tenant its own secrets: the same name holds another value in
//! another tenant, the environment serves `default` only, the folder has
//! a subfolder per tenant, and a tenant's token reaches its own secrets only.

use reqwest::Method;
use serde_json::json;

use super::*;

#[tokio::test]
async fn a_tenant_reads_its_own_secret_of_a_name_and_its_token_reaches_no_other() {
    let fx = Fixture::new();
    let (default_env, default_api, default_dir) = (unique("default-env"), unique("default-api"), unique("default-dir"));
    let (acme_api, acme_dir, refused) = (unique("acme-api"), unique("acme-dir"), unique("refused"));
    let values = [
        default_env.as_str(),
        &default_api,
        &default_dir,
        &acme_api,
        &acme_dir,
        &refused,
    ];
    fx.file(
        "hello/fn.config.json",
        &config_manifest(json!({"secrets": ["api_key", "shared_name"]})).to_string(),
    );
    let keys = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let sd = keys.path().join("secrets");
    std::fs::create_dir_all(sd.join("acme")).unwrap();
    std::fs::write(sd.join("shared_name"), format!("{default_dir}\n")).unwrap();
    std::fs::write(sd.join("acme/shared_name"), format!("{acme_dir}\n")).unwrap();
    let key = key_file(keys.path(), "secrets.key");
    let (tokens_path, t) = token_file(
        keys.path(),
        &[
            ("root", &[Scope::Admin], None),
            ("acme-ci", &[Scope::Deploy, Scope::Read], Some("acme")),
        ],
    );
    let h = start(
        fx.path(),
        &[
            "--admin-tokens",
            tokens_path.to_str().unwrap(),
            "--state-dir",
            state.path().to_str().unwrap(),
            "--secrets-dir",
            sd.to_str().unwrap(),
            "--secrets-key-file",
            key.to_str().unwrap(),
        ],
        &[("WASMFN_SECRET_API_KEY", &default_env)],
    )
    .await;
    let (acme, root, acme_ci) = (Some("acme.test"), t["root"].as_str(), t["acme-ci"].as_str());
    let mut error_bodies = String::new();

    assert_eq!(
        h.get_on(None, "/hello").await,
        (
            200,
            json!({"all": {"api_key": default_env, "shared_name": default_dir}})
        )
    );
    let r = h.put_secret("/_fn", "api_key", &default_api, root).await;
    assert_eq!(r.status(), 200);
    h.eventually_reads(None, "/hello", "api_key", json!(default_api)).await;
    for (id, host) in [("acme", "acme.test"), ("globex", "globex.test")] {
        let r = h
            .admin(
                Method::PUT,
                &format!("/_fn/tenants/{id}"),
                root,
                Some(json!({"hosts": [host]})),
            )
            .await;
        assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    }

    // `default`'s secret of that name (API or environment) is not acme's.
    let manifest = json!({"secrets": ["api_key", "shared_name"]});
    let r = h.deploy("/_fn/tenants/acme", "reader", manifest.clone(), acme_ci).await;
    let (code, body) = error_code(r, 422).await;
    assert_eq!(code, "invalid_function");
    let msg = body["error"]["message"].as_str().unwrap();
    assert!(msg.contains("secret `api_key`") && msg.contains("is not set"), "{msg}");
    assert!(msg.contains("`PUT /_fn/tenants/acme/secrets/api_key`"), "{msg}");
    assert!(
        !msg.contains("WASMFN_SECRET_"),
        "the environment serves `default` only: {msg}"
    );
    error_bodies.push_str(&body.to_string());

    // Acme's own value of the name; its folder's value; `default` unchanged.
    let r = h.put_secret("/_fn/tenants/acme", "api_key", &acme_api, acme_ci).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["created"], true);
    let r = h.deploy("/_fn/tenants/acme", "reader", manifest, acme_ci).await;
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    assert_eq!(
        h.get_on(acme, "/reader").await,
        (200, json!({"all": {"api_key": acme_api, "shared_name": acme_dir}}))
    );
    assert_eq!(
        h.get_on(None, "/hello").await,
        (
            200,
            json!({"all": {"api_key": default_api, "shared_name": default_dir}})
        )
    );

    // Acme's token: another tenant's secrets, `default`'s included, do not exist.
    for (method, path) in [
        (Method::GET, "/_fn/secrets"),
        (Method::PUT, "/_fn/secrets/api_key"),
        (Method::DELETE, "/_fn/secrets/api_key"),
        (Method::GET, "/_fn/tenants/globex/secrets"),
        (Method::PUT, "/_fn/tenants/globex/secrets/api_key"),
        (Method::DELETE, "/_fn/tenants/globex/secrets/api_key"),
        (Method::PUT, "/_fn/tenants/default/secrets/api_key"),
    ] {
        let body = (method == Method::PUT).then(|| json!({"value": refused}));
        let r = h.admin(method.clone(), path, acme_ci, body).await;
        let (code, body) = error_code(r, 404).await;
        assert_eq!(code, "tenant_not_found", "{method} {path}");
        error_bodies.push_str(&body.to_string());
    }
    assert_eq!(
        h.read_key(None, "/hello", "api_key").await,
        (200, json!({"get": default_api}))
    );
    let (text, list) = h.admin_text("/_fn/tenants/acme/secrets", acme_ci).await;
    assert_eq!(
        list["secrets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| &s["name"])
            .collect::<Vec<_>>(),
        [&json!("api_key")],
        "{list}"
    );
    assert_hidden(&text, &values, "acme's list");
    let (text, list) = h.admin_text("/_fn/tenants/acme/secrets", root).await;
    assert_eq!(list["secrets"].as_array().unwrap().len(), 1, "{list}");
    assert_hidden(&text, &values, "acme's list, for root");

    // Acme's audit: its own secret writes, no values.
    let (audit, json) = h.admin_text("/_fn/audit", acme_ci).await;
    let entries = json["entries"].as_array().unwrap();
    assert!(entries.iter().all(|e| e["tenant"] == "acme"), "{audit}");
    assert!(
        entries
            .iter()
            .any(|e| e["action"] == "secret_set" && e["status"] == 200),
        "{audit}"
    );
    assert_hidden(&audit, &values, "acme's audit log");

    // Deleting acme's secret stops acme's function only.
    let r = h
        .admin(Method::DELETE, "/_fn/tenants/acme/secrets/api_key", acme_ci, None)
        .await;
    assert_eq!(r.status(), 200);
    let f = h.eventually_state(acme_ci, "reader", "failed").await;
    let error = f["error"].as_str().unwrap();
    assert!(
        error.contains("secret `api_key`") && error.contains("is not set"),
        "{error}"
    );
    assert_eq!(h.get_on(acme, "/reader").await.0, 404);
    assert_eq!(
        h.read_key(None, "/hello", "api_key").await,
        (200, json!({"get": default_api}))
    );

    let (catalog, _) = h.admin_text("/_fn/catalog?tenant=acme", root).await;
    assert_hidden(&catalog, &values, "acme's catalog");
    // A tenant that does not exist has no secrets, for a host-wide token too.
    let r = h.put_secret("/_fn/tenants/nope", "api_key", &refused, root).await;
    let (code, body) = error_code(r, 404).await;
    assert_eq!(code, "tenant_not_found");
    error_bodies.push_str(&body.to_string());

    // As for functions, a request refused for its tenant is written into
    // no tenant's audit log: acme's probes do not show its token's id to
    // `default` or globex, and no line names a tenant that does not exist.
    let (audit, json) = h.admin_text("/_fn/audit?limit=1000", root).await;
    assert_hidden(&audit, &values, "the audit log");
    let strays: Vec<&Value> = json["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| (e["token"] == "acme-ci" && e["tenant"] != "acme") || e["tenant"] == "nope")
        .collect();
    assert!(strays.is_empty(), "audit lines for refused tenants: {strays:#?}");
    assert_hidden(&error_bodies, &values, "error bodies");
    assert_hidden(&h.stop().await, &values, "the host's log");
    super::secrets::assert_hidden_in_files(state.path(), &values);
}
