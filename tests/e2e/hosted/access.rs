//! Admin tokens and scopes, the tokenless rules, and token rotation.

use serde_json::json;

use super::*;

#[tokio::test]
async fn admin_tokens_and_scopes_guard_the_admin_surface_and_the_public_part_stays_open() {
    let fx = Fixture::new();
    fx.function("dirfn", "probe", json!({}));
    let (file, t) = tokens(
        fx.path(),
        &[("reader", &["read"]), ("ci", &["deploy"]), ("root", &["admin"])],
    );
    let served = serve(fx.path(), &["--admin-tokens", file.to_str().unwrap()]).await;
    let base = served.base.clone();
    let c = reqwest::Client::new();
    use reqwest::Method;

    // Public: health says status and version only; ready, the document and the docs.
    let health: Value = call(&c, Method::GET, &base, "/_fn/health", None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(health, json!({"status": "ok", "version": env!("CARGO_PKG_VERSION")}));
    for p in ["/_fn/ready", "/_fn/openapi.json", "/_fn/docs", "/dirfn"] {
        assert_eq!(call(&c, Method::GET, &base, p, None).await.status(), 200, "{p}");
    }

    for (method, path, scope) in [
        (Method::GET, "/_fn/catalog", "read"),
        (Method::GET, "/_fn/status", "read"),
        (Method::GET, "/_fn/functions", "read"),
        (Method::GET, "/_fn/audit", "read"),
        (Method::POST, "/_fn/reload", "deploy"),
        (Method::POST, "/_fn/functions/x/rollback", "deploy"),
        (Method::DELETE, "/_fn/functions/x", "deploy"),
    ] {
        let r = call(&c, method.clone(), &base, path, None).await;
        assert_eq!(
            r.headers()["www-authenticate"].to_str().unwrap(),
            "Bearer realm=\"wasmfn\""
        );
        let (code, body) = error_code(r, 401).await;
        assert_eq!(code, "unauthorized");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains(&format!("scope `{scope}`")),
            "{body}"
        );
        let r = call(&c, method.clone(), &base, path, Some("wfn_not-a-token")).await;
        assert!(
            r.headers()["www-authenticate"]
                .to_str()
                .unwrap()
                .contains("invalid_token")
        );
        error_code(r, 401).await;
        // The scope decides: read for reads, deploy for writes, admin for both.
        let (allowed, refused) = if scope == "read" {
            ("reader", "ci")
        } else {
            ("ci", "reader")
        };
        let r = call(&c, method.clone(), &base, path, Some(&t[refused])).await;
        assert!(
            r.headers()["www-authenticate"]
                .to_str()
                .unwrap()
                .contains(&format!("error=\"insufficient_scope\", scope=\"{scope}\""))
        );
        let (code, body) = error_code(r, 403).await;
        assert_eq!(code, "forbidden");
        assert!(body["error"]["message"].as_str().unwrap().contains(refused), "{body}");
        for who in [allowed, "root"] {
            let status = call(&c, method.clone(), &base, path, Some(&t[who])).await.status();
            // Rollback and undeploy of a function that is not deployed: let in, then 404.
            let expected = if path.contains("/x") { 404 } else { 200 };
            assert_eq!(status, expected, "{method} {path} as {who}");
        }
    }
    let status: Value = call(&c, Method::GET, &base, "/_fn/status", Some(&t["reader"]))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(status["functions"]["loaded"], 1);
    assert!(status["state_dir"].is_string());
    assert_eq!(status["admin"], json!({"tokens": 3, "loopback_writes": false}));

    // Tokens never reach the log; the ids do.
    let log = stop_and_collect_log(served).await;
    for token in t.values() {
        assert!(!log.contains(token.as_str()), "a token was logged");
    }
    assert!(log.contains("admin write"), "{log}");
}

#[tokio::test]
async fn without_tokens_serve_is_read_only_on_loopback_and_dev_may_write() {
    let fx = Fixture::new();
    fx.function("dirfn", "probe", json!({}));
    let c = reqwest::Client::new();
    let served = serve(fx.path(), &[]).await;
    assert_eq!(
        c.get(format!("{}/_fn/catalog", served.base))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let (code, body) = error_code(c.post(format!("{}/_fn/reload", served.base)).send().await.unwrap(), 403).await;
    assert_eq!(code, "forbidden");
    let msg = body["error"]["message"].as_str().unwrap();
    assert!(msg.contains("read-only") && msg.contains("--admin-tokens"), "{msg}");
    let r = put(&c, &served.base, None, "x", "{}", read(&guest("probe"))).await;
    error_code(r, 403).await;
    drop(served);

    let mut args = vec![
        "dev",
        fx.path().to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
        "--no-cache",
    ];
    args.push("--drain-timeout-ms");
    args.push("1000");
    let dev = Served::start(&args, &[], Duration::from_secs(120)).await;
    let r = c.post(format!("{}/_fn/reload", dev.base)).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let r = put(&c, &dev.base, None, "hello", "{}", read(&guest("probe"))).await;
    assert_eq!(r.status(), 201);
    assert_eq!(c.get(format!("{}/hello", dev.base)).send().await.unwrap().status(), 200);
}

#[tokio::test]
async fn sighup_reads_the_token_file_again_and_a_broken_one_changes_nothing() {
    let fx = Fixture::new();
    fx.function("dirfn", "probe", json!({}));
    let (file, old) = tokens(fx.path(), &[("old", &["read"])]);
    let mut served = serve(fx.path(), &["--admin-tokens", file.to_str().unwrap()]).await;
    let c = reqwest::Client::new();
    let base = served.base.clone();
    let catalog = |token: String| {
        let c = c.clone();
        let url = format!("{base}/_fn/catalog");
        async move { c.get(url).bearer_auth(token).send().await.unwrap().status() }
    };
    assert_eq!(catalog(old["old"].clone()).await, 200);
    let hup = |child: &tokio::process::Child| {
        let pid = child.id().unwrap().to_string();
        assert!(
            std::process::Command::new("kill")
                .args(["-s", "HUP", &pid])
                .status()
                .unwrap()
                .success()
        );
    };
    // Rotate: the file now holds another token only.
    let (_, new) = tokens(fx.path(), &[("new", &["read"])]);
    hup(&served.child);
    served.line_with("SIGHUP: admin tokens read again").await;
    assert_eq!(catalog(new["new"].clone()).await, 200);
    assert_eq!(catalog(old["old"].clone()).await, 401);
    // A broken file is refused, and the tokens in force stay.
    std::fs::write(&file, "[{\"id\": \"x\"").unwrap();
    hup(&served.child);
    let line = served.line_with("SIGHUP: admin tokens unchanged").await;
    assert!(line.contains("tokens.json"), "{line}");
    assert_eq!(catalog(new["new"].clone()).await, 200);
}
