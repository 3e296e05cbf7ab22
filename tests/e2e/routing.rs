//! Routing end to end: the example functions, parameters, aliases, hosts,
//! methods, conflicts, and what the guest is told.

use serde_json::json;

use crate::harness::*;

#[tokio::test]
async fn examples_serve_their_routes() {
    let t = TestHost::examples().await;

    let r = t.get("/hello").await;
    assert_eq!(r.status(), 200);
    assert!(r.headers().contains_key("x-request-id"));
    assert_eq!(r.text().await.unwrap(), "Hello from wasmfn!\n");

    let user: serde_json::Value = t.json("/users/42").await;
    assert_eq!(user, json!({"id": "42", "route": "/users/{id}"}));
    let user: serde_json::Value = t.json("/users/a%20b").await;
    assert_eq!(user["id"], "a b");

    for route in ["/greet", "/v1/greet"] {
        let text = t.get(&format!("{route}?name=Ada")).await.text().await.unwrap();
        assert_eq!(text, format!("Hello, Ada! (via {route})\n"));
    }

    let r = t
        .client
        .get(t.url("/internal"))
        .header("host", "admin.localhost")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), r#"{"area":"internal","ok":true}"#);
    let (code, _) = error_code(t.get("/internal").await, 421).await;
    assert_eq!(code, "misdirected_request");
    // The method is checked before the host: one no claim serves is 405, whatever the host.
    for host in ["admin.localhost", "localhost"] {
        let r = t
            .client
            .request(reqwest::Method::TRACE, t.url("/internal"))
            .header("host", host)
            .send()
            .await
            .unwrap();
        assert_eq!(r.headers()["allow"], "GET, HEAD", "{host}");
        let (code, _) = error_code(r, 405).await;
        assert_eq!(code, "method_not_allowed");
    }

    let (code, _) = error_code(t.get("/nope").await, 404).await;
    assert_eq!(code, "not_found");

    let r = t.client.put(t.url("/hello")).send().await.unwrap();
    assert_eq!(r.headers()["allow"], "GET, HEAD");
    let (code, body) = error_code(r, 405).await;
    assert_eq!(code, "method_not_allowed");
    assert_eq!(body["error"]["details"]["allow"], json!(["GET", "HEAD"]));

    let r = t.client.head(t.url("/hello")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.bytes().await.unwrap().len(), 0);

    // An encoded slash stays inside its segment.
    assert_eq!(t.json("/users/..%2Fhello").await["id"], "../hello");
    // Dot segments, even encoded, are refused (sent raw: clients normalise them).
    for path in ["/users/%2e%2e", "/users/../hello", "/./hello"] {
        let head = raw_request(
            t.host.addr,
            &format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"),
        )
        .await;
        assert!(head.starts_with("HTTP/1.1 400"), "{path}: {head}");
        assert!(head.contains("invalid_path"), "{path}: {head}");
    }
}

#[test]
fn the_readme_function_is_the_hello_example() {
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let source = std::fs::read_to_string(repo().join("functions/hello/src/lib.rs")).unwrap();
    let code: String = source
        .lines()
        .skip_while(|l| !l.starts_with("use "))
        .collect::<Vec<_>>()
        .join("\n");
    assert!(
        readme.contains(&code),
        "README's function differs from functions/hello/src/lib.rs"
    );
}

#[tokio::test]
async fn echo_streams_a_body_larger_than_any_buffer() {
    let t = TestHost::examples().await;
    // 24 MiB in uneven chunks, sent chunked, compared byte for byte.
    let chunks: Vec<Vec<u8>> = (0..96u32)
        .map(|i| {
            (0..(256 * 1024 + i as usize))
                .map(|j| (j as u32 * 31 + i) as u8)
                .collect()
        })
        .collect();
    let expected: Vec<u8> = chunks.concat();
    let stream = futures::stream::iter(chunks.into_iter().map(Ok::<_, std::io::Error>));
    let r = t
        .client
        .post(t.url("/echo"))
        .header("content-type", "application/x-test")
        .body(reqwest::Body::wrap_stream(stream))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/x-test");
    let got = r.bytes().await.unwrap();
    assert_eq!(got.len(), expected.len());
    assert!(got == expected, "echoed bytes differ");
}

#[tokio::test]
async fn guest_is_told_route_params_and_request_id() {
    let f = Fixture::new();
    f.function("files/[...path]", "probe", json!({}))
        .function("docs/[[...page]]", "probe", json!({}))
        .function(
            "multi",
            "probe",
            json!({"invoke": {"routes": ["/orgs/{org}/repos/{repo}"], "methods": ["GET", "POST"]}}),
        );
    let t = TestHost::start(f.path()).await;

    let r = t
        .client
        .get(t.url("/files/a/b%20c/d.txt?x=1"))
        .header("x-request-id", "client-id-123")
        .header("x-fn-route", "/forged")
        .header("x-fn-param-path", "forged")
        .header("x-fn-spoof", "forged")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-request-id"], "client-id-123");
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["path"], "/files/a/b%20c/d.txt?x=1");
    assert_eq!(body["route"], "/files/{...path}");
    assert_eq!(body["function"], "files/[...path]");
    assert_eq!(body["request_id"], "client-id-123");
    assert_eq!(body["params"], json!({"path": "a/b c/d.txt"}));
    assert_eq!(body["spoof"], json!(null), "client x-fn-* headers must be dropped");

    let body: serde_json::Value = t.json("/docs").await;
    assert_eq!(
        (body["route"].clone(), body["params"].clone()),
        (json!("/docs"), json!({}))
    );
    let body: serde_json::Value = t.json("/docs/guide/intro").await;
    assert_eq!(body["params"], json!({"page": "guide/intro"}));

    let body: serde_json::Value = t
        .client
        .post(t.url("/orgs/acme/repos/wasmfn"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(body["method"].as_str().unwrap().contains("Post"), "{body}");
    assert_eq!(body["params"], json!({"org": "acme", "repo": "wasmfn"}));

    // An invalid client request id is replaced by a generated one.
    let r = t
        .client
        .get(t.url("/docs"))
        .header("x-request-id", "bad id with spaces")
        .send()
        .await
        .unwrap();
    let id = r.headers()["x-request-id"].to_str().unwrap().to_string();
    assert_ne!(id, "bad id with spaces");
    assert_eq!(id.len(), 32);
}

#[tokio::test]
async fn conflicts_are_shown_and_never_silently_resolved() {
    let f = Fixture::new();
    f.function("a", "probe", json!({"invoke": {"routes": ["/same", "/forced"]}}))
        .function("b", "probe", json!({"invoke": {"routes": ["/same"]}}))
        .function(
            "c",
            "probe",
            json!({"invoke": {"routes": ["/forced"], "force_url": true}}),
        )
        .function(
            "d",
            "probe",
            json!({"invoke": {"routes": ["/same"], "methods": ["POST"]}}),
        );
    let t = TestHost::start(f.path()).await;

    let (code, body) = error_code(t.get("/same").await, 409).await;
    assert_eq!(code, "route_conflict");
    assert_eq!(body["error"]["details"]["functions"], json!(["a", "b"]));
    // POST /same is d's alone.
    let r = t.client.post(t.url("/same")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<serde_json::Value>().await.unwrap()["function"], "d");
    // force_url wins over a plain claim.
    assert_eq!(t.json("/forced").await["function"], "c");

    let catalog = t.json("/_fn/catalog").await;
    assert_eq!(
        catalog["mapped_route_conflicts"]["/same"],
        json!([{"method": "GET", "functions": ["a", "b"]}, {"method": "HEAD", "functions": ["a", "b"]}])
    );
    assert_eq!(
        catalog["mapped_routes"]["/forced"],
        json!([{"function": "c", "methods": ["GET", "HEAD"], "hosts": [], "force_url": true}])
    );
    assert_eq!(
        catalog["mapped_routes"]["/same"],
        json!([{"function": "d", "methods": ["POST"], "hosts": [], "force_url": false}])
    );
    assert_eq!(t.json("/_fn/status").await["conflicts"], 2);
}
