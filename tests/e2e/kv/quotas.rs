//! The `default` tenant's key-value quotas from the `--tenants` file, each
//! hit exactly: at the limit passes, one more is refused whole with the
//! quota named, counted as a `kv_quota` limit rejection; the usage holds
//! across a restart.

use wasmfn_server::Scope;

use super::*;
use crate::config::{start, token_file};
use crate::observability::metrics::{REJECTIONS, Sample, samples, value};

/// Asserts that `msg` is a quota refusal naming `field`.
fn refused_for(msg: &str, field: &str) {
    assert!(
        msg.starts_with("key-value quota: ") && msg.contains(&format!("`{field}`")),
        "not a refusal for `{field}`: {msg}"
    );
}

/// Scrapes `/_fn/metrics` with `token` until the `kv_quota` rejections of
/// function `kv` are `want`; gives the samples.
async fn kv_quota_rejections(h: &Host, token: &str, want: f64) -> Vec<Sample> {
    let labels = [("tenant", "default"), ("function", "kv"), ("reason", "kv_quota")];
    eventually(
        Duration::from_secs(20),
        &format!("{want} kv_quota rejections"),
        || async {
            let r = h
                .client
                .get(h.url("/_fn/metrics"))
                .bearer_auth(token)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
            let seen = samples(&r.text().await.unwrap());
            (value(&seen, REJECTIONS, &labels) == Some(want)).then_some(seen)
        },
    )
    .await
}

#[tokio::test]
async fn each_quota_is_hit_exactly_and_counted() {
    let fx = Fixture::new();
    fx.file(
        "kv/fn.config.json",
        &kv_manifest(Some(&["default", "other"])).to_string(),
    );
    let quotas = json!({
        "kv_max_keys": 3,
        "kv_max_value_bytes": 10,
        "kv_max_key_bytes": 8,
        "kv_max_total_bytes": 40,
    });
    let state = tempfile::tempdir().unwrap();
    let tenants = state.path().join("tenants.json");
    std::fs::write(&tenants, json!({"default": {"quotas": quotas}}).to_string()).unwrap();
    let (tokens, t) = token_file(state.path(), &[("scraper", &[Scope::Read], None)]);
    let flags = [
        "--tenants",
        tenants.to_str().unwrap(),
        "--admin-tokens",
        tokens.to_str().unwrap(),
        "--state-dir",
        state.path().to_str().unwrap(),
    ];
    let h = start(fx.path(), &flags, &[]).await;
    let s = Store::new(&h, "/kv", "default");
    let other = Store::new(&h, "/kv", "other");
    let mut refused = 0.0;

    // kv_max_value_bytes: 10 bytes pass, 11 do not; the old value stays.
    s.set("a", b"0123456789").await; // 1 key, 11 bytes
    let msg = s
        .fails("other", "set", &[("key", "a")], Some(b"0123456789X".to_vec()))
        .await;
    refused_for(&msg, "kv_max_value_bytes");
    refused += 1.0;
    assert_eq!(s.text("a").await.as_deref(), Some("0123456789"));

    // kv_max_key_bytes: 8 bytes pass, 9 do not (for an increment too).
    s.set("12345678", b"x").await; // 2 keys, 20 bytes
    for (op, params, body) in [
        ("set", &[("key", "123456789")][..], Some(b"x".to_vec())),
        ("increment", &[("key", "123456789"), ("delta", "1")][..], None),
    ] {
        refused_for(&s.fails("other", op, params, body).await, "kv_max_key_bytes");
        refused += 1.0;
    }
    assert_eq!(s.get("123456789").await, None);

    // kv_max_keys counts the tenant's stores together; a batch is all or nothing.
    let pairs = [("b".to_string(), "1".to_string()), ("c".to_string(), "2".to_string())];
    let body = serde_json::to_vec(&pairs).unwrap();
    refused_for(&s.fails("other", "set-many", &[], Some(body)).await, "kv_max_keys");
    refused += 1.0;
    assert_eq!(
        s.get_many(&["b", "c"]).await,
        [None, None],
        "nothing of a refused batch"
    );
    other.set("b", b"1").await; // 3 keys, 22 bytes: at the limit
    for (store, op, params, body) in [
        (s, "set", &[("key", "c")][..], Some(b"2".to_vec())),
        (s, "increment", &[("key", "c"), ("delta", "1")][..], None),
        (other, "set", &[("key", "c")][..], Some(b"2".to_vec())),
    ] {
        refused_for(&store.fails("other", op, params, body).await, "kv_max_keys");
        refused += 1.0;
    }
    assert!(!s.exists("c").await && !other.exists("c").await);
    // Replacing a value adds no key.
    other.set("b", b"0123456789").await; // 3 keys, 31 bytes

    // kv_max_total_bytes: exactly 40 pass, 41 do not.
    s.set("12345678", b"0123456789").await; // 3 keys, 40 bytes: at the limit
    s.delete("a").await; // 2 keys, 29 bytes
    let msg = s
        .fails("other", "set", &[("key", "bb")], Some(b"0123456789".to_vec()))
        .await;
    refused_for(&msg, "kv_max_total_bytes");
    assert!(msg.contains("would hold 41 bytes, its limit is 40"), "{msg}");
    refused += 1.0;
    s.set("bb", b"123456789").await; // 3 keys, 40 bytes
    // Shrinking and deleting are always allowed.
    s.set("bb", b"1").await; // 3 keys, 32 bytes
    s.delete_many(&["bb", "nothing"]).await; // 2 keys, 29 bytes
    assert_eq!(s.increment("n", 7).await, 7); // 3 keys, 31 bytes

    let seen = kv_quota_rejections(&h, &t["scraper"], refused).await;
    assert_eq!(refused, 8.0);
    let others: Vec<&Sample> = seen
        .iter()
        .filter(|x| x.name == REJECTIONS && x.label("reason") != Some("kv_quota"))
        .collect();
    assert!(others.is_empty(), "other rejections: {others:#?}");
    h.stop().await;

    // The usage is the store's: after a restart the tenant is still at its limits.
    let h = start(fx.path(), &flags, &[]).await;
    let s = Store::new(&h, "/kv", "default");
    refused_for(
        &s.fails("other", "set", &[("key", "c")], Some(b"2".to_vec())).await,
        "kv_max_keys",
    );
    s.delete("n").await; // 2 keys, 29 bytes
    refused_for(
        &s.fails("other", "set", &[("key", "cc")], Some(b"0123456789".to_vec()))
            .await,
        "kv_max_total_bytes",
    );
    s.set("c", b"12345678").await; // 3 keys, 38 bytes
    kv_quota_rejections(&h, &t["scraper"], 2.0).await;
    h.stop().await;
}
