//! The fragment an app describes, and dispatch, tested natively.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::*;

/// An item.
#[derive(Serialize, Deserialize, JsonSchema)]
struct Item {
    id: u32,
    #[schemars(length(min = 1, max = 50))]
    name: String,
    #[schemars(range(min = 0.0))]
    price: f64,
}

#[derive(Deserialize, JsonSchema)]
struct NewItem {
    #[schemars(length(min = 1, max = 50))]
    name: String,
    price: f64,
}

#[derive(Deserialize, JsonSchema)]
struct Page {
    /// How many to return.
    #[schemars(range(min = 1, max = 100))]
    limit: Option<u32>,
}

fn list(Query(page): Query<Page>) -> Json<Vec<Item>> {
    let n = page.limit.unwrap_or(2);
    Json(
        (0..n)
            .map(|i| Item {
                id: i,
                name: format!("item {i}"),
                price: 1.0,
            })
            .collect(),
    )
}

fn create(Json(new): Json<NewItem>) -> Result<Created<Item>, HttpError> {
    Ok(Created(Item {
        id: 9,
        name: new.name,
        price: new.price,
    }))
}

fn show(Path(id): Path<u32>) -> Result<Json<Item>, HttpError> {
    if id == 404 {
        return Err(HttpError::not_found(format!("no item {id}")));
    }
    Ok(Json(Item {
        id,
        name: "x".into(),
        price: 2.0,
    }))
}

fn stream() -> JsonLines<std::vec::IntoIter<Item>> {
    JsonLines(
        vec![
            Item {
                id: 1,
                name: "a".into(),
                price: 0.0,
            },
            Item {
                id: 2,
                name: "b".into(),
                price: 0.0,
            },
        ]
        .into_iter(),
    )
}

fn accept() -> WithHeaders<JsonStatus<202, Item>> {
    WithHeaders(
        JsonStatus(Item {
            id: 1,
            name: "job".into(),
            price: 0.0,
        }),
        vec![("location", "/jobs/1".into())],
    )
}

fn raw() -> Bytes {
    Bytes("image/png", vec![0x89, b'P', b'N', b'G'])
}

fn app() -> App {
    App::new(Some("Items"))
        .route(Method::Get, "/", "list", &[" List items.", "", " Newest first."], list)
        .route(Method::Post, "/", "create", &[], create)
        .route(Method::Get, "/{id}", "show", &[], show)
        .route(Method::Get, "/stream", "stream", &[], stream)
        .route(Method::Post, "/jobs", "accept", &[], accept)
        .route(Method::Get, "/raw", "raw", &[], raw)
}

#[test]
fn describe_declares_every_operation() {
    let doc: Value = serde_json::from_str(&app().describe()).unwrap();
    assert_eq!(doc["info"]["title"], "Items");
    let list = &doc["paths"]["/"]["get"];
    assert_eq!(list["operationId"], "list");
    assert_eq!(list["summary"], "List items.");
    assert_eq!(list["description"], "Newest first.");
    assert_eq!(list["parameters"][0]["name"], "limit");
    assert_eq!(list["parameters"][0]["in"], "query");
    assert_eq!(list["parameters"][0]["required"], false);
    assert_eq!(list["parameters"][0]["schema"]["maximum"], 100);
    assert_eq!(
        list["responses"]["200"]["content"]["application/json"]["schema"]["items"]["$ref"],
        "#/components/schemas/Item"
    );

    let create = &doc["paths"]["/"]["post"];
    assert_eq!(create["requestBody"]["required"], true);
    assert_eq!(
        create["requestBody"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/NewItem"
    );
    assert!(create["responses"]["201"].is_object());
    assert_eq!(
        create["responses"]["default"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/ErrorBody"
    );

    let show = &doc["paths"]["/{id}"]["get"];
    assert_eq!(
        show["parameters"],
        json!([{"name": "id", "in": "path", "required": true,
                "schema": {"type": "integer", "format": "uint32", "minimum": 0, "maximum": 4294967295u64}}])
    );
    assert!(show["responses"]["400"].is_object(), "extractors declare their 400");

    let stream = &doc["paths"]["/stream"]["get"]["responses"]["200"]["content"][JSON_LINES];
    assert_eq!(stream["itemSchema"]["$ref"], "#/components/schemas/Item");

    assert_eq!(
        doc["paths"]["/jobs"]["post"]["responses"]["202"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/Item"
    );
    assert!(doc["paths"]["/raw"]["get"]["responses"]["200"]["content"]["*/*"].is_object());

    let schemas = &doc["components"]["schemas"];
    assert_eq!(schemas["Item"]["description"], "An item.");
    assert_eq!(schemas["Item"]["properties"]["name"]["minLength"], 1);
    assert_eq!(schemas["Item"]["properties"]["price"]["minimum"], 0.0);
    assert!(schemas["NewItem"].is_object());
}

fn body(r: Response) -> (u16, String) {
    let text = match r.body {
        ResponseBody::Bytes(b) => String::from_utf8(b).unwrap(),
        ResponseBody::Stream(s) => s.map(|c| String::from_utf8(c).unwrap()).collect(),
    };
    (r.status, text)
}

#[test]
fn dispatch_and_extractors() {
    let app = app();
    let (s, b) = body(app.serve(&mut Request::builder(Method::Get, "/?limit=1")));
    assert_eq!((s, b.as_str()), (200, r#"[{"id":0,"name":"item 0","price":1.0}]"#));
    let (s, b) = body(app.serve(&mut Request::builder(Method::Get, "/7").param("id", "7")));
    assert_eq!((s, b.as_str()), (200, r#"{"id":7,"name":"x","price":2.0}"#));
    let (s, b) = body(app.serve(&mut Request::builder(Method::Get, "/404").param("id", "404")));
    assert_eq!(
        (s, b.as_str()),
        (404, r#"{"error":{"code":"not_found","message":"no item 404"}}"#)
    );
    let (s, _) = body(app.serve(&mut Request::builder(Method::Post, "/").body(r#"{"name":"pen","price":3}"#)));
    assert_eq!(s, 201);
    let (s, b) = body(app.serve(&mut Request::builder(Method::Get, "/stream")));
    assert_eq!(s, 200);
    assert_eq!(b.lines().count(), 2);
    let (s, _) = body(app.serve(&mut Request::builder(Method::Delete, "/")));
    assert_eq!(s, 404);
    let r = app.serve(&mut Request::builder(Method::Post, "/jobs"));
    assert!(r.headers.iter().any(|(k, v)| k == "location" && v == b"/jobs/1"));
    assert_eq!(body(r).0, 202);
    let r = app.serve(&mut Request::builder(Method::Get, "/raw"));
    assert!(r.headers.iter().any(|(k, v)| k == "content-type" && v == b"image/png"));
    // HEAD is served by GET.
    let (s, _) = body(app.serve(&mut Request::builder(Method::Head, "/")));
    assert_eq!(s, 200);
}

fn raw_head() -> WithHeaders<JsonStatus<204, Item>> {
    WithHeaders(
        JsonStatus(Item {
            id: 0,
            name: String::new(),
            price: 0.0,
        }),
        vec![("x-head", "declared".into())],
    )
}

#[test]
fn a_declared_head_operation_serves_head_requests() {
    let app = app().route(Method::Head, "/raw", "raw_head", &[], raw_head);
    let r = app.serve(&mut Request::builder(Method::Head, "/raw"));
    assert!(
        r.headers.iter().any(|(k, v)| k == "x-head" && v == b"declared"),
        "the head operation ran, not the get one"
    );
    // A path without one still answers HEAD with its get operation.
    let (s, _) = body(app.serve(&mut Request::builder(Method::Head, "/stream")));
    assert_eq!(s, 200);
}
