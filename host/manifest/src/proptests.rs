//! Properties of manifest parsing over generated input (the invariants of
//! the `manifest` fuzz target, run on stable in every test run): nothing
//! panics, and every refusal names the file.

use std::path::Path;

use proptest::prelude::*;
use serde_json::{Value, json};

use crate::FunctionManifest;

/// JSON objects made of the manifest's own keys with values of any shape.
fn manifest_json() -> impl Strategy<Value = Value> {
    let key = prop_oneof![
        Just("component"),
        Just("description"),
        Just("timeout_ms"),
        Just("max_concurrency"),
        Just("max_queue"),
        Just("queue_timeout_ms"),
        Just("overflow_status"),
        Just("max_body_bytes"),
        Just("max_response_bytes"),
        Just("max_memory_bytes"),
        Just("instance_reuse"),
        Just("instance_idle_ms"),
        Just("instance_concurrency"),
        Just("allowed_outbound_hosts"),
        Just("invoke"),
        Just("openapi"),
        Just("unknown"),
    ];
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        "[ -~é]{0,12}".prop_map(Value::from),
        Just(json!("/users/{id}")),
        Just(json!("https://api.example.com:443")),
    ];
    let value = leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            prop::collection::btree_map(
                prop_oneof![
                    Just("routes".to_string()),
                    Just("methods".to_string()),
                    Just("hosts".to_string()),
                    "[a-z_]{1,8}"
                ],
                inner,
                0..4
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    });
    prop::collection::btree_map(key, value, 0..6)
        .prop_map(|m| Value::Object(m.into_iter().map(|(k, v)| (k.to_string(), v)).collect()))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn any_text_is_parsed_or_refused_naming_the_file(text in "\\PC{0,64}") {
        if let Err(e) = FunctionManifest::parse(Path::new("p/fn.config.json"), &text) {
            prop_assert!(e.to_string().contains("p/fn.config.json"), "{}", e);
        }
    }

    #[test]
    fn any_object_of_manifest_keys_is_parsed_or_refused_naming_the_file(v in manifest_json()) {
        let text = v.to_string();
        match FunctionManifest::parse(Path::new("p/fn.config.json"), &text) {
            Ok(_) => prop_assert!(v.get("unknown").is_none(), "an unknown field was accepted: {}", text),
            Err(e) => prop_assert!(e.to_string().contains("p/fn.config.json"), "{}", e),
        }
    }
}
