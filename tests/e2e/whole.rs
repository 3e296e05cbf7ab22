//! Requests handled whole (`wasmfn:function/handler`, what the Rust SDK
//! exports): what the guest sees, the responses the host refuses, and the
//! responses that stream through `wasi:http` instead.

use serde_json::json;

use crate::harness::{Fixture, Served, TestHost, error_code};

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
