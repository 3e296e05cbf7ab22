//! Instance reuse (`instance_reuse`): an instance serves several requests
//! in sequence, one at a time, and every limit still holds per request; a
//! failed request, a held request resource, a new version or a long idle
//! spell ends an instance.

use std::time::Duration;

use serde_json::{Value, json};

use crate::harness::*;

/// How many requests the instance that served `path` has served.
async fn served(h: &TestHost, path: &str, id: &str) -> u64 {
    let (status, body) = h.get_as(path, id).await;
    assert_eq!(status, 200, "{path}: {body}");
    assert_eq!(body["request_id"], id, "the guest sees its own request's id");
    body["served"].as_u64().unwrap()
}

async fn reuse_stats(h: &TestHost) -> Value {
    h.json("/_fn/status").await["instance_reuse"].clone()
}

#[tokio::test]
async fn an_instance_serves_its_share_of_requests_in_sequence() {
    let f = Fixture::new();
    f.function("r", "reuse", json!({"instance_reuse": 3}));
    f.function("once", "reuse", json!({}));
    let h = TestHost::start(f.path()).await;
    let mut seen = Vec::new();
    for i in 0..7 {
        seen.push(served(&h, "/r", &format!("r-{i}")).await);
    }
    assert_eq!(
        seen,
        [1, 2, 3, 1, 2, 3, 1],
        "three requests per instance, then a new one"
    );
    let s = reuse_stats(&h).await;
    assert_eq!((s["reused"].as_u64(), s["used_up"].as_u64()), (Some(4), Some(2)), "{s}");
    let entry = h.function("r").await;
    assert_eq!(entry["policy"]["instance_reuse"], 3, "{entry}");
    assert_eq!(entry["policy"]["instance_idle_ms"], 60_000, "{entry}");
    assert_eq!(entry["idle_instances"], 1, "{entry}");

    // The default is an instance per request.
    for i in 0..3 {
        assert_eq!(served(&h, "/once", &format!("o-{i}")).await, 1);
    }
    let entry = h.function("once").await;
    assert_eq!(
        (
            entry["policy"]["instance_reuse"].clone(),
            entry["idle_instances"].clone()
        ),
        (json!(1), Value::Null)
    );
}

#[tokio::test]
async fn a_trap_a_timeout_and_running_out_of_memory_each_drop_the_instance() {
    let f = Fixture::new();
    f.function(
        "r",
        "reuse",
        json!({"instance_reuse": 1000, "timeout_ms": 300, "max_memory_bytes": 8 << 20}),
    );
    let h = TestHost::start(f.path()).await;
    assert_eq!(served(&h, "/r", "a").await, 1);
    assert_eq!(served(&h, "/r", "b").await, 2);

    let (status, _) = h.get_as("/r?trap=1", "trap").await;
    assert_eq!(status, 500);
    assert_eq!(
        served(&h, "/r", "after-trap").await,
        1,
        "a trapped instance is never reused"
    );
    assert_eq!(served(&h, "/r", "again").await, 2);

    let (status, _) = h.get_as("/r?spin=1", "spin").await;
    assert_eq!(status, 504);
    assert_eq!(
        served(&h, "/r", "after-timeout").await,
        1,
        "a timed-out instance is never reused"
    );

    // `max_memory_bytes` is the instance's ceiling across its requests:
    // what one request keeps counts against the next.
    let mut grown = Vec::new();
    let oom = loop {
        let (status, body) = h.get_as("/r?grow=1", &format!("grow-{}", grown.len())).await;
        if status != 200 {
            break (status, body);
        }
        grown.push(body["held_mib"].as_u64().unwrap());
        assert!(grown.len() < 16, "8 MiB were never reached: {grown:?}");
    };
    assert_eq!(oom.0, 500, "{oom:?}");
    assert!(
        grown.len() >= 2 && grown.windows(2).all(|w| w[1] == w[0] + 1),
        "memory held across requests: {grown:?}"
    );
    let (status, body) = h.get_as("/r", "after-oom").await;
    assert_eq!(
        (status, body["served"].as_u64(), body["held_mib"].as_u64()),
        (200, Some(1), Some(0)),
        "{body}"
    );

    let s = reuse_stats(&h).await;
    assert_eq!(s["failed"], 3, "the trap, the timeout and the refused growth: {s}");
}

#[tokio::test]
async fn max_concurrency_bounds_the_instances() {
    let f = Fixture::new();
    f.function(
        "r",
        "reuse",
        json!({"instance_reuse": 1000, "max_concurrency": 2, "max_queue": 100}),
    );
    let h = TestHost::start(f.path()).await;
    // Each answer names its own request: one request at a time per instance.
    let counts: Vec<u64> = concurrent_gets(&h, "/r", 40)
        .await
        .iter()
        .map(|b| b["served"].as_u64().unwrap())
        .collect();
    // Each instance numbers its requests 1, 2, 3, …: the counts are at
    // most two such runs.
    let instances = counts.iter().filter(|&&n| n == 1).count();
    assert!(
        (1..=2).contains(&instances),
        "{instances} instances for max_concurrency 2: {counts:?}"
    );
    let max = *counts.iter().max().unwrap();
    let times = |v: u64| counts.iter().filter(|&&n| n == v).count();
    assert!(
        (1..max).all(|v| times(v) >= times(v + 1)),
        "not runs from 1: {counts:?}"
    );
    assert!(max >= 20, "40 requests on at most 2 instances: {counts:?}");
    let entry = h.function("r").await;
    assert!(entry["idle_instances"].as_u64().unwrap() <= 2, "{entry}");
}

#[tokio::test]
async fn a_new_version_never_serves_from_an_old_versions_instance() {
    let f = Fixture::new();
    f.function("r", "reuse", json!({"instance_reuse": 100, "description": "v1"}));
    let h = TestHost::start(f.path()).await;
    assert_eq!(served(&h, "/r", "v1-a").await, 1);
    assert_eq!(served(&h, "/r", "v1-b").await, 2);
    f.function("r", "reuse", json!({"instance_reuse": 100, "description": "v2"}));
    let report = h.reload().await;
    assert_eq!(report["functions"], 1, "{report}");
    assert_eq!(h.function("r").await["description"], "v2");
    assert_eq!(
        served(&h, "/r", "v2-a").await,
        1,
        "the new version's first request gets a new instance"
    );
    assert_eq!(served(&h, "/r", "v2-b").await, 2);
}

#[tokio::test]
async fn nothing_of_one_request_reaches_the_next() {
    let f = Fixture::new();
    f.function("r", "reuse", json!({"instance_reuse": 100}));
    let h = TestHost::start(f.path()).await;
    let r = h
        .client
        .get(h.url("/r"))
        .header("x-request-id", "with-secret")
        .header("x-secret", "s3cr3t")
        .send()
        .await
        .unwrap();
    let body: Value = r.json().await.unwrap();
    assert_eq!(
        (body["served"].as_u64(), body["saw_secret"].as_bool()),
        (Some(1), Some(true))
    );
    let (_, body) = h.get_as("/r", "without").await;
    assert_eq!(
        (body["served"].as_u64(), body["saw_secret"].as_bool()),
        (Some(2), Some(false)),
        "the same instance, another request's headers: {body}"
    );

    // A guest that keeps its request's resource past its response: the
    // instance is not kept, so nothing can reach that request again.
    let (status, body) = h.get_as("/r?keep=1", "keeps").await;
    assert_eq!((status, body["served"].as_u64()), (200, Some(3)));
    let (_, body) = h.get_as("/r", "next").await;
    assert_eq!(
        (body["served"].as_u64(), body["had_request"].as_bool()),
        (Some(1), Some(false)),
        "{body}"
    );
    assert_eq!(reuse_stats(&h).await["held_request"], 1);
}

#[tokio::test]
async fn an_idle_instance_is_dropped_after_instance_idle_ms() {
    let f = Fixture::new();
    f.function("r", "reuse", json!({"instance_reuse": 100, "instance_idle_ms": 200}));
    let h = TestHost::start(f.path()).await;
    assert_eq!(served(&h, "/r", "a").await, 1);
    assert_eq!(served(&h, "/r", "b").await, 2);
    assert_eq!(h.function("r").await["idle_instances"], 1);
    let s = eventually(Duration::from_secs(5), "the idle instance expires", || async {
        let s = reuse_stats(&h).await;
        (s["expired"] == 1 && s["idle"] == 0).then_some(s)
    })
    .await;
    assert_eq!(s["reused"], 1, "{s}");
    assert_eq!(h.function("r").await["idle_instances"], 0);
    assert_eq!(
        served(&h, "/r", "c").await,
        1,
        "a new instance after the idle one expired"
    );
}
