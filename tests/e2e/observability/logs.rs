//! Each function's recent log and the access log: guest lines kept whole
//! (a line written through several `get-stderr()` handles, a line left
//! without a newline) under their request's id, one access line per
//! request, `tail` and its refusals, who may read which tenant's log;
//! following it as server-sent events; `wasmfn logs` with and without
//! `-f`; and the process's access log (`--access-log --log-format json`).

use std::pin::Pin;
use std::process::Stdio;
use std::time::Duration;

use futures::{Stream, StreamExt};
use hyper::body::Bytes;
use serde_json::{Value, json};
use tokio::io::AsyncBufReadExt;

use super::*;
use crate::tenants::{deploy, hosted, put_tenant};
use wasmfn_server::Scope;

/// How long a line may take to reach a follower.
const FOLLOWED_WITHIN: Duration = Duration::from_secs(10);

/// `GET path` for the `logs` guest with request id `id` (the host's own
/// when `None`): checks the answer and reads it whole (which ends the
/// request's record); returns the request's id.
async fn request(c: &reqwest::Client, url: &str, host: Option<&str>, id: Option<&str>) -> String {
    let mut r = c.get(url);
    if let Some(h) = host {
        r = r.header("host", h);
    }
    if let Some(id) = id {
        r = r.header("x-request-id", id);
    }
    let resp = r.send().await.expect("GET the logs guest");
    assert_eq!(resp.status(), 200);
    let answered = resp.headers()["x-request-id"].to_str().unwrap().to_string();
    if let Some(id) = id {
        assert_eq!(answered, id);
    }
    assert_eq!(resp.text().await.unwrap(), "logged\n");
    answered
}

#[tokio::test]
async fn a_functions_log_keeps_each_line_whole_under_its_request() {
    let fx = Fixture::new();
    fx.function("logs", "logs", json!({}));
    let (h, t, _state) = hosted(
        fx.path(),
        &[
            ("root", &[Scope::Admin], None),
            ("reader", &[Scope::Read], None),
            ("acme-reader", &[Scope::Read], Some("acme")),
        ],
    )
    .await;
    let reader = Some(t["reader"].as_str());

    // Three requests, each logged before the next: the host names the
    // first, the caller the others.
    let log_url = |query: &str| h.url(&format!("/_fn/functions/logs/logs{query}"));
    let mut ids = Vec::new();
    let mut body = Value::Null;
    for id in [None, Some("logs-2"), Some("logs-3")] {
        let id = request(&h.client, &h.url("/logs"), None, id).await;
        body = logged(&h.client, &log_url("?tail=1000"), reader, &id).await;
        ids.push(id);
    }
    assert_eq!(
        (&body["tenant"], &body["function"]),
        (&json!("default"), &json!("logs"))
    );
    let all = lines(&body);
    // Four lines a request and nothing else: no piece of a line on its own.
    assert_eq!(all.len(), 4 * ids.len(), "{all:#?}");
    for id in &ids {
        assert_guest_request(all, id, "/logs");
    }
    for line in all {
        let mut keys: Vec<&str> = line.as_object().unwrap().keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(keys, ["kind", "request_id", "text", "time"], "{line}");
        let time = line["time"].as_str().unwrap();
        assert!(
            time.contains('T') && time.ends_with('Z'),
            "an RFC 3339 time in UTC: {time}"
        );
    }

    // `tail`: the last N lines, oldest first; 100 when not given.
    let last_two = log(&h.client, &log_url("?tail=2"), reader).await;
    assert_eq!(lines(&last_two), &all[all.len() - 2..]);
    assert!(lines(&log(&h.client, &log_url("?tail=0"), reader).await).is_empty());
    assert_eq!(lines(&log(&h.client, &log_url(""), reader).await), all);
    for query in ["?tail=abc", "?tail=5000", "?tail=-1", "?follow=maybe"] {
        let r = h
            .client
            .get(log_url(query))
            .bearer_auth(&t["reader"])
            .send()
            .await
            .unwrap();
        assert_eq!(error_code(r, 400).await.0, "bad_query", "{query}");
    }
    let r = h
        .client
        .get(h.url("/_fn/functions/nope/logs"))
        .bearer_auth(&t["reader"])
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(r, 404).await.0, "function_not_found");
    let r = h.client.get(log_url("")).send().await.unwrap();
    assert_eq!(error_code(r, 401).await.0, "unauthorized");

    // Tenants: each function's log holds its own requests; a tenant's token
    // reads its tenant's logs, and another tenant's do not exist for it.
    let root = t["root"].as_str();
    for tenant in ["acme", "globex"] {
        put_tenant(&h, root, tenant, json!({"hosts": [format!("{tenant}.test")]}), 201).await;
        let manifest = json!({"invoke": {"routes": ["/logs"]}});
        let r = deploy(&h, root, tenant, "shout", manifest, "logs").await;
        assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
        let id = format!("{tenant}-1");
        request(&h.client, &h.url("/logs"), Some(&format!("{tenant}.test")), Some(&id)).await;
    }
    let tenant_log = |tenant: &str| h.url(&format!("/_fn/tenants/{tenant}/functions/shout/logs"));
    let acme = logged(&h.client, &tenant_log("acme"), Some(&t["acme-reader"]), "acme-1").await;
    assert_eq!((&acme["tenant"], &acme["function"]), (&json!("acme"), &json!("shout")));
    assert_eq!(lines(&acme).len(), 4, "{acme:#}");
    assert_guest_request(lines(&acme), "acme-1", "/logs");
    let globex = logged(&h.client, &tenant_log("globex"), Some(root), "globex-1").await;
    assert_eq!(lines(&globex).len(), 4, "{globex:#}");
    assert_guest_request(lines(&globex), "globex-1", "/logs");
    for url in [tenant_log("globex"), log_url("")] {
        let r = h.client.get(&url).bearer_auth(&t["acme-reader"]).send().await.unwrap();
        assert_eq!(error_code(r, 404).await.0, "tenant_not_found", "{url}");
    }
    // The default tenant's function saw none of the tenants' requests.
    assert_eq!(lines(&log(&h.client, &log_url(""), reader).await), all);
}

/// The `data:` events of a server-sent event stream, each parsed as JSON.
struct Events {
    body: Pin<Box<dyn Stream<Item = reqwest::Result<Bytes>> + Send>>,
    pending: String,
}

impl Events {
    fn new(resp: reqwest::Response) -> Self {
        Self {
            body: Box::pin(resp.bytes_stream()),
            pending: String::new(),
        }
    }

    /// The next event's data as JSON (comments, the keep-alives, skipped);
    /// fails on an event of another name (`lagged`) or a stream that ends.
    async fn next(&mut self) -> Value {
        loop {
            if let Some(end) = self.pending.find("\n\n") {
                let event: String = self.pending.drain(..end + 2).collect();
                let mut data = Vec::new();
                for line in event.lines().filter(|l| !l.is_empty()) {
                    if let Some(d) = line.strip_prefix("data:") {
                        data.push(d.strip_prefix(' ').unwrap_or(d));
                    } else {
                        assert!(line.starts_with(':'), "an unexpected event field `{line}` in {event:?}");
                    }
                }
                if data.is_empty() {
                    continue;
                }
                let text = data.join("\n");
                return serde_json::from_str(&text)
                    .unwrap_or_else(|e| panic!("an event that is not JSON ({e}): {text}"));
            }
            let chunk = tokio::time::timeout(FOLLOWED_WITHIN, self.body.next())
                .await
                .unwrap_or_else(|_| panic!("no event within {FOLLOWED_WITHIN:?}; pending: {:?}", self.pending))
                .expect("the event stream is still open")
                .expect("the event stream reads");
            self.pending
                .push_str(std::str::from_utf8(&chunk).expect("UTF-8 events"));
        }
    }
}

#[tokio::test]
async fn following_a_log_streams_its_tail_then_each_new_line() {
    let fx = Fixture::new();
    fx.function("logs", "logs", json!({}));
    let h = TestHost::start(fx.path()).await;
    let log_url = |query: &str| h.url(&format!("/_fn/functions/logs/logs{query}"));
    request(&h.client, &h.url("/logs"), None, Some("before")).await;
    logged(&h.client, &log_url(""), None, "before").await;
    let tail = log(&h.client, &log_url("?tail=2"), None).await;

    let resp = h.client.get(log_url("?tail=2&follow=1")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let content_type = resp.headers()["content-type"].to_str().unwrap().to_string();
    assert!(content_type.starts_with("text/event-stream"), "{content_type}");
    let mut events = Events::new(resp);
    // The tail first, as the plain answer gives it.
    for expected in lines(&tail) {
        assert_eq!(&events.next().await, expected);
    }
    // Then what a request made after subscribing writes, as it comes.
    request(&h.client, &h.url("/logs"), None, Some("after")).await;
    let mut after = Vec::new();
    while !after.last().is_some_and(|l: &Value| l["kind"] == "access") {
        let line = events.next().await;
        assert_eq!(line["request_id"], "after", "{line}");
        assert!(line["time"].is_string(), "{line}");
        after.push(line);
    }
    assert_guest_request(&after, "after", "/logs");
}

/// `wasmfn ARGS` run off the test's runtime, so the host's log keeps being read.
async fn cli(args: &[&str]) -> (bool, String, String) {
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        wasmfn(&args, &[])
    })
    .await
    .unwrap()
}

/// The next line `wasmfn logs -f` prints, within [`FOLLOWED_WITHIN`].
async fn next_line(out: &mut tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStdout>>) -> String {
    tokio::time::timeout(FOLLOWED_WITHIN, out.next_line())
        .await
        .expect("wasmfn logs -f prints the line in time")
        .unwrap()
        .expect("wasmfn logs -f is still running")
}

#[tokio::test]
async fn wasmfn_logs_prints_the_tail_and_follows_new_lines() {
    let fx = Fixture::new();
    fx.function("logs", "logs", json!({}));
    let (token_file, t) = tokens(fx.path(), &[("reader", &["read"])]);
    let served = serve(fx.path(), &["--admin-tokens", token_file.to_str().unwrap()]).await;
    let (_host, base) = served.print_log("logs-cli: ");
    let c = reqwest::Client::builder().no_proxy().build().unwrap();
    let token = t["reader"].as_str();
    let log_url = format!("{base}/_fn/functions/logs/logs");
    for id in ["cli-1", "cli-2"] {
        request(&c, &format!("{base}/logs"), None, Some(id)).await;
        logged(&c, &log_url, Some(token), id).await;
    }

    // The last five lines: cli-1's access line, then all four of cli-2's.
    let (ok, out, err) = cli(&["logs", "logs", "--tail", "5", "--url", &base, "--token", token]).await;
    assert!(ok, "{err}");
    let printed: Vec<&str> = out.lines().collect();
    assert_eq!(printed.len(), 5, "{out}");
    assert!(printed[0].contains("access") && printed[0].contains("cli-1"), "{out}");
    for (line, (kind, text)) in printed[1..4].iter().zip(GUEST_LINES) {
        assert!(
            line.contains(kind) && line.contains("cli-2") && line.ends_with(text),
            "`{line}` should be cli-2's {kind} line `{text}`:\n{out}"
        );
    }
    assert!(printed[4].contains("access") && printed[4].contains("cli-2"), "{out}");
    // The host's errors, as it gave them.
    let (ok, _, err) = cli(&["logs", "nope", "--url", &base, "--token", token]).await;
    assert!(!ok && err.contains("404 function_not_found"), "{err}");
    let (ok, _, err) = cli(&["logs", "logs", "--url", &base]).await;
    assert!(!ok && err.contains("401 unauthorized"), "{err}");

    // `-f`: the last line, then a line written after it started.
    let mut follower = tokio::process::Command::new(env!("CARGO_BIN_EXE_wasmfn"))
        .args(["logs", "logs", "-f", "--tail", "1", "--url", &base, "--token", token])
        .env("WASMFN_LOG", "warn")
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start wasmfn logs -f");
    let mut out = tokio::io::BufReader::new(follower.stdout.take().unwrap()).lines();
    // Once the tail is printed the follower is subscribed: nothing after it is missed.
    let first = next_line(&mut out).await;
    assert!(first.contains("access") && first.contains("cli-2"), "{first}");
    request(&c, &format!("{base}/logs"), None, Some("cli-3")).await;
    loop {
        let line = next_line(&mut out).await;
        assert!(line.contains("cli-3"), "only cli-3's lines come after the tail: {line}");
        if line.ends_with("start a print 123") {
            break;
        }
    }
    assert!(follower.try_wait().unwrap().is_none(), "wasmfn logs -f keeps following");
    follower.start_kill().unwrap();
    follower.wait().await.unwrap();
}

#[tokio::test]
async fn the_access_log_has_one_json_line_per_request_when_asked_for() {
    let fx = Fixture::new();
    fx.function("logs", "logs", json!({}));
    let c = reqwest::Client::builder().no_proxy().build().unwrap();

    let mut served = serve(fx.path(), &["--access-log", "--log-format", "json"]).await;
    let base = served.base.clone();
    // Each request's line is read before the next request is made.
    for (n, id) in [None, Some("access-2")].into_iter().enumerate() {
        let id = request(&c, &format!("{base}/logs"), None, id).await;
        let line = served.line_with("wasmfn::access").await;
        let v: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("not a JSON log line ({e}): {line}"));
        assert_eq!(v["target"], "wasmfn::access", "{v:#}");
        assert_eq!(v["level"], "INFO", "{v:#}");
        assert!(v["timestamp"].is_string(), "{v:#}");
        let f = &v["fields"];
        // One line per request: the next one is this request's.
        assert_eq!(f["request_id"], id.as_str(), "access line {n}: {v:#}");
        for (field, value) in [
            ("tenant", "default"),
            ("function", "logs"),
            ("route", "/logs"),
            ("method", "GET"),
            ("path", "/logs"),
            ("limit", "-"),
            ("trace_id", "-"),
        ] {
            assert_eq!(f[field], value, "field `{field}`: {v:#}");
        }
        assert_eq!(f["status"], 200, "{v:#}");
        assert_eq!(f["bytes_in"], 0, "{v:#}");
        assert_eq!(f["bytes_out"], "logged\n".len(), "{v:#}");
        for field in ["duration_ms", "guest_cpu_ms"] {
            assert!(f[field].as_f64().is_some_and(|ms| ms >= 0.0), "field `{field}`: {v:#}");
        }
        let instance = f["instance"].as_str().unwrap_or_default();
        assert!(
            ["warm", "fresh", "reused"].contains(&instance),
            "field `instance`: {v:#}"
        );
    }
    drop(served);

    // Without `--access-log`: the request is recorded (its function's log
    // has its access line) but the process's log has no access line.
    let served = serve(fx.path(), &["--log-format", "json"]).await;
    let base = served.base.clone();
    request(&c, &format!("{base}/logs"), None, Some("quiet-1")).await;
    logged(&c, &format!("{base}/_fn/functions/logs/logs"), None, "quiet-1").await;
    let all = crate::hosted::stop_and_collect_log(served).await;
    assert!(
        all.lines()
            .any(|l| l.contains("wasmfn::guest") && l.contains("quiet-1")),
        "the guest's lines are in the log:\n{all}"
    );
    assert!(
        !all.contains("wasmfn::access"),
        "no access line without --access-log:\n{all}"
    );
}
