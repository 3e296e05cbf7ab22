//! Warm instances: made ahead for a function's next request, each still
//! serving exactly one request, bounded host-wide.

use std::time::Duration;

use serde_json::Value;
use wasmfn_server::HostConfig;

use crate::harness::*;

async fn warm_stats(h: &TestHost) -> Value {
    h.json("/_fn/status").await["warm_instances"].clone()
}

/// Waits until `n` warm instances are ready and none is being made.
async fn settle(h: &TestHost, n: u64) -> Value {
    eventually(Duration::from_secs(10), "warm instances settle", || async {
        let s = warm_stats(h).await;
        (s["ready"] == n && s["held"] == n).then_some(s)
    })
    .await
}

async fn counter(h: &TestHost, path: &str, id: &str) -> Value {
    let (status, body) = h.get_as(path, id).await;
    assert_eq!(status, 200, "{body}");
    body
}

#[tokio::test]
async fn each_warm_instance_serves_one_request() {
    let f = Fixture::new();
    f.function("counter", "counter", serde_json::json!({}));
    let h = TestHost::start(f.path()).await;
    assert_eq!(
        warm_stats(&h).await["held"],
        0,
        "nothing is made before a function is used"
    );
    for i in 0..10 {
        let id = format!("warm-{i}");
        let body = counter(&h, "/counter", &id).await;
        assert_eq!(
            body["served"], 1,
            "request {i} got an instance another request had used: {body}"
        );
        assert_eq!(body["request_id"], id.as_str());
        settle(&h, 1).await;
    }
    let s = warm_stats(&h).await;
    assert_eq!(s["misses"], 1, "only the first request made its own instance: {s}");
    assert_eq!(s["hits"], 9, "{s}");
    assert_eq!(s["budget"], 16);
}

#[tokio::test]
async fn concurrent_requests_never_share_an_instance() {
    let f = Fixture::new();
    f.function("counter", "counter", serde_json::json!({}));
    let h = TestHost::start(f.path()).await;
    for body in concurrent_gets(&h, "/counter", 200).await {
        assert_eq!(body["served"], 1, "{body}");
    }
    let s = warm_stats(&h).await;
    assert_eq!(s["hits"].as_u64().unwrap() + s["misses"].as_u64().unwrap(), 200, "{s}");
}

#[tokio::test]
async fn the_budget_is_shared_and_the_oldest_gives_way() {
    let f = Fixture::new();
    f.function("a", "counter", serde_json::json!({}));
    f.function("b", "counter", serde_json::json!({}));
    let mut config = HostConfig::new(f.path());
    config.runtime.warm_instances = 1;
    let h = TestHost::start_with(config).await;
    counter(&h, "/a", "a-1").await;
    settle(&h, 1).await;
    counter(&h, "/b", "b-1").await;
    // b's warm instance took a's place.
    let s = eventually(Duration::from_secs(10), "a's warm instance is evicted", || async {
        let s = warm_stats(&h).await;
        (s["evicted"] == 1 && s["ready"] == 1 && s["held"] == 1).then_some(s)
    })
    .await;
    assert_eq!(s["hits"], 0, "{s}");
    counter(&h, "/b", "b-2").await;
    settle(&h, 1).await;
    assert_eq!(warm_stats(&h).await["hits"], 1, "b found its warm instance");
    counter(&h, "/a", "a-2").await;
    let s = settle(&h, 1).await;
    assert_eq!(s["hits"], 1, "a's warm instance was gone: {s}");
    assert_eq!(s["misses"], 3, "{s}");
}

#[tokio::test]
async fn zero_warm_instances_makes_every_instance_on_its_request() {
    let f = Fixture::new();
    f.function("counter", "counter", serde_json::json!({}));
    let mut config = HostConfig::new(f.path());
    config.runtime.warm_instances = 0;
    let h = TestHost::start_with(config).await;
    for i in 0..5 {
        assert_eq!(counter(&h, "/counter", &format!("z-{i}")).await["served"], 1);
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let s = warm_stats(&h).await;
    assert_eq!(
        (s["held"].as_u64(), s["hits"].as_u64(), s["misses"].as_u64()),
        (Some(0), Some(0), Some(5)),
        "{s}"
    );
}

#[tokio::test]
async fn a_warm_instance_logs_under_the_request_that_takes_it() {
    let f = Fixture::new();
    f.function("counter", "counter", serde_json::json!({}));
    let args = [
        "serve",
        f.path().to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
        "--no-cache",
    ];
    let mut served = Served::start(&args, &[], Duration::from_secs(60)).await;
    let client = reqwest::Client::new();
    let url = format!("{}/counter", served.base);
    for id in ["log-first", "log-second"] {
        let r = client.get(&url).header("x-request-id", id).send().await.unwrap();
        assert_eq!(r.status(), 200);
        let line = served.line_with(&format!("counter served 1 for {id}")).await;
        assert!(
            line.contains(&format!("request_id={id}")),
            "guest output carries its request's id: {line}"
        );
        // Let the next warm instance be made before the second request.
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let health: Value = get_json(&client, &format!("{}/_fn/status", served.base)).await;
    assert_eq!(
        health["warm_instances"]["hits"], 1,
        "the second request was served warm: {health}"
    );
    served.child.kill().await.unwrap();
}

#[tokio::test]
async fn the_longest_waiting_warm_instance_is_the_one_evicted() {
    let f = Fixture::new();
    for name in ["a", "b", "c"] {
        f.function(name, "counter", serde_json::json!({}));
    }
    let mut config = HostConfig::new(f.path());
    config.runtime.warm_instances = 2;
    let h = TestHost::start_with(config).await;
    // a is made ahead, then b; a is used, and made ahead again: now b has
    // waited longest, although a's first instance was made before it.
    counter(&h, "/a", "a-1").await;
    settle(&h, 1).await;
    counter(&h, "/b", "b-1").await;
    settle(&h, 2).await;
    counter(&h, "/a", "a-2").await;
    settle(&h, 2).await;
    // c's instance needs room: b's goes.
    counter(&h, "/c", "c-1").await;
    let s = eventually(Duration::from_secs(10), "one warm instance evicted", || async {
        let s = warm_stats(&h).await;
        (s["evicted"] == 1 && s["ready"] == 2 && s["held"] == 2).then_some(s)
    })
    .await;
    assert_eq!(s["hits"], 1, "{s}");
    counter(&h, "/a", "a-3").await;
    assert_eq!(warm_stats(&h).await["hits"], 2, "a kept its warm instance");
    settle(&h, 2).await;
    counter(&h, "/b", "b-2").await;
    let s = warm_stats(&h).await;
    assert_eq!(s["hits"], 2, "b's warm instance was the one evicted: {s}");
}

#[tokio::test]
async fn a_slow_upload_to_a_function_taking_requests_whole_holds_no_instance() {
    let f = Fixture::new();
    f.function("w", "whole", serde_json::json!({"timeout_ms": 10_000}));
    let h = TestHost::start(f.path()).await;
    let big = |h: &TestHost| {
        let (client, url) = (h.client.clone(), h.url("/w/big"));
        async move { client.get(url).send().await.unwrap().status() }
    };
    assert_eq!(big(&h).await, 200);
    settle(&h, 1).await;
    // An upload that sends a little, then waits for the test to let it end.
    let (release, released) = tokio::sync::oneshot::channel::<()>();
    let released = std::sync::Mutex::new(Some(released));
    let body = futures::stream::unfold(0, move |n| {
        let wait = if n == 1 { released.lock().unwrap().take() } else { None };
        async move {
            match n {
                0 => Some((Ok::<_, std::io::Error>(b"start".to_vec()), 1)),
                1 => {
                    let _ = wait.expect("one wait").await;
                    Some((Ok(b" end".to_vec()), 2))
                }
                _ => None,
            }
        }
    });
    let upload = {
        let (client, url) = (h.client.clone(), h.url("/w/seen"));
        tokio::spawn(async move {
            let r = client
                .post(url)
                .header("content-type", "text/plain")
                .body(reqwest::Body::wrap_stream(body))
                .send()
                .await
                .unwrap();
            (r.status(), r.text().await.unwrap())
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    // The upload is still going: the warm instance is still there for
    // another request.
    let s = warm_stats(&h).await;
    assert_eq!((s["ready"].clone(), s["hits"].clone()), (1.into(), 0.into()), "{s}");
    assert_eq!(big(&h).await, 200);
    assert_eq!(warm_stats(&h).await["hits"], 1, "the request found the warm instance");
    release.send(()).unwrap();
    let (status, text) = upload.await.unwrap();
    assert_eq!(status, 200);
    assert!(text.contains("start end"), "the whole body reached the guest: {text}");
}
