//! Discovery over real folders.

use std::fs;
use std::path::Path;

use super::*;

fn write(root: &Path, rel: &str, text: &str) {
    let p = root.join(rel);
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(p, text).unwrap();
}

fn names(d: &Discovery) -> Vec<String> {
    d.functions
        .iter()
        .map(|f| {
            let routes: Vec<String> = f.routes.iter().map(|r| r.to_string()).collect();
            format!("{} {}", f.name, routes.join(","))
        })
        .collect()
}

#[test]
fn walks_folders_routes_and_skips() {
    let tmp = tempfile::tempdir().unwrap();
    let r = tmp.path();
    write(r, "hello/fn.config.json", r#"{"component": "hello.wasm"}"#);
    write(r, "users/[id]/fn.config.json", r#"{"component": "u.wasm"}"#);
    write(r, "docs/[[...path]]/fn.config.json", r#"{"component": "d.wasm"}"#);
    write(
        r,
        "alias/fn.config.json",
        r#"{"component": "a.wasm", "invoke": {"routes": ["/a", "/v1/a", "/a/"]}}"#,
    );
    write(r, "_private/fn.config.json", r#"{"component": "p.wasm"}"#);
    write(r, ".hidden/fn.config.json", r#"{"component": "h.wasm"}"#);
    write(r, "hello/target/x/fn.config.json", r#"{"component": "t.wasm"}"#);
    write(r, "nested/deeper/fn.config.json", r#"{"component": "n.wasm"}"#);
    write(r, "hello/child/fn.config.json", r#"{"component": "c.wasm"}"#);
    let d = discover(r, &Policy::default()).unwrap();
    assert!(d.failed.is_empty(), "{:?}", d.failed);
    assert_eq!(
        names(&d),
        [
            "alias /a,/v1/a",
            "docs/[[...path]] /docs,/docs/{...path}",
            "hello /hello",
            "hello/child /hello/child",
            "nested/deeper /nested/deeper",
            "users/[id] /users/{id}",
        ]
    );
    let hello = d.functions.iter().find(|f| f.name == "hello").unwrap();
    assert_eq!(hello.component_path, r.join("hello/hello.wasm"));
    assert_eq!(hello.methods, [Method::GET]);
}

#[test]
fn overlays_cascade_and_function_wins() {
    let tmp = tempfile::tempdir().unwrap();
    let r = tmp.path();
    write(r, "fn.config.json", r#"{"timeout_ms": 1000, "max_queue": 5}"#);
    write(r, "api/fn.config.json", r#"{"timeout_ms": 2000}"#);
    write(r, "api/a/fn.config.json", r#"{"component": "a.wasm", "max_queue": 7}"#);
    write(r, "b/fn.config.json", r#"{"component": "b.wasm"}"#);
    let d = discover(r, &Policy::default()).unwrap();
    let get = |n: &str| d.functions.iter().find(|f| f.name == n).unwrap().policy.clone();
    assert_eq!((get("api/a").timeout_ms, get("api/a").max_queue), (2000, 7));
    assert_eq!((get("b").timeout_ms, get("b").max_queue), (1000, 5));
    assert_eq!(get("b").max_body_bytes, Policy::default().max_body_bytes);
}

#[test]
fn broken_manifests_are_reported_and_skipped() {
    let tmp = tempfile::tempdir().unwrap();
    let r = tmp.path();
    write(r, "good/fn.config.json", r#"{"component": "g.wasm"}"#);
    write(r, "bad_json/fn.config.json", r#"{"component": "#);
    write(
        r,
        "bad_field/fn.config.json",
        r#"{"component": "x.wasm", "timeout_ms": -1}"#,
    );
    write(
        r,
        "bad_route/fn.config.json",
        r#"{"component": "x.wasm", "invoke": {"routes": ["nope"]}}"#,
    );
    write(
        r,
        "bad_host/fn.config.json",
        r#"{"component": "x.wasm", "invoke": {"allow_hosts": ["a b"]}}"#,
    );
    write(r, "users/[id/fn.config.json", r#"{"component": "x.wasm"}"#);
    write(r, "broken_overlay/fn.config.json", r#"{"max_queue": "lots"}"#);
    write(r, "broken_overlay/below/fn.config.json", r#"{"component": "x.wasm"}"#);
    let d = discover(r, &Policy::default()).unwrap();
    assert_eq!(names(&d), ["good /good"]);
    let errors: Vec<String> = d.failed.iter().map(|f| format!("{}: {}", f.name, f.error)).collect();
    let want = [
        "bad_field: invalid `",
        "bad_host: invalid `",
        "bad_json: invalid `",
        "bad_route: invalid `",
        "broken_overlay: invalid `",
        "broken_overlay/below: a policy overlay above this function is invalid",
        "users/[id: cannot route folder `users/[id`: segment `[id` is not closed",
    ];
    assert_eq!(errors.len(), want.len(), "{errors:#?}");
    for (e, w) in errors.iter().zip(want) {
        assert!(e.starts_with(w), "{e}\nwant prefix {w}");
    }
    assert!(errors[1].contains("field `invoke.allow_hosts[0]`"), "{}", errors[1]);
    assert!(
        errors[3].contains("field `invoke.routes[0]`: route `nope` must start with `/`"),
        "{}",
        errors[3]
    );
}

#[test]
fn missing_root_is_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    assert!(discover(&tmp.path().join("absent"), &Policy::default()).is_err());
    write(tmp.path(), "file", "x");
    assert!(discover(&tmp.path().join("file"), &Policy::default()).is_err());
}
