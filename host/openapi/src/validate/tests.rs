//! Table-driven checks of parameter coercion, schemas and bodies.

use http::HeaderMap;
use serde_json::{Map, Value, json};

use super::*;

fn op(v: Value) -> Map<String, Value> {
    v.as_object().unwrap().clone()
}

fn schemas() -> Map<String, Value> {
    json!({
        "items.Item": {"type": "object", "required": ["name", "price"],
                       "properties": {"name": {"type": "string", "minLength": 1},
                                      "price": {"type": "number", "minimum": 0},
                                      "tags": {"type": "array", "items": {"type": "string"}}}}
    })
    .as_object()
    .unwrap()
    .clone()
}

fn validator() -> OperationValidator {
    OperationValidator::compile(
        &op(json!({
            "parameters": [
                {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 100}},
                {"name": "sort", "in": "query", "required": true, "schema": {"type": "string", "enum": ["asc", "desc"]}},
                {"name": "tag", "in": "query", "schema": {"type": "array", "items": {"type": "integer"}}},
                {"name": "X-Trace", "in": "header", "schema": {"type": "boolean"}}
            ],
            "requestBody": {"required": true, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/items.Item"}}}}
        })),
        &[json!({"name": "id", "in": "path", "schema": {"type": "integer", "minimum": 1}})],
        &schemas(),
    )
    .unwrap()
}

fn head(
    v: &OperationValidator,
    id: &str,
    query: &str,
    headers: &[(&str, &str)],
    has_body: bool,
) -> Result<(), Rejection> {
    let mut h = HeaderMap::new();
    for (k, val) in headers {
        h.append(
            http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            val.parse().unwrap(),
        );
    }
    v.check_head(&[("id".to_string(), id.to_string())], Some(query), &h, has_body)
}

fn issues(r: Result<(), Rejection>) -> Vec<(String, String)> {
    match r {
        Ok(()) => vec![],
        Err(Rejection::Invalid(list)) => list
            .into_iter()
            .map(|i| (Value::Array(i.loc).to_string(), i.kind))
            .collect(),
        Err(Rejection::UnsupportedMediaType { got, .. }) => vec![("415".into(), got)],
    }
}

const JSON: (&str, &str) = ("content-type", "application/json");

#[test]
fn parameters() {
    let v = validator();
    type Pairs<'a> = &'a [(&'a str, &'a str)];
    let cases: &[(&str, &str, Pairs, Pairs)] = &[
        ("7", "sort=asc", &[JSON], &[]),
        ("7", "sort=asc&limit=100&tag=1&tag=2", &[JSON, ("x-trace", "true")], &[]),
        ("x", "sort=asc", &[JSON], &[(r#"["path","id"]"#, "int_parsing")]),
        ("0", "sort=asc", &[JSON], &[(r#"["path","id"]"#, "minimum")]),
        ("7", "", &[JSON], &[(r#"["query","sort"]"#, "missing")]),
        ("7", "sort=up", &[JSON], &[(r#"["query","sort"]"#, "enum")]),
        ("7", "sort=asc&limit=0", &[JSON], &[(r#"["query","limit"]"#, "minimum")]),
        (
            "7",
            "sort=asc&limit=1.5",
            &[JSON],
            &[(r#"["query","limit"]"#, "int_parsing")],
        ),
        (
            "7",
            "sort=asc&tag=1&tag=x",
            &[JSON],
            &[(r#"["query","tag",1]"#, "int_parsing")],
        ),
        (
            "7",
            "sort=asc",
            &[JSON, ("x-trace", "maybe")],
            &[(r#"["header","x-trace"]"#, "bool_parsing")],
        ),
        ("7", "sort=a%73c", &[JSON], &[]),
    ];
    for (id, q, h, want) in cases {
        let got = issues(head(&v, id, q, h, true));
        let want: Vec<(String, String)> = want.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect();
        assert_eq!(got, want, "id={id} q={q}");
    }
}

#[test]
fn media_types() {
    let v = validator();
    assert_eq!(
        issues(head(&v, "1", "sort=asc", &[("content-type", "text/plain")], true)),
        [("415".into(), "text/plain".into())]
    );
    assert_eq!(
        issues(head(&v, "1", "sort=asc", &[], true)),
        [("415".into(), String::new())]
    );
    assert!(
        head(
            &v,
            "1",
            "sort=asc",
            &[("content-type", "Application/JSON; charset=utf-8")],
            true
        )
        .is_ok()
    );
    assert_eq!(
        issues(head(&v, "1", "sort=asc", &[], false)),
        [(r#"["body"]"#.into(), "missing".into())]
    );
    // A body without a type is `application/octet-stream`: taken where
    // the operation takes any type, or bytes.
    for (declared, accepted) in [
        ("*/*", true),
        ("application/*", true),
        ("application/octet-stream", true),
        ("text/*", false),
    ] {
        let raw = OperationValidator::compile(
            &op(json!({"requestBody": {"content": {declared: {"schema": {}}}}})),
            &[],
            &schemas(),
        )
        .unwrap();
        let r = raw.check_head(&[], None, &HeaderMap::new(), true);
        assert_eq!(r.is_ok(), accepted, "{declared}: {:?}", issues(r));
    }
    assert!(v.wants_json_body(Some("application/json")));
    assert!(v.wants_json_body(None));
    assert!(!v.wants_json_body(Some("text/plain")));
}

#[test]
fn json_bodies() {
    let v = validator();
    let cases: &[(&str, &[(&str, &str)])] = &[
        (r#"{"name": "pen", "price": 1.5}"#, &[]),
        (r#"{"name": "", "price": 1}"#, &[(r#"["body","name"]"#, "minLength")]),
        (r#"{"name": "pen"}"#, &[(r#"["body","price"]"#, "missing")]),
        (
            r#"{"name": "pen", "price": -1, "tags": ["a", 2]}"#,
            &[(r#"["body","price"]"#, "minimum"), (r#"["body","tags",1]"#, "type")],
        ),
        (r#"{"name": "pen", "#, &[(r#"["body"]"#, "json_invalid")]),
        ("", &[(r#"["body"]"#, "missing")]),
        ("[]", &[(r#"["body"]"#, "type")]),
    ];
    for (body, want) in cases {
        let mut got = issues(v.check_json_body(body.as_bytes()));
        got.sort();
        let mut want: Vec<(String, String)> = want.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect();
        want.sort();
        assert_eq!(got, want, "{body}");
    }
}

#[test]
fn query_parsing() {
    assert_eq!(
        parse_query("a=1&b=x%20y&c=+z&flag&&d="),
        [("a", "1"), ("b", "x y"), ("c", " z"), ("flag", ""), ("d", "")].map(|(a, b)| (a.to_string(), b.to_string()))
    );
}

#[test]
fn responses() {
    let v = OperationValidator::compile(
        &op(json!({"responses": {
            "200": {"description": "ok", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/items.Item"}}}},
            "4XX": {"description": "err", "content": {"application/json": {"schema": {"type": "object", "required": ["error"]}}}},
            "204": {"description": "none"}
        }})),
        &[],
        &schemas(),
    )
    .unwrap();
    assert!(
        v.has_response_schema(200)
            && v.has_response_schema(404)
            && !v.has_response_schema(204)
            && !v.has_response_schema(500)
    );
    assert!(v.check_response(200, br#"{"name": "a", "price": 1}"#).is_empty());
    let issues = v.check_response(200, br#"{"name": "a"}"#);
    assert_eq!(issues[0].loc, [json!("response"), json!("price")]);
    assert_eq!(v.check_response(404, b"{}")[0].kind, "missing");
    assert_eq!(v.check_response(200, b"nope")[0].kind, "json_invalid");
}
