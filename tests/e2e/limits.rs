//! Per-function limits, enforced inside the sandbox, against adversarial
//! guests. Bounds are generous (seconds): these are not timing tests.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::harness::*;

#[tokio::test]
async fn a_spinning_guest_times_out_and_neighbours_keep_serving() {
    let f = Fixture::new();
    f.function("spin", "spin", json!({"timeout_ms": 200}))
        .function("sleep", "sleep", json!({"timeout_ms": 200}))
        .function("ok", "probe", json!({}));
    let t = TestHost::start(f.path()).await;

    let started = Instant::now();
    let spinning = tokio::spawn({
        let (c, u) = (t.client.clone(), t.url("/spin"));
        async move { c.get(u).send().await.unwrap() }
    });
    // While it spins, the neighbour answers.
    for _ in 0..5 {
        assert_eq!(t.get("/ok").await.status(), 200);
    }
    let r = spinning.await.unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "spin answered after {:?}",
        started.elapsed()
    );
    let (code, body) = error_code(r, 504).await;
    assert_eq!(code, "gateway_timeout");
    assert!(body["error"]["message"].as_str().unwrap().contains("200 ms"));

    let started = Instant::now();
    let (code, _) = error_code(t.get("/sleep").await, 504).await;
    assert_eq!(code, "gateway_timeout");
    assert!(started.elapsed() < Duration::from_secs(10));

    assert_eq!(t.get("/ok").await.status(), 200);
    assert_eq!(t.function("spin").await["stats"]["timed_out"], 1);
    assert_eq!(t.function("sleep").await["stats"]["timed_out"], 1);
}

#[tokio::test]
async fn concurrency_slots_and_a_bounded_queue() {
    let probe = FixtureServer::start().await;
    let f = Fixture::new();
    f.function(
        "slow",
        "slow",
        json!({"max_concurrency": 2, "max_queue": 1, "queue_timeout_ms": 30000,
               "allowed_outbound_hosts": [probe.url()]}),
    );
    let t = TestHost::start(f.path()).await;
    let url = t.url(&format!("/slow?ms=1500&probe={}", probe.url()));
    let requests = (0..5).map(|_| {
        let (c, u) = (t.client.clone(), url.clone());
        tokio::spawn(async move { c.get(u).send().await.unwrap() })
    });
    let mut statuses = Vec::new();
    let mut retry_after = Vec::new();
    for r in futures::future::join_all(requests).await {
        let r = r.unwrap();
        statuses.push(r.status().as_u16());
        if r.status() == 429 {
            retry_after.push(r.headers().get("retry-after").cloned());
            let (code, _) = error_code(r, 429).await;
            assert_eq!(code, "too_many_requests");
        } else {
            assert_eq!(r.text().await.unwrap(), "done");
        }
    }
    statuses.sort();
    assert_eq!(statuses, [200, 200, 200, 429, 429]);
    assert!(retry_after.iter().all(Option::is_some));
    assert_eq!(
        probe.max_inside.load(std::sync::atomic::Ordering::SeqCst),
        2,
        "the guest saw more than 2 at once, or never 2"
    );
    let stats = &t.function("slow").await["stats"];
    assert_eq!(stats["rejected"], 2);
    assert_eq!(stats["in_flight"], 0);
}

#[tokio::test]
async fn queue_timeout_overflow_status_and_disconnect() {
    let f = Fixture::new();
    f.function(
        "q429",
        "slow",
        json!({"max_concurrency": 1, "max_queue": 1, "queue_timeout_ms": 200}),
    )
    .function(
        "q503",
        "slow",
        json!({"max_concurrency": 1, "max_queue": 0, "overflow_status": 503}),
    );
    let t = TestHost::start(f.path()).await;

    // One holds the slot for long; the queued one gives up after 200 ms.
    let holder = tokio::spawn({
        let (c, u) = (t.client.clone(), t.url("/q429?ms=3000"));
        async move { c.get(u).send().await.unwrap().status() }
    });
    eventually(Duration::from_secs(10), "q429 busy", || async {
        (t.function("q429").await["stats"]["in_flight"] == 1).then_some(())
    })
    .await;
    let started = Instant::now();
    let (code, _) = error_code(t.get("/q429?ms=1").await, 429).await;
    assert_eq!(code, "too_many_requests");
    assert!(
        started.elapsed() < Duration::from_millis(2900),
        "queued request waited {:?}",
        started.elapsed()
    );
    assert_eq!(holder.await.unwrap(), 200);

    // A client that disconnects frees its slot at once: the guest would
    // have run for 60 s.
    let impatient = t
        .client
        .get(t.url("/q503?ms=60000"))
        .timeout(Duration::from_millis(300))
        .send()
        .await;
    assert!(impatient.is_err(), "the impatient client should have given up");
    let r = eventually(Duration::from_secs(20), "slot freed after disconnect", || async {
        let r = t.get("/q503?ms=1").await;
        (r.status() == 200).then_some(r)
    })
    .await;
    assert_eq!(r.text().await.unwrap(), "done");

    // With the slot taken and no queue, the overflow status is 503.
    let holder = tokio::spawn({
        let (c, u) = (t.client.clone(), t.url("/q503?ms=2000"));
        async move { c.get(u).send().await.unwrap().status() }
    });
    eventually(Duration::from_secs(10), "q503 busy", || async {
        (t.function("q503").await["stats"]["in_flight"] == 1).then_some(())
    })
    .await;
    let r = t.get("/q503?ms=1").await;
    assert!(r.headers().contains_key("retry-after"));
    let (code, _) = error_code(r, 503).await;
    assert_eq!(code, "service_unavailable");
    assert_eq!(holder.await.unwrap(), 200);
}

#[tokio::test]
async fn request_body_limit_for_length_and_chunked_bodies() {
    let f = Fixture::new();
    f.function(
        "echo",
        "echo_body",
        json!({"max_body_bytes": 1000, "invoke": {"methods": ["POST"]}}),
    );
    let t = TestHost::start(f.path()).await;

    // Just under (at) the limit passes intact, both ways.
    let exact: Vec<u8> = (0..1000).map(|i| (i % 251) as u8).collect();
    let r = t.client.post(t.url("/echo")).body(exact.clone()).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.bytes().await.unwrap().as_ref(), exact.as_slice());
    let r = t
        .client
        .post(t.url("/echo"))
        .body(chunked_body(1000))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.bytes().await.unwrap().len(), 1000);

    // Over it: 413 before the guest runs (Content-Length) ...
    let (code, _) = error_code(
        t.client
            .post(t.url("/echo"))
            .body(vec![0u8; 1001])
            .send()
            .await
            .unwrap(),
        413,
    )
    .await;
    assert_eq!(code, "payload_too_large");
    let stats = &t.function("echo").await["stats"];
    assert_eq!(stats["body_too_large"], 1);
    // ... and when the chunked stream crosses it.
    let (code, _) = error_code(
        t.client
            .post(t.url("/echo"))
            .body(chunked_body(1001))
            .send()
            .await
            .unwrap(),
        413,
    )
    .await;
    assert_eq!(code, "payload_too_large");
    assert_eq!(t.function("echo").await["stats"]["body_too_large"], 2);
}

#[tokio::test]
async fn out_of_memory_and_stack_overflow_are_500_and_the_next_request_works() {
    let f = Fixture::new();
    f.function("grow", "grow", json!({"max_memory_bytes": 16 * 1024 * 1024}))
        .function("recurse", "recurse", json!({}));
    let t = TestHost::start(f.path()).await;

    let (code, body) = error_code(t.get("/grow").await, 500).await;
    assert_eq!(code, "out_of_memory");
    assert!(body["error"]["message"].as_str().unwrap().contains("16777216"));
    let r = t.get("/grow?mb=2").await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "allocated 2097152 bytes");
    assert_eq!(t.function("grow").await["stats"]["out_of_memory"], 1);

    let (code, _) = error_code(t.get("/recurse").await, 500).await;
    assert_eq!(code, "function_error");
    let r = t.get("/recurse?depth=100").await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "depth 100");
}

#[tokio::test]
async fn response_body_limit_cuts_the_stream() {
    let f = Fixture::new();
    f.function("huge", "huge", json!({"max_response_bytes": 1048576}));
    let t = TestHost::start(f.path()).await;

    let r = t.get("/huge?bytes=1000").await;
    assert_eq!(r.bytes().await.unwrap().len(), 1000);

    let r = t.get("/huge?bytes=8388608").await;
    assert_eq!(r.status(), 200, "the head was sent before the limit was crossed");
    let mut received = 0usize;
    let mut failed = false;
    let mut stream = r.bytes_stream();
    use futures::StreamExt;
    while let Some(chunk) = stream.next().await {
        match chunk {
            Ok(c) => received += c.len(),
            Err(_) => {
                failed = true;
                break;
            }
        }
    }
    assert!(failed, "the cut stream must end in an error, not look complete");
    assert!(received <= 1048576, "received {received} bytes past the limit");
    assert_eq!(t.function("huge").await["stats"]["response_too_large"], 1);
}

#[tokio::test]
async fn the_sandbox_grants_no_environment_arguments_or_files() {
    // The test process has environment variables; the guest must see none.
    let f = Fixture::new();
    f.function("env", "env", json!({}));
    let t = TestHost::start(f.path()).await;
    assert!(std::env::vars().count() > 0);
    let body = t.json("/env").await;
    assert_eq!(body["env"], json!([]));
    assert_eq!(body["args"], json!([]));
    assert_eq!(body["preopens"], json!([]));
    assert_eq!(body["cwd"], json!(null));
    assert_eq!(body["std_env_count"], 0);
}

#[tokio::test]
async fn invalid_policy_values_are_load_errors() {
    let f = Fixture::new();
    f.function("neg", "probe", json!({"timeout_ms": -1}))
        .function("status", "probe", json!({"overflow_status": 418}))
        .function("unknown", "probe", json!({"timeout": 5}))
        .function("huge_mem", "probe", json!({"max_memory_bytes": 4294967296u64}))
        .function("good", "probe", json!({"max_memory_bytes": 4194304}));
    let mut config = wasmfn_server::HostConfig::new(f.path());
    config.runtime.memory_ceiling = 512 * 1024 * 1024;
    let t = TestHost::start_with(config).await;
    let cases = [
        (
            "neg",
            "field `timeout_ms`: `-1` is not allowed: expected a whole number of milliseconds from 1 to 3600000",
        ),
        (
            "status",
            "field `overflow_status`: `418` is not allowed: expected 429 or 503",
        ),
        ("unknown", "unknown field `timeout`, expected one of"),
        (
            "huge_mem",
            "field `max_memory_bytes`: `4294967296` is above this host's ceiling of 536870912 bytes",
        ),
    ];
    for (name, want) in cases {
        let f = t.function(name).await;
        assert_eq!(f["state"], "failed", "{name}");
        let error = f["error"].as_str().unwrap();
        assert!(error.contains(want), "{name}: {error}");
        assert!(error.contains(&format!("{name}/fn.config.json")), "{name}: {error}");
    }
    assert_eq!(t.get("/good").await.status(), 200);
}

#[tokio::test]
async fn a_guest_that_goes_on_after_its_response_or_without_one() {
    let f = Fixture::new();
    f.function("late", "late", json!({"timeout_ms": 20000}));
    let t = TestHost::start(f.path()).await;

    // The head comes first; the rest of the body when the guest writes it.
    let r = t.get("/late?mode=stream&ms=300").await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "first,last");

    // An error response is answered at once and the guest is stopped: it
    // would otherwise sleep for 15 s.
    let started = Instant::now();
    let (code, _) = error_code(t.get("/late?mode=error&ms=15000").await, 500).await;
    assert_eq!(code, "function_error");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "answered after {:?}",
        started.elapsed()
    );

    // No response at all: the host waits for the guest to end, to say how
    // it ended (here, a panic after its pause).
    let started = Instant::now();
    let (code, _) = error_code(t.get("/late?mode=drop&ms=300").await, 500).await;
    assert_eq!(code, "function_error");
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "answered after {:?}, before the guest ended",
        started.elapsed()
    );

    assert_eq!(t.function("late").await["stats"]["trapped"], 2);
    let r = t.get("/late?mode=stream&ms=0").await;
    assert_eq!(r.text().await.unwrap(), "first,last");
}
