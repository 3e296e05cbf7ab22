//! Secrets from the three providers and their order, the admin API
//! (set, list, delete, its refusals), functions reloaded when a secret
//! changes, and values kept out of everything the host shows.

use reqwest::Method;
use serde_json::json;

use super::*;

/// The values of one host's secrets, each unique to this run.
struct Values {
    env_api_key: String,
    dir_from_dir: String,
    dir_padded: String,
    dir_layered: String,
    env_layered: String,
    api_layered_1: String,
    api_layered_2: String,
    dir_over_env: String,
    env_over_env: String,
    env_unlisted: String,
    api_only: String,
    refused: String,
}

impl Values {
    fn new() -> Self {
        Self {
            env_api_key: unique("env-api-key"),
            dir_from_dir: unique("dir-from-dir"),
            dir_padded: unique("dir-padded"),
            dir_layered: unique("dir-layered"),
            env_layered: unique("env-layered"),
            api_layered_1: unique("api-layered-one"),
            api_layered_2: unique("api-layered-two"),
            dir_over_env: unique("dir-over-env"),
            env_over_env: unique("env-over-env"),
            env_unlisted: unique("env-unlisted"),
            api_only: unique("api-only"),
            refused: unique("refused-value"),
        }
    }

    fn all(&self) -> Vec<&str> {
        [
            &self.env_api_key,
            &self.dir_from_dir,
            &self.dir_padded,
            &self.dir_layered,
            &self.env_layered,
            &self.api_layered_1,
            &self.api_layered_2,
            &self.dir_over_env,
            &self.env_over_env,
            &self.env_unlisted,
            &self.api_only,
            &self.refused,
        ]
        .into_iter()
        .map(String::as_str)
        .collect()
    }
}

#[tokio::test]
async fn secrets_come_from_the_api_then_the_folder_then_the_environment_and_changes_reload() {
    let fx = Fixture::new();
    let v = Values::new();
    fx.file(
        "reader/fn.config.json",
        &config_manifest(json!({
            "config": {"greeting": "hi"},
            "secrets": ["api_key", "from_dir", "padded", "layered", "dir_over_env"],
        }))
        .to_string(),
    )
    .file(
        "needy/fn.config.json",
        &config_manifest(json!({"secrets": ["only_api"]})).to_string(),
    );
    let keys = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let sd = keys.path().join("secrets");
    std::fs::create_dir(&sd).unwrap();
    std::fs::write(sd.join("from_dir"), format!("{}\n", v.dir_from_dir)).unwrap();
    // One trailing newline goes, not two, and not the leading spaces.
    std::fs::write(sd.join("padded"), format!("  {}\n\n", v.dir_padded)).unwrap();
    std::fs::write(sd.join("layered"), format!("{}\n", v.dir_layered)).unwrap();
    std::fs::write(sd.join("dir_over_env"), &v.dir_over_env).unwrap();
    let key = key_file(keys.path(), "secrets.key");
    let (tokens_path, t) = token_file(
        keys.path(),
        &[
            ("root", &[Scope::Admin], None),
            ("ci", &[Scope::Deploy, Scope::Read], None),
            ("viewer", &[Scope::Read], None),
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
            "--openapi-admin",
        ],
        &[
            ("WASMFN_SECRET_API_KEY", &v.env_api_key),
            ("WASMFN_SECRET_LAYERED", &v.env_layered),
            ("WASMFN_SECRET_DIR_OVER_ENV", &v.env_over_env),
            ("WASMFN_SECRET_UNLISTED", &v.env_unlisted),
        ],
    )
    .await;
    let mut error_bodies = String::new();

    // Before any API call: the folder, then the environment.
    let mut all = json!({
        "greeting": "hi",
        "api_key": v.env_api_key,
        "from_dir": v.dir_from_dir,
        "padded": format!("  {}\n", v.dir_padded),
        "layered": v.dir_layered,
        "dir_over_env": v.dir_over_env,
    });
    assert_eq!(h.get_on(None, "/reader").await, (200, json!({ "all": all })));
    for key in ["api_key", "from_dir", "padded", "layered", "dir_over_env", "greeting"] {
        assert_eq!(
            h.read_key(None, "/reader", key).await,
            (200, json!({"get": all[key]})),
            "{key}"
        );
    }
    // A secret the function does not list is absent, though it is set.
    assert_eq!(
        h.read_key(None, "/reader", "unlisted").await,
        (200, json!({"get": null}))
    );
    // A listed secret no provider has: the function fails, the rest serve.
    let needy = h.function(&t["root"], "needy").await;
    assert_eq!(needy["state"], "failed", "{needy:#}");
    let error = needy["error"].as_str().unwrap();
    assert!(error.contains(&unset_message("only_api")), "{error}");
    assert_eq!(h.get_on(None, "/needy").await.0, 404);

    // The API's value wins over the folder's and the environment's, at once.
    let r = h.put_secret("/_fn", "layered", &v.api_layered_1, &t["ci"]).await;
    assert_eq!(r.status(), 200);
    let set: Value = r.json().await.unwrap();
    assert_eq!(set["name"], "layered");
    assert_eq!(set["created"], true);
    assert!(set["updated_at"].as_str().is_some_and(|s| !s.is_empty()), "{set}");
    h.eventually_reads(None, "/reader", "layered", json!(v.api_layered_1))
        .await;
    let r = h.put_secret("/_fn", "layered", &v.api_layered_2, &t["ci"]).await;
    assert_eq!(r.status(), 200);
    let set: Value = r.json().await.unwrap();
    assert_eq!((&set["name"], &set["created"]), (&json!("layered"), &json!(false)));
    h.eventually_reads(None, "/reader", "layered", json!(v.api_layered_2))
        .await;
    all["layered"] = json!(v.api_layered_2);
    assert_eq!(h.get_on(None, "/reader").await, (200, json!({ "all": all })));

    // Setting the missing secret brings its function up.
    let r = h.put_secret("/_fn", "only_api", &v.api_only, &t["ci"]).await;
    assert_eq!(r.status(), 200);
    h.eventually_state(&t["root"], "needy", "ready").await;
    h.eventually_reads(None, "/needy", "only_api", json!(v.api_only)).await;

    // The list: names and times, never values.
    let (text, list) = h.admin_text("/_fn/secrets", &t["viewer"]).await;
    let names: Vec<&str> = list["secrets"]
        .as_array()
        .unwrap_or_else(|| panic!("{list}"))
        .iter()
        .map(|s| {
            assert!(s["updated_at"].as_str().is_some_and(|u| !u.is_empty()), "{s}");
            s["name"].as_str().unwrap()
        })
        .collect();
    assert!(names.contains(&"layered") && names.contains(&"only_api"), "{list}");
    assert_hidden(&text, &v.all(), "GET /_fn/secrets");

    // Refusals: scope, name, unknown secret.
    let r = h.put_secret("/_fn", "layered", &v.refused, &t["viewer"]).await;
    let (code, body) = error_code(r, 403).await;
    assert_eq!(code, "forbidden");
    error_bodies.push_str(&body.to_string());
    let r = h.put_secret("/_fn", "Bad-Name", &v.refused, &t["ci"]).await;
    let (code, body) = error_code(r, 422).await;
    assert_eq!(code, "invalid_secret");
    let msg = body["error"]["message"].as_str().unwrap();
    assert!(msg.contains("Bad-Name") && msg.contains("a-z"), "{msg}");
    error_bodies.push_str(&body.to_string());
    let r = h.admin(Method::DELETE, "/_fn/secrets/nope", &t["ci"], None).await;
    let (code, body) = error_code(r, 404).await;
    assert_eq!(code, "secret_not_found");
    assert!(body["error"]["message"].as_str().unwrap().contains("nope"), "{body}");
    error_bodies.push_str(&body.to_string());
    assert_eq!(
        h.read_key(None, "/reader", "layered").await,
        (200, json!({"get": v.api_layered_2})),
        "a refused write changes nothing"
    );

    // Deleting the API's value: the folder's serves again.
    let r = h.admin(Method::DELETE, "/_fn/secrets/layered", &t["ci"], None).await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"name": "layered", "deleted": true})
    );
    h.eventually_reads(None, "/reader", "layered", json!(v.dir_layered))
        .await;

    // Deleting a secret a function needs and no other provider has: it
    // stops serving (the previous version does not go on) and shows why.
    let r = h.admin(Method::DELETE, "/_fn/secrets/only_api", &t["ci"], None).await;
    assert_eq!(r.status(), 200);
    let needy = h.eventually_state(&t["root"], "needy", "failed").await;
    let error = needy["error"].as_str().unwrap();
    assert!(error.contains(&unset_message("only_api")), "{error}");
    let r = h.client.get(h.url("/needy?key=only_api")).send().await.unwrap();
    let (code, body) = error_code(r, 404).await;
    assert_eq!(code, "not_found");
    error_bodies.push_str(&body.to_string());
    assert_eq!(h.read_key(None, "/reader", "api_key").await.0, 200, "the rest serve");
    let (_, list) = h.admin_text("/_fn/secrets", &t["viewer"]).await;
    assert!(
        list["secrets"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["name"] != "layered" && s["name"] != "only_api"),
        "{list}"
    );

    // The audit log names the secrets it changed, never their values.
    let (audit, json) = h.admin_text("/_fn/audit?limit=1000", &t["root"]).await;
    let entries = json["entries"].as_array().unwrap();
    let count = |action: &str, name: &str| {
        entries
            .iter()
            .filter(|e| e["action"] == action && e["status"] == 200 && e.to_string().contains(&format!("\"{name}\"")))
            .count()
    };
    assert_eq!(count("secret_set", "layered"), 2, "{audit}");
    assert_eq!(count("secret_set", "only_api"), 1, "{audit}");
    assert_eq!(count("secret_delete", "layered"), 1, "{audit}");
    assert_eq!(count("secret_delete", "only_api"), 1, "{audit}");
    assert!(
        entries
            .iter()
            .all(|e| e["action"] != "secret_set" || e["token"] != "viewer" || e["status"] == 403),
        "{audit}"
    );
    assert_hidden(&audit, &v.all(), "the audit log");

    // Nor do the catalog (names only), the document or the log show them.
    let (catalog, _) = h.admin_text("/_fn/catalog", &t["root"]).await;
    assert_hidden(&catalog, &v.all(), "the catalog");
    let reader = h.function(&t["root"], "reader").await;
    assert_eq!(
        find_key(&reader, "secrets"),
        Some(&json!(["api_key", "from_dir", "padded", "layered", "dir_over_env"])),
        "{reader:#}"
    );
    let r = h.client.get(h.url("/_fn/openapi.json")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_hidden(&r.text().await.unwrap(), &v.all(), "the OpenAPI document");
    assert_hidden(&error_bodies, &v.all(), "error bodies");
    let log = h.stop().await;
    assert!(log.contains("listening on"), "{log}");
    assert_hidden(&log, &v.all(), "the host's log");
    // Nor the state directory: what the API stored is encrypted.
    assert_hidden_in_files(state.path(), &v.all());
}

#[tokio::test]
async fn without_a_key_file_the_api_refuses_to_store_secrets() {
    let fx = Fixture::new();
    let value = unique("never-stored");
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
        &[],
    )
    .await;
    let r = h.put_secret("/_fn", "api_key", &value, &t["root"]).await;
    let (code, body) = error_code(r, 409).await;
    assert_eq!(code, "secrets_unavailable");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("--secrets-key-file"),
        "{body}"
    );
    assert_hidden(&body.to_string(), &[&value], "the error body");
    let r = h.admin(Method::DELETE, "/_fn/secrets/api_key", &t["root"], None).await;
    assert!(r.status().is_client_error(), "{}", r.status());
    let log = h.stop().await;
    assert_hidden(&log, &[&value], "the host's log");
    assert_hidden_in_files(state.path(), &[&value]);
}

/// Asserts that no file below `dir` holds any of `values`, as bytes.
pub(super) fn assert_hidden_in_files(dir: &Path, values: &[&str]) {
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let p = entry.unwrap().path();
            if p.is_dir() {
                stack.push(p);
                continue;
            }
            let bytes = std::fs::read(&p).unwrap();
            for v in values {
                assert!(
                    !bytes.windows(v.len()).any(|w| w == v.as_bytes()),
                    "`{v}` is in {} in the clear",
                    p.display()
                );
            }
        }
    }
}
