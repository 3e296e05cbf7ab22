//! A cluster on loopback: Redis (shared state and key-value), a real OCI
//! registry, three replicas sharing one desired state (`--state-store`)
//! behind HAProxy health-checking `/_fn/ready`. A function pushed and
//! deployed by reference through HAProxy reaches every replica within the
//! goal; a deploy and a rolling restart under load fail no request; `kill
//! -9` of a replica fails only what was in flight on it; a replica that
//! joins serves everything before it is ready.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::harness::*;
use crate::kv::Redis;
use crate::oci::{Registry, folder, push};

/// Convergence goal: a deploy through any replica serves on all of them.
const CONVERGED_WITHIN: Duration = Duration::from_secs(2);

/// HAProxy of the test's own, in the foreground; killed when dropped.
struct Haproxy {
    child: std::process::Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Haproxy {
    fn start(backends: &[u16]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let servers: String = backends
            .iter()
            .enumerate()
            .map(|(i, p)| format!("  server r{i} 127.0.0.1:{p} check\n"))
            .collect();
        let config = format!(
            "global\n  maxconn 2000\n\
             defaults\n  mode http\n  timeout connect 1s\n  timeout client 30s\n  timeout server 30s\n\
               retries 3\n  option redispatch\n  retry-on conn-failure empty-response response-timeout 503\n\
             frontend fe\n  bind 127.0.0.1:{port}\n  default_backend be\n\
             backend be\n  balance roundrobin\n  option httpchk GET /_fn/ready\n  http-check expect status 200\n\
               default-server inter 250ms fall 1 rise 1\n{servers}"
        );
        let path = dir.path().join("haproxy.cfg");
        std::fs::write(&path, config).unwrap();
        let mut child = std::process::Command::new("haproxy")
            .arg("-db")
            .arg("-f")
            .arg(&path)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start `haproxy` ({e}): the cluster test puts the replicas behind it; install it \
                     (Debian: `apt-get install haproxy`), as .ci/run does"
                )
            });
        let end = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Some(status) = child.try_wait().unwrap() {
                panic!("haproxy exited ({status}) before listening on {port}");
            }
            assert!(Instant::now() < end, "haproxy did not listen on {port}");
            std::thread::sleep(Duration::from_millis(20));
        }
        Self { child, port, _dir: dir }
    }

    fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One replica: its port (kept across restarts), state directory and process.
struct Replica {
    port: u16,
    state: tempfile::TempDir,
    child: Option<tokio::process::Child>,
}

/// What every replica is started with.
struct Cluster {
    functions: Fixture,
    redis: Redis,
    registry: Registry,
    tokens: PathBuf,
    token: String,
    /// Whether blobs go to the registry (`--blob-registry`) instead of Redis.
    blobs_in_registry: bool,
}

impl Cluster {
    fn args(&self, port: u16, state: &Path) -> Vec<String> {
        let url = self.redis.url();
        [
            "serve",
            self.functions.path().to_str().unwrap(),
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--no-cache",
            "--state-dir",
            state.to_str().unwrap(),
            "--state-store",
            &url,
            "--kv-redis-url",
            &url,
            "--admin-tokens",
            self.tokens.to_str().unwrap(),
            "--insecure-registry",
            &self.registry.host(),
            "--drain-delay-ms",
            "1000",
            "--drain-timeout-ms",
            "10000",
        ]
        .into_iter()
        .map(String::from)
        .chain(
            self.blobs_in_registry
                .then(|| ["--blob-registry".to_string(), self.blob_repository()])
                .into_iter()
                .flatten(),
        )
        .collect()
    }

    /// Where `--blob-registry` keeps blobs.
    fn blob_repository(&self) -> String {
        self.registry.reference("wasmfn/blobs")
    }

    async fn start(&self, r: &mut Replica, name: &'static str) {
        let args = self.args(r.port, r.state.path());
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let served = Served::start(&args, &[], Duration::from_secs(120)).await;
        let (child, _) = served.print_log(name);
        r.child = Some(child);
    }
}

/// Requests `GET base/hello` from `clients` loops until `stop`; every
/// failure (status or error) with when it happened.
fn load(
    base: String,
    clients: usize,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<(u64, Vec<(Duration, String)>)> {
    tokio::spawn(async move {
        let started = Instant::now();
        let tasks: Vec<_> = (0..clients)
            .map(|_| {
                let (base, stop) = (base.clone(), stop.clone());
                tokio::spawn(async move {
                    let c = reqwest::Client::new();
                    let (mut ok, mut failed) = (0u64, Vec::new());
                    while !stop.load(Ordering::Relaxed) {
                        match c.get(format!("{base}/hello")).send().await {
                            Ok(r) if r.status() == 200 => {
                                let _ = r.bytes().await;
                                ok += 1;
                            }
                            Ok(r) => failed.push((started.elapsed(), format!("status {}", r.status()))),
                            Err(e) => failed.push((started.elapsed(), format!("{e}"))),
                        }
                    }
                    (ok, failed)
                })
            })
            .collect();
        let mut total = (0, Vec::new());
        for t in tasks {
            let (ok, failed) = t.await.unwrap();
            total.0 += ok;
            total.1.extend(failed);
        }
        total.1.sort_by_key(|(t, _)| *t);
        total
    })
}

async fn deploy(base: &str, token: &str, body: Value) -> Value {
    let r = reqwest::Client::new()
        .put(format!("{base}/_fn/functions/hello"))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = r.status();
    let v: Value = r.json().await.unwrap();
    assert!(status.is_success(), "{status}: {v}");
    v
}

/// The digest replica `port` serves `hello` with, if any.
async fn serving(port: u16, token: &str) -> Option<String> {
    let r = reqwest::Client::new()
        .get(format!("http://127.0.0.1:{port}/_fn/functions/hello"))
        .bearer_auth(token)
        .send()
        .await
        .ok()?;
    let v: Value = r.json().await.ok()?;
    (v["state"] == "ready").then(|| v["digest"].as_str().map(String::from))?
}

/// How long until every replica of `ports` serves `digest`, from `since`.
async fn converged(ports: &[u16], token: &str, digest: &str, since: Instant) -> Vec<Duration> {
    let mut times = Vec::new();
    for &p in ports {
        loop {
            if serving(p, token).await.as_deref() == Some(digest) {
                times.push(since.elapsed());
                break;
            }
            assert!(
                since.elapsed() < Duration::from_secs(30),
                "replica {p} never served {digest}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    times
}

#[tokio::test]
async fn three_replicas_behind_haproxy_share_deploys_restarts_and_failures() {
    let functions = Fixture::new();
    let work = tempfile::tempdir().unwrap();
    let (tokens, t) = tokens(work.path(), &[("ci", &["admin"])]);
    let cluster = Cluster {
        functions,
        redis: Redis::start(),
        registry: Registry::start(),
        tokens,
        token: t["ci"].clone(),
        blobs_in_registry: false,
    };
    let token = cluster.token.clone();
    let v1 = folder(work.path(), "v1", "hello_plain", json!({"description": "v1"}));
    let v2 = folder(
        work.path(),
        "v2",
        "hello_plain",
        json!({"description": "v2", "timeout_ms": 5000}),
    );
    let ref1 = cluster.registry.reference("functions/hello:1");
    let ref2 = cluster.registry.reference("functions/hello:2");
    push(&cluster.registry, &v1, &ref1);
    push(&cluster.registry, &v2, &ref2);

    let mut replicas: Vec<Replica> = (0..3)
        .map(|_| Replica {
            port: free_port(),
            state: tempfile::tempdir().unwrap(),
            child: None,
        })
        .collect();
    for (i, r) in replicas.iter_mut().enumerate() {
        cluster.start(r, ["[r0] ", "[r1] ", "[r2] "][i]).await;
    }
    let ports: Vec<u16> = replicas.iter().map(|r| r.port).collect();
    let haproxy = Haproxy::start(&ports);
    let base = haproxy.base();
    tokio::time::sleep(Duration::from_millis(600)).await;

    // Deployed by reference through HAProxy: every replica serves it within the goal.
    let since = Instant::now();
    let first = deploy(&base, &token, json!({"component": ref1})).await;
    let digest = first["digest"].as_str().unwrap().to_string();
    let times = converged(&ports, &token, &digest, since).await;
    println!("deploy converged on 3 replicas in {times:?}");
    let slowest = *times.iter().max().unwrap();
    assert!(
        slowest <= CONVERGED_WITHIN,
        "converged in {slowest:?}, the goal is {CONVERGED_WITHIN:?}"
    );

    // A deploy while load runs: no request fails.
    let stop = Arc::new(AtomicBool::new(false));
    let running = load(base.clone(), 8, stop.clone());
    tokio::time::sleep(Duration::from_millis(500)).await;
    let second = deploy(&base, &token, json!({"component": ref2})).await;
    assert_ne!(second["changed"], false);
    converged(&ports, &token, second["digest"].as_str().unwrap(), Instant::now()).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    let (ok, failed) = running.await.unwrap();
    println!("deploy under load: {ok} requests, {} failed", failed.len());
    assert!(failed.is_empty(), "failed during the deploy: {failed:?}");
    assert!(ok > 50, "{ok} requests");

    // A rolling restart under load: no request fails.
    let stop = Arc::new(AtomicBool::new(false));
    let running = load(base.clone(), 8, stop.clone());
    for (i, r) in replicas.iter_mut().enumerate() {
        let mut child = r.child.take().unwrap();
        signal(&child, "TERM");
        let status = tokio::time::timeout(Duration::from_secs(20), child.wait())
            .await
            .expect("the replica drains in time")
            .unwrap();
        assert!(status.success(), "replica {i} exited {status}");
        cluster.start(r, ["[r0'] ", "[r1'] ", "[r2'] "][i]).await;
        // HAProxy sees it ready again before the next one goes.
        tokio::time::sleep(Duration::from_millis(800)).await;
    }
    stop.store(true, Ordering::Relaxed);
    let (ok, failed) = running.await.unwrap();
    println!("rolling restart under load: {ok} requests, {} failed", failed.len());
    assert!(failed.is_empty(), "failed during the rolling restart: {failed:?}");
    // Each restarted replica came back with the shared state.
    converged(&ports, &token, second["digest"].as_str().unwrap(), Instant::now()).await;

    // kill -9 of one replica under load: only what was in flight on it fails.
    let stop = Arc::new(AtomicBool::new(false));
    let clients = 8;
    let running = load(base.clone(), clients, stop.clone());
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut victim = replicas[1].child.take().unwrap();
    let killed_at = Instant::now();
    signal(&victim, "KILL");
    victim.wait().await.unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, Ordering::Relaxed);
    let (ok, failed) = running.await.unwrap();
    println!(
        "kill -9 under load: {ok} requests, {} failed (at most {clients} were in flight): {failed:?}",
        failed.len()
    );
    assert!(
        failed.len() <= clients,
        "{} failures for {clients} clients: {failed:?}",
        failed.len()
    );
    let _ = killed_at;

    // A replica that joins serves everything before it reports ready.
    let mut late = Replica {
        port: free_port(),
        state: tempfile::tempdir().unwrap(),
        child: None,
    };
    cluster.start(&mut late, "[late] ").await;
    let r = reqwest::get(format!("http://127.0.0.1:{}/_fn/ready", late.port))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(serving(late.port, &token).await.as_deref(), second["digest"].as_str());
    let r = reqwest::get(format!("http://127.0.0.1:{}/hello", late.port))
        .await
        .unwrap();
    assert_eq!(r.text().await.unwrap(), "plain hello\n");
    let health: Value = reqwest::get(format!("http://127.0.0.1:{}/_fn/health", late.port))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["status"], "ok");
}

#[tokio::test]
async fn a_replica_that_loses_the_store_serves_on_degraded_and_stores_again_when_it_is_back() {
    let functions = Fixture::new();
    let work = tempfile::tempdir().unwrap();
    let (tokens, t) = tokens(work.path(), &[("ci", &["admin"])]);
    let cluster = Cluster {
        functions,
        redis: Redis::start(),
        registry: Registry::start(),
        tokens,
        token: t["ci"].clone(),
        blobs_in_registry: false,
    };
    let token = cluster.token.clone();
    let v1 = folder(work.path(), "v1", "hello_plain", json!({}));
    let ref1 = cluster.registry.reference("functions/hello:1");
    push(&cluster.registry, &v1, &ref1);
    let mut a = Replica {
        port: free_port(),
        state: tempfile::tempdir().unwrap(),
        child: None,
    };
    cluster.start(&mut a, "[a] ").await;
    let base = format!("http://127.0.0.1:{}", a.port);
    deploy(&base, &token, json!({"component": ref1})).await;

    // The store goes away: the replica keeps serving, says `degraded`, refuses changes.
    let redis_port = cluster.redis.port;
    let stopped = std::process::Command::new("redis-cli")
        .args(["-p", &redis_port.to_string(), "shutdown", "nosave"])
        .status()
        .expect("redis-cli runs (Debian's redis-tools, which redis-server depends on)");
    assert!(stopped.success() || stopped.code() == Some(1), "{stopped}");
    let end = Instant::now() + Duration::from_secs(10);
    loop {
        let h: Value = reqwest::get(format!("{base}/_fn/health"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if h["status"] == "degraded" {
            break;
        }
        assert!(Instant::now() < end, "never degraded: {h}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let r = reqwest::get(format!("{base}/hello")).await.unwrap();
    assert_eq!(r.text().await.unwrap(), "plain hello\n");
    let r = reqwest::Client::new()
        .delete(format!("{base}/_fn/functions/hello"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "state_store_unavailable");
    assert_eq!(reqwest::get(format!("{base}/hello")).await.unwrap().status(), 200);

    // Back, empty (no persistence): the replica stores its state again and is `ok`.
    let _back = Redis::start_on(redis_port);
    let end = Instant::now() + Duration::from_secs(15);
    loop {
        let h: Value = reqwest::get(format!("{base}/_fn/health"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if h["status"] == "ok" {
            break;
        }
        assert!(Instant::now() < end, "never ok again: {h}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // A replica started now serves what the first one stored again.
    let mut b = Replica {
        port: free_port(),
        state: tempfile::tempdir().unwrap(),
        child: None,
    };
    cluster.start(&mut b, "[b] ").await;
    let r = reqwest::get(format!("http://127.0.0.1:{}/hello", b.port))
        .await
        .unwrap();
    assert_eq!(r.text().await.unwrap(), "plain hello\n");
}

#[tokio::test]
async fn with_a_blob_registry_uploaded_components_travel_through_it_not_through_redis() {
    let work = tempfile::tempdir().unwrap();
    let (tokens, t) = tokens(work.path(), &[("ci", &["admin"])]);
    let cluster = Cluster {
        functions: Fixture::new(),
        redis: Redis::start(),
        registry: Registry::start(),
        tokens,
        token: t["ci"].clone(),
        blobs_in_registry: true,
    };
    let token = cluster.token.clone();
    let replica = || Replica {
        port: free_port(),
        state: tempfile::tempdir().unwrap(),
        child: None,
    };
    let (mut a, mut b) = (replica(), replica());
    cluster.start(&mut a, "[a] ").await;
    cluster.start(&mut b, "[b] ").await;

    // An upload through one replica reaches the other.
    let component = std::fs::read(guest("hello_plain")).unwrap();
    let base = format!("http://127.0.0.1:{}", a.port);
    let client = reqwest::Client::new();
    let since = Instant::now();
    let r = crate::hosted::put(&client, &base, Some(&token), "hello", "{}", component.clone()).await;
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    let digest = serving(a.port, &token).await.expect("a serves what it was given");
    converged(&[a.port, b.port], &token, &digest, since).await;
    let r = reqwest::get(format!("http://127.0.0.1:{}/hello", b.port))
        .await
        .unwrap();
    assert_eq!(r.text().await.unwrap(), "plain hello\n");

    // The component is an artifact of the repository, tagged by its digest,
    // and Redis holds no blob.
    let hex = crate::hosted::sha256(&component);
    let hex = hex.trim_start_matches("sha256:");
    let tags: Value = reqwest::get(format!("http://{}/v2/wasmfn/blobs/tags/list", cluster.registry.host()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        tags["tags"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t == &format!("sha256-{hex}")),
        "{tags}"
    );
    let scan = std::process::Command::new("redis-cli")
        .args([
            "-p",
            &cluster.redis.port.to_string(),
            "--scan",
            "--pattern",
            "wasmfn:state:*",
        ])
        .output()
        .expect("redis-cli runs (Debian's redis-tools, which redis-server depends on)");
    let keys = String::from_utf8_lossy(&scan.stdout);
    assert!(keys.contains("wasmfn:state:"), "the state is in Redis: {keys}");
    assert!(!keys.contains("wasmfn:state:blob:"), "no blob is: {keys}");

    // A replica started afresh fetches the blobs from the registry.
    let mut c = replica();
    cluster.start(&mut c, "[c] ").await;
    let r = reqwest::get(format!("http://127.0.0.1:{}/hello", c.port))
        .await
        .unwrap();
    assert_eq!(r.text().await.unwrap(), "plain hello\n");

    // A repository named with a tag is refused at start, saying what to write.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_wasmfn"))
        .args(["serve", cluster.functions.path().to_str().unwrap(), "--state-dir"])
        .arg(work.path().join("refused"))
        .args(["--state-store", &cluster.redis.url(), "--blob-registry"])
        .arg(format!("{}:v1", cluster.blob_repository()))
        .env("WASMFN_LOG", "error")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("`--blob-registry`") && err.contains("a tag or digest is not wanted"),
        "{err}"
    );
    // And without a state store, naming the fix.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_wasmfn"))
        .args(["serve", cluster.functions.path().to_str().unwrap(), "--state-dir"])
        .arg(work.path().join("alone"))
        .args(["--blob-registry", &cluster.blob_repository()])
        .env("WASMFN_LOG", "error")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("it needs `--state-store`"), "{err}");
}
