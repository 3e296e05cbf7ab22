//! Traces over OTLP/HTTP from the real binary, received by a small Python
//! collector (`otlp_receiver.py`): a function request is one trace that
//! continues the caller's `traceparent`, with the server span's children
//! and a client span per outbound request whose context the callee
//! receives; and without an `OTEL_*` variable nothing is exported.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::{Value, json};
use tokio::io::AsyncBufReadExt;

use crate::harness::*;

/// The caller's trace and span (the W3C example's).
const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT_ID: &str = "00f067aa0ba902b7";

/// OTLP's `SpanKind`.
const SERVER: i64 = 2;
const CLIENT: i64 = 3;

/// One span as the receiver writes it.
#[derive(Debug, Clone, Deserialize)]
struct Span {
    trace_id: String,
    span_id: String,
    parent_span_id: String,
    name: String,
    kind: i64,
    service_name: String,
    attributes: serde_json::Map<String, Value>,
}

impl Span {
    fn attr(&self, key: &str) -> &Value {
        self.attributes.get(key).unwrap_or(&Value::Null)
    }
}

/// `otlp_receiver.py` in a child process, killed when this is dropped.
struct Receiver {
    _child: tokio::process::Child,
    port: u16,
    spans: PathBuf,
    /// One line per request it received, on any path.
    requests: Arc<Mutex<Vec<String>>>,
    _dir: tempfile::TempDir,
}

impl Receiver {
    /// Starts the receiver on `port` (0: any free port) and waits for the
    /// port it names.
    async fn start(port: u16) -> Self {
        let python = tokio::task::spawn_blocking(python).await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        let spans = dir.path().join("spans.jsonl");
        let script = repo().join("tests/e2e/observability/otlp_receiver.py");
        let mut child = tokio::process::Command::new(&python)
            .arg("-u")
            .arg(&script)
            .arg(port.to_string())
            .arg(&spans)
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", python.display()));
        let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
        let first = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
            .await
            .expect("the OTLP receiver names its port within 30 s")
            .unwrap();
        let port = first
            .and_then(|l| l.trim().parse().ok())
            .unwrap_or_else(|| panic!("the OTLP receiver did not start on port {port} (its error is above)"));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let seen = requests.clone();
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                seen.lock().unwrap().push(line);
            }
        });
        Self {
            _child: child,
            port,
            spans,
            requests,
            _dir: dir,
        }
    }

    /// The base URL, as `OTEL_EXPORTER_OTLP_ENDPOINT` takes it.
    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Every span received so far (whole lines only: the receiver may be
    /// writing the next batch).
    fn spans(&self) -> Vec<Span> {
        let text = std::fs::read_to_string(&self.spans).unwrap_or_default();
        text.split_inclusive('\n')
            .filter(|l| l.ends_with('\n'))
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("a span line the test cannot read: {e}: {l}")))
            .collect()
    }

    fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }
}

/// The spans of one request's trace that the test looks at.
#[derive(Debug)]
struct Trace {
    all: Vec<Span>,
    server: Span,
    guest: Span,
    instantiate: Span,
    client: Span,
}

impl Trace {
    /// Trace [`TRACE_ID`] out of `spans`, once each span looked at is in.
    fn find(spans: &[Span]) -> Option<Self> {
        let all: Vec<Span> = spans.iter().filter(|s| s.trace_id == TRACE_ID).cloned().collect();
        let one = |p: &dyn Fn(&Span) -> bool| all.iter().find(|s| p(s)).cloned();
        Some(Self {
            server: one(&|s| s.kind == SERVER)?,
            guest: one(&|s| s.name == "guest")?,
            instantiate: one(&|s| s.name == "instantiate")?,
            client: one(&|s| s.kind == CLIENT)?,
            all,
        })
    }
}

/// Waits for the request's trace: polls for 20 s (the batch exporter sends
/// every few seconds); then stops the host with SIGTERM, which flushes
/// what it holds, and looks once more.
async fn wait_for_trace(receiver: &Receiver, host: &mut tokio::process::Child) -> Trace {
    let end = Instant::now() + Duration::from_secs(20);
    while Instant::now() < end {
        if let Some(t) = Trace::find(&receiver.spans()) {
            return t;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    signal(host, "TERM");
    let exited = tokio::time::timeout(Duration::from_secs(30), host.wait()).await;
    let spans = receiver.spans();
    Trace::find(&spans).unwrap_or_else(|| {
        panic!(
            "no whole trace {TRACE_ID} (a server, guest, instantiate and client span) after 20 s and a \
             SIGTERM (the host: {exited:?}); the receiver had {:?} and these spans: {spans:#?}",
            receiver.requests()
        )
    })
}

/// Starts `wasmfn serve DIR` on a free port with the environment `envs`.
async fn serve_with(dir: &Path, envs: &[(&str, &OsStr)]) -> Served {
    let args = ["serve", dir.to_str().unwrap(), "--listen", "127.0.0.1:0", "--no-cache"];
    Served::start(&args, envs, Duration::from_secs(120)).await
}

/// A function `call` (the `outbound` guest) that may call `callee`.
fn calling_function(callee: &FixtureServer) -> Fixture {
    let fx = Fixture::new();
    fx.function("call", "outbound", json!({"allowed_outbound_hosts": [callee.url()]}));
    fx
}

/// `GET /call`, calling the callee's `/ping`, as part of the caller's
/// trace; checks the answer and returns its request id.
async fn call(base: &str, callee: &FixtureServer) -> String {
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let r = client
        .get(format!("{base}/call?url={}/ping", callee.url()))
        .header("traceparent", format!("00-{TRACE_ID}-{PARENT_ID}-01"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let id = r.headers()["x-request-id"].to_str().unwrap().to_string();
    assert_eq!(r.text().await.unwrap(), "upstream 200: pong");
    id
}

/// The `traceparent` headers the callee received on `/ping`.
fn traceparents(callee: &FixtureServer) -> Vec<String> {
    let requests = callee.requests.lock().unwrap();
    requests
        .iter()
        .filter(|(path, _)| path == "/ping")
        .filter_map(|(_, headers)| headers.get("traceparent"))
        .map(|v| v.to_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn a_function_request_is_one_trace_from_the_callers_span_to_the_callee() {
    let receiver = Receiver::start(0).await;
    let callee = FixtureServer::start().await;
    let fx = calling_function(&callee);
    let endpoint = receiver.endpoint();
    let served = serve_with(
        fx.path(),
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", OsStr::new(&endpoint)),
            ("OTEL_TRACES_SAMPLER", OsStr::new("always_on")),
            ("OTEL_SERVICE_NAME", OsStr::new("wasmfn-test")),
        ],
    )
    .await;
    let (mut host, base) = served.print_log("traces: ");
    let request_id = call(&base, &callee).await;

    let t = wait_for_trace(&receiver, &mut host).await;
    for s in &t.all {
        assert_eq!(s.service_name, "wasmfn-test", "{s:#?}");
    }
    let count = |kind| t.all.iter().filter(|s| s.kind == kind).count();
    assert_eq!((count(SERVER), count(CLIENT)), (1, 1), "{:#?}", t.all);

    // The server span continues the caller's span.
    let server = &t.server;
    assert_eq!(server.parent_span_id, PARENT_ID, "{server:#?}");
    assert_eq!(server.name, "GET /call", "{server:#?}");
    assert_eq!(server.attr("http.request.method"), "GET", "{server:#?}");
    assert_eq!(server.attr("http.route"), "/call", "{server:#?}");
    assert_eq!(server.attr("url.path"), "/call", "{server:#?}");
    assert_eq!(server.attr("http.response.status_code"), &json!(200), "{server:#?}");
    assert_eq!(server.attr("wasmfn.function"), "call", "{server:#?}");
    assert_eq!(server.attr("wasmfn.tenant"), "default", "{server:#?}");
    assert_eq!(server.attr("wasmfn.request_id"), request_id.as_str(), "{server:#?}");

    // Its children: the instance, then the guest running in it.
    let instantiate = &t.instantiate;
    assert_eq!(instantiate.parent_span_id, server.span_id, "{instantiate:#?}");
    let kind = instantiate.attr("wasmfn.instance.kind");
    assert!(
        ["warm", "fresh", "reused"].contains(&kind.as_str().unwrap_or_default()),
        "{instantiate:#?}"
    );
    let guest = &t.guest;
    assert_eq!(guest.parent_span_id, server.span_id, "{guest:#?}");
    assert_eq!(guest.attr("wasmfn.exit"), "ok", "{guest:#?}");
    assert!(
        guest
            .attr("wasmfn.guest.cpu_seconds")
            .as_f64()
            .is_some_and(|s| s >= 0.0),
        "{guest:#?}"
    );
    assert!(guest.attr("wasmfn.memory.peak_bytes").is_u64(), "{guest:#?}");

    // The guest's outbound request: a client span under the guest span ...
    let client = &t.client;
    assert_eq!(client.parent_span_id, guest.span_id, "{client:#?}");
    assert_eq!(client.name, "GET", "{client:#?}");
    assert_eq!(client.attr("http.request.method"), "GET", "{client:#?}");
    assert_eq!(client.attr("server.address"), "127.0.0.1", "{client:#?}");
    assert_eq!(
        client.attr("url.full"),
        format!("{}/ping", callee.url()).as_str(),
        "{client:#?}"
    );
    assert_eq!(client.attr("http.response.status_code"), &json!(200), "{client:#?}");

    // ... whose context the callee received.
    let received = traceparents(&callee);
    assert_eq!(
        received,
        [format!("00-{TRACE_ID}-{}-01", client.span_id)],
        "the callee's `traceparent` names the client span"
    );
}

#[tokio::test]
async fn without_otel_variables_nothing_is_exported() {
    // OTLP/HTTP's default port where it is free: a host that exported
    // without being told where would send there.
    let port = if std::net::TcpListener::bind("127.0.0.1:4318").is_ok() {
        4318
    } else {
        println!("127.0.0.1:4318 is taken: the receiver listens elsewhere");
        0
    };
    let receiver = Receiver::start(port).await;
    let callee = FixtureServer::start().await;
    let fx = calling_function(&callee);
    // `Served` passes on no `OTEL_*` variable of the test's own environment.
    let served = serve_with(fx.path(), &[]).await;
    let (mut host, base) = served.print_log("untraced: ");
    call(&base, &callee).await;

    // Nothing for longer than an export would take to be sent; then the
    // host stops (a shutdown flushes the exporter) and still nothing came.
    let end = Instant::now() + Duration::from_secs(3);
    while Instant::now() < end {
        assert_eq!(receiver.requests(), Vec::<String>::new(), "the host exported");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    signal(&host, "TERM");
    tokio::time::timeout(Duration::from_secs(30), host.wait())
        .await
        .expect("the host exits after SIGTERM")
        .unwrap();
    assert_eq!(receiver.requests(), Vec::<String>::new(), "the host exported");
    assert!(receiver.spans().is_empty());
}
