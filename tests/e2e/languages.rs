//! Python and JavaScript functions: the examples built from source (with
//! componentize-py and componentize-js installed from PyPI and npm by the
//! test run), their validation and their place in the document; `new` →
//! `build` → `dev` for each language; what a missing toolchain or a broken
//! source says.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde_json::{Value, json};

use crate::harness::*;

async fn post(t: &TestHost, path: &str, body: Value) -> reqwest::Response {
    t.client.post(t.url(path)).json(&body).send().await.unwrap()
}

/// An interpreter's initialised heap is a large memory image: copied into
/// each instance where the host splits images by size.
async fn assert_image_copied(t: &TestHost, function: &str) {
    let image = t.function(function).await["memory_image"].clone();
    assert!(
        image["bytes"].as_u64().unwrap() > wasmfn_server::runtime::DEFAULT_COW_MAX_IMAGE_BYTES,
        "{image}"
    );
    let expected = if wasmfn_server::runtime::pagemap_scan_supported() {
        "copied"
    } else {
        "copy-on-write"
    };
    assert_eq!(image["init"], expected);
}

#[tokio::test]
async fn python_example_converts_validates_and_describes_itself() {
    let t = TestHost::examples().await;
    assert_image_copied(&t, "convert").await;
    let r = post(&t, "/convert/fahrenheit", json!({"value": 100, "unit": "celsius"})).await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"value": 212.0, "unit": "fahrenheit"})
    );
    let r = post(&t, "/convert/kelvin", json!({"value": 32, "unit": "fahrenheit"})).await;
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"value": 273.15, "unit": "kelvin"})
    );
    let list = t.json("/convert").await;
    assert_eq!(list[2], json!({"name": "kelvin", "absolute_zero": 0.0}));

    // The host refuses what the declaration rules out, before Python runs.
    let (_, body) = error_code(
        post(&t, "/convert/rankine", json!({"value": 1, "unit": "kelvin"})).await,
        422,
    )
    .await;
    assert_eq!(body["error"]["details"][0]["loc"], json!(["path", "to"]));
    let (_, body) = error_code(
        post(&t, "/convert/kelvin", json!({"value": -500, "unit": "celsius"})).await,
        422,
    )
    .await;
    assert_eq!(body["error"]["details"][0]["loc"], json!(["body", "value"]));
    assert_eq!(body["error"]["details"][0]["type"], "minimum");
    let (_, body) = error_code(post(&t, "/convert/kelvin", json!({"unit": "celsius"})).await, 422).await;
    assert_eq!(body["error"]["details"][0]["type"], "missing");
    // A rule across fields (`json_schema_extra`): -300 is above the
    // Fahrenheit floor, but below absolute zero in Celsius.
    let (_, body) = error_code(
        post(&t, "/convert/kelvin", json!({"value": -300, "unit": "celsius"})).await,
        422,
    )
    .await;
    assert_eq!(body["error"]["details"][0]["loc"], json!(["body", "value"]));
    let r = post(&t, "/convert/kelvin", json!({"value": -300, "unit": "fahrenheit"})).await;
    assert_eq!(r.status(), 200);

    let doc = t.json("/_fn/openapi.json").await;
    let op = &doc["paths"]["/convert/{to}"]["post"];
    assert_eq!(op["summary"], "Converts a temperature to the unit `to`.");
    assert_eq!(op["operationId"], "convert.convert");
    assert_eq!(
        op["requestBody"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/convert.Temperature"
    );
    assert_eq!(
        op["parameters"][0]["schema"]["enum"],
        json!(["celsius", "fahrenheit", "kelvin"])
    );
    assert!(op["responses"]["422"].is_object());
    let temp = &doc["components"]["schemas"]["convert.Temperature"];
    assert_eq!(temp["properties"]["value"]["minimum"], -459.67);
    assert_eq!(temp["description"], "A temperature in one unit.");
    assert_eq!(temp["required"], json!(["value", "unit"]));
    assert_eq!(temp["allOf"][0]["then"]["properties"]["value"]["minimum"], -273.15);
    let units = &doc["paths"]["/convert"]["get"];
    assert_eq!(
        units["responses"]["200"]["content"]["application/json"]["schema"]["items"]["$ref"],
        "#/components/schemas/convert.UnitInfo"
    );
}

#[tokio::test]
async fn javascript_example_tallies_validates_and_describes_itself() {
    let t = TestHost::examples().await;
    assert_image_copied(&t, "tally").await;
    let r = post(
        &t,
        "/tally/words",
        json!({"text": "the cat and the hat", "ignore_case": true}),
    )
    .await;
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["count"], 5);
    assert_eq!(body["top"][0], json!({"word": "the", "n": 2}));
    let r = post(&t, "/tally/lines", json!({"text": "a\nb\nc"})).await;
    assert_eq!(r.json::<Value>().await.unwrap(), json!({"mode": "lines", "count": 3}));
    assert_eq!(t.json("/tally").await, json!(["words", "chars", "lines"]));

    let (_, body) = error_code(post(&t, "/tally/bytes", json!({"text": "x"})).await, 422).await;
    assert_eq!(body["error"]["details"][0]["loc"], json!(["path", "mode"]));
    let (_, body) = error_code(post(&t, "/tally/words", json!({"text": ""})).await, 422).await;
    assert_eq!(body["error"]["details"][0]["type"], "minLength");
    let (_, body) = error_code(post(&t, "/tally/words", json!({"text": "a", "extra": 1})).await, 422).await;
    assert_eq!(body["error"]["details"][0]["type"], "additionalProperties");
    let r = t
        .client
        .post(t.url("/tally/words"))
        .header("content-type", "text/plain")
        .body("a b")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 415);
    // `max_body_bytes` from its manifest.
    let r = post(&t, "/tally/chars", json!({"text": "x".repeat(70_000)})).await;
    assert_eq!(r.status(), 413);

    let doc = t.json("/_fn/openapi.json").await;
    let op = &doc["paths"]["/tally/{mode}"]["post"];
    assert_eq!(op["summary"], "Counts in a text.");
    assert_eq!(op["tags"], json!(["tally"]));
    assert_eq!(
        op["responses"]["200"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/tally.Tally"
    );
    assert_eq!(
        doc["components"]["schemas"]["tally.Text"]["properties"]["text"]["maxLength"],
        10000
    );
}

fn wasmfn(args: &[&str], envs: &[(&str, &std::ffi::OsStr)]) -> (bool, String) {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_wasmfn"));
    cmd.args(args).env("WASMFN_LOG", "error");
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[tokio::test]
async fn new_build_dev_round_trip_in_python_and_javascript() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let toolchains = build_options().toolchains_dir;
    // The toolchains are installed by the examples' build.
    tokio::task::spawn_blocking(examples).await.unwrap();
    let env = [("WASMFN_TOOLCHAINS_DIR", toolchains.as_os_str())];

    for (name, lang, files) in [
        ("pyfn", "python", ["fn.config.json", "app.py", "README.md"]),
        ("jsfn", "js", ["fn.config.json", "index.js", "README.md"]),
    ] {
        let (ok, said) = wasmfn(&["new", name, "--lang", lang, "--dir", d], &[]);
        assert!(ok, "{said}");
        for f in files {
            assert!(dir.path().join(name).join(f).is_file(), "{name}/{f}");
        }
        let (ok, said) = wasmfn(&["new", name, "--lang", lang, "--dir", d], &[]);
        assert!(!ok && said.contains("already exists; nothing was written"), "{said}");
        // The template reads its greeting from `config`.
        let manifest = dir.path().join(name).join("fn.config.json");
        let text = std::fs::read_to_string(&manifest).unwrap();
        assert!(text.contains(r#""config": {"greeting": "Hello"}"#), "{text}");
        std::fs::write(&manifest, text.replace(r#""greeting": "Hello""#, r#""greeting": "Hi""#)).unwrap();
    }

    // The toolchains folder given relative to where the build starts: the
    // toolchains run elsewhere, so it is made absolute first.
    let out = tokio::task::spawn_blocking({
        let d = d.to_string();
        let relative = toolchains.strip_prefix(repo()).unwrap().to_path_buf();
        move || {
            std::process::Command::new(env!("CARGO_BIN_EXE_wasmfn"))
                .args(["build", &d, "--toolchains-dir"])
                .arg(relative)
                .current_dir(repo())
                .env("WASMFN_LOG", "error")
                .output()
                .unwrap()
        }
    })
    .await
    .unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let ok = out.status.success();
    assert!(ok, "{said}");
    assert!(said.contains("building jsfn (js, componentize-js)"), "{said}");
    assert!(said.contains("building pyfn (python, componentize-py)"), "{said}");
    assert!(said.contains("2 built, 0 up to date, 0 failed"), "{said}");
    let (ok, said) = wasmfn(&["build", d], &env);
    assert!(
        ok && said.contains("0 built, 2 up to date"),
        "nothing changed, nothing rebuilt: {said}"
    );

    // `dev` serves them and rebuilds each on a change to its source.
    let served = Served::start(&["dev", d, "--listen", "127.0.0.1:0"], &env, Duration::from_secs(300)).await;
    let (mut child, base) = served.print_log("dev: ");
    let client = reqwest::Client::new();
    for name in ["pyfn", "jsfn"] {
        let body = get_json(&client, &format!("{base}/{name}?name=Ada")).await;
        assert_eq!(body["message"], "Hi, Ada!", "{name}");
        let r = client.get(format!("{base}/{name}?name=")).send().await.unwrap();
        assert_eq!(r.status(), 422, "{name}: validation comes with the template");
    }
    let doc = get_json(&client, &format!("{base}/_fn/openapi.json")).await;
    assert_eq!(doc["paths"]["/pyfn"]["get"]["summary"], "Greets someone.");
    assert_eq!(doc["paths"]["/jsfn"]["get"]["summary"], "Greets someone.");
    assert_eq!(
        doc["paths"]["/jsfn"]["get"]["responses"]["200"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/jsfn.Greeting"
    );

    let stop = Arc::new(AtomicBool::new(false));
    let mut clients = Vec::new();
    for (name, source, from, to) in [
        ("pyfn", "app.py", "f\"{greeting}, {name}!\"", "f\"Howdy, {name}!\""),
        ("jsfn", "index.js", "`${greeting}, ${", "`Howdy, ${"),
    ] {
        let url = format!("{base}/{name}?name=Ada");
        let kind = |b: &str| {
            if b.contains("Howdy") {
                "new".to_string()
            } else {
                "old".to_string()
            }
        };
        clients.extend(hammer(&client, url.clone(), 2, stop.clone(), kind));
        let path = dir.path().join(name).join(source);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains(from), "{name}: template changed");
        std::fs::write(&path, text.replace(from, to)).unwrap();
        eventually(Duration::from_secs(300), "the rebuilt version serves", || {
            let (c, u) = (client.clone(), url.clone());
            async move {
                let b = c.get(u).send().await.ok()?.text().await.ok()?;
                b.contains("Howdy").then_some(())
            }
        })
        .await;
        // A source that does not build: the compiler's words reach the
        // catalog and the previous version keeps serving.
        std::fs::write(&path, format!("{}\n)(not valid\n", text.replace(from, to))).unwrap();
        let err = eventually(Duration::from_secs(300), "the build error in the catalog", || {
            let (c, u) = (client.clone(), format!("{base}/_fn/catalog"));
            async move {
                let cat: Value = c.get(u).send().await.ok()?.json().await.ok()?;
                let f = cat["functions"].as_array()?.iter().find(|f| f["name"] == name)?.clone();
                f["build_error"].as_str().map(str::to_string)
            }
        })
        .await;
        assert!(err.contains("SyntaxError"), "{name}: {err}");
        assert_eq!(get_json(&client, &url).await["message"], "Howdy, Ada!");
    }
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        let (failures, kinds) = c.await.unwrap();
        assert_eq!(failures, 0, "no request failed while rebuilding");
        // The answer changes once, when the good build lands, and never back
        // (the broken build keeps the new version serving).
        let first_new = kinds.iter().position(|k| k == "new").expect("the new version answered");
        assert!(kinds[first_new..].iter().all(|k| k == "new"), "{kinds:?}");
    }
    child.kill().await.unwrap();

    // `wasmfn build` fails on the broken sources, naming each function and
    // showing the toolchain's message.
    let (ok, said) = wasmfn(&["build", d], &env);
    assert!(!ok);
    assert!(
        said.contains("error: function `pyfn` failed to build: componentize-py failed"),
        "{said}"
    );
    assert!(
        said.contains("error: function `jsfn` failed to build: componentize-js failed"),
        "{said}"
    );
    assert!(said.contains("SyntaxError"), "{said}");
}

#[test]
fn a_missing_toolchain_says_how_to_install_it() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    for (name, lang) in [("p", "python"), ("j", "js")] {
        let (ok, said) = wasmfn(&["new", name, "--lang", lang, "--dir", d], &[]);
        assert!(ok, "{said}");
    }
    // An empty toolchains folder, and a PATH with Node.js but no componentize-py.
    let empty = tempfile::tempdir().unwrap();
    let bin = tempfile::tempdir().unwrap();
    let node = which("node").expect("Node.js is on this machine");
    std::os::unix::fs::symlink(node, bin.path().join("node")).unwrap();
    let (ok, said) = wasmfn(
        &["build", d],
        &[
            ("WASMFN_TOOLCHAINS_DIR", empty.path().as_os_str()),
            ("PATH", bin.path().as_os_str()),
        ],
    );
    assert!(!ok);
    assert!(
        said.contains("componentize-py 0.25.1 is not installed (Python functions need it): install it with `pip install componentize-py==0.25.1`"),
        "{said}"
    );
    assert!(said.contains("--install-toolchains"), "{said}");
    assert!(
        said.contains("componentize-js 0.23.0 is not installed (JavaScript functions need it)")
            && said.contains("npm install --prefix"),
        "{said}"
    );
    assert!(said.contains("0 built, 0 up to date, 2 failed"), "{said}");
    // Without Node.js at all.
    let nothing = tempfile::tempdir().unwrap();
    let (ok, said) = wasmfn(
        &["build", d],
        &[
            ("WASMFN_TOOLCHAINS_DIR", empty.path().as_os_str()),
            ("PATH", nothing.path().as_os_str()),
        ],
    );
    assert!(!ok);
    assert!(said.contains("Node.js is not installed"), "{said}");
    assert!(
        !empty.path().join("componentize-js-0.23.0").exists(),
        "nothing installed without being asked"
    );
}

fn which(program: &str) -> Option<std::path::PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|p| p.join(program))
        .find(|p| p.is_file())
}

/// The Python and JavaScript helpers' own unit tests, in plain CPython and
/// Node.js.
#[test]
fn helper_libraries_pass_their_own_unit_tests() {
    for (dir, program, args, ran) in [
        (
            "guest-sdk/python",
            "python3",
            &["-m", "unittest", "discover", "-s", "tests", "-v"][..],
            "Ran 11 tests",
        ),
        ("guest-sdk/js", "node", &["--test"][..], "# pass 9"),
    ] {
        let out = std::process::Command::new(program)
            .args(args)
            .current_dir(repo().join(dir))
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .output()
            .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "{dir}: {said}");
        // Both runners say how many ran; none may have been skipped.
        assert!(said.contains(ran), "{dir}: {said}");
        assert!(
            !said.contains("skipped=") && (program != "node" || said.contains("# skipped 0")),
            "{dir}: {said}"
        );
    }
}

/// The Python and JavaScript apps the tests below share, built once per
/// run into the target directory (a run whose sources, helpers and
/// toolchains are unchanged builds nothing): `py` and `js` count the
/// requests one instance serves (`POST /`), answer what they read
/// through the helpers' `config` and `secret` (`GET /config`), and count
/// visits in the key-value store `default` through `kv` (`POST /kv`,
/// `GET /kv/last`, as the Rust guest `sdk_kv` does). Their
/// manifests reuse instances; other tests serve the same components under
/// manifests of their own.
fn helper_apps() -> std::path::PathBuf {
    static BUILT: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();
    BUILT
        .get_or_init(|| {
            let dir = repo().join("target/e2e-helper-apps");
            let write = |rel: &str, text: &str| {
                let p = dir.join(rel);
                std::fs::create_dir_all(p.parent().unwrap()).unwrap();
                std::fs::write(p, text).unwrap();
            };
            write(
                "py/app.py",
                r#"from wasmfn import App, Response, config, kv, secret

app = App(title="Counter")
served = 0


@app.post("/")
def count(req):
    global served
    served += 1
    return {"served": served, "request_id": req.request_id, "body": req.text(), "secret": req.headers.get("x-secret")}


@app.get("/stream")
def stream(req):
    global served
    served += 1
    return Response((f"{served}:{i}\n" for i in range(3)), content_type="text/plain")


@app.get("/config")
def read_config(req):
    return {
        "greeting": config.get("greeting", "Hello"),
        "api_key": secret.get("api_key"),
        "unlisted": secret.get("unlisted"),
        "keys": sorted(config.get_all()),
    }


@app.post("/kv")
def visit(req):
    store = kv.Store.open("default")
    visits = store.increment("visits")
    store.set_json("last", {"by": "py", "body": req.text(), "visits": visits})
    try:
        kv.Store.open("private")
        denied = "opened"
    except kv.KvError as e:
        denied = e.kind
    return {"visits": visits, "keys": sorted(store.keys()), "denied": denied}


@app.get("/kv/last")
def last(req):
    return kv.Store.open("default").get_json("last")
"#,
            );
            write(
                "py/fn.config.json",
                r#"{"component": "py.wasm", "instance_reuse": 1000}"#,
            );
            write(
                "js/index.js",
                r#"import { App, KvError, config, kv, secret } from "wasmfn";

const app = new App({ title: "Counter" });
let served = 0;

app.post("/", {}, async (req) => {
  served += 1;
  return { served, request_id: req.requestId, body: await req.text(), secret: req.headers.get("x-secret") };
});

app.get("/config", {}, () => ({
  greeting: config.get("greeting", "Hello"),
  api_key: secret.get("api_key") ?? null,
  unlisted: secret.get("unlisted") ?? null,
  keys: Object.keys(config.getAll()).sort(),
}));

app.post("/kv", {}, async (req) => {
  const store = kv.open("default");
  const visits = store.increment("visits");
  store.setJson("last", { by: "js", body: await req.text(), visits });
  let denied = "opened";
  try {
    kv.open("private");
  } catch (e) {
    denied = e instanceof KvError ? e.kind : String(e);
  }
  return { visits, keys: [...store.keys()].sort(), denied };
});

app.get("/kv/last", {}, () => kv.open("default").getJson("last"));

export default app;
"#,
            );
            write(
                "js/fn.config.json",
                r#"{"component": "js.wasm", "instance_reuse": 1000}"#,
            );
            let report = wasmfn_build::build_all(&dir, &build_options()).expect("build");
            assert_eq!(report.failed, 0, "{:?}", report.errors);
            assert_eq!(report.built + report.up_to_date, 2, "{report:?}");
            dir
        })
        .clone()
}

/// The Python and JavaScript helpers on one instance for many requests
/// (`instance_reuse`): the app is built once per instance (a module global
/// counts the requests), each request sees its own headers and body, and
/// a Python response that streams goes through `wasi:http` once, without
/// running the handler twice.
#[tokio::test]
async fn python_and_javascript_apps_serve_many_requests_on_one_instance() {
    let apps = tokio::task::spawn_blocking(helper_apps).await.unwrap();
    let mut config = wasmfn_server::HostConfig::new(apps);
    config.runtime.cache_dir = Some(examples_cache());
    let t = TestHost::start_with(config).await;
    for name in ["py", "js"] {
        assert_eq!(
            t.function(name).await["handler"],
            "wasmfn:function/handler@0.1.0",
            "{name} takes requests whole"
        );
        for i in 1..=20u64 {
            let mut req = t
                .client
                .post(t.url(&format!("/{name}")))
                .header("x-request-id", format!("{name}-{i}"))
                .body(format!("body {i}"));
            if i == 1 {
                req = req.header("x-secret", "only-the-first");
            }
            let r = req.send().await.unwrap();
            assert_eq!(r.status(), 200, "{name} request {i}");
            let body: Value = r.json().await.unwrap();
            let secret = if i == 1 { json!("only-the-first") } else { Value::Null };
            assert_eq!(
                body,
                json!({"served": i, "request_id": format!("{name}-{i}"), "body": format!("body {i}"), "secret": secret}),
                "{name}: one instance, built once, each request its own"
            );
        }
    }
    // A streamed response (a generator) is made once: the handler ran for
    // the whole call and its response is sent through `wasi:http`.
    let text = t.get("/py/stream").await.text().await.unwrap();
    assert_eq!(text, "21:0\n21:1\n21:2\n");
    let r = t
        .client
        .post(t.url("/py"))
        .header("x-request-id", "after-stream")
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(r.json::<Value>().await.unwrap()["served"], 22);
    let reuse = t.json("/_fn/status").await["instance_reuse"].clone();
    assert_eq!(reuse["reused"], 19 + 19 + 2, "{reuse}");
    assert_eq!(reuse["failed"], 0, "{reuse}");
}

/// A function in each language reads the `config` values and the secrets
/// of its manifest: Rust through `wasmfn_sdk::config` and `secret`, Python
/// and JavaScript through their helpers' `config` and `secret`. A secret
/// the manifest does not list is absent though the host has it; a `config`
/// value that is not the JSON a Rust handler asks for answers 500 naming
/// the key, not the value.
#[tokio::test]
async fn every_language_reads_its_config_and_secrets() {
    let apps = tokio::task::spawn_blocking(helper_apps).await.unwrap();
    let f = Fixture::new();
    for (name, component, limits) in [
        ("rs", guest("sdk_config"), "[1, 2, 3]"),
        ("rs-bad", guest("sdk_config"), "many"),
        ("py", apps.join("py/py.wasm"), "[]"),
        ("js", apps.join("js/js.wasm"), "[]"),
    ] {
        let manifest = json!({
            "component": component,
            "config": {"greeting": format!("hello from {name}"), "limits": limits},
            "secrets": ["api_key"],
        });
        f.file(&format!("{name}/fn.config.json"), &manifest.to_string());
    }
    let secrets = tempfile::tempdir().unwrap();
    std::fs::write(secrets.path().join("api_key"), "sk-test-123\n").unwrap();
    std::fs::write(secrets.path().join("unlisted"), "not-theirs\n").unwrap();
    let mut config = wasmfn_server::HostConfig::new(f.path());
    config.secrets_dir = Some(secrets.path().to_path_buf());
    config.runtime.cache_dir = Some(examples_cache());
    let t = TestHost::start_with(config).await;

    for name in ["rs", "py", "js"] {
        assert_eq!(
            t.json(&format!("/{name}/config")).await,
            json!({
                "greeting": format!("hello from {name}"),
                "api_key": "sk-test-123",
                "unlisted": null,
                "keys": ["api_key", "greeting", "limits"],
            }),
            "{name}"
        );
    }
    // `config::get_json` into a type, and its error as an answer.
    assert_eq!(t.get("/rs/limits").await.text().await.unwrap(), "6");
    let r = t.get("/rs-bad/limits").await;
    assert_eq!(r.status(), 500);
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"error": {"code": "internal", "message": "the function's config `limits` cannot be read; see its log"}})
    );
}

/// `POST /{name}/kv` with `body`: the answer, which must be 200.
async fn visit(t: &TestHost, name: &str, body: String) -> Value {
    let r = t
        .client
        .post(t.url(&format!("/{name}/kv")))
        .body(body)
        .send()
        .await
        .unwrap();
    let status = r.status();
    let text = r.text().await.unwrap();
    assert_eq!(status, 200, "{name}: {text}");
    serde_json::from_str(&text).unwrap()
}

/// A function in each language keeps state in the key-value store
/// `default` through its SDK (Rust `wasmfn_sdk::kv`, Python and JavaScript
/// `kv`): the stores are the tenant's, so the three functions count the
/// same visits and each reads the JSON the others wrote; a store the
/// manifest does not list is `access-denied`, and a function that lists
/// none cannot open `default` either. The count outlives the host.
#[tokio::test]
async fn every_language_keeps_state_in_the_tenants_store() {
    let apps = tokio::task::spawn_blocking(helper_apps).await.unwrap();
    let f = Fixture::new();
    for (name, component, stores) in [
        ("rs", guest("sdk_kv"), json!(["default"])),
        ("py", apps.join("py/py.wasm"), json!(["default"])),
        ("js", apps.join("js/js.wasm"), json!(["default"])),
        ("none", guest("sdk_kv"), json!([])),
    ] {
        let manifest = json!({"component": component, "key_value_stores": stores});
        f.file(&format!("{name}/fn.config.json"), &manifest.to_string());
    }
    let state = tempfile::tempdir().unwrap();
    let host = |state: &std::path::Path| {
        let mut config = wasmfn_server::HostConfig::new(f.path());
        config.state_dir = Some(state.to_path_buf());
        config.runtime.cache_dir = Some(examples_cache());
        TestHost::start_with(config)
    };
    let t = host(state.path()).await;
    for (i, name) in ["rs", "py", "js", "rs", "py", "js"].into_iter().enumerate() {
        let visits = i as u64 + 1;
        assert_eq!(
            visit(&t, name, format!("visit {visits}")).await,
            json!({"visits": visits, "keys": ["last", "visits"], "denied": "access-denied"}),
            "{name}"
        );
        // Each reads what the one before wrote.
        let reader = ["rs", "py", "js"][(i + 1) % 3];
        assert_eq!(
            t.json(&format!("/{reader}/kv/last")).await,
            json!({"by": name, "body": format!("visit {visits}"), "visits": visits}),
            "{reader} reads what {name} wrote"
        );
    }
    let r = t.client.post(t.url("/none/kv")).send().await.unwrap();
    assert_eq!(r.status(), 500);
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"error": {"code": "internal", "message": "the function's key-value store `default` failed; see its log"}})
    );
    assert_eq!(t.host.stop().await.unwrap(), wasmfn_server::Drained::Complete);

    let t = host(state.path()).await;
    assert_eq!(visit(&t, "py", "after".into()).await["visits"], 7);
    assert_eq!(t.json("/js/kv/last").await["by"], "py");
}
