//! Reload, watch, dev and new: functions change while the host serves.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::{Value, json};

use crate::harness::*;

#[tokio::test]
async fn reload_swaps_atomically_and_keeps_the_last_good_version() {
    let f = Fixture::new();
    f.file("f/fn.config.json", r#"{"component": "f.wasm"}"#);
    std::fs::copy(guest("probe"), f.path().join("f/f.wasm")).unwrap();
    let t = TestHost::start(f.path()).await;
    assert_eq!(t.json("/f").await["route"], "/f");

    let stop = Arc::new(AtomicBool::new(false));
    let kind = |body: &str| {
        if body.contains("\"route\"") {
            "v1".to_string()
        } else {
            "v2".to_string()
        }
    };
    let clients = hammer(&t.client, t.url("/f"), 4, stop.clone(), kind);
    let served = |t: &TestHost| {
        let (c, u) = (t.client.clone(), t.url("/_fn/catalog"));
        async move {
            c.get(u).send().await.unwrap().json::<Value>().await.unwrap()["functions"][0]["stats"]["requests"].clone()
        }
    };
    eventually(Duration::from_secs(10), "load running", || async {
        (served(&t).await.as_u64() > Some(20)).then_some(())
    })
    .await;

    // v2: another component, swapped in while requests fly.
    std::fs::copy(guest("env"), f.path().join("f/f.wasm")).unwrap();
    let report = t.reload().await;
    assert_eq!(
        (report["functions"].as_u64(), report["kept_previous"].clone()),
        (Some(1), json!([]))
    );
    let before = served(&t).await.as_u64().unwrap();
    eventually(Duration::from_secs(10), "load on v2", || async {
        (served(&t).await.as_u64() > Some(before + 20)).then_some(())
    })
    .await;

    // A broken v3: the previous version keeps serving, the error is shown.
    std::fs::write(f.path().join("f/f.wasm"), b"not a component").unwrap();
    let report = t.reload().await;
    assert_eq!(report["kept_previous"], json!(["f"]));
    let before = served(&t).await.as_u64().unwrap();
    eventually(Duration::from_secs(10), "load after v3", || async {
        (served(&t).await.as_u64() > Some(before + 20)).then_some(())
    })
    .await;

    stop.store(true, Ordering::Relaxed);
    let mut total = 0;
    for c in clients {
        let (failures, kinds) = c.await.unwrap();
        assert_eq!(failures, 0, "no request fails during a swap");
        total += kinds.len();
        // Once a client has seen v2, it never sees v1 again.
        if let Some(first_v2) = kinds.iter().position(|k| k == "v2") {
            assert!(kinds[first_v2..].iter().all(|k| k == "v2"), "went back to v1");
        }
        assert_eq!(kinds.last().map(String::as_str), Some("v2"));
    }
    assert!(total > 60);
    let catalog = t.json("/_fn/catalog").await;
    let entry = &catalog["functions"][0];
    assert_eq!(entry["state"], "ready");
    assert!(
        entry["reload_error"]
            .as_str()
            .unwrap()
            .contains("is not a WebAssembly component"),
        "{entry}"
    );
    assert_eq!(t.json("/_fn/status").await["functions"]["loaded"], 1);
}

#[tokio::test]
async fn a_broken_manifest_keeps_the_previous_version_serving() {
    let f = Fixture::new();
    f.function("f", "probe", json!({}));
    let t = TestHost::start(f.path()).await;
    assert_eq!(t.json("/f").await["route"], "/f");

    // Not JSON any more: the function serves on as it was, the error names the file.
    f.file("f/fn.config.json", r#"{"component": "#);
    let report = t.reload().await;
    assert_eq!(report["kept_previous"], json!(["f"]), "{report}");
    assert_eq!(t.json("/f").await["route"], "/f");
    let entry = t.function("f").await;
    assert_eq!(entry["state"], "ready", "{entry}");
    let error = entry["reload_error"].as_str().unwrap_or_default();
    assert!(error.contains("fn.config.json"), "{entry}");

    // A field of the wrong type: the same.
    f.function("f", "probe", json!({"timeout_ms": "soon"}));
    let report = t.reload().await;
    assert_eq!(report["kept_previous"], json!(["f"]), "{report}");
    let error = t.function("f").await["reload_error"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(error.contains("timeout_ms"), "{error}");
    assert_eq!(t.get("/f").await.status(), 200);

    // Mended: the new manifest serves, nothing is kept.
    f.function("f", "probe", json!({"invoke": {"routes": ["/g"]}}));
    let report = t.reload().await;
    assert_eq!(report["kept_previous"], json!([]), "{report}");
    assert_eq!(t.json("/g").await["route"], "/g");
    assert_eq!(t.get("/f").await.status(), 404);
    assert!(t.function("f").await["reload_error"].is_null());
}

#[tokio::test]
async fn reload_adds_and_removes_functions_and_keeps_unchanged_ones() {
    let f = Fixture::new();
    f.function("a", "probe", json!({})).function("b", "probe", json!({}));
    let t = TestHost::start(f.path()).await;
    assert_eq!(t.get("/a").await.status(), 200);
    let a_before = t.function("a").await;

    std::fs::remove_dir_all(f.path().join("b")).unwrap();
    f.function("c", "probe", json!({"invoke": {"routes": ["/c", "/c2"]}}));
    let report = t.reload().await;
    assert_eq!(report["functions"], 2);
    assert_eq!(t.get("/b").await.status(), 404);
    assert_eq!(t.json("/c2").await["function"], "c");
    let doc = t.json("/_fn/openapi.json").await;
    assert!(doc["paths"]["/c2"].is_object() && doc["paths"].get("/b").is_none());
    // `a` did not change: same counters, still serving.
    let a_after = t.function("a").await;
    assert_eq!(a_after["stats"]["requests"], a_before["stats"]["requests"]);
    assert_eq!(t.get("/a").await.status(), 200);
}

#[tokio::test]
async fn watch_reloads_when_a_manifest_changes() {
    let f = Fixture::new();
    f.function("w", "probe", json!({}));
    let t = TestHost::start(f.path()).await;
    let watcher = tokio::spawn(wasmfn_server::watch(t.host.app.clone(), Duration::from_millis(100)));
    assert_eq!(t.get("/w2").await.status(), 404);
    f.function("w", "probe", json!({"invoke": {"routes": ["/w", "/w2"]}}));
    eventually(Duration::from_secs(20), "the new route", || async {
        (t.get("/w2").await.status() == 200).then_some(())
    })
    .await;
    watcher.abort();
}

fn wasmfn_cmd(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_wasmfn"))
        .args(args)
        .env("WASMFN_LOG", "error")
        .env("CARGO_TARGET_DIR", repo().join("target/e2e-new-functions"))
        .output()
        .unwrap()
}

#[tokio::test]
async fn new_then_build_then_serve_and_dev_rebuilds_on_change() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let out = wasmfn_cmd(&["new", "shout", "--dir", d]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    for file in ["fn.config.json", "Cargo.toml", "src/lib.rs", "README.md"] {
        assert!(dir.path().join("shout").join(file).is_file(), "{file}");
    }
    let again = wasmfn_cmd(&["new", "shout", "--dir", d]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exists; nothing was written"));
    let bad = wasmfn_cmd(&["new", "Bad Name", "--dir", d]);
    assert!(String::from_utf8_lossy(&bad.stderr).contains("invalid function name"));
    let lang = wasmfn_cmd(&["new", "go", "--lang", "go", "--dir", d]);
    assert!(!lang.status.success());
    assert!(String::from_utf8_lossy(&lang.stderr).contains("[possible values: rust, python, js]"));
    // The template reads its greeting from `config`.
    let manifest = dir.path().join("shout/fn.config.json");
    let text = std::fs::read_to_string(&manifest).unwrap();
    assert!(text.contains(r#""config": {"greeting": "Hello"}"#), "{text}");
    std::fs::write(&manifest, text.replace(r#""greeting": "Hello""#, r#""greeting": "Hi""#)).unwrap();

    // `dev` builds it, serves it, and rebuilds on every source change.
    let target = repo().join("target/e2e-new-functions");
    let served = Served::start(
        &["dev", d, "--listen", "127.0.0.1:0"],
        &[("CARGO_TARGET_DIR", target.as_os_str())],
        Duration::from_secs(600),
    )
    .await;
    let (mut child, base) = served.print_log("dev: ");
    let client = reqwest::Client::new();
    let body = get_json(&client, &format!("{base}/shout?name=Ada")).await;
    assert_eq!(body["message"], "Hi, Ada!");
    let doc = get_json(&client, &format!("{base}/_fn/openapi.json")).await;
    assert_eq!(doc["paths"]["/shout"]["get"]["summary"], "Greets someone.");
    let r = client.get(format!("{base}/shout?name=")).send().await.unwrap();
    assert_eq!(r.status(), 422, "validation comes with the template");

    let stop = Arc::new(AtomicBool::new(false));
    let kind = |b: &str| {
        if b.contains("Howdy") {
            "v2".to_string()
        } else {
            "v1".to_string()
        }
    };
    let clients = hammer(&client, format!("{base}/shout?name=Ada"), 2, stop.clone(), kind);
    let src = dir.path().join("shout/src/lib.rs");
    let text = std::fs::read_to_string(&src).unwrap();
    std::fs::write(
        &src,
        text.replace(
            "format!(\"{greeting}, {name}!\")",
            "format!(\"Howdy, {name}! ({greeting})\")",
        ),
    )
    .unwrap();
    let count = Arc::new(AtomicUsize::new(0));
    eventually(Duration::from_secs(300), "the rebuilt version serves", || {
        let (c, u, n) = (client.clone(), format!("{base}/shout?name=Ada"), count.clone());
        async move {
            n.fetch_add(1, Ordering::Relaxed);
            let b = c.get(u).send().await.ok()?.text().await.ok()?;
            b.contains("Howdy").then_some(())
        }
    })
    .await;
    // A source that does not compile: the previous version keeps serving.
    std::fs::write(&src, "this is not rust").unwrap();
    eventually(Duration::from_secs(300), "the build error in the catalog", || {
        let (c, u) = (client.clone(), format!("{base}/_fn/catalog"));
        async move {
            let cat: Value = c.get(u).send().await.ok()?.json().await.ok()?;
            cat["functions"][0]["build_error"].as_str().map(str::to_string)
        }
    })
    .await;
    let body = get_json(&client, &format!("{base}/shout?name=Ada")).await;
    assert_eq!(body["message"], "Howdy, Ada! (Hi)");
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        let (failures, kinds) = c.await.unwrap();
        assert_eq!(failures, 0, "no request failed while rebuilding");
        if let Some(first) = kinds.iter().position(|k| k == "v2") {
            assert!(kinds[first..].iter().all(|k| k == "v2"));
        }
    }
    child.kill().await.unwrap();
}
