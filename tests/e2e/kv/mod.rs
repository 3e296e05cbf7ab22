//! Key-value stores through the real binary, read and written by a guest
//! written against plain `wasi:keyvalue` (`tests/guests/src/bin/kv.rs`):
//! every operation on the embedded store and on Redis; deny by default;
//! each tenant its own stores; quotas hit exactly and counted; two hosts
//! sharing one Redis, Redis down and back; the embedded store across a
//! restart and a `kill -9`. This module holds what the tests share.

mod access;
mod crash;
mod embedded;
mod quotas;
mod redis;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{Value, json};

use crate::config::Host;
use crate::harness::*;

/// A store as the `kv` guest at `route` opens it, for requests sent to
/// `host` (the `Host` header; `None`: the default tenant).
#[derive(Clone, Copy)]
pub(super) struct Store<'a> {
    pub h: &'a Host,
    pub route: &'a str,
    pub store: &'a str,
    pub host: Option<&'a str>,
}

/// A value as the guest answers it: `{"value": null | text}` or `{"base64": …}`.
pub(super) fn bytes_of(v: &Value) -> Option<Vec<u8>> {
    if let Some(b) = v["base64"].as_str() {
        return Some(base64::engine::general_purpose::STANDARD.decode(b).unwrap());
    }
    match &v["value"] {
        Value::Null => None,
        Value::String(s) => Some(s.as_bytes().to_vec()),
        other => panic!("not a value: {other} in {v}"),
    }
}

impl<'a> Store<'a> {
    /// The store `store` of the guest at `route`, in the default tenant.
    pub(super) fn new(h: &'a Host, route: &'a str, store: &'a str) -> Self {
        Self {
            h,
            route,
            store,
            host: None,
        }
    }

    /// The same store, for requests to `host`.
    pub(super) fn on(self, host: &'a str) -> Self {
        Self {
            host: Some(host),
            ..self
        }
    }

    /// Runs `op` with `params` (and `body`, sent as a POST): status and JSON answer.
    pub(super) async fn call(&self, op: &str, params: &[(&str, &str)], body: Option<Vec<u8>>) -> (u16, Value) {
        let url = self.h.url(self.route);
        let mut r = match body {
            Some(b) => self.h.client.post(url).body(b),
            None => self.h.client.get(url),
        };
        r = r.query(&[("store", self.store), ("op", op)]).query(params);
        if let Some(host) = self.host {
            r = r.header("host", host);
        }
        let resp = r.send().await.expect("request to the kv guest");
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        let json = serde_json::from_str(&text).unwrap_or_else(|_| json!({ "not json": text }));
        (status, json)
    }

    /// [`Self::call`], which must answer 200.
    pub(super) async fn ok(&self, op: &str, params: &[(&str, &str)], body: Option<Vec<u8>>) -> Value {
        let (status, json) = self.call(op, params, body).await;
        assert_eq!(status, 200, "{op} {params:?} in `{}`: {json}", self.store);
        json
    }

    /// [`Self::call`], which must fail with store error `kind`; gives its message.
    pub(super) async fn fails(&self, kind: &str, op: &str, params: &[(&str, &str)], body: Option<Vec<u8>>) -> String {
        let (status, json) = self.call(op, params, body).await;
        let want = if kind == "access-denied" { 403 } else { 500 };
        assert_eq!(
            (status, &json["error"]),
            (want, &json!(kind)),
            "{op} {params:?}: {json}"
        );
        json["message"].as_str().unwrap().to_string()
    }

    pub(super) async fn get(&self, key: &str) -> Option<Vec<u8>> {
        bytes_of(&self.ok("get", &[("key", key)], None).await)
    }

    /// The value of `key` as text.
    pub(super) async fn text(&self, key: &str) -> Option<String> {
        self.get(key).await.map(|b| String::from_utf8(b).unwrap())
    }

    pub(super) async fn set(&self, key: &str, value: &[u8]) {
        self.ok("set", &[("key", key)], Some(value.to_vec())).await;
    }

    pub(super) async fn delete(&self, key: &str) {
        self.ok("delete", &[("key", key)], None).await;
    }

    pub(super) async fn exists(&self, key: &str) -> bool {
        self.ok("exists", &[("key", key)], None).await["exists"]
            .as_bool()
            .unwrap()
    }

    pub(super) async fn increment(&self, key: &str, delta: u64) -> u64 {
        let d = delta.to_string();
        self.ok("increment", &[("key", key), ("delta", &d)], None).await["value"]
            .as_u64()
            .unwrap()
    }

    /// Each key's `(key, value)`, or `None`, in order.
    pub(super) async fn get_many(&self, keys: &[&str]) -> Vec<Option<(String, Vec<u8>)>> {
        let body = serde_json::to_vec(keys).unwrap();
        let answer = self.ok("get-many", &[], Some(body)).await;
        answer["values"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| (!v.is_null()).then(|| (v["key"].as_str().unwrap().to_string(), bytes_of(v).unwrap())))
            .collect()
    }

    pub(super) async fn set_many(&self, pairs: &[(String, String)]) {
        self.ok("set-many", &[], Some(serde_json::to_vec(pairs).unwrap())).await;
    }

    pub(super) async fn delete_many(&self, keys: &[&str]) {
        self.ok("delete-many", &[], Some(serde_json::to_vec(keys).unwrap()))
            .await;
    }

    /// One page of `list-keys`: its keys and the next cursor.
    pub(super) async fn page(&self, cursor: Option<u64>) -> (Vec<String>, Option<u64>) {
        let c = cursor.map(|c| c.to_string());
        let params: Vec<(&str, &str)> = c.iter().map(|c| ("cursor", c.as_str())).collect();
        let answer = self.ok("list", &params, None).await;
        let keys = answer["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k.as_str().unwrap().to_string())
            .collect();
        (keys, answer["cursor"].as_u64())
    }

    /// Every key, walking the cursor to its end; and the sizes of the pages.
    pub(super) async fn all_keys(&self) -> (BTreeSet<String>, Vec<usize>) {
        let (mut keys, mut sizes, mut cursor) = (BTreeSet::new(), Vec::new(), None);
        loop {
            let (page, next) = self.page(cursor).await;
            sizes.push(page.len());
            keys.extend(page);
            assert!(sizes.len() < 1000, "the cursor walks on and on: {sizes:?}");
            match next {
                Some(c) => cursor = Some(c),
                None => return (keys, sizes),
            }
        }
    }
}

/// The methods of the `kv` guest: GET reads, POST carries a body.
const METHODS: [&str; 2] = ["GET", "POST"];

/// A manifest of the `kv` guest that may open `stores` (`None`: no
/// `key_value_stores` field at all).
pub(super) fn kv_manifest(stores: Option<&[&str]>) -> Value {
    let mut m = json!({ "component": guest("kv"), "invoke": {"methods": METHODS} });
    if let Some(s) = stores {
        m["key_value_stores"] = json!(s);
    }
    m
}

/// Every operation of the three interfaces, on the store `s` (which the
/// test has not written before): values of every kind, counters and their
/// limits, more than a page of keys walked with the cursor, and the batch
/// operations; `other` is another store of the same function, which sees
/// none of it. Gives the sizes of the pages of the walk over 2606 keys.
pub(super) async fn every_operation(s: Store<'_>, other: Store<'_>) -> Vec<usize> {
    // get, set, exists, delete; an empty value is a value; any bytes.
    assert_eq!(s.get("greeting").await, None);
    assert!(!s.exists("greeting").await);
    s.set("greeting", b"hello").await;
    assert_eq!(s.text("greeting").await.as_deref(), Some("hello"));
    assert!(s.exists("greeting").await);
    s.set("greeting", b"hello again").await;
    assert_eq!(s.text("greeting").await.as_deref(), Some("hello again"));
    s.set("empty", b"").await;
    assert_eq!(s.get("empty").await, Some(vec![]), "an empty value is a value");
    assert!(s.exists("empty").await);
    let binary = [0u8, 255, 10, 13, 0xc3];
    s.set("binary", &binary).await;
    assert_eq!(s.get("binary").await.as_deref(), Some(&binary[..]));
    let odd_key = "a key/with ü, ?&=+ and %";
    s.set(odd_key, b"odd").await;
    assert_eq!(s.text(odd_key).await.as_deref(), Some("odd"));
    assert_eq!(other.get("greeting").await, None, "another store of the function");
    assert!(!other.exists(odd_key).await);
    s.delete("greeting").await;
    s.delete("greeting").await;
    assert_eq!(s.get("greeting").await, None);
    assert!(!s.exists("greeting").await);

    // increment: created with the delta, stored as decimal text.
    assert_eq!(s.increment("hits", 5).await, 5);
    assert_eq!(s.increment("hits", 37).await, 42);
    assert_eq!(s.increment("hits", 0).await, 42);
    assert_eq!(s.text("hits").await.as_deref(), Some("42"));
    s.set("typed", b"17").await;
    assert_eq!(s.increment("typed", 1).await, 18);
    let msg = s
        .fails("other", "increment", &[("key", odd_key), ("delta", "1")], None)
        .await;
    assert!(msg.contains("is not a counter"), "{msg}");
    for not_counter in [&b"007"[..], b"-1", b" 1", b"1.0"] {
        s.set("typed", not_counter).await;
        let msg = s
            .fails("other", "increment", &[("key", "typed"), ("delta", "1")], None)
            .await;
        assert!(msg.contains("is not a counter"), "{not_counter:?}: {msg}");
    }
    let max = i64::MAX as u64;
    s.set("big", (max - 1).to_string().as_bytes()).await;
    assert_eq!(s.increment("big", 1).await, max);
    let msg = s
        .fails("other", "increment", &[("key", "big"), ("delta", "1")], None)
        .await;
    assert!(msg.contains("would pass"), "{msg}");
    assert_eq!(
        s.text("big").await,
        Some(max.to_string()),
        "a refused increment changes nothing"
    );
    let too_big = (max + 1).to_string();
    s.fails("other", "increment", &[("key", "fresh"), ("delta", &too_big)], None)
        .await;
    assert_eq!(s.get("fresh").await, None);

    // set-many past a page of keys, the cursor walked to its end.
    let n = 2600;
    let names: Vec<String> = (0..n).map(|i| format!("key-{i:05}")).collect();
    for chunk in names.chunks(500) {
        let pairs: Vec<(String, String)> = chunk.iter().map(|k| (k.clone(), format!("v{}", &k[4..]))).collect();
        s.set_many(&pairs).await;
    }
    let before: BTreeSet<String> = ["empty", "binary", odd_key, "hits", "typed", "big"]
        .into_iter()
        .map(String::from)
        .collect();
    let mut want: BTreeSet<String> = names.iter().cloned().collect();
    want.extend(before.iter().cloned());
    let (keys, pages) = s.all_keys().await;
    assert_eq!(keys.len(), want.len(), "pages {pages:?}");
    assert_eq!(keys, want);
    assert!(pages.len() > 1, "{} keys in one page", want.len());
    assert_eq!(other.page(None).await, (vec![], None));

    // get-many: in order, `none` for a key that is not set.
    let got = s.get_many(&["key-00001", "missing", "key-02599", "empty"]).await;
    assert_eq!(
        got,
        [
            Some(("key-00001".to_string(), b"v00001".to_vec())),
            None,
            Some(("key-02599".to_string(), b"v02599".to_vec())),
            Some(("empty".to_string(), vec![])),
        ]
    );
    assert_eq!(s.get_many(&[]).await, []);
    // set-many replaces what is set and adds the rest.
    s.set_many(&[("key-00001".into(), "new".into()), ("added".into(), "a".into())])
        .await;
    assert_eq!(s.text("key-00001").await.as_deref(), Some("new"));
    assert_eq!(s.text("added").await.as_deref(), Some("a"));

    // delete-many: the keys that are set go; the others are no error.
    let gone: Vec<&str> = names[..2000].iter().map(String::as_str).chain(["missing"]).collect();
    for chunk in gone.chunks(500) {
        s.delete_many(chunk).await;
    }
    assert_eq!(
        s.get_many(&["key-00000", "key-01999", "key-02000"]).await,
        [None, None, Some(("key-02000".to_string(), b"v02000".to_vec()))]
    );
    let (keys, _) = s.all_keys().await;
    want.retain(|k| !gone.contains(&k.as_str()));
    want.insert("added".into());
    assert_eq!(keys, want);
    pages
}

/// A `redis-server` of the test's own on a loopback port, without
/// persistence; killed when dropped.
pub(super) struct Redis {
    child: std::process::Child,
    pub port: u16,
}

impl Redis {
    /// Starts one on a free port; a machine without `redis-server` fails the test.
    pub(super) fn start() -> Self {
        Self::start_on(free_port())
    }

    /// Starts one on `port` (again, after [`Self::stop`]).
    pub(super) fn start_on(port: u16) -> Self {
        let dir = std::env::temp_dir();
        let child = std::process::Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(dir)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start `redis-server` ({e}): the key-value tests need it; install it \
                     (Debian: `apt-get install redis-server`), as .ci/run does"
                )
            });
        let mut redis = Self { child, port };
        let end = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Some(status) = redis.child.try_wait().unwrap() {
                panic!("redis-server exited ({status}) before listening on {port}");
            }
            assert!(
                Instant::now() < end,
                "redis-server did not listen on {port} within 10 s"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        redis
    }

    pub(super) fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Kills the server and waits for it; gives its port.
    pub(super) fn stop(mut self) -> u16 {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
        self.port
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
