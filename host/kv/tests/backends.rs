//! One suite, run against both backends: the embedded SQLite database and
//! a real `redis-server` started on a loopback port.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use wasmfn_kv::{KeyValue, KvError, LIST_PAGE, Limits, Usage};

/// A `redis-server` of the test's own, stopped when dropped.
struct Redis {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl Redis {
    fn start() -> Self {
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        Self::start_on(port, tempfile::tempdir().unwrap())
    }

    fn start_on(port: u16, dir: tempfile::TempDir) -> Self {
        let child = Command::new("redis-server")
            .args([
                "--bind",
                "127.0.0.1",
                "--port",
                &port.to_string(),
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .arg("--dir")
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start `redis-server` ({e}): install it (`apt-get install redis-server`); .ci/run does")
            });
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not listen on {port}");
            std::thread::sleep(Duration::from_millis(20));
        }
        Self { child, port, dir }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Stops the server; gives what to restart it on the same port.
    fn stop(mut self) -> (u16, tempfile::TempDir) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
        let dir = std::mem::replace(&mut self.dir, tempfile::tempdir().unwrap());
        (self.port, dir)
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn embedded(dir: &Path) -> KeyValue {
    KeyValue::embedded(&dir.join("kv.sqlite3")).unwrap()
}

fn open(kv: &KeyValue, tenant: &str, store: &str) -> wasmfn_kv::Bucket {
    kv.bucket(tenant, store, Arc::new(Limits::default()))
}

async fn basics(kv: &KeyValue) {
    let b = open(kv, "t1", "default");
    assert_eq!(b.get("a").await.unwrap(), None);
    assert!(!b.exists("a").await.unwrap());
    b.set("a", b"one").await.unwrap();
    assert_eq!(b.get("a").await.unwrap().as_deref(), Some(&b"one"[..]));
    assert!(b.exists("a").await.unwrap());
    b.set("a", b"").await.unwrap();
    assert_eq!(
        b.get("a").await.unwrap().as_deref(),
        Some(&b""[..]),
        "an empty value is a value"
    );
    assert!(b.exists("a").await.unwrap());
    b.set("bin", &[0, 255, 10, 13]).await.unwrap();
    assert_eq!(b.get("bin").await.unwrap().as_deref(), Some(&[0u8, 255, 10, 13][..]));
    b.delete("a").await.unwrap();
    b.delete("a").await.unwrap();
    assert_eq!(b.get("a").await.unwrap(), None);
    assert!(!b.exists("a").await.unwrap());
    b.delete("bin").await.unwrap();
    assert_eq!(kv.usage("t1").await.unwrap(), Usage::default());
}

async fn isolation(kv: &KeyValue) {
    let a = open(kv, "tenant-a", "default");
    let b = open(kv, "tenant-b", "default");
    let a2 = open(kv, "tenant-a", "sessions");
    a.set("k", b"a").await.unwrap();
    b.set("k", b"b").await.unwrap();
    assert_eq!(a.get("k").await.unwrap().as_deref(), Some(&b"a"[..]));
    assert_eq!(b.get("k").await.unwrap().as_deref(), Some(&b"b"[..]));
    assert_eq!(a2.get("k").await.unwrap(), None);
    assert_eq!(a2.list_keys(None).await.unwrap().keys, Vec::<String>::new());
    b.delete("k").await.unwrap();
    assert_eq!(a.get("k").await.unwrap().as_deref(), Some(&b"a"[..]));
    a.delete("k").await.unwrap();
}

async fn listing(kv: &KeyValue) {
    let b = open(kv, "lister", "default");
    let n = LIST_PAGE * 2 + 500;
    let keys: Vec<String> = (0..n).map(|i| format!("key-{i:05}")).collect();
    for chunk in keys.chunks(500) {
        let pairs: Vec<(&str, &[u8])> = chunk.iter().map(|k| (k.as_str(), &b"v"[..])).collect();
        b.set_many(&pairs).await.unwrap();
    }
    let mut seen = Vec::new();
    let mut cursor = None;
    let mut pages = 0;
    loop {
        let page = b.list_keys(cursor).await.unwrap();
        pages += 1;
        assert!(page.keys.len() <= LIST_PAGE * 2, "a page of {} keys", page.keys.len());
        seen.extend(page.keys);
        match page.cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
        assert!(pages < 100, "the cursor never ends");
    }
    assert!(pages > 1, "{n} keys came in one page");
    seen.sort();
    seen.dedup();
    assert_eq!(seen, keys);
    let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
    b.delete_many(&refs).await.unwrap();
    let page = b.list_keys(None).await.unwrap();
    assert_eq!((page.keys.len(), page.cursor), (0, None));
}

async fn counters(kv: &KeyValue) {
    let b = open(kv, "counter", "default");
    assert_eq!(b.increment("c", 5).await.unwrap(), 5);
    assert_eq!(b.increment("c", 0).await.unwrap(), 5);
    assert_eq!(b.increment("c", 37).await.unwrap(), 42);
    assert_eq!(
        b.get("c").await.unwrap().as_deref(),
        Some(&b"42"[..]),
        "counters are decimal text"
    );
    b.set("c", b"9223372036854775800").await.unwrap();
    assert_eq!(b.increment("c", 7).await.unwrap(), i64::MAX as u64);
    assert!(matches!(b.increment("c", 1).await, Err(KvError::Invalid(m)) if m.contains("would pass")));
    assert_eq!(
        b.get("c").await.unwrap().as_deref(),
        Some(&b"9223372036854775807"[..]),
        "unchanged"
    );
    assert!(matches!(b.increment("c2", u64::MAX).await, Err(KvError::Invalid(_))));
    assert_eq!(b.get("c2").await.unwrap(), None);
    for bad in [&b"x"[..], b"007", b"-3", b"1.5"] {
        b.set("text", bad).await.unwrap();
        let e = b.increment("text", 1).await.unwrap_err();
        assert!(
            matches!(&e, KvError::Invalid(m) if m.contains("not a counter")),
            "{bad:?}: {e}"
        );
        assert_eq!(b.get("text").await.unwrap().as_deref(), Some(bad), "unchanged");
    }
    b.delete_many(&["c", "text"]).await.unwrap();
    assert_eq!(kv.usage("counter").await.unwrap(), Usage::default());
}

async fn batches(kv: &KeyValue) {
    let b = open(kv, "batch", "default");
    b.set_many(&[("x", b"1"), ("y", b"22"), ("x", b"333")]).await.unwrap();
    assert_eq!(
        b.get_many(&["x", "nope", "y"]).await.unwrap(),
        vec![Some(b"333".to_vec()), None, Some(b"22".to_vec())]
    );
    // The usage counts what is stored: two keys, the last value of `x`.
    assert_eq!(
        kv.usage("batch").await.unwrap(),
        Usage {
            keys: 2,
            bytes: 1 + 3 + 1 + 2
        }
    );
    b.delete_many(&["x", "nope", "x"]).await.unwrap();
    assert_eq!(b.get_many(&["x", "y"]).await.unwrap(), vec![None, Some(b"22".to_vec())]);
    assert_eq!(kv.usage("batch").await.unwrap(), Usage { keys: 1, bytes: 3 });
    assert_eq!(b.get_many(&[]).await.unwrap(), Vec::<Option<Vec<u8>>>::new());
    b.delete("y").await.unwrap();
}

fn quota(e: Result<(), KvError>, names: &str) {
    match e {
        Err(KvError::Quota(m)) => assert!(m.contains(names), "`{m}` does not name `{names}`"),
        other => panic!("expected a quota error naming {names}, got {other:?}"),
    }
}

async fn quotas(kv: &KeyValue) {
    let limits = Arc::new(Limits {
        max_value_bytes: 10,
        max_key_bytes: 4,
        max_keys: Some(3),
        max_total_bytes: Some(30),
    });
    let b = kv.bucket("quota", "default", limits.clone());
    let other_store = kv.bucket("quota", "other", limits.clone());
    // Sizes hit exactly: at the limit passes, one more is refused.
    b.set("kkkk", &[1; 10]).await.unwrap();
    quota(b.set("kkkkk", b"v").await, "kv_max_key_bytes");
    quota(b.set("k", &[1; 11]).await, "kv_max_value_bytes");
    assert!(matches!(b.increment("kkkkk", 1).await, Err(KvError::Quota(_))));
    // Keys count across the tenant's stores.
    b.set("a", b"1").await.unwrap();
    other_store.set("b", b"1").await.unwrap();
    assert_eq!(
        kv.usage("quota").await.unwrap(),
        Usage {
            keys: 3,
            bytes: 14 + 2 + 2
        }
    );
    quota(b.set("c", b"1").await, "kv_max_keys");
    quota(b.increment("c", 1).await.map(drop), "kv_max_keys");
    assert_eq!(b.get("c").await.unwrap(), None, "a refused write leaves nothing");
    // Overwriting an existing key adds no key.
    b.set("a", b"123456789").await.unwrap();
    assert_eq!(
        kv.usage("quota").await.unwrap(),
        Usage {
            keys: 3,
            bytes: 14 + 10 + 2
        }
    );
    // Total bytes: the limit reached exactly passes, one byte more is refused.
    quota(b.set("a", b"1234567890123").await.map(drop), "kv_max_value_bytes");
    b.delete("kkkk").await.unwrap();
    assert_eq!(kv.usage("quota").await.unwrap(), Usage { keys: 2, bytes: 12 });
    b.set("kkkk", &[2; 10]).await.unwrap(); // 26
    b.set("a", b"1234567890").await.unwrap(); // 27
    other_store.set("b", b"1234").await.unwrap(); // 30
    assert_eq!(kv.usage("quota").await.unwrap(), Usage { keys: 3, bytes: 30 });
    quota(other_store.set("b", b"12345").await, "kv_max_total_bytes");
    assert_eq!(other_store.get("b").await.unwrap().as_deref(), Some(&b"1234"[..]));
    other_store.set("b", b"1").await.unwrap();
    // A batch past a quota writes none of its pairs.
    b.delete_many(&["a", "kkkk"]).await.unwrap(); // left: other/b
    quota(
        b.set_many(&[("p", b"1"), ("q", b"2"), ("r", b"3")]).await,
        "kv_max_keys",
    );
    assert_eq!(b.get_many(&["p", "q", "r"]).await.unwrap(), vec![None, None, None]);
    b.set_many(&[("p", b"1"), ("q", b"2")]).await.unwrap();
    // A lowered limit still lets the tenant delete and shrink.
    let tight = kv.bucket(
        "quota",
        "default",
        Arc::new(Limits {
            max_keys: Some(1),
            max_total_bytes: Some(1),
            ..(*limits).clone()
        }),
    );
    tight.set("p", b"").await.unwrap();
    tight.delete("q").await.unwrap();
    quota(tight.set("z", b"").await, "kv_max_keys");
    tight.delete_many(&["p"]).await.unwrap();
    other_store.delete("b").await.unwrap();
    assert_eq!(kv.usage("quota").await.unwrap(), Usage::default());
}

/// Many requests at once (the embedded store commits them together): each
/// write is all or nothing on its own, a quota counts exactly, a counter
/// loses no increment.
async fn concurrency(kv: &KeyValue) {
    let limits = Arc::new(Limits {
        max_keys: Some(20),
        ..Limits::default()
    });
    let writers: Vec<_> = (0..64)
        .map(|i| {
            let b = kv.bucket("crowd", "default", limits.clone());
            tokio::spawn(async move { b.set_many(&[(&format!("k{i}"), b"v"), (&format!("j{i}"), b"w")]).await })
        })
        .collect();
    let mut stored = 0;
    for w in writers {
        match w.await.unwrap() {
            Ok(()) => stored += 1,
            Err(e) => quota(Err(e), "kv_max_keys"),
        }
    }
    assert_eq!(stored, 10, "twenty keys are ten writes of two");
    let b = kv.bucket("crowd", "default", limits.clone());
    let page = b.list_keys(None).await.unwrap();
    assert_eq!(page.keys.len(), 20, "{:?}", page.keys);
    for k in page.keys.iter().filter(|k| k.starts_with('k')) {
        let j = format!("j{}", &k[1..]);
        assert!(page.keys.contains(&j), "{k} was written without {j}: {:?}", page.keys);
    }
    let bytes = page.keys.iter().map(|k| k.len() as u64 + 1).sum();
    assert_eq!(kv.usage("crowd").await.unwrap(), Usage { keys: 20, bytes });
    let counters: Vec<_> = (0..32)
        .map(|_| {
            let b = kv.bucket("crowd", "counters", Arc::new(Limits::default()));
            tokio::spawn(async move {
                for _ in 0..10 {
                    b.increment("n", 1).await.unwrap();
                }
            })
        })
        .collect();
    for c in counters {
        c.await.unwrap();
    }
    assert_eq!(
        kv.bucket("crowd", "counters", Arc::new(Limits::default()))
            .get("n")
            .await
            .unwrap()
            .as_deref(),
        Some(&b"320"[..])
    );
}

async fn suite(kv: KeyValue) {
    basics(&kv).await;
    isolation(&kv).await;
    listing(&kv).await;
    counters(&kv).await;
    batches(&kv).await;
    quotas(&kv).await;
    concurrency(&kv).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_backend() {
    let dir = tempfile::tempdir().unwrap();
    suite(embedded(dir.path())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_backend() {
    let redis = Redis::start();
    suite(KeyValue::redis(&redis.url()).unwrap()).await;
}

#[tokio::test]
async fn the_embedded_store_keeps_its_data_and_usage_across_opens() {
    let dir = tempfile::tempdir().unwrap();
    {
        let kv = embedded(dir.path());
        open(&kv, "t", "default").set("k", b"v").await.unwrap();
    }
    let kv = embedded(dir.path());
    assert_eq!(
        open(&kv, "t", "default").get("k").await.unwrap().as_deref(),
        Some(&b"v"[..])
    );
    assert_eq!(kv.usage("t").await.unwrap(), Usage { keys: 1, bytes: 2 });
}

#[tokio::test]
async fn the_embedded_store_is_one_hosts_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let kv = embedded(dir.path());
    open(&kv, "t", "default").set("k", b"v").await.unwrap();
    let path = dir.path().join("kv.sqlite3");
    let e = KeyValue::embedded(&path).unwrap_err().to_string();
    assert!(
        e.contains(&path.display().to_string()) && e.contains("is in use by another process"),
        "{e}"
    );
    // The first keeps working, and once it is gone the store opens again.
    assert_eq!(
        open(&kv, "t", "default").get("k").await.unwrap().as_deref(),
        Some(&b"v"[..])
    );
    drop(kv);
    let kv = embedded(dir.path());
    assert_eq!(
        open(&kv, "t", "default").get("k").await.unwrap().as_deref(),
        Some(&b"v"[..])
    );
}

#[tokio::test]
async fn redis_down_is_an_error_and_redis_back_works_again() {
    let redis = Redis::start();
    let kv = KeyValue::redis(&redis.url()).unwrap();
    let b = open(&kv, "t", "default");
    b.set("k", b"v").await.unwrap();
    let (port, dir) = redis.stop();
    let started = Instant::now();
    let e = b.get("k").await.unwrap_err();
    assert!(
        matches!(&e, KvError::Unavailable(m) if m.contains(&port.to_string())),
        "{e}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "an error took {:?}",
        started.elapsed()
    );
    assert!(b.set("k", b"w").await.is_err());
    let _back = Redis::start_on(port, dir);
    // The connection is made again; the first call may still see the old one fail.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match b.set("k", b"again").await {
            Ok(()) => break,
            Err(e) => assert!(Instant::now() < deadline, "Redis back, still failing: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(b.get("k").await.unwrap().as_deref(), Some(&b"again"[..]));
}

#[tokio::test]
async fn an_unreachable_redis_fails_operations_not_the_start() {
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let kv = KeyValue::redis(&format!("redis://:hunter2@127.0.0.1:{port}/")).unwrap();
    let e = open(&kv, "t", "default").get("k").await.unwrap_err();
    let m = e.to_string();
    assert!(m.contains("unavailable") && !m.contains("hunter2"), "{m}");
    assert!(matches!(KeyValue::redis("http://nope"), Err(KvError::Unavailable(_))));
}
