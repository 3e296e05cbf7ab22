//! `config` values from manifests and overlays, and secret lists that
//! replace the overlay's, as the guest reads them through `get` and
//! `get-all`; manifest errors that fail one function only.

use serde_json::json;

use super::*;

#[tokio::test]
async fn config_values_merge_key_by_key_down_the_overlays_and_the_function_wins() {
    let fx = Fixture::new();
    let team_secret = unique("team-secret-value");
    fx.file(
        "fn.config.json",
        &json!({"config": {"level": "root", "region": "root-region"}}).to_string(),
    )
    .file(
        "team/fn.config.json",
        &json!({
            "config": {"greeting": "overlay-greeting", "region": "eu-west", "api_base": "https://overlay.example"},
            "secrets": ["team_secret"],
        })
        .to_string(),
    )
    .file(
        "team/greet/fn.config.json",
        &config_manifest(json!({"config": {"greeting": "hi", "api_base": "https://api.example.com"}})).to_string(),
    )
    .file(
        "team/quiet/fn.config.json",
        &config_manifest(json!({"secrets": []})).to_string(),
    )
    .file("plain/fn.config.json", &config_manifest(json!({})).to_string());
    let (tokens_path, t) = token_file(fx.path(), &[("root", &[Scope::Admin], None)]);
    let h = start(
        fx.path(),
        &["--admin-tokens", tokens_path.to_str().unwrap()],
        &[("WASMFN_SECRET_TEAM_SECRET", &team_secret)],
    )
    .await;

    // `get`: the function's own key, the overlay's, the root's; nothing else.
    for (key, want) in [
        ("greeting", json!("hi")),
        ("api_base", json!("https://api.example.com")),
        ("region", json!("eu-west")),
        ("level", json!("root")),
        ("team_secret", json!(team_secret)),
        ("nothing", Value::Null),
    ] {
        assert_eq!(
            h.read_key(None, "/team/greet", key).await,
            (200, json!({ "get": want })),
            "{key}"
        );
    }
    // `get-all`: every merged pair and every listed secret, and no more.
    let all = json!({"all": {
        "level": "root",
        "region": "eu-west",
        "greeting": "hi",
        "api_base": "https://api.example.com",
        "team_secret": team_secret,
    }});
    assert_eq!(h.get_on(None, "/team/greet").await, (200, all));
    // An empty list replaces the overlay's: the secret is absent, though it is set.
    let quiet = json!({"all": {
        "level": "root",
        "region": "eu-west",
        "greeting": "overlay-greeting",
        "api_base": "https://overlay.example",
    }});
    assert_eq!(h.get_on(None, "/team/quiet").await, (200, quiet));
    assert_eq!(
        h.read_key(None, "/team/quiet", "team_secret").await,
        (200, json!({"get": null}))
    );
    assert_eq!(
        h.get_on(None, "/plain").await,
        (200, json!({"all": {"level": "root", "region": "root-region"}}))
    );

    // The catalog shows the merged `config` and the secret names, never their values.
    let greet = h.function(&t["root"], "team/greet").await;
    assert_eq!(greet["state"], "ready", "{greet:#}");
    assert_eq!(
        find_key(&greet, "config"),
        Some(&json!({"level": "root", "region": "eu-west", "greeting": "hi", "api_base": "https://api.example.com"})),
        "{greet:#}"
    );
    assert_eq!(find_key(&greet, "secrets"), Some(&json!(["team_secret"])), "{greet:#}");
    let (catalog, _) = h.admin_text("/_fn/catalog", &t["root"]).await;
    assert_hidden(&catalog, &[&team_secret], "the catalog");
    assert_hidden(&h.stop().await, &[&team_secret], "the host's log");
}

#[tokio::test]
async fn a_broken_config_or_secrets_list_fails_its_function_and_the_rest_serve() {
    let fx = Fixture::new();
    let api_key = unique("api-key-value");
    fx.file(
        "ok/fn.config.json",
        &config_manifest(json!({"config": {"a": "b"}})).to_string(),
    )
    .file(
        "clash/fn.config.json",
        &config_manifest(json!({"config": {"api_key": "in the open"}, "secrets": ["api_key"]})).to_string(),
    )
    .file(
        "badkey/fn.config.json",
        &config_manifest(json!({"config": {"bad key": "x"}})).to_string(),
    )
    .file(
        "badname/fn.config.json",
        &config_manifest(json!({"secrets": ["Api-Key"]})).to_string(),
    )
    .file(
        "toolong/fn.config.json",
        &config_manifest(json!({"config": {"big": "x".repeat(64 * 1024 + 1)}})).to_string(),
    );
    let (tokens_path, t) = token_file(fx.path(), &[("root", &[Scope::Admin], None)]);
    let h = start(
        fx.path(),
        &["--admin-tokens", tokens_path.to_str().unwrap()],
        &[("WASMFN_SECRET_API_KEY", &api_key)],
    )
    .await;

    assert_eq!(h.get_on(None, "/ok").await, (200, json!({"all": {"a": "b"}})));
    for (name, needles) in [
        ("clash", &["`api_key`", "config", "secrets"][..]),
        ("badkey", &["`bad key`"][..]),
        ("badname", &["`Api-Key`"][..]),
        ("toolong", &["`big`"][..]),
    ] {
        let f = h.function(&t["root"], name).await;
        assert_eq!(f["state"], "failed", "{f:#}");
        let error = f["error"].as_str().unwrap();
        for n in needles {
            assert!(error.contains(n), "{name}: `{n}` not in: {error}");
        }
        assert_eq!(h.get_on(None, &format!("/{name}")).await.0, 404, "{name}");
    }
    let (catalog, _) = h.admin_text("/_fn/catalog", &t["root"]).await;
    assert_hidden(&catalog, &[&api_key], "the catalog");
    assert_hidden(&h.stop().await, &[&api_key], "the host's log");
}
