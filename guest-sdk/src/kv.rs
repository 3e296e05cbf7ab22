//! Key-value stores: state that outlives the request, kept by the host in
//! the stores the manifest lists in `key_value_stores`, through
//! `wasi:keyvalue` (`store`, `atomics`, `batch`).
//!
//! ```no_run
//! use wasmfn_sdk::{HttpError, Json, kv};
//!
//! #[derive(serde::Serialize, schemars::JsonSchema)]
//! struct Visits {
//!     count: u64,
//! }
//!
//! // `"key_value_stores": ["default"]` in fn.config.json.
//! fn visit() -> Result<Json<Visits>, HttpError> {
//!     let store = kv::Store::open("default")?;
//!     let count = store.increment("visits", 1)?;
//!     Ok(Json(Visits { count }))
//! }
//! ```
//!
//! Values are bytes; [`Store::get_json`] and [`Store::set_json`] keep a
//! typed value as JSON. The stores are the function's tenant's: every
//! function of the tenant that lists `default` shares it, and no other
//! tenant sees it. A write past one of the tenant's quotas, or a backend
//! that is down, answers [`Error::Other`] with the host's reason, and the
//! request goes on: the handler decides what to answer (`?` into an
//! [`HttpError`] answers `500`). See `docs/capabilities.md`.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::HttpError;
use crate::bindings::wasi::keyvalue::{atomics, batch, store};

/// One open store (`wasi:keyvalue`'s `bucket`).
pub struct Store {
    bucket: store::Bucket,
    name: String,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl Store {
    /// Opens the store `name` (1–64 of `a-z 0-9 _ -`); the manifest must
    /// list it in `key_value_stores`, or this answers
    /// [`Error::AccessDenied`].
    ///
    /// ```no_run
    /// let store = wasmfn_sdk::kv::Store::open("default")?;
    /// # Ok::<(), wasmfn_sdk::kv::Error>(())
    /// ```
    pub fn open(name: &str) -> Result<Store, Error> {
        let bucket = store::open(name).map_err(|e| Error::from_wit(name, e))?;
        Ok(Store {
            bucket,
            name: name.to_string(),
        })
    }

    /// The store's name, as opened.
    pub fn name(&self) -> &str {
        &self.name
    }

    fn fail(&self, e: store::Error) -> Error {
        Error::from_wit(&self.name, e)
    }

    /// The value of `key`, or `None` when it is not set. An empty value
    /// is a value (`Some(vec![])`).
    pub fn get(&self, key: &str) -> Result<Option<Vec<u8>>, Error> {
        self.bucket.get(key).map_err(|e| self.fail(e))
    }

    /// Sets `key` to `value`, replacing any value it had.
    pub fn set(&self, key: &str, value: impl AsRef<[u8]>) -> Result<(), Error> {
        self.bucket.set(key, value.as_ref()).map_err(|e| self.fail(e))
    }

    /// Removes `key`; nothing happens when it is not set.
    pub fn delete(&self, key: &str) -> Result<(), Error> {
        self.bucket.delete(key).map_err(|e| self.fail(e))
    }

    /// Whether `key` is set.
    pub fn exists(&self, key: &str) -> Result<bool, Error> {
        self.bucket.exists(key).map_err(|e| self.fail(e))
    }

    /// Every key of the store, in no particular order, read a page at a
    /// time as the iterator goes (`list-keys` with its cursor). A failed
    /// page is the last item.
    ///
    /// ```no_run
    /// # let store = wasmfn_sdk::kv::Store::open("default")?;
    /// let sessions: Vec<String> = store
    ///     .keys()
    ///     .filter(|k| k.as_ref().map_or(true, |k| k.starts_with("session:")))
    ///     .collect::<Result<_, _>>()?;
    /// # Ok::<(), wasmfn_sdk::kv::Error>(())
    /// ```
    pub fn keys(&self) -> Keys<'_> {
        Keys {
            store: self,
            walk: Walk::new(),
        }
    }

    /// Adds `delta` to the counter at `key` (created with `delta` when not
    /// set) and answers the new value, in one indivisible step: two
    /// requests that increment at once never get the same value. The
    /// counter is kept as decimal text (`"42"`); incrementing a value that
    /// is not one, or past `i64::MAX`, answers [`Error::Other`].
    pub fn increment(&self, key: &str, delta: u64) -> Result<u64, Error> {
        atomics::increment(&self.bucket, key, delta).map_err(|e| self.fail(e))
    }

    /// The values of `keys`, in their order; `None` for a key that is not
    /// set. One call to the host for all of them.
    pub fn get_many<K: AsRef<str>>(&self, keys: &[K]) -> Result<Vec<Option<Vec<u8>>>, Error> {
        let keys: Vec<String> = keys.iter().map(|k| k.as_ref().to_string()).collect();
        let pairs = batch::get_many(&self.bucket, &keys).map_err(|e| self.fail(e))?;
        Ok(values_in_order(&keys, pairs))
    }

    /// Sets every pair, in one call to the host. Under a quota it is all
    /// or nothing: a refused batch writes no pair.
    pub fn set_many<K, V>(&self, pairs: impl IntoIterator<Item = (K, V)>) -> Result<(), Error>
    where
        K: AsRef<str>,
        V: AsRef<[u8]>,
    {
        let pairs: Vec<(String, Vec<u8>)> = pairs
            .into_iter()
            .map(|(k, v)| (k.as_ref().to_string(), v.as_ref().to_vec()))
            .collect();
        batch::set_many(&self.bucket, &pairs).map_err(|e| self.fail(e))
    }

    /// Removes every key of `keys` that is set, in one call to the host.
    pub fn delete_many<K: AsRef<str>>(&self, keys: impl IntoIterator<Item = K>) -> Result<(), Error> {
        let keys: Vec<String> = keys.into_iter().map(|k| k.as_ref().to_string()).collect();
        batch::delete_many(&self.bucket, &keys).map_err(|e| self.fail(e))
    }

    /// The value of `key` parsed as JSON into `T`; `Ok(None)` when it is
    /// not set.
    ///
    /// ```no_run
    /// #[derive(serde::Serialize, serde::Deserialize)]
    /// struct Cart {
    ///     items: Vec<u32>,
    /// }
    ///
    /// let store = wasmfn_sdk::kv::Store::open("default")?;
    /// let mut cart: Cart = store.get_json("cart:ada")?.unwrap_or(Cart { items: vec![] });
    /// cart.items.push(7);
    /// store.set_json("cart:ada", &cart)?;
    /// # Ok::<(), wasmfn_sdk::kv::Error>(())
    /// ```
    pub fn get_json<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, Error> {
        self.get(key)?.map(|bytes| decode(&self.name, key, &bytes)).transpose()
    }

    /// Sets `key` to `value` written as JSON.
    pub fn set_json<T: Serialize + ?Sized>(&self, key: &str, value: &T) -> Result<(), Error> {
        self.set(key, encode(&self.name, key, value)?)
    }
}

/// The keys of a store, page by page (see [`Store::keys`]).
#[derive(Debug)]
pub struct Keys<'a> {
    store: &'a Store,
    walk: Walk,
}

impl Iterator for Keys<'_> {
    type Item = Result<String, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        let store = self.store;
        self.walk
            .next(|cursor| store.bucket.list_keys(cursor).map_err(|e| store.fail(e)))
    }
}

/// Where a walk through `list-keys` pages is.
#[derive(Debug)]
struct Walk {
    /// The rest of the page read last.
    page: std::vec::IntoIter<String>,
    /// The cursor of the page to read next; `None` once the last page (or
    /// an error) was read.
    next: Option<Option<u64>>,
}

impl Walk {
    /// Before the first page.
    fn new() -> Self {
        Self {
            page: Vec::new().into_iter(),
            next: Some(None),
        }
    }

    /// The next key, reading pages with `read` (a page may be empty and
    /// still not the last).
    fn next(
        &mut self,
        mut read: impl FnMut(Option<u64>) -> Result<store::KeyResponse, Error>,
    ) -> Option<Result<String, Error>> {
        loop {
            if let Some(key) = self.page.next() {
                return Some(Ok(key));
            }
            let cursor = self.next.take()?;
            match read(cursor) {
                Ok(page) => {
                    self.page = page.keys.into_iter();
                    self.next = page.cursor.map(Some);
                }
                Err(e) => return Some(Err(e)),
            }
        }
    }
}

/// The values of `keys` from `get-many`'s answer (`(key, value)` or
/// `none` per key, in order).
fn values_in_order(keys: &[String], pairs: Vec<Option<(String, Vec<u8>)>>) -> Vec<Option<Vec<u8>>> {
    let mut values: Vec<Option<Vec<u8>>> = pairs.into_iter().map(|p| p.map(|(_, v)| v)).collect();
    values.resize(keys.len(), None);
    values
}

fn decode<T: DeserializeOwned>(store: &str, key: &str, bytes: &[u8]) -> Result<T, Error> {
    serde_json::from_slice(bytes).map_err(|source| Error::Json {
        store: store.to_string(),
        key: key.to_string(),
        source,
    })
}

fn encode<T: Serialize + ?Sized>(store: &str, key: &str, value: &T) -> Result<Vec<u8>, Error> {
    serde_json::to_vec(value).map_err(|source| Error::Encode {
        store: store.to_string(),
        key: key.to_string(),
        source,
    })
}

/// Why a key-value operation failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The manifest does not list the store in `key_value_stores`
    /// (`access-denied`).
    AccessDenied {
        /// The store asked for.
        store: String,
    },
    /// The host knows no such store (`no-such-store`).
    NoSuchStore {
        /// The store asked for.
        store: String,
    },
    /// The host refused or failed the operation (`other`): a tenant quota
    /// (`key-value quota: …`), a value that is not a counter, a backend
    /// that is unavailable.
    Other {
        /// The store.
        store: String,
        /// What the host said.
        message: String,
    },
    /// The value is not JSON of the type asked for ([`Store::get_json`]).
    Json {
        /// The store.
        store: String,
        /// The key.
        key: String,
        /// What `serde_json` said.
        source: serde_json::Error,
    },
    /// The value cannot be written as JSON ([`Store::set_json`]): a map
    /// whose keys are not strings, say.
    Encode {
        /// The store.
        store: String,
        /// The key.
        key: String,
        /// What `serde_json` said.
        source: serde_json::Error,
    },
}

impl Error {
    fn from_wit(store: &str, e: store::Error) -> Self {
        let store = store.to_string();
        match e {
            store::Error::AccessDenied => Self::AccessDenied { store },
            store::Error::NoSuchStore => Self::NoSuchStore { store },
            store::Error::Other(message) => Self::Other { store, message },
        }
    }

    /// The store the error is about.
    pub fn store(&self) -> &str {
        match self {
            Self::AccessDenied { store }
            | Self::NoSuchStore { store }
            | Self::Other { store, .. }
            | Self::Json { store, .. }
            | Self::Encode { store, .. } => store,
        }
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::AccessDenied { store } => write!(
                f,
                "key-value store `{store}`: access denied; list it in `key_value_stores` of fn.config.json"
            ),
            Self::NoSuchStore { store } => write!(f, "key-value store `{store}`: no such store"),
            Self::Other { store, message } => write!(f, "key-value store `{store}`: {message}"),
            Self::Json { store, key, source } => write!(
                f,
                "key-value store `{store}`: the value of `{key}` is not JSON of the type asked for: {source}"
            ),
            Self::Encode { store, key, source } => {
                write!(f, "key-value store `{store}`: cannot write `{key}` as JSON: {source}")
            }
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Json { source, .. } | Self::Encode { source, .. } => Some(source),
            Self::AccessDenied { .. } | Self::NoSuchStore { .. } | Self::Other { .. } => None,
        }
    }
}

/// `500 internal`, naming the store; the whole error goes to stderr,
/// which the host logs under the function and the request id.
impl From<Error> for HttpError {
    fn from(e: Error) -> Self {
        eprintln!("{e}");
        HttpError::internal(format!(
            "the function's key-value store `{}` failed; see its log",
            e.store()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(keys: &[&str], cursor: Option<u64>) -> store::KeyResponse {
        store::KeyResponse {
            keys: keys.iter().map(|k| k.to_string()).collect(),
            cursor,
        }
    }

    /// Walks `pages` (by cursor: `None` is the first) as [`Keys`] does,
    /// and the cursors it asked for.
    fn walk(
        pages: &[(Option<u64>, Result<store::KeyResponse, Error>)],
    ) -> (Vec<String>, Vec<String>, Vec<Option<u64>>) {
        let mut walk = Walk::new();
        let (mut keys, mut errors, mut asked) = (vec![], vec![], vec![]);
        while let Some(item) = walk.next(|cursor| {
            asked.push(cursor);
            match pages.iter().find(|(c, _)| *c == cursor).map(|(_, p)| p) {
                Some(Ok(p)) => Ok(p.clone()),
                Some(Err(e)) => Err(Error::Other {
                    store: e.store().into(),
                    message: e.to_string(),
                }),
                None => panic!("asked for an unknown cursor {cursor:?}"),
            }
        }) {
            match item {
                Ok(k) => keys.push(k),
                Err(e) => errors.push(e.to_string()),
            }
        }
        (keys, errors, asked)
    }

    #[test]
    fn keys_walk_every_page_until_the_cursor_ends() {
        let (keys, errors, asked) = walk(&[
            (None, Ok(page(&["a", "b"], Some(2)))),
            // An empty page that is not the last (Redis' HSCAN has them).
            (Some(2), Ok(page(&[], Some(7)))),
            (Some(7), Ok(page(&["c"], None))),
        ]);
        assert_eq!(keys, ["a", "b", "c"]);
        assert!(errors.is_empty());
        assert_eq!(asked, [None, Some(2), Some(7)]);

        let (keys, _, asked) = walk(&[(None, Ok(page(&[], None)))]);
        assert!(keys.is_empty());
        assert_eq!(asked, [None]);
    }

    #[test]
    fn a_failed_page_is_the_last_item() {
        let down = Error::Other {
            store: "default".into(),
            message: "the key-value store is unavailable".into(),
        };
        let (keys, errors, asked) = walk(&[(None, Ok(page(&["a"], Some(1)))), (Some(1), Err(down))]);
        assert_eq!(keys, ["a"]);
        assert_eq!(errors.len(), 1);
        assert_eq!(asked, [None, Some(1)]);
    }

    #[test]
    fn get_many_answers_values_in_the_order_of_the_keys() {
        let keys: Vec<String> = ["a", "gone", "b"].iter().map(|k| k.to_string()).collect();
        let pairs = vec![Some(("a".into(), b"1".to_vec())), None, Some(("b".into(), vec![]))];
        assert_eq!(values_in_order(&keys, pairs), [Some(b"1".to_vec()), None, Some(vec![])]);
        assert_eq!(values_in_order(&keys[..1], vec![]), [None]);
    }

    #[test]
    fn errors_say_which_store_and_how_to_open_it() {
        let cases = [
            (
                store::Error::AccessDenied,
                "key-value store `carts`: access denied; list it in `key_value_stores` of fn.config.json",
            ),
            (store::Error::NoSuchStore, "key-value store `carts`: no such store"),
            (
                store::Error::Other("key-value quota: `kv_max_keys` (10) reached".into()),
                "key-value store `carts`: key-value quota: `kv_max_keys` (10) reached",
            ),
        ];
        for (wit, said) in cases {
            let e = Error::from_wit("carts", wit);
            assert_eq!(e.to_string(), said);
            assert_eq!(e.store(), "carts");
            assert!(std::error::Error::source(&e).is_none());
        }
        assert!(matches!(
            Error::from_wit("x", store::Error::AccessDenied),
            Error::AccessDenied { .. }
        ));
    }

    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    struct Cart {
        items: Vec<u32>,
    }

    #[test]
    fn json_values_round_trip_and_a_bad_one_names_its_key() {
        let bytes = encode("default", "cart", &Cart { items: vec![1, 2] }).unwrap();
        assert_eq!(bytes, br#"{"items":[1,2]}"#);
        assert_eq!(
            decode::<Cart>("default", "cart", &bytes).unwrap(),
            Cart { items: vec![1, 2] }
        );
        let e = decode::<Cart>("default", "cart", b"{\"items\": \"many\"}").unwrap_err();
        assert!(matches!(&e, Error::Json { key, .. } if key == "cart"));
        assert!(
            e.to_string()
                .starts_with("key-value store `default`: the value of `cart` is not JSON of the type asked for: "),
            "{e}"
        );
        assert!(std::error::Error::source(&e).is_some());
        // A map with keys JSON cannot have.
        let odd: std::collections::BTreeMap<(u8, u8), u8> = [((1, 2), 3)].into();
        let e = encode("default", "odd", &odd).unwrap_err();
        assert!(matches!(e, Error::Encode { .. }), "{e}");
        assert!(
            e.to_string()
                .starts_with("key-value store `default`: cannot write `odd` as JSON: "),
            "{e}"
        );
    }

    #[test]
    fn an_error_answers_500_naming_the_store() {
        let answer = HttpError::from(Error::from_wit("default", store::Error::Other("unavailable".into())));
        assert_eq!((answer.status, answer.code.as_str()), (500, "internal"));
        assert_eq!(
            answer.message,
            "the function's key-value store `default` failed; see its log"
        );
    }
}
