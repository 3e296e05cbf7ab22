//! What a function's `describe` returns (or its sidecar file holds):
//! parsing, mounting under routes and merging into the one document never
//! panic, and the merged document is JSON that serialises.
#![no_main]

use std::path::PathBuf;

use libfuzzer_sys::fuzz_target;
use wasmfn_manifest::Policy;
use wasmfn_manifest::discovery::FunctionSpec;
use wasmfn_openapi::{DocFunction, Fragment, build_mounts, document};
use wasmfn_routing::RoutePattern;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(fragment) = Fragment::parse(text) else { return };
    let spec = FunctionSpec {
        name: "f".into(),
        dir: PathBuf::from("f"),
        manifest_path: PathBuf::from("f/fn.config.json"),
        component_path: PathBuf::from("f/f.wasm"),
        component_ref: None,
        description: None,
        routes: vec![
            RoutePattern::parse("/f").unwrap(),
            RoutePattern::parse("/v1/{tenant}").unwrap(),
        ],
        schema_hidden: vec![],
        route_auth: vec![],
        openapi_path: None,
        methods: vec![http::Method::GET],
        hosts: vec![],
        force_url: false,
        policy: Policy::default(),
        schedules: vec![],
    };
    let Ok(mounts) = build_mounts(&spec, "f", Some(&fragment)) else {
        return;
    };
    let functions = [DocFunction {
        name: "f",
        namespace: "f",
        description: None,
        fragment: Some(&fragment),
        origin: None,
    }];
    let routes = mounts.iter().map(|m| (m, m.methods.clone()));
    let doc = document(&functions, routes, None);
    serde_json::to_vec(&doc).expect("the document serialises");
});
