//! Merging fragments: namespaces, `$ref` rewriting, prefixes, hidden
//! aliases, functions without a fragment.

use std::path::PathBuf;

use http::Method;
use serde_json::{Value, json};

use super::*;
use wasmfn_manifest::Policy;
use wasmfn_manifest::discovery::FunctionSpec;
use wasmfn_routing::RoutePattern;

fn spec(name: &str, routes: &[&str], hidden: &[&str]) -> FunctionSpec {
    FunctionSpec {
        name: name.into(),
        dir: PathBuf::from(name),
        manifest_path: PathBuf::from(format!("{name}/fn.config.json")),
        component_path: PathBuf::from(format!("{name}/f.wasm")),
        component_ref: None,
        description: Some(format!("{name} function")),
        routes: routes.iter().map(|r| RoutePattern::parse(r).unwrap()).collect(),
        schema_hidden: hidden.iter().map(|r| RoutePattern::parse(r).unwrap()).collect(),
        route_auth: vec![],
        openapi_path: None,
        methods: vec![Method::GET, Method::POST],
        hosts: vec![],
        force_url: false,
        policy: Policy::default(),
        schedules: vec![],
    }
}

fn items_fragment() -> Fragment {
    Fragment::parse(
        &json!({
            "info": {"title": "Items"},
            "paths": {
                "/": {"get": {"operationId": "list", "responses": {"200": {"description": "ok",
                        "content": {"application/json": {"schema": {"type": "array", "items": {"$ref": "#/components/schemas/Item"}}}}}}}},
                "/{id}": {"get": {"parameters": [{"name": "id", "in": "path", "required": true, "schema": {"type": "integer"}}]}}
            },
            "components": {"schemas": {"Item": {"type": "object", "properties": {"tag": {"$ref": "#/components/schemas/Tag"}}},
                                       "Tag": {"type": "string"}}}
        })
        .to_string(),
    )
    .unwrap()
}

fn all_active(mounts: &[Mount]) -> Vec<(&Mount, Vec<Method>)> {
    mounts.iter().map(|m| (m, m.methods.clone())).collect()
}

#[test]
fn namespaces() {
    assert_eq!(namespace("items"), "items");
    assert_eq!(namespace("users/[id]"), "users.id");
    assert_eq!(namespace("docs/[[...path]]"), "docs.path");
    assert_eq!(namespace("."), "root");
}

#[test]
fn mounting_namespacing_and_refs() {
    let frag = items_fragment();
    let a = spec("shop/items", &["/items", "/v1/items"], &["/v1/items"]);
    let b = spec("orders", &["/orders/{org}"], &[]);
    let ma = build_mounts(&a, "shop.items", Some(&frag)).unwrap();
    let mb = build_mounts(&b, "orders", Some(&frag)).unwrap();
    let shown: Vec<String> = ma
        .iter()
        .map(|m| format!("{} {:?} {}", m.pattern, m.declared_path, m.in_schema))
        .collect();
    assert_eq!(
        shown,
        [
            "/items Some(\"/\") true",
            "/items/{id} Some(\"/{id}\") true",
            "/v1/items Some(\"/\") false",
            "/v1/items/{id} Some(\"/{id}\") false"
        ]
    );
    let functions = [
        DocFunction {
            name: "shop/items",
            namespace: "shop.items",
            description: None,
            fragment: Some(&frag),
            origin: None,
        },
        DocFunction {
            name: "orders",
            namespace: "orders",
            description: Some("Orders"),
            fragment: Some(&frag),
            origin: None,
        },
    ];
    let mut routes = all_active(&ma);
    routes.extend(all_active(&mb));
    let doc = document(&functions, routes, None);

    assert_eq!(doc["openapi"], "3.1.0");
    let paths: Vec<&String> = doc["paths"].as_object().unwrap().keys().collect();
    assert_eq!(
        paths,
        ["/items", "/items/{id}", "/orders/{org}", "/orders/{org}/{id}"],
        "hidden aliases are left out"
    );
    // Names collide across functions; namespaces keep them apart and refs follow.
    let schemas = doc["components"]["schemas"].as_object().unwrap();
    for name in [
        "shop.items.Item",
        "shop.items.Tag",
        "orders.Item",
        "orders.Tag",
        "wasmfn.Error",
        "wasmfn.ValidationError",
    ] {
        assert!(schemas.contains_key(name), "{name} missing: {:?}", schemas.keys());
    }
    assert_eq!(
        schemas["orders.Item"]["properties"]["tag"]["$ref"],
        "#/components/schemas/orders.Tag"
    );
    let list = &doc["paths"]["/orders/{org}"]["get"];
    assert_eq!(list["operationId"], "orders.list");
    assert_eq!(
        list["responses"]["200"]["content"]["application/json"]["schema"]["items"]["$ref"],
        "#/components/schemas/orders.Item"
    );
    // The prefix's parameter is declared, typed as text without control characters.
    assert_eq!(
        list["parameters"],
        json!([{"name": "org", "in": "path", "required": true,
                "schema": {"type": "string", "pattern": "^[^\\u0000-\\u001F\\u007F]*$"}}])
    );
    let show = &doc["paths"]["/orders/{org}/{id}"]["get"];
    let names: Vec<&str> = show["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["id", "org"]);
    assert_eq!(show["operationId"], "orders.get_id");
    assert!(show["responses"]["422"].is_object(), "validated operations declare 422");
    // And what the host answers around running the function (default policy: 429 on overflow).
    for status in ["429", "500", "503", "504"] {
        assert_eq!(
            show["responses"][status]["content"]["application/json"]["schema"]["$ref"],
            "#/components/schemas/wasmfn.Error",
            "{status}"
        );
    }
    assert!(
        show["responses"]["504"]["description"]
            .as_str()
            .unwrap()
            .contains("ms)"),
        "names the timeout"
    );
    // operationIds are unique across the document.
    let mut ids: Vec<String> = Vec::new();
    for item in doc["paths"].as_object().unwrap().values() {
        for op in item.as_object().unwrap().values() {
            ids.push(op["operationId"].as_str().unwrap().to_string());
        }
    }
    let n = ids.len();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), n);
    assert_eq!(doc["tags"][0], json!({"name": "shop.items", "description": "Items"}));
}

#[test]
fn aliases_get_distinct_operation_ids_when_shown() {
    let frag = items_fragment();
    let a = spec("items", &["/items", "/v2/items"], &[]);
    let mounts = build_mounts(&a, "items", Some(&frag)).unwrap();
    let ids: Vec<Value> = mounts
        .iter()
        .map(|m| m.operations[0].1.doc["operationId"].clone())
        .collect();
    assert_eq!(
        ids,
        [
            json!("items.list"),
            json!("items.get_id"),
            json!("items.list.v2_items"),
            json!("items.get_id.v2_items")
        ]
    );
}

#[test]
fn functions_without_a_fragment_still_appear() {
    let s = spec("users/[id]", &["/users/{id}"], &[]);
    let mounts = build_mounts(&s, "users.id", None).unwrap();
    assert_eq!(mounts.len(), 1);
    assert_eq!(mounts[0].methods, [Method::GET, Method::POST]);
    assert!(mounts[0].operations.iter().all(|(_, o)| o.validator.is_none()));
    let f = [DocFunction {
        name: "users/[id]",
        namespace: "users.id",
        description: None,
        fragment: None,
        origin: None,
    }];
    // Only the methods that actually serve are documented.
    let doc = document(&f, vec![(&mounts[0], vec![Method::GET, Method::HEAD])], None);
    let item = doc["paths"]["/users/{id}"].as_object().unwrap();
    assert_eq!(item.keys().collect::<Vec<_>>(), ["get"]);
    assert_eq!(item["get"]["parameters"][0]["name"], "id");
    // Its own answers are the `default`; the host's are stated beside them
    // (no 415 or 422: nothing is declared to check a request against).
    let responses = item["get"]["responses"].as_object().unwrap();
    assert_eq!(
        responses.keys().collect::<Vec<_>>(),
        ["default", "400", "413", "429", "500", "503", "504"]
    );
    assert!(
        responses["400"]["description"]
            .as_str()
            .unwrap()
            .contains("invalid_path")
    );
    let schemas = doc["components"]["schemas"].as_object().unwrap();
    assert_eq!(
        schemas.keys().collect::<Vec<_>>(),
        ["wasmfn.Error", "wasmfn.ValidationError"]
    );
}

#[test]
fn every_operation_states_413_body_or_not() {
    let frag = items_fragment();
    let mut s = spec("items", &["/items"], &[]);
    s.policy.max_body_bytes = 1024;
    s.policy.overflow_status = 503;
    for fragment in [Some(&frag), None] {
        for mount in build_mounts(&s, "items", fragment).unwrap() {
            for (method, op) in &mount.operations {
                let r = &op.doc["responses"];
                assert!(op.doc.get("requestBody").is_none());
                assert_eq!(
                    r["413"]["content"]["application/json"]["schema"]["$ref"], "#/components/schemas/wasmfn.Error",
                    "{method} {}",
                    mount.pattern
                );
                assert!(r["413"]["description"].as_str().unwrap().contains("(1024 bytes)"));
                // With `overflow_status: 503`, a 429 is the tenant's rate limit only.
                let too_many = r["429"]["description"].as_str().unwrap();
                assert!(
                    too_many.contains("rate_limited") && !too_many.contains("too_many_requests"),
                    "{too_many}"
                );
                assert!(r["503"].is_object());
                assert!(op.doc.get("servers").is_none() && r.get("421").is_none(), "any host");
            }
        }
    }
}

#[test]
fn routes_restricted_to_hosts_state_their_servers_and_421() {
    let frag = items_fragment();
    let mut s = spec("internal", &["/internal"], &[]);
    s.hosts = ["admin.localhost", "*.example.org:8443"]
        .iter()
        .map(|h| wasmfn_routing::HostRule::parse(h).unwrap())
        .collect();
    let scheme = json!({"enum": ["https", "http"], "default": "https",
        "description": "`http` as wasmfn serves it; `https` through a proxy that terminates TLS in front of it."});
    for fragment in [Some(&frag), None] {
        for mount in build_mounts(&s, "internal", fragment).unwrap() {
            for (_, op) in &mount.operations {
                let servers = op.doc["servers"].as_array().unwrap();
                assert_eq!(servers[0]["url"], "{scheme}://admin.localhost");
                assert_eq!(servers[0]["variables"], json!({"scheme": scheme}));
                assert!(servers[0]["description"].as_str().unwrap().contains("on any port"));
                assert_eq!(servers[1]["url"], "{scheme}://{subdomain}.example.org:8443");
                assert_eq!(servers[1]["variables"]["subdomain"]["default"], "www");
                assert_eq!(
                    op.doc["responses"]["421"]["description"],
                    "The request's `Host` is none of this operation's `servers`: `misdirected_request`."
                );
            }
        }
    }
}

#[test]
fn mounting_errors_name_the_paths() {
    let frag = items_fragment();
    let s = spec("files", &["/files/{...rest}"], &[]);
    let e = build_mounts(&s, "files", Some(&frag)).unwrap_err();
    assert!(matches!(e, MountError::Join { .. }), "{e:?}");
    let e = e.to_string();
    assert!(e.contains("cannot mount `/{id}` under route `/files/{...rest}`"), "{e}");
    let s = spec("dup", &["/x/{id}"], &[]);
    let e = build_mounts(&s, "dup", Some(&frag)).unwrap_err().to_string();
    assert!(e.contains("parameter `id` appears twice"), "{e}");
}
