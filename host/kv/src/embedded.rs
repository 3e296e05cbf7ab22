//! The embedded backend: one SQLite database in WAL mode.
//!
//! Every operation is a transaction on one connection, so a write and the
//! tenant's usage it changes are committed together. A commit reaches the
//! write-ahead log before the call returns: a killed process loses no
//! acknowledged write (`synchronous = NORMAL` leaves only a power loss
//! able to undo the last commits).
//!
//! The host holds the database exclusively while it runs (SQLite's
//! `locking_mode = EXCLUSIVE`): no file lock is taken and released around
//! each transaction, which halves what a write costs. Another process
//! cannot open the database meanwhile; a second host on the same state
//! directory is refused, saying so.

use std::path::Path;
use std::sync::Mutex;

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use super::{Delta, KeyPage, KvError, LIST_PAGE, Limits, Scope, Usage, counter_overflow, parse_counter};

/// The SQLite database of every tenant's stores.
#[derive(Debug)]
pub struct Embedded {
    conn: Mutex<Connection>,
}

const SCHEMA: &str = "
    CREATE TABLE IF NOT EXISTS kv (
        id INTEGER PRIMARY KEY,
        tenant TEXT NOT NULL,
        store TEXT NOT NULL,
        key TEXT NOT NULL,
        value BLOB NOT NULL,
        UNIQUE (tenant, store, key)
    );
    CREATE TABLE IF NOT EXISTS usage (
        tenant TEXT PRIMARY KEY,
        keys INTEGER NOT NULL,
        bytes INTEGER NOT NULL
    );
";

fn failed(path: &Path) -> impl Fn(rusqlite::Error) -> KvError + '_ {
    move |e| match e.sqlite_error_code() {
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked) => KvError::Unavailable(format!(
            "{} is in use by another process (another wasmfn on the same state directory?); \
                 give each host a state directory of its own, or share stores through `--kv-redis-url`",
            path.display()
        )),
        _ => KvError::Unavailable(format!("{}: {e}", path.display())),
    }
}

fn db(e: rusqlite::Error) -> KvError {
    KvError::Unavailable(format!("database: {e}"))
}

impl Embedded {
    /// Opens (or makes) the database at `path`.
    pub fn open(path: &Path) -> Result<Self, KvError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| KvError::Unavailable(format!("cannot make {}: {e}", dir.display())))?;
        }
        let conn = Connection::open(path).map_err(failed(path))?;
        conn.pragma_update(None, "journal_mode", "WAL").map_err(failed(path))?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(failed(path))?;
        conn.pragma_update(None, "locking_mode", "EXCLUSIVE")
            .map_err(failed(path))?;
        conn.busy_timeout(std::time::Duration::from_secs(2))
            .map_err(failed(path))?;
        // The first write takes the lock, for as long as the connection lives.
        conn.execute_batch(SCHEMA).map_err(failed(path))?;
        Ok(Self { conn: Mutex::new(conn) })
    }

    fn with<T>(&self, f: impl FnOnce(&mut Connection) -> Result<T, KvError>) -> Result<T, KvError> {
        // A panic cannot leave a transaction half done (it rolls back on
        // drop), so a poisoned lock still guards a consistent database.
        let mut conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut conn)
    }

    pub(crate) fn usage(&self, tenant: &str) -> Result<Usage, KvError> {
        self.with(|c| usage(c, tenant))
    }

    pub(crate) fn get(&self, s: &Scope, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        self.with(|c| get(c, s, key))
    }

    pub(crate) fn exists(&self, s: &Scope, key: &str) -> Result<bool, KvError> {
        self.with(|c| {
            c.prepare_cached("SELECT 1 FROM kv WHERE tenant = ?1 AND store = ?2 AND key = ?3")
                .and_then(|mut st| st.exists(params![&*s.tenant, &*s.store, key]))
                .map_err(db)
        })
    }

    pub(crate) fn list_keys(&self, s: &Scope, cursor: Option<u64>) -> Result<KeyPage, KvError> {
        let after = i64::try_from(cursor.unwrap_or(0)).unwrap_or(i64::MAX);
        self.with(|c| {
            let mut st = c
                .prepare_cached(
                    "SELECT id, key FROM kv WHERE tenant = ?1 AND store = ?2 AND id > ?3 ORDER BY id LIMIT ?4",
                )
                .map_err(db)?;
            let rows = st
                .query_map(params![&*s.tenant, &*s.store, after, LIST_PAGE as i64], |r| {
                    Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?))
                })
                .map_err(db)?
                .collect::<Result<Vec<_>, _>>()
                .map_err(db)?;
            let cursor = (rows.len() == LIST_PAGE)
                .then(|| rows.last().map(|(id, _)| *id as u64))
                .flatten();
            Ok(KeyPage {
                keys: rows.into_iter().map(|(_, k)| k).collect(),
                cursor,
            })
        })
    }

    pub(crate) fn get_many(&self, s: &Scope, keys: &[&str]) -> Result<Vec<Option<Vec<u8>>>, KvError> {
        self.with(|c| {
            let tx = c.transaction().map_err(db)?;
            keys.iter().map(|k| get(&tx, s, k)).collect()
        })
    }

    pub(crate) fn set_many(&self, s: &Scope, pairs: &[(&str, &[u8])], limits: &Limits) -> Result<(), KvError> {
        self.with(|c| {
            let tx = c
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(db)?;
            let mut delta = Delta::default();
            {
                let mut put = tx
                    .prepare_cached(
                        "INSERT INTO kv (tenant, store, key, value) VALUES (?1, ?2, ?3, ?4)
                         ON CONFLICT (tenant, store, key) DO UPDATE SET value = excluded.value",
                    )
                    .map_err(db)?;
                for (key, value) in pairs {
                    let old = stored_len(&tx, s, key)?;
                    delta.add(key, old, Some(value.len()));
                    put.execute(params![&*s.tenant, &*s.store, key, value]).map_err(db)?;
                }
            }
            check(&tx, &s.tenant, delta, limits)?;
            add_usage(&tx, &s.tenant, delta)?;
            tx.commit().map_err(db)
        })
    }

    pub(crate) fn delete_many(&self, s: &Scope, keys: &[&str]) -> Result<(), KvError> {
        self.with(|c| {
            let tx = c
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(db)?;
            let mut delta = Delta::default();
            {
                let mut del = tx
                    .prepare_cached("DELETE FROM kv WHERE tenant = ?1 AND store = ?2 AND key = ?3")
                    .map_err(db)?;
                for key in keys {
                    let old = stored_len(&tx, s, key)?;
                    if old.is_some() {
                        del.execute(params![&*s.tenant, &*s.store, key]).map_err(db)?;
                        delta.add(key, old, None);
                    }
                }
            }
            add_usage(&tx, &s.tenant, delta)?;
            tx.commit().map_err(db)
        })
    }

    pub(crate) fn increment(&self, s: &Scope, key: &str, by: i64, limits: &Limits) -> Result<u64, KvError> {
        self.with(|c| {
            let tx = c
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(db)?;
            let old = get(&tx, s, key)?;
            let current = old.as_deref().map(|v| parse_counter(key, v)).transpose()?.unwrap_or(0);
            let next = current.checked_add(by).ok_or_else(|| counter_overflow(key))?;
            let text = next.to_string();
            let mut delta = Delta::default();
            delta.add(key, old.as_ref().map(Vec::len), Some(text.len()));
            check(&tx, &s.tenant, delta, limits)?;
            tx.prepare_cached(
                "INSERT INTO kv (tenant, store, key, value) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (tenant, store, key) DO UPDATE SET value = excluded.value",
            )
            .and_then(|mut st| st.execute(params![&*s.tenant, &*s.store, key, text.as_bytes()]))
            .map_err(db)?;
            add_usage(&tx, &s.tenant, delta)?;
            tx.commit().map_err(db)?;
            Ok(next as u64)
        })
    }
}

impl Delta {
    /// Counts `key` going from a value of `old` bytes (`None`: unset) to
    /// one of `new` bytes (`None`: removed).
    pub(crate) fn add(&mut self, key: &str, old: Option<usize>, new: Option<usize>) {
        let size = |v: Option<usize>| v.map_or(0, |n| (key.len() + n) as i64);
        self.keys += i64::from(new.is_some()) - i64::from(old.is_some());
        self.bytes += size(new) - size(old);
    }
}

fn get(c: &Connection, s: &Scope, key: &str) -> Result<Option<Vec<u8>>, KvError> {
    c.prepare_cached("SELECT value FROM kv WHERE tenant = ?1 AND store = ?2 AND key = ?3")
        .and_then(|mut st| {
            st.query_row(params![&*s.tenant, &*s.store, key], |r| r.get(0))
                .optional()
        })
        .map_err(db)
}

fn stored_len(c: &Connection, s: &Scope, key: &str) -> Result<Option<usize>, KvError> {
    c.prepare_cached("SELECT length(value) FROM kv WHERE tenant = ?1 AND store = ?2 AND key = ?3")
        .and_then(|mut st| {
            st.query_row(params![&*s.tenant, &*s.store, key], |r| r.get::<_, i64>(0))
                .optional()
        })
        .map(|n| n.map(|n| n as usize))
        .map_err(db)
}

/// Checks `delta` against the tenant's totals, read only when a limit on
/// them is set (the usage itself is kept up to date either way).
fn check(c: &Connection, tenant: &str, delta: Delta, limits: &Limits) -> Result<(), KvError> {
    if limits.max_keys.is_none() && limits.max_total_bytes.is_none() {
        return Ok(());
    }
    delta.check(usage(c, tenant)?, limits)
}

fn usage(c: &Connection, tenant: &str) -> Result<Usage, KvError> {
    c.prepare_cached("SELECT keys, bytes FROM usage WHERE tenant = ?1")
        .and_then(|mut st| {
            st.query_row(params![tenant], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?)))
                .optional()
        })
        .map(|u| {
            u.map_or(Usage::default(), |(keys, bytes)| Usage {
                keys: keys.max(0) as u64,
                bytes: bytes.max(0) as u64,
            })
        })
        .map_err(db)
}

fn add_usage(c: &Connection, tenant: &str, d: Delta) -> Result<(), KvError> {
    if d.keys == 0 && d.bytes == 0 {
        return Ok(());
    }
    c.prepare_cached(
        "INSERT INTO usage (tenant, keys, bytes) VALUES (?1, ?2, ?3)
         ON CONFLICT (tenant) DO UPDATE SET keys = keys + excluded.keys, bytes = bytes + excluded.bytes",
    )
    .and_then(|mut st| st.execute(params![tenant, d.keys, d.bytes]))
    .map(drop)
    .map_err(db)
}
