//! `/_fn/metrics` read sample by sample: a tenant's token sees its
//! tenant's series and nothing host-wide, a host-wide token sees all;
//! requests refused or stopped by a limit are counted by reason and by
//! status; and `--no-metrics` turns the endpoint off.

use std::time::Duration;

use serde_json::json;

use super::*;
use crate::tenants::{deploy, get_on, hosted_config, probe, probe_manifest, put_tenant};
use wasmfn_server::Scope;

/// One sample of an exposition: its name, its labels in the order the
/// exposition gives them, and its value.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Sample {
    pub name: String,
    pub labels: Vec<(String, String)>,
    pub value: f64,
}

impl Sample {
    pub(crate) fn label(&self, name: &str) -> Option<&str> {
        self.labels.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// Whether its labels are `labels`, in any order.
    fn has_labels(&self, labels: &[(&str, &str)]) -> bool {
        self.labels.len() == labels.len() && labels.iter().all(|(k, v)| self.label(k) == Some(v))
    }
}

/// The samples of an OpenMetrics text exposition (`# ` lines skipped).
pub(crate) fn samples(text: &str) -> Vec<Sample> {
    text.lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| sample(l).unwrap_or_else(|| panic!("a sample line the test cannot read: {l}")))
        .collect()
}

/// `name{a="x",b="y"} value`, or `name value`.
fn sample(line: &str) -> Option<Sample> {
    let name_end = line.find(['{', ' '])?;
    let (name, mut rest) = line.split_at(name_end);
    let mut labels = Vec::new();
    if let Some(mut inner) = rest.strip_prefix('{') {
        // `key="value"` (quotes and backslashes escaped), `,` between, `}` after.
        while !inner.starts_with('}') {
            let (key, quoted) = inner.split_once("=\"")?;
            let mut value = String::new();
            let mut chars = quoted.char_indices();
            let end = loop {
                match chars.next()? {
                    (_, '\\') => value.push(match chars.next()?.1 {
                        'n' => '\n',
                        c => c,
                    }),
                    (i, '"') => break i,
                    (_, c) => value.push(c),
                }
            };
            labels.push((key.to_string(), value));
            inner = &quoted[end + 1..];
            inner = inner.strip_prefix(',').unwrap_or(inner);
        }
        rest = &inner[1..];
    }
    let value = rest.split_whitespace().next()?.parse().ok()?;
    Some(Sample {
        name: name.to_string(),
        labels,
        value,
    })
}

/// The value of the sample `name` with exactly `labels`, if there is one.
pub(crate) fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let mut found = samples.iter().filter(|s| s.name == name && s.has_labels(labels));
    let first = found.next()?;
    assert!(found.next().is_none(), "two samples {name}{labels:?}");
    Some(first.value)
}

/// `GET /_fn/metrics` (with `token`), checked to be a 200 in OpenMetrics text.
pub(crate) async fn scrape(h: &TestHost, token: Option<&str>) -> String {
    let mut r = h.client.get(h.url("/_fn/metrics"));
    if let Some(t) = token {
        r = r.bearer_auth(t);
    }
    let resp = r.send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let content_type = resp.headers()["content-type"].to_str().unwrap().to_string();
    assert!(
        content_type.starts_with("application/openmetrics-text"),
        "{content_type}"
    );
    let text = resp.text().await.unwrap();
    assert!(text.ends_with("# EOF\n"), "{text}");
    text
}

/// A sample the test waits for: its name, its labels, its value.
type Wanted<'a> = (&'a str, &'a [(&'a str, &'a str)], f64);

/// Scrapes until every `(name, labels, value)` is there (metrics are
/// recorded once a response is sent and its guest done); returns the
/// last exposition's samples.
async fn scrape_until(h: &TestHost, token: Option<&str>, wanted: &[Wanted<'_>]) -> Vec<Sample> {
    let mut last = Vec::new();
    let found = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            last = samples(&scrape(h, token).await);
            if wanted.iter().all(|(n, l, v)| value(&last, n, l) == Some(*v)) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(found.is_ok(), "wanted {wanted:#?}, last scrape: {last:#?}");
    last
}

const REQUESTS: &str = "wasmfn_requests_total";
pub(crate) const REJECTIONS: &str = "wasmfn_limit_rejections_total";

#[test]
fn the_tests_parser_reads_samples_as_the_exposition_writes_them() {
    let text = "# TYPE m counter\nm_total{tenant=\"a\",function=\"\",x=\"q\\\"}\"} 3\nm_info 1\n# EOF\n";
    assert_eq!(
        samples(text),
        [
            Sample {
                name: "m_total".into(),
                labels: vec![
                    ("tenant".into(), "a".into()),
                    ("function".into(), "".into()),
                    ("x".into(), "q\"}".into())
                ],
                value: 3.0,
            },
            Sample {
                name: "m_info".into(),
                labels: vec![],
                value: 1.0,
            },
        ]
    );
}

#[tokio::test]
async fn a_tenants_token_scrapes_its_tenants_series_only() {
    let fx = Fixture::new();
    fx.function("hello", "probe", json!({}));
    let state = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    let (mut config, t) = hosted_config(
        fx.path(),
        state.path(),
        &[
            ("root", &[Scope::Admin], None),
            ("scraper", &[Scope::Read], None),
            ("acme-reader", &[Scope::Read], Some("acme")),
            ("globex-reader", &[Scope::Read], Some("globex")),
        ],
    );
    // With a compile cache, whose counters are host-wide series.
    config.runtime.cache_dir = Some(cache.path().to_path_buf());
    let h = TestHost::start_with(config).await;
    let root = t["root"].as_str();
    // The same function name in both tenants: only `tenant` tells them apart.
    for tenant in ["acme", "globex"] {
        put_tenant(&h, root, tenant, json!({"hosts": [format!("{tenant}.test")]}), 201).await;
        let r = deploy(&h, root, tenant, "api", probe_manifest("/hello"), "probe").await;
        assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    }
    for (host, n) in [("acme.test", 3), ("globex.test", 2), ("other.test", 1)] {
        for _ in 0..n {
            probe(get_on(&h, host, "/hello").await).await;
        }
    }
    let ok = |tenant, function| {
        [
            ("tenant", tenant),
            ("function", function),
            ("method", "GET"),
            ("status", "200"),
        ]
    };
    let (acme_ok, globex_ok, default_ok) = (ok("acme", "api"), ok("globex", "api"), ok("default", "hello"));

    // The host-wide token sees every tenant, and the host-wide series.
    let all = scrape_until(
        &h,
        Some(&t["scraper"]),
        &[
            (REQUESTS, &acme_ok, 3.0),
            (REQUESTS, &globex_ok, 2.0),
            (REQUESTS, &default_ok, 1.0),
        ],
    )
    .await;
    for name in ["wasmfn_compile_cache_hits_total", "wasmfn_compile_cache_misses_total"] {
        assert!(value(&all, name, &[]).is_some(), "{name} in {all:#?}");
    }
    assert!(all.iter().any(|s| s.name == "wasmfn_build_info"), "{all:#?}");
    let serving = |tenant| [("tenant", tenant), ("state", "serving")];
    for tenant in ["acme", "globex", "default"] {
        assert_eq!(value(&all, "wasmfn_functions", &serving(tenant)), Some(1.0), "{tenant}");
    }

    // A tenant's token: its tenant's series, nothing of another tenant's,
    // nothing host-wide; the descriptors stay.
    for (tenant, token, requests, other) in [
        ("acme", "acme-reader", 3.0, "globex"),
        ("globex", "globex-reader", 2.0, "acme"),
    ] {
        let text = scrape(&h, Some(&t[token])).await;
        assert!(text.contains("# TYPE wasmfn_requests counter"), "{text}");
        let seen = samples(&text);
        assert_eq!(value(&seen, REQUESTS, &ok(tenant, "api")), Some(requests), "{text}");
        assert_eq!(value(&seen, "wasmfn_functions", &serving(tenant)), Some(1.0), "{text}");
        for s in &seen {
            assert_eq!(s.label("tenant"), Some(tenant), "{token} sees {s:?}");
        }
        assert!(!text.contains(other), "{token} sees {other}:\n{text}");
        assert_eq!(value(&seen, "wasmfn_compile_cache_hits_total", &[]), None, "{text}");
    }
    let r = h.client.get(h.url("/_fn/metrics")).send().await.unwrap();
    assert_eq!(error_code(r, 401).await.0, "unauthorized");
}

#[tokio::test]
async fn limit_rejections_are_counted_by_reason_and_status() {
    let fx = Fixture::new();
    fx.function("spin", "spin", json!({"timeout_ms": 200})).function(
        "echo",
        "echo_body",
        json!({"max_body_bytes": 1000, "invoke": {"methods": ["POST"]}}),
    );
    let h = TestHost::start(fx.path()).await;

    // Stopped at its timeout.
    assert_eq!(error_code(h.get("/spin").await, 504).await.0, "gateway_timeout");
    // Refused for its declared length, and cut where a chunked body crosses the limit.
    let r = h
        .client
        .post(h.url("/echo"))
        .body(vec![b'x'; 1001])
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(r, 413).await.0, "payload_too_large");
    let r = h
        .client
        .post(h.url("/echo"))
        .body(chunked_body(1001))
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(r, 413).await.0, "payload_too_large");
    // Within the limit: answered, and no rejection.
    let r = h
        .client
        .post(h.url("/echo"))
        .body(vec![b'x'; 1000])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.bytes().await.unwrap().len(), 1000);

    let request = |function, method, status| {
        [
            ("tenant", "default"),
            ("function", function),
            ("method", method),
            ("status", status),
        ]
    };
    let reason = |function, reason| [("tenant", "default"), ("function", function), ("reason", reason)];
    let (spin_504, echo_413, echo_200) = (
        request("spin", "GET", "504"),
        request("echo", "POST", "413"),
        request("echo", "POST", "200"),
    );
    let (timeout, too_large) = (reason("spin", "timeout"), reason("echo", "body_too_large"));
    let seen = scrape_until(
        &h,
        None,
        &[
            (REJECTIONS, &timeout, 1.0),
            (REJECTIONS, &too_large, 2.0),
            (REQUESTS, &spin_504, 1.0),
            (REQUESTS, &echo_413, 2.0),
            (REQUESTS, &echo_200, 1.0),
        ],
    )
    .await;
    // Nothing else was refused, and each request counted once.
    let rejections: Vec<&Sample> = seen.iter().filter(|s| s.name == REJECTIONS).collect();
    assert_eq!(rejections.len(), 2, "{rejections:#?}");
    for s in rejections {
        let names: Vec<&str> = s.labels.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(names, ["tenant", "function", "reason"], "{s:?}");
    }
    let requests: f64 = seen
        .iter()
        .filter(|s| s.name == REQUESTS && s.label("function") != Some(""))
        .map(|s| s.value)
        .sum();
    assert_eq!(requests, 4.0, "{seen:#?}");
    // The timed-out request was timed like the others.
    let spin = [("tenant", "default"), ("function", "spin")];
    assert_eq!(value(&seen, "wasmfn_request_duration_seconds_count", &spin), Some(1.0));
}

#[tokio::test]
async fn without_metrics_the_endpoint_says_so_and_the_log_has_no_access_lines() {
    let fx = Fixture::new();
    fx.function("logs", "logs", json!({}));
    let served = serve(fx.path(), &["--no-metrics"]).await;
    let (_host, base) = served.print_log("no-metrics: ");
    let c = reqwest::Client::builder().no_proxy().build().unwrap();

    let r = c.get(format!("{base}/_fn/metrics")).send().await.unwrap();
    assert_eq!(error_code(r, 404).await.0, "metrics_disabled");

    // The guest's lines are still kept; access lines are not recorded.
    let r = c
        .get(format!("{base}/logs"))
        .header("x-request-id", "quiet-1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "logged\n");
    let url = format!("{base}/_fn/functions/logs/logs");
    let body = eventually(Duration::from_secs(20), "the guest's last line", || async {
        let body = log(&c, &url, None).await;
        // The line left without a newline is written as the request ends.
        let done = lines(&body).iter().any(|l| l["text"] == GUEST_LINES[2].1);
        done.then_some(body)
    })
    .await;
    assert_eq!(of_request(lines(&body), "quiet-1"), GUEST_LINES, "{body:#}");
}
