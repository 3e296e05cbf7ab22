//! The Redis backend: a store is one hash (`wasmfn:kv:{tenant}:{store}`),
//! a tenant's usage another (`wasmfn:kv-usage:{tenant}`, fields `keys`
//! and `bytes`). Writes run as Lua scripts, so a write and the usage it
//! changes are one atomic step on the server, and a write past a quota
//! changes nothing.
//!
//! The connection is made on first use and remade after a failure; an
//! operation waits at most [`TIMEOUT`] for the server.

use std::sync::Mutex;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{AsyncCommands, Script, Value};

use super::{KeyPage, KvError, LIST_PAGE, Limits, Quota, Scope, Usage, counter_overflow, too_many};

/// How long an operation waits to connect, and then for its answer.
pub(crate) const TIMEOUT: Duration = Duration::from_secs(1);

/// A Redis server holding every tenant's stores.
pub struct RedisKv {
    client: redis::Client,
    /// Where the server is, without credentials, for messages.
    shown: String,
    conn: Mutex<Option<ConnectionManager>>,
    set_many: Script,
    delete_many: Script,
    increment: Script,
}

impl std::fmt::Debug for RedisKv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisKv")
            .field("server", &self.shown)
            .finish_non_exhaustive()
    }
}

/// Sets `ARGV[3..]` (key, value pairs) in `KEYS[1]` if the tenant's usage
/// in `KEYS[2]` stays within `ARGV[1]` keys and `ARGV[2]` bytes (-1: no
/// limit). Answers `{0}`, or `{1, keys}` / `{2, bytes}` when refused.
const SET_MANY: &str = r"
local maxk, maxb = tonumber(ARGV[1]), tonumber(ARGV[2])
local dk, db, seen = 0, 0, {}
for i = 3, #ARGV, 2 do
  local k, v = ARGV[i], ARGV[i + 1]
  local cur = seen[k]
  if cur == nil then
    if redis.call('HEXISTS', KEYS[1], k) == 1 then cur = redis.call('HSTRLEN', KEYS[1], k) else cur = false end
  end
  if cur == false then dk = dk + 1; db = db + #k + #v else db = db + #v - cur end
  seen[k] = #v
end
local u = redis.call('HMGET', KEYS[2], 'keys', 'bytes')
local keys, bytes = tonumber(u[1]) or 0, tonumber(u[2]) or 0
if dk > 0 and maxk >= 0 and keys + dk > maxk then return {1, keys + dk} end
if db > 0 and maxb >= 0 and bytes + db > maxb then return {2, bytes + db} end
for i = 3, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
if dk ~= 0 then redis.call('HINCRBY', KEYS[2], 'keys', dk) end
if db ~= 0 then redis.call('HINCRBY', KEYS[2], 'bytes', db) end
return {0}
";

/// Removes the keys `ARGV` from `KEYS[1]`, counting them off `KEYS[2]`.
const DELETE_MANY: &str = r"
local dk, db = 0, 0
for i = 1, #ARGV do
  local k = ARGV[i]
  local len = redis.call('HSTRLEN', KEYS[1], k)
  if redis.call('HDEL', KEYS[1], k) == 1 then dk = dk + 1; db = db + #k + len end
end
if dk ~= 0 then
  redis.call('HINCRBY', KEYS[2], 'keys', -dk)
  redis.call('HINCRBY', KEYS[2], 'bytes', -db)
end
return 0
";

/// Adds `ARGV[2]` to the counter `ARGV[1]` of `KEYS[1]` within the limits
/// `ARGV[3]` keys and `ARGV[4]` bytes. Answers `{0, new value}`, `{1,
/// keys}` / `{2, bytes}` when refused, `{3}` when the value is not a
/// counter, `{4}` when it would overflow.
const INCREMENT: &str = r"
local k = ARGV[1]
local old = redis.call('HGET', KEYS[1], k)
if old and not (old == '0' or string.match(old, '^[1-9]%d*$')) then return {3} end
local ok, err = pcall(redis.call, 'HINCRBY', KEYS[1], k, ARGV[2])
if not ok then
  if old then return {4} end
  return {3}
end
local new = redis.call('HGET', KEYS[1], k)
local dk, db = 0, #new
if old then db = #new - #old else dk = 1; db = db + #k end
local maxk, maxb = tonumber(ARGV[3]), tonumber(ARGV[4])
local u = redis.call('HMGET', KEYS[2], 'keys', 'bytes')
local keys, bytes = tonumber(u[1]) or 0, tonumber(u[2]) or 0
local refused
if dk > 0 and maxk >= 0 and keys + dk > maxk then refused = {1, keys + dk}
elseif db > 0 and maxb >= 0 and bytes + db > maxb then refused = {2, bytes + db} end
if refused then
  if old then redis.call('HSET', KEYS[1], k, old) else redis.call('HDEL', KEYS[1], k) end
  return refused
end
if dk ~= 0 then redis.call('HINCRBY', KEYS[2], 'keys', dk) end
if db ~= 0 then redis.call('HINCRBY', KEYS[2], 'bytes', db) end
return {0, new}
";

fn data_key(s: &Scope) -> String {
    format!("wasmfn:kv:{}:{}", s.tenant, s.store)
}

fn lease_key(name: &str) -> String {
    format!("wasmfn:lease:{name}")
}

fn usage_key(tenant: &str) -> String {
    format!("wasmfn:kv-usage:{tenant}")
}

fn limit(v: Option<u64>) -> i64 {
    v.map_or(-1, |n| i64::try_from(n).unwrap_or(i64::MAX))
}

impl RedisKv {
    /// A backend for the server at `url`; nothing is connected yet.
    pub fn new(url: &str) -> Result<Self, KvError> {
        let client = redis::Client::open(url)
            .map_err(|e| KvError::Unavailable(format!("`{}` is not a Redis URL: {e}", without_password(url))))?;
        Ok(Self {
            shown: without_password(url),
            client,
            conn: Mutex::new(None),
            set_many: Script::new(SET_MANY),
            delete_many: Script::new(DELETE_MANY),
            increment: Script::new(INCREMENT),
        })
    }

    fn failed(&self) -> impl Fn(redis::RedisError) -> KvError + '_ {
        move |e| KvError::Unavailable(format!("Redis at {}: {e}", self.shown))
    }

    async fn conn(&self) -> Result<ConnectionManager, KvError> {
        if let Some(c) = self.conn.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
            return Ok(c.clone());
        }
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(TIMEOUT))
            .set_response_timeout(Some(TIMEOUT))
            .set_number_of_retries(1)
            .set_max_delay(TIMEOUT);
        let made = tokio::time::timeout(
            TIMEOUT * 2,
            ConnectionManager::new_with_config(self.client.clone(), config),
        )
        .await
        .map_err(|_| KvError::Unavailable(format!("Redis at {}: no answer within {TIMEOUT:?}", self.shown)))?
        .map_err(self.failed())?;
        *self.conn.lock().unwrap_or_else(|p| p.into_inner()) = Some(made.clone());
        Ok(made)
    }

    /// `SET wasmfn:lease:NAME VALUE PX TTL`, with `NX` when `only_new`;
    /// whether it was set.
    pub(crate) async fn lease_set(
        &self,
        name: &str,
        value: &str,
        ttl: Duration,
        only_new: bool,
    ) -> Result<bool, KvError> {
        let mut cmd = redis::cmd("SET");
        cmd.arg(lease_key(name))
            .arg(value)
            .arg("PX")
            .arg(u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1));
        if only_new {
            cmd.arg("NX");
        }
        let set: Option<String> = cmd.query_async(&mut self.conn().await?).await.map_err(self.failed())?;
        Ok(set.is_some())
    }

    /// The value of lease `name`, if it is held.
    pub(crate) async fn lease_get(&self, name: &str) -> Result<Option<String>, KvError> {
        self.conn().await?.get(lease_key(name)).await.map_err(self.failed())
    }

    /// Where the server is, without credentials.
    pub(crate) fn shown(&self) -> &str {
        &self.shown
    }

    /// Runs `cmd` on the shared connection.
    pub(crate) async fn query<T: redis::FromRedisValue>(&self, cmd: &redis::Cmd) -> Result<T, KvError> {
        cmd.query_async(&mut self.conn().await?).await.map_err(self.failed())
    }

    /// Runs a script invocation on the shared connection.
    pub(crate) async fn script<T: redis::FromRedisValue>(
        &self,
        inv: &redis::ScriptInvocation<'_>,
    ) -> Result<T, KvError> {
        inv.invoke_async(&mut self.conn().await?).await.map_err(self.failed())
    }

    /// A connection of its own for subscriptions.
    pub(crate) async fn pubsub(&self) -> Result<redis::aio::PubSub, KvError> {
        tokio::time::timeout(TIMEOUT * 2, self.client.get_async_pubsub())
            .await
            .map_err(|_| KvError::Unavailable(format!("Redis at {}: no answer within {TIMEOUT:?}", self.shown)))?
            .map_err(self.failed())
    }

    pub(crate) async fn usage(&self, tenant: &str) -> Result<Usage, KvError> {
        let (keys, bytes): (Option<i64>, Option<i64>) = redis::cmd("HMGET")
            .arg(usage_key(tenant))
            .arg("keys")
            .arg("bytes")
            .query_async(&mut self.conn().await?)
            .await
            .map_err(self.failed())?;
        Ok(Usage {
            keys: keys.unwrap_or(0).max(0) as u64,
            bytes: bytes.unwrap_or(0).max(0) as u64,
        })
    }

    pub(crate) async fn get(&self, s: &Scope, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        self.conn().await?.hget(data_key(s), key).await.map_err(self.failed())
    }

    pub(crate) async fn exists(&self, s: &Scope, key: &str) -> Result<bool, KvError> {
        self.conn()
            .await?
            .hexists(data_key(s), key)
            .await
            .map_err(self.failed())
    }

    pub(crate) async fn list_keys(&self, s: &Scope, cursor: Option<u64>) -> Result<KeyPage, KvError> {
        // Keys and values come in turns (`NOVALUES` needs Redis 7.4).
        let (next, fields): (u64, Vec<Vec<u8>>) = redis::cmd("HSCAN")
            .arg(data_key(s))
            .arg(cursor.unwrap_or(0))
            .arg("COUNT")
            .arg(LIST_PAGE)
            .query_async(&mut self.conn().await?)
            .await
            .map_err(self.failed())?;
        Ok(KeyPage {
            keys: fields
                .into_iter()
                .step_by(2)
                .map(|k| String::from_utf8_lossy(&k).into_owned())
                .collect(),
            cursor: (next != 0).then_some(next),
        })
    }

    pub(crate) async fn get_many(&self, s: &Scope, keys: &[&str]) -> Result<Vec<Option<Vec<u8>>>, KvError> {
        redis::cmd("HMGET")
            .arg(data_key(s))
            .arg(keys)
            .query_async(&mut self.conn().await?)
            .await
            .map_err(self.failed())
    }

    pub(crate) async fn set_many(&self, s: &Scope, pairs: &[(&str, &[u8])], limits: &Limits) -> Result<(), KvError> {
        let mut call = self.set_many.key(data_key(s));
        call.key(usage_key(&s.tenant))
            .arg(limit(limits.max_keys))
            .arg(limit(limits.max_total_bytes));
        for (k, v) in pairs {
            call.arg(*k).arg(*v);
        }
        let answer: Vec<Value> = call
            .invoke_async(&mut self.conn().await?)
            .await
            .map_err(self.failed())?;
        refused(&answer, limits).map_or(Ok(()), Err)
    }

    pub(crate) async fn delete_many(&self, s: &Scope, keys: &[&str]) -> Result<(), KvError> {
        let mut call = self.delete_many.key(data_key(s));
        call.key(usage_key(&s.tenant)).arg(keys);
        let _: i64 = call
            .invoke_async(&mut self.conn().await?)
            .await
            .map_err(self.failed())?;
        Ok(())
    }

    pub(crate) async fn increment(&self, s: &Scope, key: &str, by: i64, limits: &Limits) -> Result<u64, KvError> {
        let mut call = self.increment.key(data_key(s));
        call.key(usage_key(&s.tenant))
            .arg(key)
            .arg(by)
            .arg(limit(limits.max_keys))
            .arg(limit(limits.max_total_bytes));
        let answer: Vec<Value> = call
            .invoke_async(&mut self.conn().await?)
            .await
            .map_err(self.failed())?;
        match answer.first() {
            Some(Value::Int(3)) => Err(super::parse_counter(key, b"").unwrap_err()),
            Some(Value::Int(4)) => Err(counter_overflow(key)),
            Some(Value::Int(0)) => match answer.get(1) {
                Some(Value::BulkString(b)) => std::str::from_utf8(b)
                    .ok()
                    .and_then(|t| t.parse::<u64>().ok())
                    .ok_or_else(|| {
                        KvError::Unavailable(format!("Redis at {}: a counter read back as {b:?}", self.shown))
                    }),
                other => Err(KvError::Unavailable(format!(
                    "Redis at {}: unexpected answer {other:?}",
                    self.shown
                ))),
            },
            _ => refused(&answer, limits).map_or_else(
                || {
                    Err(KvError::Unavailable(format!(
                        "Redis at {}: unexpected answer {answer:?}",
                        self.shown
                    )))
                },
                Err,
            ),
        }
    }
}

/// The quota error a script's answer names, if it names one.
fn refused(answer: &[Value], limits: &Limits) -> Option<KvError> {
    let would = match answer.get(1) {
        Some(Value::Int(n)) => (*n).max(0) as u64,
        _ => 0,
    };
    match answer.first() {
        Some(Value::Int(1)) => Some(too_many(Quota::Keys, would, limits.max_keys.unwrap_or(0))),
        Some(Value::Int(2)) => Some(too_many(Quota::Bytes, would, limits.max_total_bytes.unwrap_or(0))),
        _ => None,
    }
}

/// `url` with any password replaced by `***`.
fn without_password(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let creds = &url[scheme + 3..at];
            match creds.find(':') {
                Some(colon) => format!("{}{}:***{}", &url[..scheme + 3], &creds[..colon], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_reach_messages() {
        assert_eq!(without_password("redis://:s3cret@h:6379/0"), "redis://:***@h:6379/0");
        assert_eq!(without_password("redis://u:s3cret@h:6379"), "redis://u:***@h:6379");
        assert_eq!(without_password("redis://h:6379"), "redis://h:6379");
    }
}
