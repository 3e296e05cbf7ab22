//! `wasi:http@0.3` components (WASIp3, experimental in wasmtime 48) served
//! beside 0.2 ones: the same routing, limits, outbound rules and document,
//! bodies streamed both ways. The guest (`tests/guests/src/bin/http3.rs`)
//! declares its paths (`/hello`, `/echo`, …), mounted under its folder.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::harness::*;
use crate::observability::metrics::{samples, scrape, value};

#[tokio::test]
async fn a_0_3_component_is_served_beside_a_0_2_one_and_describes_itself() {
    let f = Fixture::new();
    f.function("p3", "http3", json!({}))
        .function("plain", "hello_plain", json!({}));
    let t = TestHost::start(f.path()).await;

    let r = t.get("/p3/hello").await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "text/plain");
    assert_eq!(r.text().await.unwrap(), "hello from wasi:http 0.3\n");
    assert_eq!(t.get("/plain").await.text().await.unwrap(), "plain hello\n");

    // The guest's own status passes through; a path it does not declare
    // is the host's 404.
    let r = t.get("/p3/fetch").await;
    assert_eq!(r.status(), 400);
    assert_eq!(r.text().await.unwrap(), "missing url\n");
    let (code, _) = error_code(t.get("/p3/nowhere").await, 404).await;
    assert_eq!(code, "not_found");

    let entry = t.function("p3").await;
    assert_eq!(entry["handler"], "wasi:http/handler", "{entry}");
    assert_eq!(entry["wasi_http"], json!({"version": "0.3.0", "experimental": true}));
    let plain = t.function("plain").await;
    assert_eq!(plain["handler"], "wasi:http/incoming-handler");
    assert_eq!(plain["wasi_http"], json!({"version": "0.2", "experimental": false}));

    // `wasmfn:function/metadata` works the same: its paths are in the document.
    let doc = t.json("/_fn/openapi.json").await;
    assert_eq!(
        doc["paths"]["/p3/hello"]["get"]["summary"], "A wasi:http 0.3 hello",
        "{doc:#}"
    );
    assert!(doc["paths"]["/p3/echo"]["post"].is_object(), "{doc:#}");
    // Requests are checked against it before the guest runs.
    assert_eq!(
        doc["paths"]["/p3/wait"]["get"]["parameters"][0]["name"], "ms",
        "{doc:#}"
    );
    for bad in ["/p3/wait?ms=soon", "/p3/wait?ms=20000", "/p3/wait"] {
        let (code, body) = error_code(t.get(bad).await, 422).await;
        assert_eq!(code, "validation_error", "{bad}: {body}");
    }
    assert_eq!(
        t.get("/p3/wait?ms=1").await.text().await.unwrap(),
        "waited 1 ms; at most 1 waiting at once\n"
    );

    // A fresh instance per request by default.
    for _ in 0..3 {
        assert_eq!(t.get("/p3/count").await.text().await.unwrap(), "1\n");
    }
}

#[tokio::test]
async fn bodies_stream_in_and_out_of_a_0_3_component() {
    let f = Fixture::new();
    f.function("p3", "http3", json!({"max_body_bytes": 4 << 20}));
    let t = TestHost::start(f.path()).await;

    // A body the guest copies back chunk by chunk, by a task of its own
    // that runs after `handle` returned.
    let sent: Vec<u8> = (0..(3 << 20)).map(|i: u32| (i % 251) as u8).collect();
    let r = t
        .client
        .post(t.url("/p3/echo"))
        .body(sent.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-echo-method"], "Method::Post");
    let got = r.bytes().await.unwrap();
    assert_eq!(got.len(), sent.len());
    assert!(got.as_ref() == sent.as_slice(), "the echo differs from what was sent");

    // A chunked upload with no length declared.
    let r = t
        .client
        .post(t.url("/p3/echo"))
        .body(chunked_body(100_000))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let got = r.bytes().await.unwrap();
    assert_eq!(got.len(), 100_000);
    assert!(got[..50_000].iter().all(|&b| b == b'a') && got[50_000..].iter().all(|&b| b == b'b'));

    // A response written after its head went out, in chunks.
    let r = t.get("/p3/stream?chunks=64&size=65536").await;
    assert_eq!(r.status(), 200);
    let got = r.bytes().await.unwrap();
    assert_eq!(got.len(), 64 * 65536);
    assert!(got[..65536].iter().all(|&b| b == b'a'));
    assert!(got[63 * 65536..].iter().all(|&b| b == b'a' + (63 % 26) as u8));

    // Over `max_body_bytes`: refused before the guest runs.
    let (code, _) = error_code(
        t.client
            .post(t.url("/p3/echo"))
            .body(vec![0u8; (4 << 20) + 1])
            .send()
            .await
            .unwrap(),
        413,
    )
    .await;
    assert_eq!(code, "payload_too_large");
}

#[tokio::test]
async fn the_limits_hold_for_a_0_3_component() {
    let f = Fixture::new();
    f.function("p3", "http3", json!({"timeout_ms": 300, "max_memory_bytes": 16 << 20}));
    let t = TestHost::start(f.path()).await;

    // A guest that computes forever is stopped at its deadline.
    let started = Instant::now();
    let (code, _) = error_code(t.get("/p3/spin").await, 504).await;
    assert_eq!(code, "gateway_timeout");
    assert!(started.elapsed() < Duration::from_secs(10), "{:?}", started.elapsed());
    // So is one that waits.
    let (code, _) = error_code(t.get("/p3/wait?ms=5000").await, 504).await;
    assert_eq!(code, "gateway_timeout");

    // Memory past `max_memory_bytes` is refused.
    let (code, body) = error_code(t.get("/p3/grow?mb=32").await, 500).await;
    assert_eq!(code, "out_of_memory", "{body}");
    let r = t.get("/p3/grow?mb=2").await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "grew 2097152 bytes\n");

    // A panic is the function's error, and the next request is served.
    let (code, _) = error_code(t.get("/p3/trap").await, 500).await;
    assert_eq!(code, "function_error");
    assert_eq!(t.get("/p3/hello").await.status(), 200);

    let stats = &t.function("p3").await["stats"];
    assert_eq!(
        (stats["timed_out"].as_u64(), stats["out_of_memory"].as_u64()),
        (Some(2), Some(1)),
        "{stats}"
    );
}

#[tokio::test]
async fn outbound_rules_hold_for_a_0_3_component() {
    let upstream = FixtureServer::start().await;
    let other = FixtureServer::start().await;
    let f = Fixture::new();
    f.function("p3", "http3", json!({}));
    f.function("open", "http3", json!({"allowed_outbound_hosts": [upstream.url()]}));
    f.function(
        "shared",
        "http3",
        json!({"allowed_outbound_hosts": [upstream.url()], "instance_concurrency": 2, "instance_reuse": 10}),
    );
    let t = TestHost::start(f.path()).await;

    let r = t.get(&format!("/p3/fetch?url={}/ping", upstream.url())).await;
    assert_eq!(r.status(), 502);
    let text = r.text().await.unwrap();
    assert!(text.contains("HttpRequestDenied"), "{text}");
    let r = t.get(&format!("/open/fetch?url={}/ping", upstream.url())).await;
    let text = r.text().await.unwrap();
    assert_eq!(text, "upstream 200: pong", "{text}");

    // An instance serving several requests at once calls out under the
    // same rules, and its calls are counted for its function.
    for _ in 0..2 {
        let r = t.get(&format!("/shared/fetch?url={}/ping", upstream.url())).await;
        assert_eq!(r.text().await.unwrap(), "upstream 200: pong");
    }
    let r = t.get(&format!("/shared/fetch?url={}/ping", other.url())).await;
    assert_eq!(r.status(), 502);
    let seen = samples(&scrape(&t, None).await);
    let outbound = |host: &str, outcome: &str| {
        value(
            &seen,
            "wasmfn_outbound_requests_total",
            &[
                ("tenant", "default"),
                ("function", "shared"),
                ("host", host),
                ("outcome", outcome),
            ],
        )
    };
    assert_eq!(outbound("127.0.0.1", "ok"), Some(2.0), "{seen:?}");
    assert_eq!(outbound("", "denied"), Some(1.0), "{seen:?}");
}

#[tokio::test]
async fn a_0_3_instance_is_reused_in_sequence_and_dropped_after_a_failure() {
    let f = Fixture::new();
    f.function("p3", "http3", json!({"instance_reuse": 3}));
    f.function("long", "http3", json!({"instance_reuse": 100, "timeout_ms": 300}));
    let t = TestHost::start(f.path()).await;
    let count = |path: &'static str| {
        let t = &t;
        async move { t.get(path).await.text().await.unwrap() }
    };
    let mut counts = Vec::new();
    for _ in 0..4 {
        counts.push(count("/p3/count").await);
    }
    assert_eq!(counts, ["1\n", "2\n", "3\n", "1\n"], "three requests per instance");
    // A body streamed by a task after `handle` returned, then the same
    // instance again.
    let r = t.get("/p3/stream?chunks=8&size=1000").await;
    assert_eq!(r.bytes().await.unwrap().len(), 8000);
    assert_eq!(count("/p3/count").await, "3\n");

    // A trap and a timeout each end the instance.
    assert_eq!(count("/long/count").await, "1\n");
    assert_eq!(count("/long/count").await, "2\n");
    assert_eq!(t.get("/long/trap").await.status(), 500);
    assert_eq!(count("/long/count").await, "1\n", "a trapped instance is never reused");
    assert_eq!(count("/long/count").await, "2\n");
    assert_eq!(t.get("/long/spin").await.status(), 504);
    assert_eq!(count("/long/count").await, "1\n", "nor one that timed out");
}

/// `GET path` from `n` clients at once; every answer's status and text.
async fn at_once(t: &TestHost, path: &str, n: usize) -> Vec<(u16, String)> {
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            let (client, url) = (t.client.clone(), t.url(path));
            tokio::spawn(async move {
                let r = client.get(url).send().await.unwrap();
                (r.status().as_u16(), r.text().await.unwrap())
            })
        })
        .collect();
    let mut answers = Vec::new();
    for task in tasks {
        answers.push(task.await.unwrap());
    }
    answers
}

#[tokio::test]
async fn one_0_3_instance_serves_several_requests_at_once() {
    let f = Fixture::new();
    f.function(
        "p3",
        "http3",
        json!({"instance_concurrency": 4, "instance_reuse": 100, "timeout_ms": 5000}),
    );
    let t = TestHost::start(f.path()).await;

    // Four requests that each wait 400 ms are on one instance together.
    let started = Instant::now();
    let answers = at_once(&t, "/p3/wait?ms=400", 4).await;
    for (status, text) in &answers {
        assert_eq!(*status, 200, "{text}");
        assert_eq!(text, "waited 400 ms; at most 4 waiting at once\n");
    }
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "four waits of 400 ms took {:?}: not at once",
        started.elapsed()
    );
    let entry = t.function("p3").await;
    assert_eq!(entry["policy"]["instance_concurrency"], 4, "{entry}");
    assert_eq!(entry["concurrent_instances"]["made"], 1, "{entry}");
    assert_eq!(entry["concurrent_instances"]["in_flight"], 0, "{entry}");

    // Eight at once need a second instance: no instance has more than four.
    let answers = at_once(&t, "/p3/wait?ms=400", 8).await;
    assert!(answers.iter().all(|(s, _)| *s == 200), "{answers:?}");
    assert!(
        answers
            .iter()
            .all(|(_, text)| text.ends_with("at most 4 waiting at once\n")),
        "{answers:?}"
    );
    assert_eq!(t.function("p3").await["concurrent_instances"]["made"], 2);

    // Bodies stream in and out of a shared instance too.
    let sent: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let r = t
        .client
        .post(t.url("/p3/echo"))
        .body(sent.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.bytes().await.unwrap().as_ref() == sent.as_slice());
}

#[tokio::test]
async fn a_failure_on_a_shared_0_3_instance_ends_it_and_the_next_request_gets_another() {
    let f = Fixture::new();
    f.function(
        "p3",
        "http3",
        json!({"instance_concurrency": 8, "instance_reuse": 1000, "timeout_ms": 500, "max_memory_bytes": 16 << 20}),
    );
    let t = TestHost::start(f.path()).await;
    assert_eq!(t.get("/p3/count").await.text().await.unwrap(), "1\n");
    assert_eq!(
        t.get("/p3/count").await.text().await.unwrap(),
        "2\n",
        "the same instance"
    );

    // A trap fails the requests that share its instance.
    let waiting = {
        let (client, url) = (t.client.clone(), t.url("/p3/wait?ms=300"));
        tokio::spawn(async move { client.get(url).send().await.unwrap().status().as_u16() })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (code, _) = error_code(t.get("/p3/trap").await, 500).await;
    assert_eq!(code, "function_error");
    assert_eq!(
        waiting.await.unwrap(),
        500,
        "its neighbour on the instance failed with it"
    );
    assert_eq!(t.get("/p3/count").await.text().await.unwrap(), "1\n", "a new instance");

    // A guest that computes past its deadline is answered 504, and its
    // instance is stopped: the next request is on a new one.
    let started = Instant::now();
    let (code, _) = error_code(t.get("/p3/spin").await, 504).await;
    assert_eq!(code, "gateway_timeout");
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
    assert_eq!(t.get("/p3/count").await.text().await.unwrap(), "1\n", "a new instance");

    // `max_memory_bytes` caps the instance.
    let (code, _) = error_code(t.get("/p3/grow?mb=32").await, 500).await;
    assert_eq!(code, "out_of_memory");
    assert_eq!(t.get("/p3/count").await.text().await.unwrap(), "1\n", "a new instance");
    let stats = &t.function("p3").await["stats"];
    assert_eq!(
        (stats["timed_out"].as_u64(), stats["out_of_memory"].as_u64()),
        (Some(1), Some(1)),
        "{stats}"
    );
}

#[tokio::test]
async fn instance_concurrency_is_refused_where_it_cannot_apply() {
    let f = Fixture::new();
    f.function("above_reuse", "http3", json!({"instance_concurrency": 4}));
    f.function(
        "plain",
        "hello_plain",
        json!({"instance_concurrency": 4, "instance_reuse": 10}),
    );
    f.function("fine", "http3", json!({}));
    let t = TestHost::start(f.path()).await;
    let entry = t.function("above_reuse").await;
    assert_eq!(entry["state"], "failed");
    let error = entry["error"].as_str().unwrap();
    assert!(
        error.contains(
            "fn.config.json`: field `instance_concurrency`: 4 requests at once is more than `instance_reuse` (1)"
        ) && error.contains("set `instance_reuse` to 4 or more"),
        "{error}"
    );
    let entry = t.function("plain").await;
    assert_eq!(entry["state"], "failed");
    let error = entry["error"].as_str().unwrap();
    assert!(
        error.contains("needs a component that exports `wasi:http/handler@0.3.0`")
            && error.contains("exports `wasi:http/incoming-handler`"),
        "{error}"
    );
    // The others serve.
    assert_eq!(t.get("/fine/hello").await.status(), 200);
}
