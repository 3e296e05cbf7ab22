//! The embedded store (`kv.sqlite3` in the state directory): every
//! operation, and its values across a restart of the host.

use super::*;
use crate::config::start;

#[tokio::test]
async fn every_operation_works_on_the_embedded_store() {
    let fx = Fixture::new();
    fx.file(
        "kv/fn.config.json",
        &kv_manifest(Some(&["default", "other"])).to_string(),
    );
    let h = start(fx.path(), &[], &[]).await;
    let pages = every_operation(Store::new(&h, "/kv", "default"), Store::new(&h, "/kv", "other")).await;
    // SQLite answers full pages of 1000 keys, then the rest.
    assert_eq!(pages, [1000, 1000, 606], "page sizes");
    assert!(h.stderr().contains("key-value stores"), "{}", h.stderr());
}

#[tokio::test]
async fn the_embedded_store_keeps_its_values_across_a_restart() {
    let fx = Fixture::new();
    fx.file("kv/fn.config.json", &kv_manifest(Some(&["default"])).to_string());
    let state = tempfile::tempdir().unwrap();
    let flags = ["--state-dir", state.path().to_str().unwrap()];
    let pairs: Vec<(String, String)> = (0..50).map(|i| (format!("k{i}"), format!("value {i}"))).collect();

    let h = start(fx.path(), &flags, &[]).await;
    let s = Store::new(&h, "/kv", "default");
    s.set_many(&pairs).await;
    s.set("binary", &[0, 255, 1]).await;
    s.set("empty", b"").await;
    s.set("gone", b"x").await;
    s.delete("gone").await;
    assert_eq!(s.increment("counter", 41).await, 41);
    h.stop().await;
    assert!(state.path().join("kv.sqlite3").is_file());

    let h = start(fx.path(), &flags, &[]).await;
    let s = Store::new(&h, "/kv", "default");
    for (k, v) in &pairs {
        assert_eq!(s.text(k).await.as_ref(), Some(v), "{k}");
    }
    assert_eq!(s.get("binary").await, Some(vec![0, 255, 1]));
    assert_eq!(s.get("empty").await, Some(vec![]));
    assert_eq!(s.get("gone").await, None);
    assert_eq!(s.increment("counter", 1).await, 42);
    let (keys, _) = s.all_keys().await;
    assert_eq!(keys.len(), pairs.len() + 3, "{keys:?}");
    h.stop().await;
}

/// The `items` example keeps what it creates and deletes in the store
/// `default`: across requests, and across a restart on the same state
/// directory.
#[tokio::test]
async fn the_items_example_keeps_its_items_across_a_restart() {
    let state = tempfile::tempdir().unwrap();
    let t = TestHost::examples_in(state.path()).await;
    let names = |t: &TestHost| {
        let r = t.client.get(t.url("/items")).send();
        async move {
            let items: Value = r.await.unwrap().json().await.unwrap();
            items
                .as_array()
                .unwrap()
                .iter()
                .map(|i| i["name"].as_str().unwrap().to_string())
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(names(&t).await, ["Teapot", "Lamp", "Notebook", "Kettle"]);
    let r = t
        .client
        .post(t.url("/items"))
        .json(&json!({"name": "Pen", "price_cents": 120}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    assert_eq!(r.json::<Value>().await.unwrap()["id"], 5);
    assert_eq!(t.json("/items/5").await["name"], "Pen");
    assert_eq!(t.client.delete(t.url("/items/1")).send().await.unwrap().status(), 204);
    assert_eq!(t.get("/items/1").await.status(), 404);
    assert_eq!(t.client.delete(t.url("/items/1")).send().await.unwrap().status(), 404);
    assert_eq!(t.host.stop().await.unwrap(), wasmfn_server::Drained::Complete);

    let t = TestHost::examples_in(state.path()).await;
    assert_eq!(names(&t).await, ["Lamp", "Notebook", "Kettle", "Pen"]);
    assert_eq!(t.get("/items/1").await.status(), 404);
    // Ids go on from the counter, never reused.
    let r = t
        .client
        .post(t.url("/items"))
        .json(&json!({"name": "Cup", "price_cents": 5}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.json::<Value>().await.unwrap()["id"], 6);
}
