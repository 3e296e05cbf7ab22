//! Deny by default: a function opens only the stores its manifest lists
//! (an overlay's list replaced, not merged), a bad list fails its function
//! only; and each tenant its own stores of a name, under its own quotas.

use reqwest::Method;
use wasmfn_server::Scope;

use super::*;
use crate::config::{start, token_file};

#[tokio::test]
async fn a_function_opens_only_the_stores_its_manifest_lists() {
    let fx = Fixture::new();
    fx.file("none/fn.config.json", &kv_manifest(None).to_string())
        .file("empty/fn.config.json", &kv_manifest(Some(&[])).to_string())
        .file(
            "only-default/fn.config.json",
            &kv_manifest(Some(&["default"])).to_string(),
        )
        .file("bad/fn.config.json", &kv_manifest(Some(&["Bad"])).to_string())
        .file(
            "team/fn.config.json",
            &json!({"key_value_stores": ["default", "sessions"]}).to_string(),
        )
        .file("team/inherits/fn.config.json", &kv_manifest(None).to_string())
        .file(
            "team/narrow/fn.config.json",
            &kv_manifest(Some(&["default"])).to_string(),
        );
    let (tokens, t) = token_file(fx.path(), &[("root", &[Scope::Admin], None)]);
    let h = start(fx.path(), &["--admin-tokens", tokens.to_str().unwrap()], &[]).await;

    // No list, an empty list: no store at all.
    for route in ["/none", "/empty"] {
        for store in ["default", "sessions", "anything"] {
            let s = Store::new(&h, route, store);
            s.fails("access-denied", "open", &[], None).await;
            s.fails("access-denied", "set", &[("key", "k")], Some(b"v".to_vec()))
                .await;
        }
        // The function itself serves.
        assert_eq!(h.get_on(None, route).await, (200, json!({"pong": true})));
    }
    // `["default"]`: that one and no other, whatever the operation.
    let default = Store::new(&h, "/only-default", "default");
    default.set("k", b"v").await;
    let sessions = Store::new(&h, "/only-default", "sessions");
    for (op, params, body) in [
        ("open", &[][..], None),
        ("get", &[("key", "k")][..], None),
        ("list", &[][..], None),
        ("increment", &[("key", "n"), ("delta", "1")][..], None),
        ("get-many", &[][..], Some(b"[\"k\"]".to_vec())),
        ("delete-many", &[][..], Some(b"[\"k\"]".to_vec())),
    ] {
        sessions.fails("access-denied", op, params, body).await;
    }
    // An overlay's list serves the functions below it; a function's own list replaces it.
    let inherits = Store::new(&h, "/team/inherits", "sessions");
    inherits.set("user", b"ada").await;
    assert_eq!(inherits.text("user").await.as_deref(), Some("ada"));
    let narrow = Store::new(&h, "/team/narrow", "sessions");
    narrow.fails("access-denied", "get", &[("key", "user")], None).await;
    // Two functions of a tenant listing a store share it.
    assert_eq!(
        Store::new(&h, "/team/narrow", "default").text("k").await.as_deref(),
        Some("v")
    );

    // A store name that is not one fails its function, and no other.
    let bad = h.function(&t["root"], "bad").await;
    assert_eq!(bad["state"], "failed", "{bad:#}");
    let error = bad["error"].as_str().unwrap();
    assert!(error.contains("key_value_stores") && error.contains("`Bad`"), "{error}");
    assert_eq!(h.get_on(None, "/bad").await.0, 404);
    assert_eq!(h.function(&t["root"], "only-default").await["state"], "ready");
    h.stop().await;
}

#[tokio::test]
async fn two_tenants_see_their_own_store_of_the_same_name_under_their_own_quotas() {
    let fx = Fixture::new();
    fx.file("kv/fn.config.json", &kv_manifest(Some(&["default"])).to_string());
    let (tokens, t) = token_file(fx.path(), &[("root", &[Scope::Admin], None)]);
    let h = start(fx.path(), &["--admin-tokens", tokens.to_str().unwrap()], &[]).await;
    let root = t["root"].as_str();
    for (id, host) in [("acme", "acme.test"), ("globex", "globex.test")] {
        let r = h
            .admin(
                Method::PUT,
                &format!("/_fn/tenants/{id}"),
                root,
                Some(json!({ "hosts": [host] })),
            )
            .await;
        assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
        let manifest = json!({"key_value_stores": ["default"], "invoke": {"routes": ["/kv"], "methods": METHODS}});
        let r = h
            .deploy_guest(&format!("/_fn/tenants/{id}"), "kv", "kv", manifest, root)
            .await;
        assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    }
    let default = Store::new(&h, "/kv", "default");
    let acme = default.on("acme.test");
    let globex = default.on("globex.test");

    // The same store name, the same keys: three stores.
    default.set("k", b"default's").await;
    assert_eq!(acme.get("k").await, None);
    assert!(!globex.exists("k").await);
    acme.set("k", b"acme's").await;
    assert_eq!(default.text("k").await.as_deref(), Some("default's"));
    assert_eq!(acme.text("k").await.as_deref(), Some("acme's"));
    assert_eq!(globex.get("k").await, None);
    for (s, n) in [(default, 1), (acme, 10), (globex, 100)] {
        assert_eq!(s.increment("hits", n).await, n);
        assert_eq!(s.increment("hits", n).await, 2 * n);
    }
    globex
        .set_many(&[("g1".into(), "1".into()), ("g2".into(), "2".into())])
        .await;
    let keys = |list: &[&str]| list.iter().map(|k| k.to_string()).collect::<BTreeSet<_>>();
    assert_eq!(default.all_keys().await.0, keys(&["k", "hits"]));
    assert_eq!(acme.all_keys().await.0, keys(&["k", "hits"]));
    assert_eq!(globex.all_keys().await.0, keys(&["hits", "g1", "g2"]));
    assert_eq!(
        acme.get_many(&["k", "g1"]).await,
        [Some(("k".to_string(), b"acme's".to_vec())), None]
    );
    acme.delete_many(&["k", "hits"]).await;
    assert_eq!(default.text("k").await.as_deref(), Some("default's"));
    assert_eq!(default.text("hits").await.as_deref(), Some("2"));

    // A quota set through the admin API, on functions already serving,
    // counts acme's keys only.
    acme.set("a1", b"1").await;
    let set_max_keys = |n: u64| {
        h.admin(
            Method::PUT,
            "/_fn/tenants/acme",
            root,
            Some(json!({"hosts": ["acme.test"], "quotas": {"kv_max_keys": n}})),
        )
    };
    let r = set_max_keys(2).await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    acme.set("a2", b"2").await;
    let msg = acme.fails("other", "set", &[("key", "a3")], Some(b"3".to_vec())).await;
    assert!(
        msg.contains("would hold 3 keys, its limit is 2 (`kv_max_keys`)"),
        "{msg}"
    );
    assert_eq!(acme.get("a3").await, None);
    for i in 0..5 {
        default.set(&format!("d{i}"), b"d").await;
        globex.set(&format!("g{i}"), b"g").await;
    }
    // Lowered below what acme holds: replacing and deleting still pass.
    assert_eq!(set_max_keys(1).await.status(), 200);
    acme.set("a1", b"x").await;
    let msg = acme
        .fails("other", "increment", &[("key", "a3"), ("delta", "1")], None)
        .await;
    assert!(msg.contains("its limit is 1 (`kv_max_keys`)"), "{msg}");
    acme.delete("a2").await;
    acme.fails("other", "set", &[("key", "a3")], Some(b"3".to_vec())).await;
    // Raised again: one more passes.
    assert_eq!(set_max_keys(2).await.status(), 200);
    acme.set("a3", b"3").await;
    h.stop().await;
}
