//! The function's configuration: the `config` values of its manifest
//! (merged through the policy overlays above it) and the values of the
//! secrets it lists, read through `wasi:config/store`.
//!
//! ```no_run
//! use wasmfn_sdk::{Json, config};
//!
//! #[derive(serde::Serialize, schemars::JsonSchema)]
//! struct Greeting {
//!     message: String,
//! }
//!
//! fn greet() -> Json<Greeting> {
//!     // `"config": {"greeting": "Hello"}` in fn.config.json.
//!     let greeting = config::get("greeting").unwrap_or_else(|| "Hello".into());
//!     Json(Greeting { message: format!("{greeting}, world!") })
//! }
//! ```
//!
//! Read values while a request is handled: they are the function's as of
//! its last load, and a changed value loads the function again, so a
//! request never sees a stale one. See `docs/capabilities.md`.

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;

use crate::HttpError;
use crate::bindings::wasi::config::store;

/// The value of `key`, or `None` when the function has no such key.
///
/// A listed secret is read the same way (see [`crate::secret::get`]).
///
/// # Panics
///
/// When the store answers an error, which the wasmfn host never does
/// (another host might): the request then fails with `500
/// function_error`, and the message, naming the key, is in the log.
///
/// ```no_run
/// let base = wasmfn_sdk::config::get("api_base").unwrap_or_else(|| "https://api.example.com".into());
/// ```
pub fn get(key: &str) -> Option<String> {
    store::get(key).unwrap_or_else(|e| panic!("{}", Error::store(key, e)))
}

/// Every key and value the function may read, its listed secrets
/// included, in key order.
///
/// # Panics
///
/// As [`get`], when the store answers an error.
///
/// ```no_run
/// for (key, value) in wasmfn_sdk::config::get_all() {
///     # let _ = (key, value);
/// }
/// ```
pub fn get_all() -> BTreeMap<String, String> {
    match store::get_all() {
        Ok(pairs) => pairs.into_iter().collect(),
        Err(e) => panic!("cannot read the config: wasi:config/store failed: {}", said(e)),
    }
}

/// The value of `key` parsed as JSON into `T`; `Ok(None)` when the
/// function has no such key.
///
/// An [`Error`] converts into a `500` [`HttpError`], so `?` works in a
/// handler that returns `Result<_, HttpError>`.
///
/// ```no_run
/// use wasmfn_sdk::{HttpError, Text, config};
///
/// #[derive(serde::Deserialize)]
/// struct Limits {
///     max_items: u32,
/// }
///
/// // `"config": {"limits": "{\"max_items\": 50}"}` in fn.config.json.
/// fn limits() -> Result<Text, HttpError> {
///     let limits: Limits = config::get_json("limits")?.unwrap_or(Limits { max_items: 10 });
///     Ok(Text(limits.max_items.to_string()))
/// }
/// ```
///
/// Meant for `config` values: a secret that fails to parse would have
/// parts of it quoted in the error.
pub fn get_json<T: DeserializeOwned>(key: &str) -> Result<Option<T>, Error> {
    let value = store::get(key).map_err(|e| Error::store(key, e))?;
    decode(key, value)
}

/// `value` (of `key`) parsed as JSON into `T`.
fn decode<T: DeserializeOwned>(key: &str, value: Option<String>) -> Result<Option<T>, Error> {
    value
        .map(|text| {
            serde_json::from_str(&text).map_err(|source| Error::Json {
                key: key.to_string(),
                source,
            })
        })
        .transpose()
}

/// What the store said.
fn said(e: store::Error) -> String {
    match e {
        store::Error::Upstream(m) => format!("upstream: {m}"),
        store::Error::Io(m) => format!("io: {m}"),
    }
}

/// Why a configuration value could not be read.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The store answered an error (`wasi:config/store`'s `error`), which
    /// the wasmfn host never does.
    Store {
        /// The key asked for.
        key: String,
        /// What the store said: `upstream: …` or `io: …`.
        message: String,
    },
    /// The value is not JSON of the type asked for.
    Json {
        /// The key asked for.
        key: String,
        /// What `serde_json` said.
        source: serde_json::Error,
    },
}

impl Error {
    fn store(key: &str, e: store::Error) -> Self {
        Self::Store {
            key: key.to_string(),
            message: said(e),
        }
    }

    /// The key the error is about.
    pub fn key(&self) -> &str {
        match self {
            Self::Store { key, .. } | Self::Json { key, .. } => key,
        }
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Store { key, message } => {
                write!(f, "cannot read config `{key}`: wasi:config/store failed: {message}")
            }
            Self::Json { key, source } => write!(f, "config `{key}` is not JSON of the type asked for: {source}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Store { .. } => None,
            Self::Json { source, .. } => Some(source),
        }
    }
}

/// `500 internal`, naming the key; the whole error goes to stderr, which
/// the host logs under the function and the request id. The client is not
/// told the value or why it does not parse.
impl From<Error> for HttpError {
    fn from(e: Error) -> Self {
        eprintln!("{e}");
        HttpError::internal(format!(
            "the function's config `{}` cannot be read; see its log",
            e.key()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, serde::Deserialize)]
    struct Limits {
        max_items: u32,
    }

    #[test]
    fn json_values_decode_into_the_type_asked_for() {
        let got: Option<Limits> = decode("limits", Some(r#"{"max_items": 5}"#.into())).unwrap();
        assert_eq!(got, Some(Limits { max_items: 5 }));
        let absent: Option<Limits> = decode("limits", None).unwrap();
        assert_eq!(absent, None);
        let n: Option<Vec<u8>> = decode("ports", Some("[1, 2]".into())).unwrap();
        assert_eq!(n, Some(vec![1, 2]));
    }

    #[test]
    fn a_value_that_does_not_fit_names_its_key() {
        for text in ["{not json", r#"{"max_items": "many"}"#, "[]"] {
            let e = decode::<Limits>("limits", Some(text.into())).unwrap_err();
            assert!(matches!(e, Error::Json { .. }), "{text}");
            assert_eq!(e.key(), "limits");
            let said = e.to_string();
            assert!(
                said.starts_with("config `limits` is not JSON of the type asked for: "),
                "{said}"
            );
            assert!(std::error::Error::source(&e).is_some());
        }
    }

    #[test]
    fn store_errors_say_which_key_and_what_the_store_said() {
        let cases = [
            (store::Error::Upstream("vault sealed".into()), "upstream: vault sealed"),
            (store::Error::Io("reset".into()), "io: reset"),
        ];
        for (e, said) in cases {
            let e = Error::store("api_base", e);
            assert_eq!(
                e.to_string(),
                format!("cannot read config `api_base`: wasi:config/store failed: {said}")
            );
        }
    }

    #[test]
    fn an_error_answers_500_without_the_value() {
        let e = decode::<Limits>("limits", Some(r#"{"max_items": "sk_live_123"}"#.into())).unwrap_err();
        let answer = HttpError::from(e);
        assert_eq!((answer.status, answer.code.as_str()), (500, "internal"));
        assert_eq!(
            answer.message,
            "the function's config `limits` cannot be read; see its log"
        );
    }
}
