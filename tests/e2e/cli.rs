//! The `wasmfn` binary: `check`, `routes`, `--help`.

use std::process::Command;

use serde_json::json;

use crate::harness::*;

fn wasmfn(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_wasmfn"))
        .args(args)
        .env("WASMFN_LOG", "error")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn check_is_a_ci_gate() {
    let good = examples();
    let cache = examples_cache();
    let (code, out, err) = wasmfn(&["check", good.to_str().unwrap(), "--cache-dir", cache.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("/users/{id}"), "{out}");
    assert!(
        out.contains("9 functions ready, 0 failed, 0 conflicts, 0 schedule errors"),
        "{out}"
    );

    let f = Fixture::new();
    f.function("a", "probe", json!({"invoke": {"routes": ["/x"]}}))
        .function("b", "probe", json!({"invoke": {"routes": ["/x"]}}))
        .file("broken/fn.config.json", "{");
    let (code, out, _) = wasmfn(&["check", f.path().to_str().unwrap()]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("conflict: GET /x is claimed by a, b"), "{out}");
    assert!(out.contains("error: broken: invalid `"), "{out}");

    let (code, out, _) = wasmfn(&["routes", f.path().to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(out.contains("conflict: GET /x"), "{out}");

    // A schedule whose request reaches another function, or no route: an
    // error of its function's manifest, named, though the function serves.
    let f = Fixture::new();
    f.function("a", "probe", json!({"invoke": {"routes": ["/a"]}}))
        .function(
            "s",
            "probe",
            json!({"invoke": {"routes": ["/s"]}, "schedules": [
                {"id": "to-a", "cron": "0 3 * * *", "path": "/a"},
                {"id": "lost", "cron": "0 3 * * *", "path": "/nowhere"},
                {"id": "fine", "cron": "0 3 * * *"},
            ]}),
        );
    let (code, out, _) = wasmfn(&["check", f.path().to_str().unwrap()]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("error: s: schedule `to-a`: `GET /a` is served by function `a`, not `s`"),
        "{out}"
    );
    assert!(
        out.contains("error: s: schedule `lost`: `GET /nowhere` matches no route of function `s`"),
        "{out}"
    );
    assert!(!out.contains("`fine`"), "{out}");
    assert!(
        out.contains("2 functions ready, 0 failed, 0 conflicts, 2 schedule errors"),
        "{out}"
    );

    let (code, _, err) = wasmfn(&["check", "/definitely/not/here"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("cannot read functions directory `/definitely/not/here`"),
        "{err}"
    );
}

#[test]
fn help_names_every_command_and_env_twins() {
    let (code, out, _) = wasmfn(&["--help"]);
    assert_eq!(code, 0);
    for cmd in ["serve", "check", "routes", "build"] {
        assert!(out.contains(cmd), "{out}");
    }
    let (_, out, _) = wasmfn(&["serve", "--help"]);
    assert!(out.contains("[env: WASMFN_LISTEN=]"), "{out}");
    assert!(out.contains("--max-concurrency"), "{out}");
}

#[tokio::test]
async fn serve_logs_guest_output_under_function_and_request_id() {
    let f = Fixture::new();
    f.function("env", "env", json!({}));
    let mut served = Served::start(
        &["serve", f.path().to_str().unwrap(), "--listen", "127.0.0.1:0"],
        &[],
        std::time::Duration::from_secs(60),
    )
    .await;
    let r = reqwest::Client::new()
        .get(format!("{}/env", served.base))
        .header("x-request-id", "log-me-1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let (mut stdout, mut stderr) = (false, false);
    while !(stdout && stderr) {
        let line = served.line_with("log-me-1").await;
        if line.contains("function=env") {
            stdout |= line.contains("env probe ran") && line.contains("stdout");
            stderr |= line.contains("env probe stderr line") && line.contains("stderr");
        }
    }
    served.child.kill().await.unwrap();
}

#[tokio::test]
async fn validate_responses_logs_mismatches_and_passes_the_response_on() {
    let f = Fixture::new();
    f.function("probe", "probe", json!({"openapi": "api.json"})).file(
        "probe/api.json",
        &json!({"paths": {"/": {"get": {"responses": {"200": {"description": "ok", "content": {"application/json": {
            "schema": {"type": "object", "required": ["not_there"]}}}}}}}}})
        .to_string(),
    );
    let args = [
        "serve",
        f.path().to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
        "--validate-responses",
    ];
    let mut served = Served::start(&args, &[], std::time::Duration::from_secs(60)).await;
    let r = reqwest::Client::new()
        .get(format!("{}/probe", served.base))
        .header("x-request-id", "check-me-1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "the response passes through");
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["route"], "/probe");
    let line = served.line_with("response does not match its declared schema").await;
    assert!(line.contains("check-me-1"), "{line}");
    assert!(line.contains("not_there"), "{line}");
    served.child.kill().await.unwrap();
}

#[tokio::test]
async fn worker_threads_are_set_by_flag_or_env_and_reported_by_health() {
    let f = Fixture::new();
    f.function("env", "env", json!({}));
    let dir = f.path().to_str().unwrap();
    for (args, env, expected) in [
        (vec!["--worker-threads", "1"], vec![], 1),
        (vec![], vec![("WASMFN_WORKER_THREADS", std::ffi::OsStr::new("3"))], 3),
    ] {
        let mut all = vec!["serve", dir, "--listen", "127.0.0.1:0"];
        all.extend(args);
        let mut served = Served::start(&all, &env, std::time::Duration::from_secs(60)).await;
        let client = reqwest::Client::new();
        let health = get_json(&client, &format!("{}/_fn/status", served.base)).await;
        assert_eq!(health["worker_threads"], expected, "{health}");
        let r = client.get(format!("{}/env", served.base)).send().await.unwrap();
        assert_eq!(r.status(), 200);
        served.child.kill().await.unwrap();
    }
    let (code, _, err) = wasmfn(&["serve", dir, "--worker-threads", "0"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--worker-threads"), "{err}");
}

#[tokio::test]
async fn memory_image_flags_reach_the_runtime_and_the_catalog() {
    let f = Fixture::new();
    f.function("env", "env", json!({}));
    let dir = f.path().to_str().unwrap();
    let split = wasmfn_server::runtime::pagemap_scan_supported();
    for (args, cow, limit, init) in [
        // Every image with any data is over a limit of 0: copied.
        (
            vec!["--cow-max-image-bytes", "0"],
            true,
            if split { json!(0) } else { json!(null) },
            if split { "copied" } else { "copy-on-write" },
        ),
        (vec!["--no-memory-cow"], false, json!(null), "copied"),
    ] {
        let mut all = vec!["serve", dir, "--listen", "127.0.0.1:0"];
        all.extend(args);
        let mut served = Served::start(&all, &[], std::time::Duration::from_secs(60)).await;
        let client = reqwest::Client::new();
        let health = get_json(&client, &format!("{}/_fn/status", served.base)).await;
        assert_eq!(
            (health["memory_cow"].clone(), health["cow_max_image_bytes"].clone()),
            (json!(cow), limit)
        );
        let catalog = get_json(&client, &format!("{}/_fn/catalog", served.base)).await;
        assert_eq!(catalog["functions"][0]["memory_image"]["init"], init, "{catalog}");
        let r = client.get(format!("{}/env", served.base)).send().await.unwrap();
        assert_eq!(r.status(), 200);
        served.child.kill().await.unwrap();
    }
}
