//! Observability of the real binary: metrics scraped as Prometheus does,
//! and traces exported over OTLP to a receiver of the test's own; the
//! metrics' exposition read sample by sample (per tenant, per limit); each
//! function's log (its tail, followed as server-sent events, through
//! `wasmfn logs`) and the access log. This module holds what they share.

mod logs;
pub(crate) mod metrics;
mod prometheus;
mod traces;

use std::time::Duration;

use serde_json::Value;

use crate::harness::*;

/// What the `logs` guest writes per request, as its function's log
/// should show it: kind and text, in order (the access line follows).
const GUEST_LINES: [(&str, &str); 3] = [
    ("stdout", "hello from the logs guest"),
    ("stderr", "start a print 123"),
    ("stderr", "left without a newline"),
];

/// `GET url` (a `…/logs` address) with `token`: the JSON answer, checked
/// to be a 200.
async fn log(c: &reqwest::Client, url: &str, token: Option<&str>) -> Value {
    let mut r = c.get(url);
    if let Some(t) = token {
        r = r.bearer_auth(t);
    }
    let resp = r.send().await.expect("GET a function's log");
    assert_eq!(resp.status(), 200, "GET {url}");
    resp.json().await.expect("a function's log is JSON")
}

/// Polls the log at `url` until it holds the access line of request `id`
/// (its record is written once the response is sent and the guest is
/// done); returns that answer.
async fn logged(c: &reqwest::Client, url: &str, token: Option<&str>, id: &str) -> Value {
    eventually(
        Duration::from_secs(20),
        &format!("the access line of request `{id}` in {url}"),
        || async {
            let body = log(c, url, token).await;
            let done = lines(&body)
                .iter()
                .any(|l| l["kind"] == "access" && l["request_id"] == id);
            done.then_some(body)
        },
    )
    .await
}

/// The `lines` of a log answer.
fn lines(body: &Value) -> &[Value] {
    body["lines"].as_array().expect("`lines` is a list")
}

/// The (kind, text) of each line of request `id`, in order.
fn of_request<'a>(lines: &'a [Value], id: &str) -> Vec<(&'a str, &'a str)> {
    lines
        .iter()
        .filter(|l| l["request_id"] == id)
        .map(|l| (l["kind"].as_str().expect("kind"), l["text"].as_str().expect("text")))
        .collect()
}

/// Checks that the lines of request `id` are the `logs` guest's, each
/// whole, then one access line for `GET path` answered 200.
fn assert_guest_request(lines: &[Value], id: &str, path: &str) {
    let seen = of_request(lines, id);
    assert_eq!(seen.len(), GUEST_LINES.len() + 1, "lines of `{id}`: {seen:#?}");
    assert_eq!(seen[..GUEST_LINES.len()], GUEST_LINES, "lines of `{id}`");
    let (kind, text) = seen[GUEST_LINES.len()];
    assert_eq!(kind, "access", "the last line of `{id}`: {text}");
    let words: Vec<&str> = text.split_whitespace().collect();
    for word in ["GET", path, "200"] {
        assert!(words.contains(&word), "`{word}` is not in the access line `{text}`");
    }
}
