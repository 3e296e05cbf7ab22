//! The key-value stores functions reach through `wasi:keyvalue`.
//!
//! A store is named by a function's manifest (`key_value_stores`) and
//! belongs to a tenant: tenant A's `default` is not tenant B's. Two
//! backends keep them with the same semantics:
//!
//! - [`KeyValue::embedded`]: one SQLite database (WAL mode) under the
//!   state directory; needs nothing installed, survives restarts and a
//!   killed process without losing an acknowledged write.
//! - [`KeyValue::redis`]: a Redis server, shared by several hosts.
//!
//! Every write checks the tenant's [`Limits`] (value size, key size,
//! number of keys, total bytes) atomically with the write itself; a write
//! past one is refused whole with [`KvError::Quota`].
//!
//! Values written by `increment` are decimal text (`"42"`), so that every
//! language reads them alike; a counter holds 0 to 2⁶³−1.

mod embedded;
mod redis;
mod shared;

use std::path::Path;
use std::sync::Arc;

pub use embedded::Embedded;
pub use redis::RedisKv;
pub use shared::{Changes, SharedState};

/// How much of a key-value store one tenant may use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// The largest value, in bytes.
    pub max_value_bytes: u64,
    /// The longest key, in bytes.
    pub max_key_bytes: u64,
    /// Keys in all the tenant's stores together (`None`: no limit).
    pub max_keys: Option<u64>,
    /// Bytes of keys and values in all the tenant's stores together (`None`: no limit).
    pub max_total_bytes: Option<u64>,
}

/// The default largest value: 1 MiB.
pub const DEFAULT_MAX_VALUE_BYTES: u64 = 1024 * 1024;
/// The default longest key: 1 KiB.
pub const DEFAULT_MAX_KEY_BYTES: u64 = 1024;
/// Keys one `list-keys` call answers at most; a cursor gives the rest.
pub const LIST_PAGE: usize = 1000;

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_value_bytes: DEFAULT_MAX_VALUE_BYTES,
            max_key_bytes: DEFAULT_MAX_KEY_BYTES,
            max_keys: None,
            max_total_bytes: None,
        }
    }
}

/// Why a key-value operation failed. The message is meant for the guest
/// (it reaches it as `error::other`) and for the operator's log.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum KvError {
    /// A write past one of the tenant's [`Limits`]; nothing was written.
    #[error("key-value quota: {0}")]
    Quota(String),
    /// The operation cannot apply to what is stored (`increment` of a value
    /// that is not a counter, a counter past its largest value).
    #[error("{0}")]
    Invalid(String),
    /// The backend could not be reached or failed.
    #[error("the key-value store is unavailable: {0}")]
    Unavailable(String),
}

/// One page of a store's keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyPage {
    /// Keys, in no particular order.
    pub keys: Vec<String>,
    /// Where the next page starts; `None` after the last page.
    pub cursor: Option<u64>,
}

/// Claims on names for a while, held in Redis: one host wins each name,
/// and a holder that goes away loses it when its time runs out.
#[derive(Clone, Debug)]
pub struct SharedLeases(Arc<RedisKv>);

impl SharedLeases {
    /// Takes `name` for `ttl` with `value`, if nobody holds it; whether this did.
    pub async fn claim(&self, name: &str, value: &str, ttl: std::time::Duration) -> Result<bool, KvError> {
        self.0.lease_set(name, value, ttl, true).await
    }

    /// Sets `name` to `value` for `ttl`, held or not.
    pub async fn set(&self, name: &str, value: &str, ttl: std::time::Duration) -> Result<(), KvError> {
        self.0.lease_set(name, value, ttl, false).await.map(|_| ())
    }

    /// What `name` holds, if it is held.
    pub async fn get(&self, name: &str) -> Result<Option<String>, KvError> {
        self.0.lease_get(name).await
    }
}

/// Where stores are kept; cheap to clone (the backend is shared).
#[derive(Clone, Debug)]
pub struct KeyValue {
    backend: Backend,
}

#[derive(Clone, Debug)]
enum Backend {
    Embedded(Arc<Embedded>),
    Redis(Arc<RedisKv>),
}

impl KeyValue {
    /// The embedded backend: the SQLite database at `path` (made if absent).
    pub fn embedded(path: &Path) -> Result<Self, KvError> {
        Ok(Self {
            backend: Backend::Embedded(Arc::new(Embedded::open(path)?)),
        })
    }

    /// The Redis backend at `url` (`redis://[user:password@]host:port[/db]`).
    /// The connection is made when first needed and made again after a
    /// failure; an unreachable server fails operations, not this call.
    pub fn redis(url: &str) -> Result<Self, KvError> {
        Ok(Self {
            backend: Backend::Redis(Arc::new(RedisKv::new(url)?)),
        })
    }

    /// Leases shared by every host on the same server: `Some` on Redis
    /// (on the embedded backend, one host holds everything anyway).
    pub fn shared_leases(&self) -> Option<SharedLeases> {
        match &self.backend {
            Backend::Redis(r) => Some(SharedLeases(r.clone())),
            Backend::Embedded(_) => None,
        }
    }

    /// `embedded` or `redis`, for logs and the catalog.
    pub fn kind(&self) -> &'static str {
        match self.backend {
            Backend::Embedded(_) => "embedded",
            Backend::Redis(_) => "redis",
        }
    }

    /// The store `store` of tenant `tenant`, written under `limits`.
    pub fn bucket(&self, tenant: &str, store: &str, limits: Arc<Limits>) -> Bucket {
        Bucket {
            backend: self.backend.clone(),
            scope: Scope {
                tenant: tenant.into(),
                store: store.into(),
            },
            limits,
        }
    }

    /// Keys and bytes tenant `tenant` uses in all its stores.
    pub async fn usage(&self, tenant: &str) -> Result<Usage, KvError> {
        match &self.backend {
            Backend::Embedded(b) => b.usage(tenant).await,
            Backend::Redis(b) => b.usage(tenant).await,
        }
    }
}

/// What a tenant's stores hold.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// Keys in all its stores.
    pub keys: u64,
    /// Bytes of keys and values in all its stores.
    pub bytes: u64,
}

/// Which store of which tenant.
#[derive(Debug, Clone)]
pub(crate) struct Scope {
    pub(crate) tenant: Arc<str>,
    pub(crate) store: Arc<str>,
}

/// A change to a tenant's usage, checked against its limits before it is made.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Delta {
    pub(crate) keys: i64,
    pub(crate) bytes: i64,
}

impl Delta {
    /// Refuses `self` on top of `used` when it grows past `limits`.
    pub(crate) fn check(self, used: Usage, limits: &Limits) -> Result<(), KvError> {
        let keys = used.keys.saturating_add_signed(self.keys);
        let bytes = used.bytes.saturating_add_signed(self.bytes);
        if let Some(max) = limits.max_keys
            && self.keys > 0
            && keys > max
        {
            return Err(too_many(Quota::Keys, keys, max));
        }
        if let Some(max) = limits.max_total_bytes
            && self.bytes > 0
            && bytes > max
        {
            return Err(too_many(Quota::Bytes, bytes, max));
        }
        Ok(())
    }
}

/// Which of a tenant's totals a write would pass.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Quota {
    Keys,
    Bytes,
}

/// The error for a write after which the tenant's stores would hold `would` keys or bytes.
pub(crate) fn too_many(what: Quota, would: u64, max: u64) -> KvError {
    let (unit, field) = match what {
        Quota::Keys => ("keys", "kv_max_keys"),
        Quota::Bytes => ("bytes", "kv_max_total_bytes"),
    };
    KvError::Quota(format!(
        "the tenant's stores would hold {would} {unit}, its limit is {max} (`{field}`)"
    ))
}

/// One tenant's store, as a guest opened it.
#[derive(Debug, Clone)]
pub struct Bucket {
    backend: Backend,
    scope: Scope,
    limits: Arc<Limits>,
}

impl Bucket {
    /// The store's name.
    pub fn store(&self) -> &str {
        &self.scope.store
    }

    fn check_key(&self, key: &str) -> Result<(), KvError> {
        if key.len() as u64 > self.limits.max_key_bytes {
            return Err(KvError::Quota(format!(
                "a key of {} bytes is longer than the tenant's limit of {} (`kv_max_key_bytes`)",
                key.len(),
                self.limits.max_key_bytes
            )));
        }
        Ok(())
    }

    fn check_value(&self, key: &str, value: &[u8]) -> Result<(), KvError> {
        self.check_key(key)?;
        if value.len() as u64 > self.limits.max_value_bytes {
            return Err(KvError::Quota(format!(
                "the value of `{key}` is {} bytes, the tenant's limit is {} (`kv_max_value_bytes`)",
                value.len(),
                self.limits.max_value_bytes
            )));
        }
        Ok(())
    }

    /// The value of `key`, if it is set.
    pub async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        match &self.backend {
            Backend::Embedded(b) => b.get(&self.scope, key).await,
            Backend::Redis(b) => b.get(&self.scope, key).await,
        }
    }

    /// Sets `key` to `value`.
    pub async fn set(&self, key: &str, value: &[u8]) -> Result<(), KvError> {
        self.set_many(&[(key, value)]).await
    }

    /// Removes `key`; nothing happens if it is not set.
    pub async fn delete(&self, key: &str) -> Result<(), KvError> {
        self.delete_many(&[key]).await
    }

    /// Whether `key` is set.
    pub async fn exists(&self, key: &str) -> Result<bool, KvError> {
        match &self.backend {
            Backend::Embedded(b) => b.exists(&self.scope, key).await,
            Backend::Redis(b) => b.exists(&self.scope, key).await,
        }
    }

    /// A page of the store's keys, from `cursor` (`None`: the first page).
    pub async fn list_keys(&self, cursor: Option<u64>) -> Result<KeyPage, KvError> {
        match &self.backend {
            Backend::Embedded(b) => b.list_keys(&self.scope, cursor).await,
            Backend::Redis(b) => b.list_keys(&self.scope, cursor).await,
        }
    }

    /// Adds `delta` to the counter at `key` (0 if unset) and gives the new value.
    pub async fn increment(&self, key: &str, delta: u64) -> Result<u64, KvError> {
        self.check_key(key)?;
        let delta = i64::try_from(delta)
            .map_err(|_| KvError::Invalid(format!("an increment of {delta} is larger than {}", i64::MAX)))?;
        match &self.backend {
            Backend::Embedded(b) => b.increment(&self.scope, key, delta, &self.limits).await,
            Backend::Redis(b) => b.increment(&self.scope, key, delta, &self.limits).await,
        }
    }

    /// The values of `keys`, in order; `None` for a key that is not set.
    pub async fn get_many(&self, keys: &[&str]) -> Result<Vec<Option<Vec<u8>>>, KvError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        match &self.backend {
            Backend::Embedded(b) => b.get_many(&self.scope, keys).await,
            Backend::Redis(b) => b.get_many(&self.scope, keys).await,
        }
    }

    /// Sets every pair; all of them or, past a quota, none.
    pub async fn set_many(&self, pairs: &[(&str, &[u8])]) -> Result<(), KvError> {
        for (k, v) in pairs {
            self.check_value(k, v)?;
        }
        if pairs.is_empty() {
            return Ok(());
        }
        match &self.backend {
            Backend::Embedded(b) => b.set_many(&self.scope, pairs, &self.limits).await,
            Backend::Redis(b) => b.set_many(&self.scope, pairs, &self.limits).await,
        }
    }

    /// Removes every key of `keys` that is set.
    pub async fn delete_many(&self, keys: &[&str]) -> Result<(), KvError> {
        if keys.is_empty() {
            return Ok(());
        }
        match &self.backend {
            Backend::Embedded(b) => b.delete_many(&self.scope, keys).await,
            Backend::Redis(b) => b.delete_many(&self.scope, keys).await,
        }
    }
}

/// Reads a stored counter: `0` or a decimal without leading zeros, at most
/// `i64::MAX` (what Redis' `HINCRBY` accepts too).
pub(crate) fn parse_counter(key: &str, value: &[u8]) -> Result<i64, KvError> {
    let not = || {
        KvError::Invalid(format!(
            "the value of `{key}` is not a counter (a decimal from 0 to {})",
            i64::MAX
        ))
    };
    let text = std::str::from_utf8(value).map_err(|_| not())?;
    let canonical = text == "0"
        || (text.starts_with(|c: char| ('1'..='9').contains(&c)) && text.bytes().all(|b| b.is_ascii_digit()));
    if !canonical {
        return Err(not());
    }
    text.parse::<i64>().map_err(|_| not())
}

/// The error for a counter that would pass `i64::MAX`.
pub(crate) fn counter_overflow(key: &str) -> KvError {
    KvError::Invalid(format!("the counter `{key}` would pass {}", i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_are_canonical_decimals() {
        assert_eq!(parse_counter("k", b"0"), Ok(0));
        assert_eq!(parse_counter("k", b"42"), Ok(42));
        assert_eq!(parse_counter("k", b"9223372036854775807"), Ok(i64::MAX));
        for bad in [
            &b""[..],
            b"007",
            b"-1",
            b"+1",
            b"1.5",
            b"x",
            b"9223372036854775808",
            b"\xff",
        ] {
            assert!(matches!(parse_counter("k", bad), Err(KvError::Invalid(_))), "{bad:?}");
        }
    }

    #[test]
    fn a_delta_is_refused_only_when_it_grows_past_a_limit() {
        let limits = Limits {
            max_keys: Some(2),
            max_total_bytes: Some(10),
            ..Limits::default()
        };
        let used = Usage { keys: 2, bytes: 10 };
        assert!(matches!(
            Delta { keys: 1, bytes: 0 }.check(used, &limits),
            Err(KvError::Quota(_))
        ));
        assert!(matches!(
            Delta { keys: 0, bytes: 1 }.check(used, &limits),
            Err(KvError::Quota(_))
        ));
        // Shrinking is always allowed, even past a lowered limit.
        let over = Usage { keys: 5, bytes: 50 };
        assert!(Delta { keys: -1, bytes: -3 }.check(over, &limits).is_ok());
        assert!(Delta { keys: 0, bytes: 0 }.check(over, &limits).is_ok());
        assert!(
            Delta { keys: 1, bytes: 0 }
                .check(Usage { keys: 1, bytes: 0 }, &limits)
                .is_ok()
        );
    }
}
