//! CPU fairness between tenants, through the real binary: a quiet tenant
//! with one function keeps most of the throughput it has alone while a
//! busy tenant keeps ten functions computing with 32 requests at once.
//!
//! Shared by requests, as tokio alone shares it, the quiet tenant would
//! get about 1/33 of the CPU; shared by tenants, about what it uses alone.
//! This test runs beside the whole suite, so it asserts a bound noise does
//! not reach (0.3, ten times the share by requests); the goal of 0.8 is
//! measured by `benches/tenants`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::harness::*;

/// Rounds of 1,500 × 1,000 xorshift steps: a few milliseconds of guest CPU.
const WORK: &str = "n=1500";
const WINDOW: Duration = Duration::from_secs(3);

/// Requests answered in `WINDOW` by one closed-loop client of `url` on `host`.
async fn closed_loop(client: &reqwest::Client, url: &str, host: &str) -> u64 {
    let start = Instant::now();
    let mut done = 0;
    while start.elapsed() < WINDOW {
        let r = client.get(url).header("host", host).send().await.unwrap();
        assert_eq!(r.status(), 200);
        r.bytes().await.unwrap();
        done += 1;
    }
    done
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_tenant_does_not_starve_a_quiet_one() {
    let dir = tempfile::tempdir().unwrap();
    let (token, entry) = wasmfn_server::auth::new_token("root", &[wasmfn_server::Scope::Admin], None).unwrap();
    let tokens = dir.path().join("tokens.json");
    std::fs::write(&tokens, json!([entry]).to_string()).unwrap();
    let tenants = dir.path().join("tenants.json");
    std::fs::write(
        &tenants,
        json!({"busy": {"hosts": ["busy.test"]}, "quiet": {"hosts": ["quiet.test"]}}).to_string(),
    )
    .unwrap();
    let functions = dir.path().join("functions");
    std::fs::create_dir(&functions).unwrap();
    let served = Served::start(
        &[
            "serve",
            functions.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
            "--admin-tokens",
            tokens.to_str().unwrap(),
            "--tenants",
            tenants.to_str().unwrap(),
        ],
        &[],
        Duration::from_secs(120),
    )
    .await;
    let (_child, base) = served.print_log("fairness");
    let client = reqwest::Client::new();
    let burn = std::fs::read(guest("burn")).unwrap();
    let deploy = |tenant: &str, name: &str, route: &str| {
        let form = reqwest::multipart::Form::new()
            .text(
                "manifest",
                json!({"invoke": {"routes": [route]}, "timeout_ms": 60000}).to_string(),
            )
            .part(
                "component",
                reqwest::multipart::Part::bytes(burn.clone()).file_name("burn.wasm"),
            );
        client
            .put(format!("{base}/_fn/tenants/{tenant}/functions/{name}"))
            .bearer_auth(&token)
            .multipart(form)
            .send()
    };
    for i in 0..10 {
        assert_eq!(
            deploy("busy", &format!("b{i}"), &format!("/b{i}"))
                .await
                .unwrap()
                .status(),
            201
        );
    }
    assert_eq!(deploy("quiet", "q", "/q").await.unwrap().status(), 201);
    let quiet_url = format!("{base}/q?{WORK}");
    closed_loop(&client, &quiet_url, "quiet.test").await;

    let mut ratios = Vec::new();
    for _ in 0..3 {
        let alone = closed_loop(&client, &quiet_url, "quiet.test").await;
        let stop = Arc::new(AtomicBool::new(false));
        let busy_done = Arc::new(AtomicU64::new(0));
        let mut load = Vec::new();
        for c in 0..32 {
            let (client, base, stop, done) = (client.clone(), base.clone(), stop.clone(), busy_done.clone());
            load.push(tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let r = client
                        .get(format!("{base}/b{}?{WORK}", c % 10))
                        .header("host", "busy.test")
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(r.status(), 200);
                    r.bytes().await.unwrap();
                    done.fetch_add(1, Ordering::Relaxed);
                }
            }));
        }
        // The busy tenant is at full load before the quiet one is measured.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let beside = closed_loop(&client, &quiet_url, "quiet.test").await;
        stop.store(true, Ordering::Relaxed);
        for l in load {
            l.await.unwrap();
        }
        let busy = busy_done.load(Ordering::Relaxed);
        eprintln!("quiet alone {alone}, beside the busy tenant {beside} (busy answered {busy})");
        assert!(busy >= 100, "the busy tenant was kept busy: {busy} requests");
        ratios.push(beside as f64 / alone as f64);
    }
    ratios.sort_by(f64::total_cmp);
    let median = ratios[1];
    eprintln!("quiet tenant's throughput beside the busy one / alone: {ratios:?}, median {median:.2}");
    assert!(
        median >= 0.3,
        "the quiet tenant kept {median:.2} of its throughput: {ratios:?}"
    );
}
