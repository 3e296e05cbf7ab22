//! Versions coming and going under load, their drain, and `kill -9`
//! during deploys.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use serde_json::json;

use super::*;

#[tokio::test]
async fn undeploys_and_deploys_under_load_fail_no_request_of_other_functions_and_drain_their_own() {
    let fx = Fixture::new();
    fx.function("keep", "probe", json!({}));
    let (file, t) = tokens(fx.path(), &[("ci", &["admin"])]);
    let served = serve(
        fx.path(),
        &["--drain-timeout-ms", "10000", "--admin-tokens", file.to_str().unwrap()],
    )
    .await;
    let base = served.base.clone();
    let token = t["ci"].as_str();
    let c = reqwest::Client::new();
    let stop = Arc::new(AtomicBool::new(false));
    let clients = hammer(&c, format!("{base}/keep"), 8, stop.clone(), |_| String::new());
    let (probe, plain) = (read(&guest("probe")), read(&guest("hello_plain")));
    for i in 0..10 {
        let component = if i % 2 == 0 { probe.clone() } else { plain.clone() };
        let r = put(&c, &base, Some(token), "churn", "{}", component).await;
        assert!(r.status().is_success(), "{}", r.text().await.unwrap());
        let r = call(&c, reqwest::Method::DELETE, &base, "/_fn/functions/churn", Some(token)).await;
        assert_eq!(r.status(), 204);
    }
    stop.store(true, Ordering::Relaxed);
    let mut answered = 0;
    for h in clients {
        let (failures, kinds) = h.await.unwrap();
        assert_eq!(failures, 0, "a request of `keep` failed while `churn` came and went");
        answered += kinds.len();
    }
    assert!(answered > 50, "{answered}");

    // A request in flight on an undeployed function finishes on its version.
    let r = put(
        &c,
        &base,
        Some(token),
        "slow",
        r#"{"timeout_ms": 20000}"#,
        read(&guest("slow")),
    )
    .await;
    assert_eq!(r.status(), 201);
    let slow = tokio::spawn(c.get(format!("{base}/slow?ms=2500")).send());
    tokio::time::sleep(Duration::from_millis(800)).await;
    let r = call(&c, reqwest::Method::DELETE, &base, "/_fn/functions/slow", Some(token)).await;
    assert_eq!(r.status(), 204);
    assert_eq!(c.get(format!("{base}/slow?ms=1")).send().await.unwrap().status(), 404);
    let r = slow.await.unwrap().unwrap();
    assert_eq!(
        r.status(),
        200,
        "the request in flight finished on the undeployed version"
    );
}

#[tokio::test]
async fn a_replaced_version_that_outlives_its_drain_is_interrupted() {
    let fx = Fixture::new();
    let (file, t) = tokens(fx.path(), &[("ci", &["admin"])]);
    let served = serve(
        fx.path(),
        &["--drain-timeout-ms", "500", "--admin-tokens", file.to_str().unwrap()],
    )
    .await;
    let (base, token) = (served.base.clone(), t["ci"].as_str());
    let c = reqwest::Client::new();
    let r = put(
        &c,
        &base,
        Some(token),
        "slow",
        r#"{"timeout_ms": 20000}"#,
        read(&guest("slow")),
    )
    .await;
    assert_eq!(r.status(), 201);
    let slow = tokio::spawn(c.get(format!("{base}/slow?ms=8000")).send());
    tokio::time::sleep(Duration::from_millis(500)).await;
    let started = std::time::Instant::now();
    let r = call(&c, reqwest::Method::DELETE, &base, "/_fn/functions/slow", Some(token)).await;
    assert_eq!(r.status(), 204);
    let r = slow.await.unwrap().unwrap();
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
    assert_eq!(r.headers()["retry-after"], "1");
    assert_eq!(error_code(r, 503).await.0, "version_retired");
}

#[tokio::test]
async fn kill_9_during_deploys_always_leaves_a_whole_version() {
    let fx = Fixture::new();
    let state = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    let (file, t) = tokens(fx.path(), &[("ci", &["admin"])]);
    let token = t["ci"].clone();
    let a = read(&guest("probe"));
    let b = read(&guest("hello_plain"));
    let digests = [format!("sha256:{}", sha256(&a)), format!("sha256:{}", sha256(&b))];
    let flags = [
        "serve",
        fx.path().to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
        "--cache-dir",
        cache.path().to_str().unwrap(),
        "--state-dir",
        state.path().to_str().unwrap(),
        "--admin-tokens",
        file.to_str().unwrap(),
    ];
    let c = reqwest::Client::new();
    let mut deployed = 0;
    for round in 0..8u64 {
        let served = Served::start(&flags, &[], Duration::from_secs(120)).await;
        let base = served.base.clone();
        if round == 0 {
            let r = put(&c, &base, Some(&token), "f", "{}", a.clone()).await;
            assert_eq!(r.status(), 201);
        } else {
            // What the last round left: one whole version, serving.
            let entry = listed(&c, &base, &token, "f").await;
            assert_eq!(entry["state"], "ready", "round {round}: {entry}");
            let digest = entry["digest"].as_str().unwrap();
            assert!(digests.iter().any(|d| d == digest), "{digest}");
            let body = c.get(format!("{base}/f")).send().await.unwrap();
            assert_eq!(body.status(), 200, "round {round}");
        }
        let stop = Arc::new(AtomicBool::new(false));
        let deployer = {
            let (c, base, token, stop) = (c.clone(), base.clone(), token.clone(), stop.clone());
            let (a, b) = (a.clone(), b.clone());
            tokio::spawn(async move {
                let mut i = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let (component, desc) = if i.is_multiple_of(2) {
                        (a.clone(), "a")
                    } else {
                        (b.clone(), "b")
                    };
                    let manifest = format!(r#"{{"description": "{desc} {i}"}}"#);
                    let form = reqwest::multipart::Form::new()
                        .text("manifest", manifest)
                        .part("component", reqwest::multipart::Part::bytes(component));
                    let r = c
                        .put(format!("{base}/_fn/functions/f"))
                        .bearer_auth(&token)
                        .multipart(form)
                        .send()
                        .await;
                    if r.is_ok_and(|r| r.status() == 200) {
                        i += 1;
                    }
                }
                i
            })
        };
        tokio::time::sleep(Duration::from_millis(150 + 97 * round)).await;
        let mut child = served.child;
        child.start_kill().unwrap();
        child.wait().await.unwrap();
        stop.store(true, Ordering::Relaxed);
        deployed += deployer.await.unwrap();
    }
    assert!(deployed >= 8, "only {deployed} deploys finished between the kills");
    let served = Served::start(&flags, &[], Duration::from_secs(120)).await;
    assert_eq!(listed(&c, &served.base, &token, "f").await["state"], "ready");
}
