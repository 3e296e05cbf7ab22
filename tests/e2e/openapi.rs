//! The unified OpenAPI document, request validation, and the docs page,
//! against the example functions.

use std::collections::BTreeSet;
use std::process::Command;

use serde_json::{Value, json};

use crate::harness::*;

fn methods_in(doc: &Value) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for m in item.as_object().unwrap().keys() {
            out.insert((path.clone(), m.to_uppercase()));
        }
    }
    out
}

#[tokio::test]
async fn the_document_covers_every_served_route_and_only_those() {
    let t = TestHost::examples().await;
    let doc = t.json("/_fn/openapi.json").await;
    assert_eq!(doc["openapi"], "3.1.0");
    assert_eq!(
        doc,
        t.json("/openapi.json").await,
        "/openapi.json serves the same document"
    );

    // The catalog's mapped routes (without implied HEAD, without hidden
    // aliases) are exactly the document's operations.
    let catalog = t.json("/_fn/catalog").await;
    let mut mapped = BTreeSet::new();
    for (route, claims) in catalog["mapped_routes"].as_object().unwrap() {
        if route == "/v1/greet" {
            continue; // served, hidden with `include_in_schema: false`
        }
        for c in claims.as_array().unwrap() {
            for m in c["methods"].as_array().unwrap() {
                if m != "HEAD" {
                    mapped.insert((route.clone(), m.as_str().unwrap().to_string()));
                }
            }
        }
    }
    assert_eq!(methods_in(&doc), mapped);
    assert!(mapped.contains(&("/items/{id}".into(), "DELETE".into())));
    assert!(
        mapped.contains(&("/echo".into(), "POST".into())),
        "functions without describe still appear"
    );

    // The hidden alias still serves.
    assert_eq!(
        t.get("/v1/greet?name=Ada").await.text().await.unwrap(),
        "Hello, Ada! (via /v1/greet)\n"
    );

    // Schemas are namespaced and every reference resolves.
    let schemas = doc["components"]["schemas"].as_object().unwrap();
    for name in ["items.Item", "items.NewItem", "users.id.User", "wasmfn.ValidationError"] {
        assert!(schemas.contains_key(name), "{name}: {:?}", schemas.keys());
    }
    let text = doc.to_string();
    for r in text.split("\"$ref\":\"").skip(1) {
        let target = r.split('"').next().unwrap();
        let name = target.strip_prefix("#/components/schemas/").expect("schema refs only");
        assert!(schemas.contains_key(name), "dangling {target}");
    }
    let list = &doc["paths"]["/items"]["get"];
    assert_eq!(list["summary"], "Lists items.");
    assert_eq!(list["operationId"], "items.list");
    assert_eq!(list["parameters"][0]["schema"]["maximum"], 100);
    let export = &doc["paths"]["/items/export"]["get"]["responses"]["200"]["content"]["application/jsonl"];
    assert_eq!(export["x-itemSchema"]["$ref"], "#/components/schemas/items.Item");

    // Every operation states what the host itself can answer for it: a
    // body over `max_body_bytes` whether or not it takes one, and the
    // answers around running it; functions without a fragment too.
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            for status in ["400", "413", "429", "500", "503", "504"] {
                assert!(op["responses"][status].is_object(), "{method} {path}: no {status}");
            }
            let restricted = path == "/internal";
            assert_eq!(op["responses"]["421"].is_object(), restricted, "{method} {path}");
            assert_eq!(op["servers"].is_array(), restricted, "{method} {path}");
        }
    }
    assert!(
        doc["paths"]["/echo"]["post"]["responses"]["413"]["description"]
            .as_str()
            .unwrap()
            .contains("(67108864 bytes)")
    );
    assert!(doc["paths"]["/echo"]["post"]["responses"]["default"].is_object());
    // A route restricted to hosts names them as its servers.
    assert_eq!(
        doc["paths"]["/internal"]["get"]["servers"][0]["url"],
        "{scheme}://admin.localhost"
    );
    assert_eq!(
        doc["paths"]["/internal"]["get"]["servers"][0]["variables"]["scheme"]["enum"],
        json!(["https", "http"])
    );

    // `wasmfn openapi` prints the same document without serving.
    let out = Command::new(env!("CARGO_BIN_EXE_wasmfn"))
        .args(["openapi", examples().to_str().unwrap()])
        .arg("--cache-dir")
        .arg(examples_cache())
        .env("WASMFN_LOG", "error")
        .output()
        .unwrap();
    assert!(out.status.success());
    let printed: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(printed, doc);

    // An independent OpenAPI 3.1 validator accepts it.
    assert_valid_openapi(&doc).await;
}

#[tokio::test]
async fn invalid_requests_get_422_or_415_and_never_reach_the_guest() {
    let t = TestHost::examples().await;
    let post = |body: &'static str, ct: &'static str| {
        let (c, u) = (t.client.clone(), t.url("/items"));
        async move { c.post(u).header("content-type", ct).body(body).send().await.unwrap() }
    };
    let detail = |body: &Value| -> Vec<(String, String)> {
        body["error"]["details"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| (d["loc"].to_string(), d["type"].as_str().unwrap().to_string()))
            .collect()
    };

    let (code, body) = error_code(
        post(r#"{"name": "", "price_cents": -1}"#, "application/json").await,
        422,
    )
    .await;
    assert_eq!(code, "validation_error");
    let mut got = detail(&body);
    got.sort();
    assert_eq!(
        got,
        [
            (r#"["body","name"]"#.into(), "minLength".into()),
            (r#"["body","price_cents"]"#.into(), "minimum".into())
        ]
    );
    assert!(
        body["error"]["details"][0]["msg"]
            .as_str()
            .is_some_and(|m| !m.is_empty())
    );

    let (_, body) = error_code(post(r#"{"price_cents": 5}"#, "application/json").await, 422).await;
    assert_eq!(detail(&body), [(r#"["body","name"]"#.into(), "missing".into())]);
    let (_, body) = error_code(
        post(r#"{"name": "x", "price_cents": 5, "extra": 1}"#, "application/json").await,
        422,
    )
    .await;
    assert_eq!(detail(&body)[0].0, r#"["body"]"#);
    let (_, body) = error_code(post("{not json", "application/json").await, 422).await;
    assert_eq!(detail(&body), [(r#"["body"]"#.into(), "json_invalid".into())]);
    let (code, _) = error_code(post("name=x", "text/plain").await, 415).await;
    assert_eq!(code, "unsupported_media_type");
    let r = t.client.post(t.url("/items")).send().await.unwrap();
    let (_, body) = error_code(r, 422).await;
    assert_eq!(detail(&body), [(r#"["body"]"#.into(), "missing".into())]);

    let (_, body) = error_code(t.get("/items?limit=1000").await, 422).await;
    assert_eq!(detail(&body), [(r#"["query","limit"]"#.into(), "maximum".into())]);
    let (_, body) = error_code(t.get("/items?limit=many").await, 422).await;
    assert_eq!(detail(&body), [(r#"["query","limit"]"#.into(), "int_parsing".into())]);
    let (_, body) = error_code(t.get("/items/abc").await, 422).await;
    assert_eq!(detail(&body), [(r#"["path","id"]"#.into(), "int_parsing".into())]);
    let (_, body) = error_code(t.get("/items/0").await, 422).await;
    assert_eq!(detail(&body), [(r#"["path","id"]"#.into(), "minimum".into())]);
    let (_, body) = error_code(t.get("/greet?name=a%20b").await, 422).await;
    assert_eq!(detail(&body), [(r#"["query","name"]"#.into(), "pattern".into())]);

    // None of these created an instance.
    let stats = &t.function("items").await["stats"];
    assert_eq!(stats["requests"], 0, "{stats}");

    // Valid requests do.
    let r = post(
        r#"{"name": "Pen", "price_cents": 120, "tags": ["office"]}"#,
        "application/json",
    )
    .await;
    assert_eq!(r.status(), 201);
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"id": 5, "name": "Pen", "price_cents": 120, "tags": ["office"]})
    );
    let r = post(r#"{"name": "Lamp", "price_cents": 1}"#, "application/json").await;
    let (code, _) = (r.status().as_u16(), ());
    assert_eq!(code, 409, "a guest error passes through");
    assert_eq!(t.json("/items/2").await["name"], "Lamp");
    assert_eq!(t.json("/items?tag=kitchen&limit=1").await.as_array().unwrap().len(), 1);
    let r = t.get("/items/99").await;
    assert_eq!(r.status(), 404);
    assert_eq!(r.json::<Value>().await.unwrap()["error"]["code"], "not_found");
    assert_eq!(t.client.delete(t.url("/items/1")).send().await.unwrap().status(), 204);
    let r = t.get("/items/export").await;
    assert_eq!(r.headers()["content-type"], "application/jsonl");
    let lines: Vec<Value> = r
        .text()
        .await
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    // Item 1 deleted, the Pen created: both kept by the store.
    let names: Vec<&str> = lines.iter().map(|l| l["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["Lamp", "Notebook", "Kettle", "Pen"]);
    assert_eq!(t.function("items").await["stats"]["requests"], 7);
}

#[tokio::test]
async fn sidecar_fragments_and_invalid_fragments() {
    let f = Fixture::new();
    f.function("probe", "probe", json!({"openapi": "api.json", "invoke": {"methods": ["GET"]}}))
        .file(
            "probe/api.json",
            &json!({"paths": {"/": {"get": {"parameters": [{"name": "n", "in": "query", "required": true, "schema": {"type": "integer"}}],
                     "responses": {"200": {"description": "the probe's echo"}}}}}})
            .to_string(),
        )
        .function("broken", "probe", json!({"openapi": "api.json"}))
        .file("broken/api.json", r#"{"paths": {"/": {"get": {"parameters": [{"name": "id", "in": "path"}]}}}}"#)
        .function("described_badly", "probe", json!({"openapi": "missing.json"}));
    let t = TestHost::start(f.path()).await;
    let (_, body) = error_code(t.get("/probe").await, 422).await;
    assert_eq!(body["error"]["details"][0]["loc"], json!(["query", "n"]));
    assert_eq!(t.get("/probe?n=3").await.status(), 200);
    let doc = t.json("/_fn/openapi.json").await;
    assert_eq!(
        doc["paths"]["/probe"]["get"]["responses"]["200"]["description"],
        "the probe's echo"
    );

    let error = t.function("broken").await["error"].as_str().unwrap().to_string();
    assert!(error.contains("function `broken`"), "{error}");
    assert!(
        error.contains("invalid OpenAPI fragment at `/paths/~1/get/parameters/0`"),
        "{error}"
    );
    assert!(
        error.contains("path parameter `id` is not in the path template"),
        "{error}"
    );
    let error = t.function("described_badly").await["error"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(error.contains("cannot read OpenAPI fragment"), "{error}");
}

#[tokio::test]
async fn admin_endpoints_appear_only_when_asked() {
    let f = Fixture::new();
    f.function("p", "probe", json!({}));
    let t = TestHost::start(f.path()).await;
    assert!(t.json("/_fn/openapi.json").await["paths"].get("/_fn/health").is_none());
    let mut config = wasmfn_server::HostConfig::new(f.path());
    config.openapi_admin = true;
    let t = TestHost::start_with(config).await;
    let doc = t.json("/_fn/openapi.json").await;
    for p in [
        "/_fn/health",
        "/_fn/catalog",
        "/_fn/openapi.json",
        "/_fn/functions",
        "/_fn/audit",
    ] {
        assert!(doc["paths"][p]["get"].is_object(), "{p} missing");
    }
    assert!(doc["paths"]["/p"]["get"].is_object());
    // The admin surface states its bearer tokens and scopes.
    let deploy = &doc["paths"]["/_fn/functions/{name}"]["put"];
    assert_eq!(deploy["security"], json!([{"admin_token": ["deploy"]}]));
    assert_eq!(
        doc["paths"]["/_fn/catalog"]["get"]["security"],
        json!([{"admin_token": ["read"]}])
    );
    assert!(doc["paths"]["/_fn/health"]["get"].get("security").is_none());
    assert_eq!(doc["components"]["securitySchemes"]["admin_token"]["scheme"], "bearer");
    // And an independent OpenAPI 3.1 validator accepts the whole.
    assert_valid_openapi(&doc).await;
}

/// Every check, in every phase, and every warning fails the run. `413` is
/// a rejection of a body as much as `422` is (a `tally` text over its
/// `maxLength` may be over its `max_body_bytes` too).
pub(crate) const SCHEMATHESIS_ALL_CHECKS: &str = r#"
[checks]
enabled = true
negative_data_rejection.expected-statuses = ["400", "401", "403", "404", "405", "406", "409", "413", "415", "422", "428", "429", "5xx"]

[warnings]
display = ["missing_auth", "missing_test_data", "base_url_mismatch", "validation_mismatch", "missing_deserializer",
           "unused_openapi_auth", "unsupported_regex", "method_not_allowed", "constants_extraction", "unmatched_filter",
           "unresolvable_reference", "low_valid_rate", "rate_limited", "dictionary_mismatch", "timeout_units"]
fail-on = true
"#;

/// `/internal` is asked of the host its `servers` name.
const SCHEMATHESIS_INTERNAL_ON_ITS_HOST: &str = r#"
[[operations]]
include-path = "/internal"
headers = { Host = "admin.localhost" }
"#;

/// `/internal` asked of a host its `servers` do not name: `421`, as
/// documented, and `405` for a method it does not serve, whatever the
/// host. Every request is for another server, so valid data is refused by
/// design: `positive_data_acceptance` (which the first run makes) is off,
/// and so are the warnings that say most data was refused.
const SCHEMATHESIS_OTHER_HOST: &str = r#"
[checks]
enabled = true
positive_data_acceptance.enabled = false

[warnings]
display = ["missing_auth", "missing_test_data", "base_url_mismatch", "missing_deserializer", "unused_openapi_auth",
           "unsupported_regex", "method_not_allowed", "constants_extraction", "unmatched_filter",
           "unresolvable_reference", "rate_limited", "dictionary_mismatch", "timeout_units"]
fail-on = true
"#;

/// The hooks every run loads: `POST /items` refuses a name that is taken
/// (`409`, by design) and the items stay (the key-value store), while the
/// fuzzer repeats short names from case to case; a valid name gets a
/// suffix of its own, so that a valid item is created and tested rather
/// than refused as a repeat. Invalid bodies are sent as generated.
const SCHEMATHESIS_HOOKS: &str = r#"
import itertools

import schemathesis

fresh = itertools.count(1)


@schemathesis.hook
def before_call(context, case, kwargs):
    body = case.body
    if (case.operation.method.upper(), case.operation.path) != ("POST", "/items") or not isinstance(body, dict):
        return
    name = body.get("name")
    if isinstance(name, str) and 1 <= len(name) <= 64:
        suffix = f"~{next(fresh)}"
        body["name"] = name[: 64 - len(suffix)] + suffix
"#;

/// Runs the pinned schemathesis, every phase, against the document at
/// `schema` (a URL or a file), sending to `t`, with `config` (a
/// `schemathesis.toml`) and [`SCHEMATHESIS_HOOKS`]; what it said, once it
/// passed.
pub(crate) async fn schemathesis(t: &TestHost, schema: &str, config: &str, args: &[&str]) -> String {
    let bin = tokio::task::spawn_blocking(python_tools).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config_file = dir.path().join("schemathesis.toml");
    std::fs::write(&config_file, config).unwrap();
    let hooks = dir.path().join("hooks.py");
    std::fs::write(&hooks, SCHEMATHESIS_HOOKS).unwrap();
    let out = tokio::process::Command::new(bin.join("schemathesis"))
        .arg("--config-file")
        .arg(&config_file)
        .args(["run", schema, "--url", &t.base])
        .args(["--phases", "examples,coverage,fuzzing,stateful"])
        .args(["--max-examples", "30", "--workers", "1", "--seed", "7"])
        .args(args)
        .env("SCHEMATHESIS_HOOKS", &hooks)
        .current_dir(dir.path())
        .output()
        .await
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success() && said.contains("No issues found"),
        "{said}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    said
}

#[tokio::test]
async fn schemathesis_finds_nothing_against_the_examples() {
    let t = TestHost::examples().await;
    let doc = t.url("/_fn/openapi.json");
    // `items` keeps its items in the key-value store: the stateful phase
    // finds what it created and not what it deleted.
    let config = format!("{SCHEMATHESIS_ALL_CHECKS}{SCHEMATHESIS_INTERNAL_ON_ITS_HOST}");
    let said = schemathesis(&t, &doc, &config, &[]).await;
    // Every phase ran something (the examples phase, `items`' examples).
    for phase in ["Examples", "Coverage", "Fuzzing", "Stateful"] {
        assert!(said.contains(&format!("✅ {phase}")), "{phase}: {said}");
    }
    assert!(said.contains("API Links:"), "the stateful phase found no links: {said}");

    let said = schemathesis(&t, &doc, SCHEMATHESIS_OTHER_HOST, &["--include-path", "/internal"]).await;
    for phase in ["Coverage", "Fuzzing"] {
        assert!(said.contains(&format!("✅ {phase}")), "{phase}: {said}");
    }
}

#[tokio::test]
async fn the_docs_page_renders_offline_in_a_real_browser() {
    let t = TestHost::examples().await;
    let page = t.get("/_fn/docs").await.text().await.unwrap();
    assert!(page.contains("/_fn/docs/swagger-ui-bundle.js"));
    let js = t.get("/_fn/docs/swagger-ui-bundle.js").await;
    assert_eq!(js.status(), 200);
    assert!(js.bytes().await.unwrap().len() > 500_000);
    let profile = tempfile::tempdir().unwrap();
    let out = headless_chromium(profile.path())
        .await
        .args(["--virtual-time-budget=15000", "--dump-dom"])
        .arg(t.url("/_fn/docs"))
        .output()
        .await
        .unwrap();
    let dom = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    for text in ["Lists items.", "/items/{id}", "Says hello.", "items.Item"] {
        assert!(dom.contains(text), "the rendered page lacks `{text}`");
    }
}
