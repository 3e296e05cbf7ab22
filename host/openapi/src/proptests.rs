//! Properties of fragment merging and request validation over generated
//! input (the invariants of the `fragment_merge` and `request_validation`
//! fuzz targets, run on stable in every test run).

use std::path::PathBuf;

use http::{HeaderMap, HeaderValue, Method};
use proptest::prelude::*;
use serde_json::{Map, Value, json};

use crate::{DocFunction, Fragment, OperationValidator, build_mounts, document, parse_query};
use wasmfn_manifest::Policy;
use wasmfn_manifest::discovery::FunctionSpec;
use wasmfn_routing::RoutePattern;

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        "[ -~]{0,8}".prop_map(Value::from),
        Just(json!("#/components/schemas/Item")),
        Just(json!("integer")),
        Just(json!("path")),
    ];
    leaf.prop_recursive(4, 48, 5, |inner| {
        let key = prop_oneof![
            Just("paths".to_string()),
            Just("/".to_string()),
            Just("/{id}".to_string()),
            Just("get".to_string()),
            Just("post".to_string()),
            Just("parameters".to_string()),
            Just("name".to_string()),
            Just("in".to_string()),
            Just("schema".to_string()),
            Just("$ref".to_string()),
            Just("type".to_string()),
            Just("requestBody".to_string()),
            Just("content".to_string()),
            Just("application/json".to_string()),
            Just("responses".to_string()),
            Just("200".to_string()),
            Just("components".to_string()),
            Just("schemas".to_string()),
            Just("Item".to_string()),
            "[a-z/{}]{1,6}",
        ];
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            prop::collection::btree_map(key, inner, 0..5).prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn spec() -> FunctionSpec {
    FunctionSpec {
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
        methods: vec![Method::GET],
        hosts: vec![],
        force_url: false,
        policy: Policy::default(),
        schedules: vec![],
    }
}

fn validator() -> OperationValidator {
    let op = json!({
        "parameters": [
            {"name": "id", "in": "path", "required": true, "schema": {"type": "integer", "minimum": 1}},
            {"name": "tag", "in": "query", "schema": {"type": "array", "items": {"type": "string", "maxLength": 8}}},
            {"name": "limit", "in": "query", "schema": {"type": "integer", "maximum": 100}},
            {"name": "x-trace", "in": "header", "schema": {"type": "string", "pattern": "^[a-f0-9]+$"}}
        ],
        "requestBody": {"required": true, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/f.Item"}}}}
    });
    let schemas: Map<String, Value> = serde_json::from_value(json!({
        "f.Item": {"type": "object", "required": ["name"], "properties": {"name": {"type": "string", "minLength": 1}}}
    }))
    .unwrap();
    OperationValidator::compile(op.as_object().unwrap(), &[], &schemas).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn any_fragment_merges_into_a_document_or_is_refused(v in json_value()) {
        let Ok(fragment) = Fragment::parse(&v.to_string()) else { return Ok(()) };
        let spec = spec();
        let Ok(mounts) = build_mounts(&spec, "f", Some(&fragment)) else { return Ok(()) };
        let functions = [DocFunction { name: "f", namespace: "f", description: None, fragment: Some(&fragment) , origin: None}];
        let doc = document(&functions, mounts.iter().map(|m| (m, m.methods.clone())), None);
        prop_assert_eq!(doc["openapi"].as_str(), Some("3.1.0"));
        // Every mounted operation is in the document, under its full route.
        for m in &mounts {
            prop_assert!(doc["paths"].get(crate::template(&m.pattern)).is_some(), "{} missing", m.pattern);
        }
    }

    #[test]
    fn any_request_is_judged_without_panicking(
        id in "\\PC{0,12}",
        query in "[a-z=&%0-9+.-]{0,40}",
        header in "[ -~]{0,16}",
        body in prop::collection::vec(any::<u8>(), 0..64),
    ) {
        let v = validator();
        let _ = parse_query(&query);
        let mut headers = HeaderMap::new();
        if let Ok(h) = HeaderValue::from_str(&header)
            && !header.is_empty()
        {
            headers.insert("x-trace", h);
        }
        let head = v.check_head(&[("id".into(), id.clone())], Some(&query), &headers, !body.is_empty());
        if id.parse::<u64>().is_ok_and(|n| n >= 1 && n.to_string() == id) && query.is_empty() && header.is_empty() && !body.is_empty() {
            prop_assert!(head.is_ok(), "a valid head was refused: {:?}", head.err());
        }
        let valid = serde_json::from_slice::<Value>(&body)
            .ok()
            .and_then(|b| b.get("name").and_then(Value::as_str).map(|n| !n.is_empty()))
            .unwrap_or(false);
        prop_assert_eq!(v.check_json_body(&body).is_ok(), valid, "body {:?}", String::from_utf8_lossy(&body));
    }
}
