//! Stores on a real `redis-server` (`--kv-redis-url`): every operation;
//! two hosts sharing the stores and the tenant's usage; Redis stopped
//! under a running host, and started again.

use super::*;
use crate::config::start;

#[tokio::test]
async fn every_operation_works_on_redis() {
    let redis = Redis::start();
    let fx = Fixture::new();
    fx.file(
        "kv/fn.config.json",
        &kv_manifest(Some(&["default", "other"])).to_string(),
    );
    let state = tempfile::tempdir().unwrap();
    let url = redis.url();
    let h = start(
        fx.path(),
        &["--kv-redis-url", &url, "--state-dir", state.path().to_str().unwrap()],
        &[],
    )
    .await;
    every_operation(Store::new(&h, "/kv", "default"), Store::new(&h, "/kv", "other")).await;
    assert!(
        !state.path().join("kv.sqlite3").exists(),
        "a host on Redis made an embedded store"
    );
    h.stop().await;
}

#[tokio::test]
async fn two_hosts_on_one_redis_share_the_stores_and_the_usage() {
    let redis = Redis::start();
    let fx = Fixture::new();
    fx.file("kv/fn.config.json", &kv_manifest(Some(&["default"])).to_string());
    let tenants = fx.path().join("tenants.json");
    std::fs::write(&tenants, json!({"default": {"quotas": {"kv_max_keys": 4}}}).to_string()).unwrap();
    let url = redis.url();
    let tenants_flag = ["--tenants", tenants.to_str().unwrap()];
    // One host names Redis with the flag, the other with its environment twin.
    let first = start(fx.path(), &[&["--kv-redis-url", &url][..], &tenants_flag].concat(), &[]).await;
    let second = start(fx.path(), &tenants_flag, &[("WASMFN_KV_REDIS_URL", &url)]).await;
    let (one, two) = (
        Store::new(&first, "/kv", "default"),
        Store::new(&second, "/kv", "default"),
    );

    one.set("k", b"written by the first host").await;
    assert_eq!(two.text("k").await.as_deref(), Some("written by the first host"));
    two.set("k", &[0, 1, 2]).await;
    assert_eq!(one.get("k").await, Some(vec![0, 1, 2]));
    for (i, s) in [one, two, one, two, one].into_iter().enumerate() {
        assert_eq!(s.increment("n", 10).await, 10 * (i as u64 + 1));
    }
    two.set_many(&[("a".into(), "1".into()), ("b".into(), "2".into())])
        .await;
    assert_eq!(
        one.get_many(&["a", "b", "z"]).await,
        [
            Some(("a".to_string(), b"1".to_vec())),
            Some(("b".to_string(), b"2".to_vec())),
            None
        ]
    );
    // Four keys: the tenant's limit, counted in Redis for both hosts.
    let msg = one.fails("other", "set", &[("key", "c")], Some(b"3".to_vec())).await;
    assert!(msg.contains("`kv_max_keys`"), "{msg}");
    one.delete("a").await;
    two.set("c", b"3").await;
    let msg = one.fails("other", "set", &[("key", "d")], Some(b"4".to_vec())).await;
    assert!(msg.contains("would hold 5 keys, its limit is 4"), "{msg}");
    let want: BTreeSet<String> = ["k", "n", "b", "c"].into_iter().map(String::from).collect();
    assert_eq!(one.all_keys().await.0, want);
    assert_eq!(two.all_keys().await.0, want);
    two.delete_many(&["k", "n", "b", "c"]).await;
    assert_eq!(one.page(None).await, (vec![], None));
    first.stop().await;
    second.stop().await;
}

#[tokio::test]
async fn redis_down_fails_the_operation_not_the_host_and_back_it_works_again() {
    let redis = Redis::start();
    let fx = Fixture::new();
    fx.file("kv/fn.config.json", &kv_manifest(Some(&["default"])).to_string());
    let url = redis.url();
    let h = start(fx.path(), &["--kv-redis-url", &url], &[]).await;
    let s = Store::new(&h, "/kv", "default");
    s.set("k", b"v").await;

    let port = redis.stop();
    // Every operation fails soon, with the reason; several at once as well.
    let started = Instant::now();
    let calls: Vec<_> = [("get", "k"), ("set", "k2"), ("increment", "n"), ("exists", "k")]
        .into_iter()
        .map(|(op, key)| {
            let body = (op == "set").then(|| b"v2".to_vec());
            let params = [("key", key), ("delta", "1")];
            async move { (op, s.call(op, &params, body).await) }
        })
        .collect();
    for (op, (status, body)) in futures::future::join_all(calls).await {
        assert_eq!((status, &body["error"]), (500, &json!("other")), "{op}: {body}");
        let msg = body["message"].as_str().unwrap();
        assert!(
            msg.contains("the key-value store is unavailable") && msg.contains(&port.to_string()),
            "{op}: {msg}"
        );
    }
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "the failures took {:?}",
        started.elapsed()
    );
    // A request that does not touch the store, and the host's own answers.
    assert_eq!(h.get_on(None, "/kv").await, (200, json!({"pong": true})));
    let health = h.client.get(h.url("/_fn/health")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    eventually(Duration::from_secs(10), "the failure in the log", || async {
        h.stderr().contains("key-value operation failed").then_some(())
    })
    .await;

    // Redis back on its port: the next operations reconnect.
    let _redis = Redis::start_on(port);
    eventually(Duration::from_secs(10), "a set once Redis is back", || async {
        let (status, _) = s.call("set", &[("key", "k3")], Some(b"back".to_vec())).await;
        (status == 200).then_some(())
    })
    .await;
    assert_eq!(s.text("k3").await.as_deref(), Some("back"));
    assert_eq!(s.increment("n", 2).await, 2);
    let log = h.stop().await;
    assert!(!log.contains("panicked"), "{log}");
}
