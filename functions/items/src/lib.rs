//! `/items`: a CRUD-style API over in-memory data. Every request runs in a
//! fresh instance, so the data is the built-in catalogue on every call:
//! creating or deleting answers as if it happened, and nothing persists.
//!
//! The host validates every request against the schemas below before this
//! code runs: a name that is too long, a negative price or a `limit` of
//! 1000 never reach it.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use wasmfn_sdk::{Created, HttpError, Json, JsonLines, NoContent, Path, Query};

/// An item in the catalogue.
#[derive(Clone, Serialize, Deserialize, JsonSchema)]
struct Item {
    /// Unique id.
    id: u32,
    /// Display name.
    #[schemars(length(min = 1, max = 64))]
    name: String,
    /// Price in cents.
    #[schemars(range(min = 0))]
    price_cents: u32,
    /// Free-form labels.
    tags: Vec<String>,
}

/// What a client sends to create an item.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct NewItem {
    /// Display name, 1 to 64 characters.
    #[schemars(length(min = 1, max = 64), example = &"Pen")]
    name: String,
    /// Price in cents, not negative.
    #[schemars(range(min = 0, max = 10_000_000), example = 120)]
    price_cents: u32,
    /// At most 5 labels.
    #[serde(default)]
    #[schemars(length(max = 5), example = example_tags())]
    tags: Vec<String>,
}

/// The example of `tags`: schemars takes a call, not an array literal.
fn example_tags() -> [&'static str; 1] {
    ["office"]
}

#[derive(Deserialize, JsonSchema)]
struct ListQuery {
    /// How many items to return, 1 to 100.
    #[schemars(range(min = 1, max = 100), example = 10)]
    limit: Option<u32>,
    /// Only items with this tag.
    #[schemars(example = &"kitchen")]
    tag: Option<String>,
}

#[derive(Deserialize, JsonSchema)]
struct ItemPath {
    /// The item's id.
    #[schemars(range(min = 1), example = 1)]
    id: u32,
}

fn catalogue() -> Vec<Item> {
    let item = |id, name: &str, price_cents, tags: &[&str]| Item {
        id,
        name: name.into(),
        price_cents,
        tags: tags.iter().map(|t| t.to_string()).collect(),
    };
    vec![
        item(1, "Teapot", 2500, &["kitchen"]),
        item(2, "Lamp", 4200, &["home", "light"]),
        item(3, "Notebook", 350, &["office"]),
        item(4, "Kettle", 3100, &["kitchen"]),
    ]
}

fn list(Query(q): Query<ListQuery>) -> Json<Vec<Item>> {
    let limit = q.limit.unwrap_or(20) as usize;
    let items = catalogue()
        .into_iter()
        .filter(|i| q.tag.as_ref().is_none_or(|t| i.tags.contains(t)))
        .take(limit)
        .collect();
    Json(items)
}

fn show(Path(p): Path<ItemPath>) -> Result<Json<Item>, HttpError> {
    catalogue()
        .into_iter()
        .find(|i| i.id == p.id)
        .map(Json)
        .ok_or_else(|| HttpError::not_found(format!("no item with id {}", p.id)))
}

fn create(Json(new): Json<NewItem>) -> Result<Created<Item>, HttpError> {
    if catalogue().iter().any(|i| i.name.eq_ignore_ascii_case(&new.name)) {
        return Err(HttpError::conflict(format!("an item named `{}` exists", new.name)));
    }
    let id = catalogue().iter().map(|i| i.id).max().unwrap_or(0) + 1;
    Ok(Created(Item {
        id,
        name: new.name,
        price_cents: new.price_cents,
        tags: new.tags,
    }))
}

fn delete(Path(p): Path<ItemPath>) -> Result<NoContent, HttpError> {
    if catalogue().iter().any(|i| i.id == p.id) {
        Ok(NoContent)
    } else {
        Err(HttpError::not_found(format!("no item with id {}", p.id)))
    }
}

fn export() -> JsonLines<std::vec::IntoIter<Item>> {
    JsonLines(catalogue().into_iter())
}

wasmfn_sdk::function! {
    title: "Items",
    /// Lists items.
    ///
    /// Filter by `tag`; at most `limit` items.
    get "/" => list,
    /// Creates an item.
    post "/" => create,
    /// Exports every item as JSON Lines, one per line, streamed.
    get "/export" => export,
    /// Shows one item.
    get "/{id}" => show,
    /// Deletes an item.
    delete "/{id}" => delete,
}
