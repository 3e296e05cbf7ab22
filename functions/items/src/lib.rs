//! `/items`: a CRUD-style API whose items live in the key-value store
//! `default` (`"key_value_stores": ["default"]` in fn.config.json), so
//! what a request creates or deletes stays so for the next request and
//! across restarts of the host.
//!
//! Each item is the JSON of `item:<id>`; ids come from the counter
//! `next_id` (`increment`: two requests never get the same one). The
//! first request to a store that was never seeded (no key `seeded`) fills
//! it with a small catalogue.
//!
//! The host validates every request against the schemas below before this
//! code runs: a name that is too long, a negative price or a `limit` of
//! 1000 never reach it.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use wasmfn_sdk::kv::Store;
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

/// The counter ids are taken from.
const NEXT_ID: &str = "next_id";
/// Set (to `1`) by the request that seeds the store.
const SEEDED: &str = "seeded";
/// Every item's key starts with this.
const ITEM: &str = "item:";

fn key(id: u32) -> String {
    format!("{ITEM}{id}")
}

/// The store `default`, seeded with the catalogue the first time.
fn open() -> Result<Store, HttpError> {
    let store = Store::open("default")?;
    // `increment` answers 1 to one request only: if two arrive at a new
    // store at once, one seeds it.
    if !store.exists(SEEDED)? && store.increment(SEEDED, 1)? == 1 {
        seed(&store)?;
    }
    Ok(store)
}

fn seed(store: &Store) -> Result<(), HttpError> {
    let catalogue: [(&str, u32, &[&str]); 4] = [
        ("Teapot", 2500, &["kitchen"]),
        ("Lamp", 4200, &["home", "light"]),
        ("Notebook", 350, &["office"]),
        ("Kettle", 3100, &["kitchen"]),
    ];
    for (name, price_cents, tags) in catalogue {
        let item = Item {
            id: next_id(store)?,
            name: name.into(),
            price_cents,
            tags: tags.iter().map(|t| t.to_string()).collect(),
        };
        store.set_json(&key(item.id), &item)?;
    }
    Ok(())
}

fn next_id(store: &Store) -> Result<u32, HttpError> {
    let id = store.increment(NEXT_ID, 1)?;
    u32::try_from(id).map_err(|_| HttpError::internal(format!("item ids are used up ({id})")))
}

/// Every item, by id.
fn all(store: &Store) -> Result<Vec<Item>, HttpError> {
    let keys: Vec<String> = store
        .keys()
        .filter(|k| k.as_ref().map_or(true, |k| k.starts_with(ITEM)))
        .collect::<Result<_, _>>()?;
    let mut items = Vec::with_capacity(keys.len());
    for (key, value) in keys.iter().zip(store.get_many(&keys)?) {
        // Deleted since the keys were listed.
        let Some(bytes) = value else { continue };
        let item: Item =
            serde_json::from_slice(&bytes).map_err(|e| HttpError::internal(format!("`{key}` is not an item: {e}")))?;
        items.push(item);
    }
    items.sort_by_key(|i| i.id);
    Ok(items)
}

fn list(Query(q): Query<ListQuery>) -> Result<Json<Vec<Item>>, HttpError> {
    let limit = q.limit.unwrap_or(20) as usize;
    let items = all(&open()?)?
        .into_iter()
        .filter(|i| q.tag.as_ref().is_none_or(|t| i.tags.contains(t)))
        .take(limit)
        .collect();
    Ok(Json(items))
}

fn show(Path(p): Path<ItemPath>) -> Result<Json<Item>, HttpError> {
    open()?
        .get_json(&key(p.id))?
        .map(Json)
        .ok_or_else(|| HttpError::not_found(format!("no item with id {}", p.id)))
}

fn create(Json(new): Json<NewItem>) -> Result<Created<Item>, HttpError> {
    let store = open()?;
    if all(&store)?.iter().any(|i| i.name.eq_ignore_ascii_case(&new.name)) {
        return Err(HttpError::conflict(format!("an item named `{}` exists", new.name)));
    }
    let item = Item {
        id: next_id(&store)?,
        name: new.name,
        price_cents: new.price_cents,
        tags: new.tags,
    };
    store.set_json(&key(item.id), &item)?;
    Ok(Created(item))
}

fn delete(Path(p): Path<ItemPath>) -> Result<NoContent, HttpError> {
    let store = open()?;
    if !store.exists(&key(p.id))? {
        return Err(HttpError::not_found(format!("no item with id {}", p.id)));
    }
    store.delete(&key(p.id))?;
    Ok(NoContent)
}

fn export() -> Result<JsonLines<std::vec::IntoIter<Item>>, HttpError> {
    Ok(JsonLines(all(&open()?)?.into_iter()))
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
