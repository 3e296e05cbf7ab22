//! Requests handled whole (`wasmfn:function/handler`, what the Rust SDK
//! exports): what the guest sees, the responses the host refuses, and the
//! responses that stream through `wasi:http` instead.

use serde_json::json;

use crate::harness::{Fixture, Served, TestHost, chunked_body, error_code};

#[tokio::test]
async fn sdk_functions_take_requests_whole_and_plain_ones_through_wasi_http() {
    let f = Fixture::new();
    f.function("w", "whole", json!({}))
        .function("plain", "hello_plain", json!({}));
    let t = TestHost::start(f.path()).await;
    assert_eq!(t.function("w").await["handler"], "wasmfn:function/handler@0.1.0");
    assert_eq!(t.function("plain").await["handler"], "wasi:http/incoming-handler");

    // Everything a handler reads arrives in the one call.
    let r = t
        .client
        .post(t.url("/w/seen?a=1&b=two"))
        .header("x-test", "yes")
        .header("content-type", "text/plain")
        .body("the body")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "text/plain; charset=utf-8");
    assert_eq!(
        r.text().await.unwrap(),
        "method=Some(Post) path=/w/seen query=a=1&b=two x-fn-path=/seen x-test=yes body=the body"
    );

    // A streamed response goes through `wasi:http` on the same instance,
    // and arrives whole and in order.
    let r = t.get("/w/lines").await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/jsonl");
    assert_eq!(r.text().await.unwrap(), "1\n2\n3\n");

    let r = t.get("/plain").await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "plain hello\n");

    let stats = &t.function("w").await["stats"];
    assert_eq!(stats["requests"], 2);
    assert_eq!(stats["trapped"], 0, "{stats}");
}

#[tokio::test]
async fn invalid_whole_responses_fail_with_the_reason_in_the_log() {
    let f = Fixture::new();
    f.function("w", "whole", json!({}));
    let mut served = Served::start(
        &["serve", f.path().to_str().unwrap(), "--listen", "127.0.0.1:0"],
        &[],
        std::time::Duration::from_secs(60),
    )
    .await;
    let client = reqwest::Client::new();
    for (path, reason) in [
        ("hop-by-hop", "header `connection` is not allowed in a response"),
        ("bad-status", "invalid status code 1000"),
        ("wrong-length", "`content-length: 5` but the body has 4 bytes"),
        // Streamed, so through `wasi:http`: refused there too.
        ("lines-hop-by-hop", "response headers refused: HeaderError::Forbidden"),
    ] {
        let id = format!("whole-{path}");
        let r = client
            .get(format!("{}/w/{path}", served.base))
            .header("x-request-id", &id)
            .send()
            .await
            .unwrap();
        let (code, _) = error_code(r, 500).await;
        assert_eq!(code, "function_error");
        let line = loop {
            let line = served.line_with(&id).await;
            if line.contains("function failed") {
                break line;
            }
        };
        assert!(line.contains(reason), "{line}");
    }
    // The function keeps serving.
    let r = client.get(format!("{}/w/lines", served.base)).send().await.unwrap();
    assert_eq!(r.status(), 200);
    served.child.kill().await.unwrap();
}

#[tokio::test]
async fn requests_and_responses_taken_whole_keep_their_limits() {
    let f = Fixture::new();
    f.function(
        "w",
        "whole",
        json!({"max_body_bytes": 1000, "timeout_ms": 500, "max_response_bytes": 1500}),
    );
    let t = TestHost::start(f.path()).await;
    // At the limit, without a length: read whole and given to the guest.
    let r = t
        .client
        .post(t.url("/w/seen"))
        .header("content-type", "text/plain")
        .body(chunked_body(1000))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let text = r.text().await.unwrap();
    assert!(
        text.ends_with(&format!("body={}{}", "a".repeat(500), "b".repeat(500))),
        "{text}"
    );
    // One byte over, without a length: cut while the host reads it.
    let (code, _) = error_code(
        t.client
            .post(t.url("/w/seen"))
            .header("content-type", "text/plain")
            .body(chunked_body(1001))
            .send()
            .await
            .unwrap(),
        413,
    )
    .await;
    assert_eq!(code, "payload_too_large");
    assert_eq!(t.function("w").await["stats"]["body_too_large"], 1);

    // A response made whole over `max_response_bytes` is refused, not cut.
    let (code, body) = error_code(t.get("/w/big").await, 500).await;
    assert_eq!(code, "response_too_large");
    assert!(
        body["error"]["message"].as_str().unwrap().contains("2000 bytes"),
        "{body}"
    );
    assert_eq!(t.function("w").await["stats"]["response_too_large"], 1);

    // A body that stalls: reading it counts against the timeout.
    let stalled = futures::stream::unfold(0, |n| async move {
        match n {
            0 => Some((Ok::<_, std::io::Error>(b"start".to_vec()), 1)),
            _ => {
                tokio::time::sleep(std::time::Duration::from_secs(5)).await;
                None
            }
        }
    });
    let started = std::time::Instant::now();
    let r = t
        .client
        .post(t.url("/w/seen"))
        .header("content-type", "text/plain")
        .body(reqwest::Body::wrap_stream(stalled))
        .send()
        .await
        .unwrap();
    let (code, _) = error_code(r, 504).await;
    assert_eq!(code, "gateway_timeout");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(t.function("w").await["stats"]["timed_out"], 1);
}
