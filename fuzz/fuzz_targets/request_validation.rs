//! A client's request against a declared operation, before the guest runs:
//! path parameters, query string, headers and JSON body in any shape are
//! judged (accepted or refused with issues) without panicking.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Value, json};
use wasmfn_openapi::{OperationValidator, parse_query};

fn validator() -> &'static OperationValidator {
    static V: OnceLock<OperationValidator> = OnceLock::new();
    V.get_or_init(|| {
        let op = json!({
            "parameters": [
                {"name": "id", "in": "path", "required": true, "schema": {"type": "integer", "minimum": 1}},
                {"name": "tag", "in": "query", "schema": {"type": "array", "items": {"type": "string", "maxLength": 8}}},
                {"name": "limit", "in": "query", "schema": {"type": "integer", "maximum": 100}},
                {"name": "flag", "in": "query", "schema": {"type": "boolean"}},
                {"name": "x-trace", "in": "header", "schema": {"type": "string", "pattern": "^[a-f0-9]+$"}}
            ],
            "requestBody": {"required": true, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/f.Item"}}}}
        });
        let schemas: Map<String, Value> = serde_json::from_value(json!({
            "f.Item": {"type": "object", "required": ["name"], "properties": {
                "name": {"type": "string", "minLength": 1},
                "price": {"type": "number", "exclusiveMinimum": 0},
                "tags": {"type": "array", "items": {"type": "string"}}}}
        }))
        .unwrap();
        OperationValidator::compile(op.as_object().unwrap(), &[], &schemas).unwrap()
    })
}

fuzz_target!(|data: (&str, &str, &str, &[u8])| {
    let (id, query, header, body) = data;
    let _ = parse_query(query);
    let mut headers = http::HeaderMap::new();
    if let Ok(v) = http::HeaderValue::from_str(header) {
        headers.insert("x-trace", v);
    }
    let params = [("id".to_string(), id.to_string())];
    let _ = validator().check_head(&params, Some(query), &headers, !body.is_empty());
    let _ = validator().check_json_body(body);
});
