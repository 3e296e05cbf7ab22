//! The end-to-end harness: guest components compiled from source once per
//! test run, function folders made in temporary directories, a real host on
//! `127.0.0.1:0`, a real HTTP client, and a loopback fixture server.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use wasmfn_server::{HostConfig, RunningHost};

/// The repository root.
pub(crate) fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// Builds `tests/guests` (once) and returns the path of guest `name`.
pub(crate) fn guest(name: &str) -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    let dir = BUILT.get_or_init(|| {
        let root = repo().join("tests/guests");
        wasmfn_build::ensure_rust_target(&root).expect("wasm32-wasip2 target");
        let status = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
            .current_dir(&root)
            .args(["build", "--release", "--target", "wasm32-wasip2", "--quiet"])
            .status()
            .expect("run cargo for the test guests");
        assert!(status.success(), "building tests/guests failed");
        root.join("target/wasm32-wasip2/release")
    });
    let p = dir.join(format!("{name}.wasm"));
    assert!(p.is_file(), "no guest `{name}` at {}", p.display());
    p
}

/// Builds the example functions (once) with `wasmfn build` and returns their folder.
pub(crate) fn examples() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let dir = repo().join("functions");
            let report = wasmfn_build::build_all(&dir, &build_options()).expect("build examples");
            assert_eq!(report.failed, 0, "an example failed to build: {:?}", report.errors);
            assert!(report.built + report.up_to_date >= 9, "{report:?}");
            // Compile everything once into the tests' cache, so that the many
            // hosts started on the examples do not each compile the Python
            // and JavaScript runtimes again.
            let out = Command::new(env!("CARGO_BIN_EXE_wasmfn"))
                .arg("check")
                .arg(&dir)
                .arg("--cache-dir")
                .arg(examples_cache())
                .env("WASMFN_LOG", "error")
                .output()
                .expect("run wasmfn check");
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
            dir
        })
        .clone()
}

/// The secret `signing_key` of the `sign` example on [`TestHost::examples`].
pub(crate) const EXAMPLES_SIGNING_KEY: &str = "examples-signing-key";

/// The compile cache of every host started on the examples.
pub(crate) fn examples_cache() -> PathBuf {
    repo().join("target/e2e-examples-cache")
}

/// Build options for the tests: missing Python and JavaScript toolchains
/// are installed (from PyPI and npm) under `target/e2e-toolchains`.
pub(crate) fn build_options() -> wasmfn_build::BuildOptions {
    wasmfn_build::BuildOptions {
        install_toolchains: true,
        toolchains_dir: repo().join("target/e2e-toolchains"),
        ..Default::default()
    }
}

/// A temporary functions directory.
pub(crate) struct Fixture {
    pub dir: tempfile::TempDir,
}

impl Fixture {
    pub(crate) fn new() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    pub(crate) fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Adds a function folder whose component is test guest `guest`;
    /// `extra` is merged into the manifest.
    pub(crate) fn function(&self, folder: &str, guest_name: &str, extra: serde_json::Value) -> &Self {
        let mut manifest = serde_json::json!({ "component": guest(guest_name) });
        if let serde_json::Value::Object(m) = extra {
            for (k, v) in m {
                manifest[k] = v;
            }
        }
        self.file(&format!("{folder}/fn.config.json"), &manifest.to_string())
    }

    /// Writes a file below the root.
    pub(crate) fn file(&self, rel: &str, text: &str) -> &Self {
        let p = self.path().join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
        self
    }
}

/// A running host and a client for it.
pub(crate) struct TestHost {
    pub host: RunningHost,
    pub client: reqwest::Client,
    pub base: String,
    /// The state directory [`Self::examples`] gives the host (its key-value
    /// store), removed with the host.
    _state: Option<tempfile::TempDir>,
}

impl TestHost {
    pub(crate) async fn start(dir: &Path) -> Self {
        Self::start_with(HostConfig::new(dir)).await
    }

    /// A host on the example functions (built once), with their compile
    /// cache and a fresh state directory (see [`Self::examples_in`]).
    pub(crate) async fn examples() -> Self {
        let state = tempfile::tempdir().unwrap();
        let host = Self::examples_in(state.path()).await;
        Self {
            _state: Some(state),
            ..host
        }
    }

    /// A host on the example functions with the state directory `state`
    /// (`items` keeps its items in the key-value store there) and the
    /// secret `sign` needs (in `state/secrets`).
    pub(crate) async fn examples_in(state: &Path) -> Self {
        let secrets = state.join("secrets");
        std::fs::create_dir_all(&secrets).unwrap();
        std::fs::write(secrets.join("signing_key"), EXAMPLES_SIGNING_KEY).unwrap();
        let mut config = HostConfig::new(examples());
        config.runtime.cache_dir = Some(examples_cache());
        config.state_dir = Some(state.to_path_buf());
        config.secrets_dir = Some(secrets);
        Self::start_with(config).await
    }

    /// A host on `config`; without admin tokens its loopback clients may
    /// write (reload), as under `wasmfn dev`.
    pub(crate) async fn start_with(mut config: HostConfig) -> Self {
        config.admin.loopback_writes = true;
        let host = RunningHost::start(config, "127.0.0.1:0".parse().unwrap())
            .await
            .expect("host starts");
        let base = format!("http://{}", host.addr);
        Self {
            host,
            client: reqwest::Client::builder().no_proxy().build().unwrap(),
            base,
            _state: None,
        }
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub(crate) async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(self.url(path)).send().await.expect("request")
    }

    /// GET `path` with request id `id`: the status and the JSON answer
    /// (null when the answer is not JSON).
    pub(crate) async fn get_as(&self, path: &str, id: &str) -> (u16, serde_json::Value) {
        let r = self
            .client
            .get(self.url(path))
            .header("x-request-id", id)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(serde_json::Value::Null))
    }

    /// `POST /_fn/reload`, and its report.
    pub(crate) async fn reload(&self) -> serde_json::Value {
        self.client
            .post(self.url("/_fn/reload"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    pub(crate) async fn json(&self, path: &str) -> serde_json::Value {
        self.get(path).await.json().await.expect("json body")
    }

    /// The catalog entry of one function.
    pub(crate) async fn function(&self, name: &str) -> serde_json::Value {
        catalog_entry(&self.json("/_fn/catalog").await, name)
    }
}

/// The entry of function `name` in a catalog.
pub(crate) fn catalog_entry(catalog: &serde_json::Value, name: &str) -> serde_json::Value {
    catalog["functions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == name)
        .cloned()
        .unwrap_or_else(|| panic!("no function `{name}` in {catalog:#}"))
}

/// Checks the host's error shape and returns the error code.
pub(crate) async fn error_code(resp: reqwest::Response, status: u16) -> (String, serde_json::Value) {
    assert_eq!(resp.status().as_u16(), status, "unexpected status");
    let id = resp
        .headers()
        .get("x-request-id")
        .expect("x-request-id header")
        .to_str()
        .unwrap()
        .to_string();
    let body: serde_json::Value = resp.json().await.expect("error body is JSON");
    assert_eq!(body["request_id"], id.as_str(), "{body}");
    assert!(
        body["error"]["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    (body["error"]["code"].as_str().expect("error.code").to_string(), body)
}

/// A chunked body of `n` bytes (`a`s, then `b`s) with no length declared.
pub(crate) fn chunked_body(n: usize) -> reqwest::Body {
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> = vec![Ok(vec![b'a'; n / 2]), Ok(vec![b'b'; n - n / 2])];
    reqwest::Body::wrap_stream(futures::stream::iter(chunks))
}

/// Sends raw bytes and returns everything the server answers (as text).
pub(crate) async fn raw_request(addr: SocketAddr, request: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(request.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out))
        .await
        .expect("server closes")
        .unwrap();
    String::from_utf8_lossy(&out).into_owned()
}

/// Hammers `url` from `n` clients until `stop`; each client records the
/// `kind` of every answer in order. Returns (failures, per-client kinds).
pub(crate) fn hammer(
    client: &reqwest::Client,
    url: String,
    n: usize,
    stop: Arc<AtomicBool>,
    kind: fn(&str) -> String,
) -> Vec<tokio::task::JoinHandle<(usize, Vec<String>)>> {
    (0..n)
        .map(|_| {
            let (c, u, stop) = (client.clone(), url.clone(), stop.clone());
            tokio::spawn(async move {
                let (mut failures, mut kinds) = (0, Vec::new());
                while !stop.load(Ordering::Relaxed) {
                    match c.get(&u).send().await {
                        Ok(r) if r.status() == 200 => kinds.push(kind(&r.text().await.unwrap_or_default())),
                        _ => failures += 1,
                    }
                }
                (failures, kinds)
            })
        })
        .collect()
}

/// `GET url` and its JSON body.
pub(crate) async fn get_json(client: &reqwest::Client, url: &str) -> serde_json::Value {
    client
        .get(url)
        .send()
        .await
        .expect("request")
        .json()
        .await
        .expect("json body")
}

/// Sends `n` GETs to `path` at once, each with its own request id (`c-0`,
/// `c-1`, …), and returns their JSON answers in that order, each checked to
/// be a 200 whose guest saw its own request's id.
pub(crate) async fn concurrent_gets(h: &TestHost, path: &str, n: usize) -> Vec<serde_json::Value> {
    let tasks: Vec<_> = (0..n)
        .map(|i| {
            let (client, url) = (h.client.clone(), h.url(path));
            tokio::spawn(async move {
                let r = client
                    .get(url)
                    .header("x-request-id", format!("c-{i}"))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 200);
                let body: serde_json::Value = r.json().await.unwrap();
                assert_eq!(body["request_id"], format!("c-{i}"), "another request's id: {body}");
                body
            })
        })
        .collect();
    let mut bodies = Vec::with_capacity(n);
    for t in tasks {
        bodies.push(t.await.unwrap());
    }
    bodies
}

/// Polls `check` until it returns `Some`, or panics after `limit`.
pub(crate) async fn eventually<T, F, Fut>(limit: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let end = Instant::now() + limit;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(Instant::now() < end, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A loopback HTTP server for guests to call: `/ping` answers `pong`;
/// `/enter` and `/leave` count how many callers are inside at once.
pub(crate) struct FixtureServer {
    pub addr: SocketAddr,
    pub max_inside: Arc<AtomicUsize>,
    pub hits: Arc<std::sync::Mutex<HashMap<String, usize>>>,
    /// The path and headers of every request, in the order they came.
    pub requests: Arc<std::sync::Mutex<Vec<(String, http::HeaderMap)>>>,
}

impl FixtureServer {
    pub(crate) async fn start() -> Self {
        use http_body_util::Full;
        use hyper::body::Bytes;
        let inside = Arc::new(AtomicUsize::new(0));
        let max_inside = Arc::new(AtomicUsize::new(0));
        let hits: Arc<std::sync::Mutex<HashMap<String, usize>>> = Default::default();
        let requests: Arc<std::sync::Mutex<Vec<(String, http::HeaderMap)>>> = Default::default();
        let (inside2, max2, hits2, requests2) = (inside.clone(), max_inside.clone(), hits.clone(), requests.clone());
        let answer = move |req: hyper::Request<hyper::body::Incoming>| -> hyper::Response<Full<Bytes>> {
            requests2
                .lock()
                .unwrap()
                .push((req.uri().path().to_string(), req.headers().clone()));
            let count = |name: &str| *hits2.lock().unwrap().entry(name.into()).or_default() += 1;
            let text = match req.uri().path() {
                "/ping" => {
                    count("ping");
                    "pong".to_string()
                }
                "/enter" => {
                    let now = inside2.fetch_add(1, Ordering::SeqCst) + 1;
                    max2.fetch_max(now, Ordering::SeqCst);
                    count("enter");
                    "in".to_string()
                }
                "/leave" => {
                    inside2.fetch_sub(1, Ordering::SeqCst);
                    "out".to_string()
                }
                "/host" => {
                    let host = req.headers().get("host").and_then(|h| h.to_str().ok()).unwrap_or("-");
                    format!("host {host}, target {}", req.uri())
                }
                _ => {
                    let mut r = hyper::Response::new(Full::new(Bytes::new()));
                    *r.status_mut() = hyper::StatusCode::NOT_FOUND;
                    return r;
                }
            };
            hyper::Response::new(Full::new(Bytes::from(text)))
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                let answer = answer.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| {
                        let r = answer(req);
                        async move { Ok::<_, std::convert::Infallible>(r) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(tcp), service)
                        .await;
                });
            }
        });
        Self {
            addr,
            max_inside,
            hits,
            requests,
        }
    }

    pub(crate) fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

/// A Python virtual environment under `target/` with the given pinned
/// packages installed from PyPI (once per test run); returns its `bin/`.
/// The tests' Python tools all live in this one environment: the OpenAPI
/// validator, Schemathesis, the protobuf types of the OTLP receiver, and the
/// Kubernetes schema validator.
pub(crate) fn python_tools() -> PathBuf {
    static VENV: OnceLock<PathBuf> = OnceLock::new();
    VENV.get_or_init(|| {
        let venv = repo().join("target/e2e-python");
        let bin = venv.join("bin");
        let wanted = [
            "openapi-spec-validator==0.9.0",
            "schemathesis==4.32.5",
            "opentelemetry-proto==1.45.2",
            "protobuf==7.36.2",
            "kubernetes-validate==1.37.0",
        ];
        let stamp = venv.join(".installed");
        if std::fs::read_to_string(&stamp).ok().as_deref() == Some(&wanted.join(" ")) {
            return bin;
        }
        // A missing Python fails the test that needs it, never skips it.
        let ok = Command::new("python3")
            .arg("-m")
            .arg("venv")
            .arg(&venv)
            .status()
            .unwrap_or_else(|e| panic!("python3 is needed for the tests' Python tools and did not run: {e}"));
        assert!(
            ok.success(),
            "python3 -m venv {} failed (on Debian: apt-get install python3-venv)",
            venv.display()
        );
        let ok = Command::new(bin.join("pip"))
            .args(["install", "--quiet", "--disable-pip-version-check"])
            .args(wanted)
            .status()
            .unwrap_or_else(|e| panic!("pip of {} did not run: {e}", venv.display()));
        assert!(ok.success(), "pip install {wanted:?} failed");
        std::fs::write(&stamp, wanted.join(" ")).unwrap();
        bin
    })
    .clone()
}

/// The Python of [`python_tools`]' environment.
pub(crate) fn python() -> PathBuf {
    python_tools().join("python")
}

/// Checks `doc` with an independent OpenAPI 3.1 validator (the pinned
/// `openapi-spec-validator`).
pub(crate) async fn assert_valid_openapi(doc: &serde_json::Value) {
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), serde_json::to_vec(doc).unwrap()).unwrap();
    let bin = tokio::task::spawn_blocking(python_tools).await.unwrap();
    let out = Command::new(bin.join("openapi-spec-validator"))
        .arg(file.path())
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && said.contains("OK"),
        "{said}{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Headless Chromium with its profile in `profile`, reaching nothing but
/// loopback (a page must not need the network).
pub(crate) async fn headless_chromium(profile: &Path) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(tokio::task::spawn_blocking(chromium).await.unwrap());
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
    ])
    .args([
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
    ])
    .arg("--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1")
    .arg(format!("--user-data-dir={}", profile.display()));
    cmd
}

/// Debian's Chromium, installed with apt when it is missing.
pub(crate) fn chromium() -> PathBuf {
    static CHROMIUM: OnceLock<PathBuf> = OnceLock::new();
    CHROMIUM
        .get_or_init(|| {
            let path = PathBuf::from("/usr/bin/chromium");
            if !path.exists() {
                let update = Command::new("apt-get").args(["update", "-qq"]).status();
                assert!(
                    update.is_ok_and(|s| s.success()),
                    "apt-get update failed: Chromium is needed for the docs test"
                );
                let install = Command::new("apt-get")
                    .args(["install", "-y", "-qq", "chromium"])
                    .env("DEBIAN_FRONTEND", "noninteractive")
                    .status();
                assert!(install.is_ok_and(|s| s.success()), "apt-get install chromium failed");
            }
            path
        })
        .clone()
}

/// `kill -s SIG PID`.
pub(crate) fn signal(child: &tokio::process::Child, sig: &str) {
    let pid = child.id().expect("the process is running").to_string();
    let status = Command::new("kill").args(["-s", sig, &pid]).status().unwrap();
    assert!(status.success(), "kill -s {sig} {pid}");
}

/// The `wasmfn` binary running in a child process, with its log.
pub(crate) struct Served {
    pub child: tokio::process::Child,
    pub base: String,
    pub log: tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStderr>>,
    /// The state directory made for it when the arguments name none.
    pub state: Option<tempfile::TempDir>,
}

impl Served {
    /// Starts `wasmfn ARGS` (which must listen on `127.0.0.1:0`) and waits,
    /// up to `startup`, for the line that names its address.
    pub(crate) async fn start(args: &[&str], envs: &[(&str, &std::ffi::OsStr)], startup: Duration) -> Self {
        use tokio::io::AsyncBufReadExt;
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_wasmfn"));
        cmd.args(args)
            .env("WASMFN_LOG", "info")
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true);
        // Tracing is what the test says: never the collector of the shell
        // that runs the tests.
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("OTEL_") {
                cmd.env_remove(k);
            }
        }
        for (k, v) in envs {
            cmd.env(k, v);
        }
        // Each server its own state directory, unless the test names one.
        let state =
            (!args.contains(&"--state-dir") && !envs.iter().any(|(k, _)| *k == "WASMFN_STATE_DIR")).then(|| {
                let d = tempfile::tempdir().unwrap();
                cmd.env("WASMFN_STATE_DIR", d.path());
                d
            });
        let mut child = cmd.spawn().unwrap();
        let mut log = tokio::io::BufReader::new(child.stderr.take().unwrap()).lines();
        let addr = tokio::time::timeout(startup, async {
            loop {
                let line = log.next_line().await.unwrap().expect("wasmfn is running");
                // The address ends where the message does: at a space, or
                // at the closing quote of a JSON log line (`--log-format json`).
                if let Some(a) = line.split("listening on http://").nth(1) {
                    break a
                        .split(|c: char| c.is_whitespace() || c == '"')
                        .next()
                        .unwrap()
                        .to_string();
                }
            }
        })
        .await
        .expect("wasmfn starts in time");
        Self {
            child,
            base: format!("http://{addr}"),
            log,
            state,
        }
    }

    /// The next log line (a minute at most).
    pub(crate) async fn next_line(&mut self) -> String {
        tokio::time::timeout(Duration::from_secs(60), self.log.next_line())
            .await
            .expect("the server kept writing log lines")
            .unwrap()
            .expect("the server is still running")
    }

    /// Prints every further log line from a background task (so the child
    /// never blocks on a full pipe); returns the child and its base URL.
    pub(crate) fn print_log(self, prefix: &'static str) -> (tokio::process::Child, String) {
        let Served {
            child,
            base,
            mut log,
            state,
        } = self;
        tokio::spawn(async move {
            // The state directory lives as long as the server writes its log.
            let _state = state;
            while let Ok(Some(line)) = log.next_line().await {
                println!("{prefix}{line}");
            }
        });
        (child, base)
    }

    /// Waits for a log line containing `needle`.
    pub(crate) async fn line_with(&mut self, needle: &str) -> String {
        loop {
            let line = self.next_line().await;
            if line.contains(needle) {
                return line;
            }
        }
    }
}

/// `wasmfn ARGS`, its exit status, stdout and stderr.
pub(crate) fn wasmfn(args: &[&str], envs: &[(&str, &str)]) -> (bool, String, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_wasmfn"));
    cmd.args(args).env("WASMFN_LOG", "warn");
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run wasmfn");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Tokens made with `wasmfn token create`, one per `(id, scopes)`, and the
/// admin token file listing them (`DIR/tokens.json`, for `--admin-tokens`).
pub(crate) fn tokens(dir: &Path, specs: &[(&str, &[&str])]) -> (PathBuf, HashMap<String, String>) {
    let mut entries = Vec::new();
    let mut tokens = HashMap::new();
    for (id, scopes) in specs {
        let mut args = vec!["token", "create", "--id", id];
        for s in *scopes {
            args.extend(["--scope", s]);
        }
        let (ok, out, err) = wasmfn(&args, &[]);
        assert!(ok, "{err}");
        let lines: Vec<&str> = out.lines().collect();
        let token = lines[1].trim().to_string();
        assert!(token.starts_with("wfn_"), "{out}");
        let entry: serde_json::Value = serde_json::from_str(lines.last().unwrap()).unwrap();
        assert_eq!(entry["id"], *id);
        assert!(
            !out.contains(&format!("\"{token}\"")),
            "the file holds the digest, not the token"
        );
        entries.push(entry);
        tokens.insert(id.to_string(), token);
    }
    let path = dir.join("tokens.json");
    std::fs::write(&path, serde_json::to_string_pretty(&entries).unwrap()).unwrap();
    (path, tokens)
}

/// Starts `wasmfn serve DIR --listen 127.0.0.1:0 --no-cache FLAGS`.
pub(crate) async fn serve(dir: &Path, flags: &[&str]) -> Served {
    let mut args = vec!["serve", dir.to_str().unwrap(), "--listen", "127.0.0.1:0", "--no-cache"];
    args.extend_from_slice(flags);
    Served::start(&args, &[], Duration::from_secs(120)).await
}

/// A loopback port that was free a moment ago, for a child process that
/// must be told its address (the port is released before this returns).
pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind a free loopback port")
        .port()
}

/// The program `name` as found on `PATH`, if it is there.
pub(crate) fn on_path(name: &str) -> Option<PathBuf> {
    let dirs = std::env::var_os("PATH")?;
    std::env::split_paths(&dirs)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}
