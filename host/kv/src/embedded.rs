//! The embedded backend: one SQLite database in WAL mode, on one connection.
//!
//! Operations take turns. A request that finds no operation running runs
//! its own at once, on its own thread; one that finds the database busy
//! leaves its operation and waits for the answer without holding a thread.
//! The request whose turn it is, once done with its own, runs every
//! operation left meanwhile in one transaction, each in a savepoint of its
//! own (an operation that fails, a write past a quota, undoes only itself),
//! commits once for all of them, and goes on until none is left: under
//! contention concurrent writes share one commit, the pages they touch
//! reach the write-ahead log once, and the log is checkpointed (and
//! synced) that much less often. Answers are given after the commit: a
//! killed process loses no acknowledged write (`synchronous = NORMAL`
//! leaves only a power loss able to undo the last commits). A write and
//! the tenant's usage it changes are committed together.
//!
//! The host holds the database exclusively while it runs (SQLite's
//! `locking_mode = EXCLUSIVE`): no file lock is taken and released around
//! each transaction. Another process cannot open the database meanwhile;
//! a second host on the same state directory is refused, saying so.

use std::path::Path;
use std::sync::Mutex;

use rusqlite::{Connection, OptionalExtension, params};
use tokio::sync::oneshot;

use super::{Delta, KeyPage, KvError, LIST_PAGE, Limits, Scope, Usage, counter_overflow, parse_counter};

/// The SQLite database of every tenant's stores.
#[derive(Debug)]
pub struct Embedded {
    /// Whether an operation is running, and those that wait for it.
    turn: Mutex<Turn>,
    /// Taken only by the request whose turn it is.
    conn: Mutex<Connection>,
}

#[derive(Default)]
struct Turn {
    busy: bool,
    waiting: Vec<Box<dyn Op>>,
}

impl std::fmt::Debug for Turn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Turn")
            .field("busy", &self.busy)
            .field("waiting", &self.waiting.len())
            .finish()
    }
}

/// Operations one transaction takes at most; the rest wait for the next.
const MAX_BATCH: usize = 256;

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

/// An operation handed to the database's thread: run inside the batch's
/// transaction, answered once the transaction is committed (or not).
trait Op: Send {
    /// Whether it may write (it then runs in a savepoint of its own).
    fn writes(&self) -> bool;
    /// Runs it; `Err` when it failed (and, if it writes, is to be undone).
    fn run(&mut self, c: &Connection) -> Result<(), ()>;
    /// Answers its caller: its result if `committed` is `Ok`, else that error.
    fn answer(self: Box<Self>, committed: &Result<(), KvError>);
}

struct Pending<T, F> {
    writes: bool,
    work: Option<F>,
    result: Option<Result<T, KvError>>,
    reply: oneshot::Sender<Result<T, KvError>>,
}

impl<T, F> Op for Pending<T, F>
where
    T: Send,
    F: FnOnce(&Connection) -> Result<T, KvError> + Send,
{
    fn writes(&self) -> bool {
        self.writes
    }

    fn run(&mut self, c: &Connection) -> Result<(), ()> {
        let work = self.work.take().expect("an operation runs once");
        // A panic must not take the thread (and every later operation) with it.
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| work(c))).unwrap_or_else(|_| {
            Err(KvError::Unavailable(
                "the key-value operation failed (a bug: it panicked)".into(),
            ))
        });
        let ok = r.is_ok();
        self.result = Some(r);
        if ok { Ok(()) } else { Err(()) }
    }

    fn answer(self: Box<Self>, committed: &Result<(), KvError>) {
        let r = match committed {
            Ok(()) => self.result.unwrap_or_else(|| Err(db_gone())),
            Err(e) => Err(e.clone()),
        };
        // The caller may have stopped waiting (its request ended): nothing to tell.
        let _ = self.reply.send(r);
    }
}

fn db_gone() -> KvError {
    KvError::Unavailable("the key-value operation was not answered (a bug: its turn ended without it)".into())
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
        // Every statement the store runs stays prepared (about 15).
        conn.set_prepared_statement_cache_capacity(32);
        Ok(Self {
            turn: Mutex::new(Turn::default()),
            conn: Mutex::new(conn),
        })
    }

    /// Runs `work` in a transaction and answers once that is committed.
    /// When no operation is running, the caller runs it at once; else it
    /// is left for the one running, which, once done with its own, runs
    /// every operation left meanwhile in one transaction, and again until
    /// none is left: waiting callers hold no thread.
    async fn submit<T, F>(&self, writes: bool, work: F) -> Result<T, KvError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, KvError> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let op: Box<dyn Op> = Box::new(Pending {
            writes,
            work: Some(work),
            result: None,
            reply,
        });
        let mut batch = {
            let mut turn = lock(&self.turn);
            if turn.busy {
                turn.waiting.push(op);
                None
            } else {
                turn.busy = true;
                Some(vec![op])
            }
        };
        if let Some(batch) = &mut batch {
            // No await from here to the end of the turn: a request dropped
            // meanwhile cannot leave the turn taken.
            let conn = lock(&self.conn);
            loop {
                let committed = run_batch(&conn, batch);
                for op in batch.drain(..) {
                    op.answer(&committed);
                }
                let mut turn = lock(&self.turn);
                if turn.waiting.is_empty() {
                    turn.busy = false;
                    break;
                }
                let take = turn.waiting.len().min(MAX_BATCH);
                batch.extend(turn.waiting.drain(..take));
            }
        }
        answer.await.unwrap_or_else(|_| Err(db_gone()))
    }

    pub(crate) async fn usage(&self, tenant: &str) -> Result<Usage, KvError> {
        let tenant = tenant.to_owned();
        self.submit(false, move |c| usage(c, &tenant)).await
    }

    pub(crate) async fn get(&self, s: &Scope, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        let (s, key) = (s.clone(), key.to_owned());
        self.submit(false, move |c| get(c, &s, &key)).await
    }

    pub(crate) async fn exists(&self, s: &Scope, key: &str) -> Result<bool, KvError> {
        let (s, key) = (s.clone(), key.to_owned());
        self.submit(false, move |c| {
            c.prepare_cached("SELECT 1 FROM kv WHERE tenant = ?1 AND store = ?2 AND key = ?3")
                .and_then(|mut st| st.exists(params![&*s.tenant, &*s.store, key]))
                .map_err(db)
        })
        .await
    }

    pub(crate) async fn list_keys(&self, s: &Scope, cursor: Option<u64>) -> Result<KeyPage, KvError> {
        let after = i64::try_from(cursor.unwrap_or(0)).unwrap_or(i64::MAX);
        let s = s.clone();
        self.submit(false, move |c| {
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
        .await
    }

    pub(crate) async fn get_many(&self, s: &Scope, keys: &[&str]) -> Result<Vec<Option<Vec<u8>>>, KvError> {
        let s = s.clone();
        let keys: Vec<String> = keys.iter().map(|k| (*k).to_owned()).collect();
        self.submit(false, move |c| keys.iter().map(|k| get(c, &s, k)).collect())
            .await
    }

    pub(crate) async fn set_many(&self, s: &Scope, pairs: &[(&str, &[u8])], limits: &Limits) -> Result<(), KvError> {
        let s = s.clone();
        let pairs: Vec<(String, Vec<u8>)> = pairs.iter().map(|(k, v)| ((*k).to_owned(), v.to_vec())).collect();
        let limits = limits.clone();
        self.submit(true, move |c| {
            let mut delta = Delta::default();
            {
                let mut put = c
                    .prepare_cached(
                        "INSERT INTO kv (tenant, store, key, value) VALUES (?1, ?2, ?3, ?4)
                         ON CONFLICT (tenant, store, key) DO UPDATE SET value = excluded.value",
                    )
                    .map_err(db)?;
                for (key, value) in &pairs {
                    let old = stored_len(c, &s, key)?;
                    delta.add(key, old, Some(value.len()));
                    put.execute(params![&*s.tenant, &*s.store, key, value]).map_err(db)?;
                }
            }
            check(c, &s.tenant, delta, &limits)?;
            add_usage(c, &s.tenant, delta)
        })
        .await
    }

    pub(crate) async fn delete_many(&self, s: &Scope, keys: &[&str]) -> Result<(), KvError> {
        let s = s.clone();
        let keys: Vec<String> = keys.iter().map(|k| (*k).to_owned()).collect();
        self.submit(true, move |c| {
            let mut delta = Delta::default();
            {
                let mut del = c
                    .prepare_cached("DELETE FROM kv WHERE tenant = ?1 AND store = ?2 AND key = ?3")
                    .map_err(db)?;
                for key in &keys {
                    let old = stored_len(c, &s, key)?;
                    if old.is_some() {
                        del.execute(params![&*s.tenant, &*s.store, key]).map_err(db)?;
                        delta.add(key, old, None);
                    }
                }
            }
            add_usage(c, &s.tenant, delta)
        })
        .await
    }

    pub(crate) async fn increment(&self, s: &Scope, key: &str, by: i64, limits: &Limits) -> Result<u64, KvError> {
        let (s, key) = (s.clone(), key.to_owned());
        let limits = limits.clone();
        self.submit(true, move |c| {
            let old = get(c, &s, &key)?;
            let current = old.as_deref().map(|v| parse_counter(&key, v)).transpose()?.unwrap_or(0);
            let next = current.checked_add(by).ok_or_else(|| counter_overflow(&key))?;
            let text = next.to_string();
            let mut delta = Delta::default();
            delta.add(&key, old.as_ref().map(Vec::len), Some(text.len()));
            check(c, &s.tenant, delta, &limits)?;
            c.prepare_cached(
                "INSERT INTO kv (tenant, store, key, value) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (tenant, store, key) DO UPDATE SET value = excluded.value",
            )
            .and_then(|mut st| st.execute(params![&*s.tenant, &*s.store, key, text.as_bytes()]))
            .map_err(db)?;
            add_usage(c, &s.tenant, delta)?;
            Ok(next as u64)
        })
        .await
    }
}

/// Locks `m`; a panic cannot leave a transaction half done (it rolls back
/// on drop), so a poisoned lock still guards a consistent database.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Runs `batch` in one transaction: each writing operation in a savepoint,
/// undone alone if it fails (an operation alone in its batch needs none: the
/// transaction is rolled back instead). `Err` if the transaction could not
/// be begun or committed (then nothing of it was written).
fn run_batch(c: &Connection, batch: &mut [Box<dyn Op>]) -> Result<(), KvError> {
    let writes = batch.iter().any(|op| op.writes());
    if !writes {
        // Reads alone: each sees the last commit, no transaction needed.
        for op in batch.iter_mut() {
            let _ = op.run(c);
        }
        return Ok(());
    }
    run(c, "BEGIN IMMEDIATE")?;
    if let [op] = batch {
        // Its own result answers it; a failed one leaves nothing behind.
        let end = if op.run(c).is_ok() { "COMMIT" } else { "ROLLBACK" };
        return run(c, end).inspect_err(|_| {
            let _ = run(c, "ROLLBACK");
        });
    }
    let mut outcome = Ok(());
    for op in batch.iter_mut() {
        if !op.writes() {
            let _ = op.run(c);
            continue;
        }
        if let Err(e) = run(c, "SAVEPOINT op") {
            outcome = Err(e);
            break;
        }
        let ended = if op.run(c).is_err() {
            run(c, "ROLLBACK TO op").and_then(|()| run(c, "RELEASE op"))
        } else {
            run(c, "RELEASE op")
        };
        if let Err(e) = ended {
            outcome = Err(e);
            break;
        }
    }
    match outcome.and_then(|()| run(c, "COMMIT")) {
        Ok(()) => Ok(()),
        Err(e) => {
            let _ = run(c, "ROLLBACK");
            Err(e)
        }
    }
}

/// Runs one statement that takes no parameters and gives no rows (a
/// transaction's `BEGIN`, `COMMIT`, a savepoint), prepared once.
fn run(c: &Connection, sql: &str) -> Result<(), KvError> {
    c.prepare_cached(sql)
        .and_then(|mut st| st.execute([]))
        .map(drop)
        .map_err(db)
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
