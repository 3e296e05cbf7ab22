//! What a function author writes: `fn.config.json`, policy overlays, and
//! the discovery of a functions directory into resolved [`discovery::FunctionSpec`]s.
//!
//! ```
//! use std::path::Path;
//! use wasmfn_manifest::FunctionManifest;
//!
//! let m = FunctionManifest::parse(
//!     Path::new("functions/hello/fn.config.json"),
//!     r#"{"component": "hello.wasm", "timeout_ms": 2000}"#,
//! )?;
//! assert_eq!(m.component.as_deref(), Some("hello.wasm"));
//!
//! let typo = FunctionManifest::parse(Path::new("fn.config.json"), r#"{"timeout": 5}"#);
//! assert!(typo.unwrap_err().to_string().contains("`timeout`"));
//! # Ok::<(), wasmfn_manifest::ManifestError>(())
//! ```
//!
//! A manifest with `component` declares a function; one without it is a
//! policy overlay for every function in the folders below it. Unknown
//! fields are errors, and every error names the file and the field.
//!
//! - this module: [`FunctionManifest`] and [`ManifestError`], the file as written.
//! - `policy`: [`Policy`] (limits after defaults and overlays) and [`PolicyOverlay`].
//! - `outbound`: [`OutboundRule`], the hosts a function may call.
//! - [`discovery`]: walking a functions directory: folder routes, overlays,
//!   one [`discovery::FunctionSpec`] per function or a [`discovery::FailedSpec`]
//!   that says why not, and the one rule for which folders are skipped.
//! - [`digest`]: the in-process digests that tell whether something changed.
//!
//! Route patterns come from `wasmfn-routing`: a manifest's `invoke.routes`
//! are checked where they are read, so an error names the file.

pub mod auth;
pub mod cors;
pub mod digest;
pub mod discovery;
mod outbound;
mod policy;
pub mod schedule;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Deserializer};

pub use auth::{ApiKeySettings, AuthScheme, AuthSettings, JwtSettings, KeyLocation};
pub use cors::{CorsPolicy, CorsSettings};
pub use outbound::{OutboundRule, OutboundRuleError, is_internal_address};
pub use policy::{Policy, PolicyOverlay, limits};
pub use schedule::Schedule;

/// The file name of a function manifest.
pub const MANIFEST_FILE: &str = "fn.config.json";

/// Methods a route may list.
pub const METHODS: [&str; 7] = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];

/// One `fn.config.json`, as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FunctionManifest {
    /// The `$schema` URL; ignored by the host, it lets editors find a schema.
    #[serde(rename = "$schema", default)]
    pub schema: Option<String>,
    /// Path of the component, relative to the manifest's folder.
    #[serde(default)]
    pub component: Option<String>,
    /// One line about the function, shown in the catalog.
    #[serde(default)]
    pub description: Option<String>,
    /// An OpenAPI fragment file (relative to the folder) for components
    /// that do not export `describe`.
    #[serde(default)]
    pub openapi: Option<String>,
    /// How the function is reached: methods, routes, hosts.
    #[serde(default)]
    pub invoke: Option<InvokeConfig>,
    /// Wall-clock budget of one invocation in ms, response streaming included.
    #[serde(default, deserialize_with = "timeout_ms")]
    pub timeout_ms: Option<u64>,
    /// Invocations of this function at once; 0 means no per-function limit.
    #[serde(default, deserialize_with = "max_concurrency")]
    pub max_concurrency: Option<u64>,
    /// Requests that may wait for a slot when all are taken.
    #[serde(default, deserialize_with = "max_queue")]
    pub max_queue: Option<u64>,
    /// How long a queued request may wait for a slot, in ms.
    #[serde(default, deserialize_with = "queue_timeout_ms")]
    pub queue_timeout_ms: Option<u64>,
    /// The status (429 or 503) answered when the queue is full or the wait runs out.
    #[serde(default, deserialize_with = "overflow_status")]
    pub overflow_status: Option<u16>,
    /// Largest request body accepted, in bytes.
    #[serde(default, deserialize_with = "max_body_bytes")]
    pub max_body_bytes: Option<u64>,
    /// Largest response body sent, in bytes.
    #[serde(default, deserialize_with = "max_response_bytes")]
    pub max_response_bytes: Option<u64>,
    /// Cap on all linear memories of one instance together, in bytes.
    #[serde(default, deserialize_with = "max_memory_bytes")]
    pub max_memory_bytes: Option<u64>,
    /// Requests one instance may serve in sequence (1: a fresh instance per request).
    #[serde(default, deserialize_with = "instance_reuse")]
    pub instance_reuse: Option<u64>,
    /// How long an instance kept for reuse may wait idle, in ms.
    #[serde(default, deserialize_with = "instance_idle_ms")]
    pub instance_idle_ms: Option<u64>,
    /// Requests one instance of a `wasi:http@0.3` component may serve at
    /// once (1: one at a time).
    #[serde(default, deserialize_with = "instance_concurrency")]
    pub instance_concurrency: Option<u64>,
    /// Destinations the guest may send HTTP requests to; replaces, not merges, an overlay's list.
    #[serde(default, deserialize_with = "outbound_rules")]
    pub allowed_outbound_hosts: Option<Vec<OutboundRule>>,
    /// How callers authenticate, checked by the host before the guest runs.
    #[serde(default)]
    pub auth: Option<AuthSettings>,
    /// Cross-origin requests the host answers and allows.
    #[serde(default, deserialize_with = "cors")]
    pub cors: Option<CorsSettings>,
    /// Values the guest reads through `wasi:config/store`; merged key by key with an overlay's.
    #[serde(default, deserialize_with = "config")]
    pub config: Option<BTreeMap<String, String>>,
    /// Names of the secrets the guest may read through `wasi:config/store`;
    /// their values come from the operator. Replaces an overlay's list.
    #[serde(default, deserialize_with = "secrets")]
    pub secrets: Option<Vec<String>>,
    /// Names of the key-value stores the guest may open through
    /// `wasi:keyvalue`; the stores are its tenant's. Replaces an overlay's list.
    #[serde(default, deserialize_with = "key_value_stores")]
    pub key_value_stores: Option<Vec<String>>,
    /// Invocations the host makes on a timetable.
    #[serde(default, deserialize_with = "schedules")]
    pub schedules: Option<Vec<Schedule>>,
}

fn schedules<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<Schedule>>, D::Error> {
    let entries = Vec::<serde_json::Value>::deserialize(d)?;
    schedule::parse_schedules(entries)
        .map(Some)
        .map_err(serde::de::Error::custom)
}

/// The longest `config` value, in bytes.
pub const MAX_CONFIG_VALUE_BYTES: usize = 64 * 1024;

/// Whether `key` may be a `config` key: 1–128 of `A-Z a-z 0-9 _ . -`.
pub fn is_config_key(key: &str) -> bool {
    (1..=128).contains(&key.len())
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// Whether `name` may be a secret's name: 1–64 of `a-z 0-9 _`.
pub fn is_secret_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

fn config<'de, D: Deserializer<'de>>(d: D) -> Result<Option<BTreeMap<String, String>>, D::Error> {
    let map = BTreeMap::<String, String>::deserialize(d)?;
    for (k, v) in &map {
        if !is_config_key(k) {
            return Err(serde::de::Error::custom(format!(
                "key `{k}` is not allowed: give 1 to 128 of `A-Z`, `a-z`, `0-9`, `_`, `.`, `-`"
            )));
        }
        if v.len() > MAX_CONFIG_VALUE_BYTES {
            return Err(serde::de::Error::custom(format!(
                "the value of `{k}` is {} bytes; at most {MAX_CONFIG_VALUE_BYTES}",
                v.len()
            )));
        }
    }
    Ok(Some(map))
}

/// Whether `name` may name a key-value store: 1–64 of `a-z 0-9 _ -`.
pub fn is_store_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

fn key_value_stores<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<String>>, D::Error> {
    names(d, is_store_name, "a store name: give 1 to 64 of `a-z`, `0-9`, `_`, `-`")
}

/// A list of distinct names, each passing `valid`.
fn names<'de, D: Deserializer<'de>>(
    d: D,
    valid: fn(&str) -> bool,
    what: &str,
) -> Result<Option<Vec<String>>, D::Error> {
    let names = Vec::<String>::deserialize(d)?;
    let mut seen = std::collections::BTreeSet::new();
    for n in &names {
        if !valid(n) {
            return Err(serde::de::Error::custom(format!("`{n}` is not {what}")));
        }
        if !seen.insert(n) {
            return Err(serde::de::Error::custom(format!("`{n}` is listed twice")));
        }
    }
    Ok(Some(names))
}

fn secrets<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<String>>, D::Error> {
    names(d, is_secret_name, "a secret name: give 1 to 64 of `a-z`, `0-9`, `_`")
}

fn cors<'de, D: Deserializer<'de>>(d: D) -> Result<Option<CorsSettings>, D::Error> {
    let c = CorsSettings::deserialize(d)?;
    c.check().map_err(serde::de::Error::custom)?;
    Ok(Some(c))
}

/// The `invoke` section: how the function is reached.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InvokeConfig {
    /// Defaults to `["GET"]`.
    #[serde(default, deserialize_with = "methods")]
    pub methods: Option<Vec<String>>,
    /// Explicit routes; without them the folder path is the route.
    #[serde(default, deserialize_with = "routes")]
    pub routes: Option<Vec<RouteEntry>>,
    /// `Host` values served (`host`, `host:port`, `*.domain`); empty means any host.
    #[serde(default)]
    pub allow_hosts: Vec<String>,
    /// Wins this function's routes over overlapping claims that do not set it.
    #[serde(default)]
    pub force_url: bool,
}

/// One entry of `invoke.routes`: a path, or `{"path", "include_in_schema", "auth"}`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteEntry {
    /// The route pattern, e.g. `/items/{id}` or `/files/{...path}`.
    pub path: String,
    /// `false` keeps the route out of the OpenAPI document; it still serves.
    #[serde(default = "yes")]
    pub include_in_schema: bool,
    /// The route's own `auth`, in place of the function's.
    #[serde(default)]
    pub auth: Option<AuthSettings>,
}

fn yes() -> bool {
    true
}

fn routes<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<RouteEntry>>, D::Error> {
    let list = Vec::<serde_json::Value>::deserialize(d)?;
    list.into_iter()
        .map(|v| match v {
            serde_json::Value::String(path) => Ok(RouteEntry {
                path,
                include_in_schema: true,
                auth: None,
            }),
            serde_json::Value::Object(_) => RouteEntry::deserialize(v).map_err(serde::de::Error::custom),
            other => Err(serde::de::Error::custom(format!(
                "`{other}` is not a route: expected a string like `\"/items/{{id}}\"` or `{{\"path\": \"/old\", \"include_in_schema\": false}}`"
            ))),
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

/// A manifest that could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ManifestError {
    /// The file could not be read.
    #[error("cannot read `{path}`: {source}")]
    Read {
        /// The manifest's path.
        path: PathBuf,
        /// Why reading failed.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid JSON, or not a JSON object.
    #[error("invalid `{path}`: {message}")]
    Syntax {
        /// The manifest's path.
        path: PathBuf,
        /// What is wrong with the text.
        message: String,
    },
    /// A field is unknown, of the wrong type or out of range.
    #[error("invalid `{path}`: field `{field}`: {message}")]
    Field {
        /// The manifest's path.
        path: PathBuf,
        /// The field's path in the file, e.g. `invoke.methods`.
        field: String,
        /// What is wrong with the value, and what is allowed.
        message: String,
    },
}

impl FunctionManifest {
    /// Reads and checks a manifest file.
    pub fn load(path: &Path) -> Result<Self, ManifestError> {
        let text = std::fs::read_to_string(path).map_err(|source| ManifestError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(path, &text)
    }

    /// Parses manifest text; `path` is used in messages.
    pub fn parse(path: &Path, text: &str) -> Result<Self, ManifestError> {
        let syntax = |message: String| ManifestError::Syntax {
            path: path.to_path_buf(),
            message,
        };
        let value: serde_json::Value =
            serde_json::from_str(text).map_err(|e| syntax(format!("not valid JSON: {e}")))?;
        if !value.is_object() {
            return Err(syntax(
                "must be a JSON object, e.g. `{\"component\": \"hello.wasm\"}`".into(),
            ));
        }
        let manifest: FunctionManifest = serde_path_to_error::deserialize(value).map_err(|e| ManifestError::Field {
            path: path.to_path_buf(),
            field: e.path().to_string(),
            message: e.into_inner().to_string(),
        })?;
        if let Some(c) = &manifest.component
            && c.trim().is_empty()
        {
            return Err(ManifestError::Field {
                path: path.to_path_buf(),
                field: "component".into(),
                message: "must name the component file, e.g. `\"hello.wasm\"`".into(),
            });
        }
        Ok(manifest)
    }

    /// The limits this file sets.
    pub fn policy(&self) -> PolicyOverlay {
        PolicyOverlay {
            timeout_ms: self.timeout_ms,
            max_concurrency: self.max_concurrency.map(|v| v as u32),
            max_queue: self.max_queue.map(|v| v as u32),
            queue_timeout_ms: self.queue_timeout_ms,
            overflow_status: self.overflow_status,
            max_body_bytes: self.max_body_bytes,
            max_response_bytes: self.max_response_bytes,
            max_memory_bytes: self.max_memory_bytes,
            instance_reuse: self.instance_reuse.map(|v| v as u32),
            instance_idle_ms: self.instance_idle_ms,
            instance_concurrency: self.instance_concurrency.map(|v| v as u32),
            allowed_outbound_hosts: self.allowed_outbound_hosts.clone(),
            auth: self.auth.clone(),
            cors: self.cors.clone(),
            config: self.config.clone(),
            secrets: self.secrets.clone(),
            key_value_stores: self.key_value_stores.clone(),
        }
    }
}

fn ranged<'de, D: Deserializer<'de>>(d: D, (lo, hi): (u64, u64), unit: &str) -> Result<Option<u64>, D::Error> {
    let v = serde_json::Value::deserialize(d)?;
    match v.as_u64() {
        Some(n) if (lo..=hi).contains(&n) => Ok(Some(n)),
        _ => Err(serde::de::Error::custom(format!(
            "`{v}` is not allowed: expected a whole number of {unit} from {lo} to {hi}"
        ))),
    }
}

fn timeout_ms<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    ranged(d, limits::TIMEOUT_MS, "milliseconds")
}
fn max_concurrency<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    ranged(d, limits::MAX_CONCURRENCY, "invocations (0 = no per-function limit)")
}
fn max_queue<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    ranged(d, limits::MAX_QUEUE, "waiting requests")
}
fn queue_timeout_ms<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    ranged(d, limits::QUEUE_TIMEOUT_MS, "milliseconds")
}
fn max_body_bytes<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    ranged(d, limits::MAX_BODY_BYTES, "bytes")
}
fn max_response_bytes<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    ranged(d, limits::MAX_RESPONSE_BYTES, "bytes")
}
fn max_memory_bytes<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    ranged(d, limits::MAX_MEMORY_BYTES, "bytes")
}
fn instance_reuse<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    ranged(
        d,
        limits::INSTANCE_REUSE,
        "requests per instance (1 = a fresh instance per request)",
    )
}
fn instance_idle_ms<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    ranged(d, limits::INSTANCE_IDLE_MS, "milliseconds")
}
fn instance_concurrency<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    ranged(
        d,
        limits::INSTANCE_CONCURRENCY,
        "requests at once per instance (1 = one at a time)",
    )
}

fn overflow_status<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u16>, D::Error> {
    let v = serde_json::Value::deserialize(d)?;
    match v.as_u64() {
        Some(n) if limits::OVERFLOW_STATUS.contains(&(n as u16)) && n < 1000 => Ok(Some(n as u16)),
        _ => Err(serde::de::Error::custom(format!(
            "`{v}` is not allowed: expected 429 or 503"
        ))),
    }
}

fn methods<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<String>>, D::Error> {
    let list = Vec::<String>::deserialize(d)?;
    if list.is_empty() {
        return Err(serde::de::Error::custom("must list at least one method"));
    }
    let mut out = Vec::new();
    for m in list {
        let up = m.to_ascii_uppercase();
        if !METHODS.contains(&up.as_str()) {
            return Err(serde::de::Error::custom(format!(
                "`{m}` is not a supported method: expected one of {}",
                METHODS.join(", ")
            )));
        }
        if !out.contains(&up) {
            out.push(up);
        }
    }
    Ok(Some(out))
}

fn outbound_rules<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<OutboundRule>>, D::Error> {
    let list = Vec::<String>::deserialize(d)?;
    list.iter()
        .map(|e| OutboundRule::parse(e).map_err(serde::de::Error::custom))
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

#[cfg(test)]
mod proptests;

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<FunctionManifest, String> {
        FunctionManifest::parse(Path::new("fns/a/fn.config.json"), text).map_err(|e| e.to_string())
    }

    #[test]
    fn full_manifest() {
        let m = parse(
            r#"{
              "component": "hello.wasm",
              "invoke": {"methods": ["get", "POST"], "routes": ["/hello", "/v1/hello"],
                         "allow_hosts": ["api.example.com"], "force_url": true},
              "timeout_ms": 200, "max_concurrency": 2, "max_queue": 1, "queue_timeout_ms": 50,
              "overflow_status": 503, "max_body_bytes": 0, "max_response_bytes": 10,
              "max_memory_bytes": 1048576, "allowed_outbound_hosts": ["https://api.example.com"],
              "instance_reuse": 1000, "instance_idle_ms": 5000, "instance_concurrency": 16
            }"#,
        )
        .unwrap();
        let inv = m.invoke.as_ref().unwrap();
        assert_eq!(
            inv.methods.as_deref(),
            Some(&["GET".to_string(), "POST".to_string()][..])
        );
        assert!(inv.force_url);
        let p = Policy::default().with(&m.policy());
        assert_eq!(
            (p.timeout_ms, p.max_concurrency, p.max_queue, p.overflow_status),
            (200, 2, 1, 503)
        );
        assert_eq!(p.max_body_bytes, 0);
        assert_eq!(
            (p.instance_reuse, p.instance_idle_ms, p.instance_concurrency),
            (1000, 5000, 16)
        );
        // Unset, every request gets an instance of its own.
        let d = Policy::default().with(&parse("{}").unwrap().policy());
        assert_eq!(
            (d.instance_reuse, d.instance_idle_ms, d.instance_concurrency),
            (1, 60_000, 1)
        );
    }

    #[test]
    fn errors_name_file_field_and_allowed_values() {
        let cases = [
            (
                r#"{"timeout_ms": -5}"#,
                "invalid `fns/a/fn.config.json`: field `timeout_ms`: `-5` is not allowed: expected a whole number of milliseconds from 1 to 3600000",
            ),
            (
                r#"{"timeout_ms": "fast"}"#,
                "field `timeout_ms`: `\"fast\"` is not allowed",
            ),
            (r#"{"timeout_ms": 0}"#, "field `timeout_ms`: `0` is not allowed"),
            (r#"{"timeout_ms": 1.5}"#, "field `timeout_ms`: `1.5` is not allowed"),
            (
                r#"{"overflow_status": 500}"#,
                "field `overflow_status`: `500` is not allowed: expected 429 or 503",
            ),
            (
                r#"{"max_memory_bytes": 10}"#,
                "field `max_memory_bytes`: `10` is not allowed: expected a whole number of bytes from 65536",
            ),
            (
                r#"{"instance_concurrency": 1001}"#,
                "field `instance_concurrency`: `1001` is not allowed: expected a whole number of requests at once per instance (1 = one at a time) from 1 to 1000",
            ),
            (
                r#"{"instance_reuse": 0}"#,
                "field `instance_reuse`: `0` is not allowed: expected a whole number of requests per instance (1 = a fresh instance per request) from 1 to 1000000",
            ),
            (
                r#"{"instance_idle_ms": 0}"#,
                "field `instance_idle_ms`: `0` is not allowed: expected a whole number of milliseconds from 1 to 3600000",
            ),
            (r#"{"colour": 1}"#, "unknown field `colour`, expected one of"),
            (
                r#"{"key_value_stores": ["Default"]}"#,
                "field `key_value_stores`: `Default` is not a store name: give 1 to 64 of `a-z`, `0-9`, `_`, `-`",
            ),
            (
                r#"{"key_value_stores": ["a", "a"]}"#,
                "field `key_value_stores`: `a` is listed twice",
            ),
            (
                r#"{"key_value_stores": "default"}"#,
                "field `key_value_stores`: invalid type",
            ),
            (r#"{"secrets": ["API"]}"#, "field `secrets`: `API` is not a secret name"),
            (
                r#"{"invoke": {"method": ["GET"]}}"#,
                "field `invoke.method`: unknown field `method`, expected one of `methods`",
            ),
            (
                r#"{"invoke": {"methods": ["FETCH"]}}"#,
                "field `invoke.methods`: `FETCH` is not a supported method",
            ),
            (
                r#"{"invoke": {"methods": []}}"#,
                "field `invoke.methods`: must list at least one method",
            ),
            (r#"{"invoke": {"routes": "/x"}}"#, "field `invoke.routes`: invalid type"),
            (
                r#"{"allowed_outbound_hosts": ["example.com"]}"#,
                "field `allowed_outbound_hosts`: invalid entry `example.com`",
            ),
            (
                r#"{"component": ""}"#,
                "field `component`: must name the component file",
            ),
            (
                r#"{"component": "a.wasm""#,
                "invalid `fns/a/fn.config.json`: not valid JSON",
            ),
            ("[]", "invalid `fns/a/fn.config.json`: must be a JSON object"),
            ("", "not valid JSON"),
        ];
        for (text, want) in cases {
            let err = parse(text).expect_err(text);
            assert!(err.contains(want), "{text}\n got: {err}\nwant: {want}");
        }
    }

    #[test]
    fn key_value_stores_are_listed_names() {
        let m = parse(r#"{"key_value_stores": ["default", "user-sessions_2"]}"#).unwrap();
        assert_eq!(
            m.policy().key_value_stores.as_deref(),
            Some(&["default".to_string(), "user-sessions_2".to_string()][..])
        );
        assert!(is_store_name(&"a".repeat(64)) && !is_store_name(&"a".repeat(65)) && !is_store_name(""));
    }

    #[test]
    fn overlay_has_no_component() {
        let m = parse(r#"{"timeout_ms": 100}"#).unwrap();
        assert!(m.component.is_none());
        assert_eq!(m.policy().timeout_ms, Some(100));
    }
}
