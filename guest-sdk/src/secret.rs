//! The function's secrets: values the operator sets (through the admin
//! API, `--secrets-dir` or `WASMFN_SECRET_<NAME>`), never its manifest,
//! read through the same `wasi:config/store` as [`crate::config`].
//!
//! ```no_run
//! use wasmfn_sdk::{HttpError, Text, secret};
//!
//! // `"secrets": ["api_key"]` in fn.config.json.
//! fn call_upstream() -> Result<Text, HttpError> {
//!     let key = secret::get("api_key").ok_or_else(|| HttpError::internal("no api_key"))?;
//!     Ok(Text(format!("{} characters", key.len())))
//! }
//! ```
//!
//! A function reads only the secrets its manifest lists in `secrets`;
//! any other name is absent (`None`), even when the operator has set it.
//! A listed secret that no provider has stops the function from loading,
//! so a listed one is always there. See `docs/capabilities.md`.

/// The value of secret `name` (1–64 of `a-z 0-9 _`), or `None` when the
/// manifest's `secrets` does not list it.
///
/// Do not log it or put it in an answer: the host keeps secret values out
/// of everything it shows, but what the function prints is its own.
///
/// # Panics
///
/// As [`crate::config::get`], when the store answers an error, which the
/// wasmfn host never does.
pub fn get(name: &str) -> Option<String> {
    crate::config::get(name)
}
