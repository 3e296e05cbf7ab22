//! Metrics as an operator gets them: the real binary with an admin token
//! file, known traffic, and Debian's Prometheus scraping `/_fn/metrics`
//! with a `read` token and loading the alert rules from
//! `deploy/prometheus/wasmfn-alerts.yml`; the series are read back through
//! Prometheus' own query API, so the exposition is checked by the parser
//! that matters, not by one of ours.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::harness::*;

/// What to do when a Prometheus program is missing: the test fails, it
/// never skips.
const INSTALL: &str = "install Debian's prometheus package: apt-get install prometheus";

/// How long Prometheus gets to start and scrape the host once.
const SCRAPED_WITHIN: Duration = Duration::from_secs(30);

/// The alert rules operators apply.
fn alert_rules() -> PathBuf {
    repo().join("deploy/prometheus/wasmfn-alerts.yml")
}

/// `name` (`prometheus`, `promtool`) from `PATH`, or a failure saying how to install it.
fn tool(name: &str) -> PathBuf {
    on_path(name).unwrap_or_else(|| panic!("`{name}` is not on PATH: {INSTALL}"))
}

/// `promtool check WHAT FILE` (`rules`, `config`) must succeed.
fn promtool_check(what: &str, file: &Path) {
    let out = Command::new(tool("promtool"))
        .args(["check", what])
        .arg(file)
        .output()
        .expect("run promtool");
    assert!(
        out.status.success(),
        "promtool check {what} {} failed:\n{}{}",
        file.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A Prometheus server scraping one wasmfn host, in a directory of its own
/// (configuration, token, storage, log); killed when dropped.
struct Prometheus {
    child: Child,
    /// `http://ADDR/api/v1`.
    api_base: String,
    client: reqwest::Client,
    dir: tempfile::TempDir,
}

impl Prometheus {
    /// Writes a configuration that scrapes `target` (`host:port`) every
    /// second as job `wasmfn` with `token`, checks it and the alert rules
    /// with `promtool`, and starts Prometheus on a free loopback port.
    fn start(target: &str, token: &str) -> Self {
        let prometheus = tool("prometheus");
        let dir = tempfile::tempdir().expect("a directory for Prometheus");
        let token_file = dir.path().join("wasmfn-token");
        std::fs::write(&token_file, token).expect("write the token file");
        // JSON is YAML: no quoting of paths by hand.
        let config = json!({
            "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
            "rule_files": [alert_rules()],
            "scrape_configs": [{
                "job_name": "wasmfn",
                "scrape_interval": "1s",
                "metrics_path": "/_fn/metrics",
                "authorization": {"type": "Bearer", "credentials_file": token_file},
                "static_configs": [{"targets": [target]}],
            }],
        });
        let config_file = dir.path().join("prometheus.yml");
        std::fs::write(&config_file, config.to_string()).expect("write the Prometheus configuration");
        promtool_check("rules", &alert_rules());
        promtool_check("config", &config_file);

        let addr = format!("127.0.0.1:{}", free_port());
        let log = std::fs::File::create(dir.path().join("prometheus.log")).expect("create the Prometheus log");
        let child = Command::new(prometheus)
            .arg(format!("--config.file={}", config_file.display()))
            .arg(format!("--storage.tsdb.path={}", dir.path().join("data").display()))
            .arg(format!("--web.listen-address={addr}"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("prometheus did not start ({e}): {INSTALL}"));
        Self {
            child,
            api_base: format!("http://{addr}/api/v1"),
            client: reqwest::Client::builder().no_proxy().build().expect("an HTTP client"),
            dir,
        }
    }

    /// The end of Prometheus' log, for failure messages.
    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.dir.path().join("prometheus.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// `GET /api/v1/PATH` with `query`: the answer's `data`, or why there is none.
    async fn api(&self, path: &str, query: &[(&str, &str)]) -> Result<Value, String> {
        let resp = self
            .client
            .get(format!("{}/{path}", self.api_base))
            .query(query)
            .send()
            .await
            .map_err(|e| format!("no answer from Prometheus: {e}"))?;
        let status = resp.status();
        let body = resp
            .text()
            .await
            .map_err(|e| format!("{status}, body unreadable: {e}"))?;
        match serde_json::from_str::<Value>(&body) {
            Ok(v) if status.is_success() && v["status"] == "success" => Ok(v["data"].clone()),
            _ => Err(format!("{status}: {body}")),
        }
    }

    /// The samples of instant query `q`.
    async fn query(&self, q: &str) -> Result<Vec<Value>, String> {
        let data = self.api("query", &[("query", q)]).await?;
        data["result"]
            .as_array()
            .cloned()
            .ok_or_else(|| format!("no result vector for `{q}`: {data}"))
    }

    /// The one sample of `q` (its labels and value); fails unless there is exactly one.
    async fn one(&self, q: &str) -> (Value, f64) {
        let samples = self.query(q).await.unwrap_or_else(|e| panic!("`{q}`: {e}"));
        let [sample] = samples.as_slice() else {
            panic!("`{q}` should be one series, got {}: {samples:#?}", samples.len());
        };
        let value: f64 = sample["value"][1]
            .as_str()
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("`{q}`: no numeric value in {sample}"));
        (sample["metric"].clone(), value)
    }

    /// Whether the target is up and `hello`'s request series are there;
    /// if not, what Prometheus says about it.
    async fn scraped(&self) -> Result<(), String> {
        let up = self.query(r#"up{job="wasmfn"}"#).await?;
        let series = self.query(r#"wasmfn_requests_total{function="hello"}"#).await?;
        if up.first().is_some_and(|s| s["value"][1] == "1") && !series.is_empty() {
            return Ok(());
        }
        // Why the target is down (or not scraped yet), in Prometheus' words.
        let targets = self.api("targets", &[("state", "active")]).await?;
        Err(format!("up: {up:?}, requests: {series:?}, targets: {targets}"))
    }

    /// Waits until the job's target is up and the host's request series
    /// have been scraped; fails with the last answer and Prometheus' log.
    async fn wait_for_scrape(&mut self) {
        let end = Instant::now() + SCRAPED_WITHIN;
        let mut last = String::from("nothing asked yet");
        while Instant::now() < end {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("prometheus exited ({status}):\n{}", self.log_tail());
            }
            match self.scraped().await {
                Ok(()) => return,
                Err(e) => last = e,
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        panic!(
            "Prometheus did not scrape the host within {SCRAPED_WITHIN:?}; last answer: {last}\n\
             prometheus log (end):\n{}",
            self.log_tail()
        );
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        // Ends only the process this guard started.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn prometheus_scrapes_the_hosts_metrics_and_loads_the_alert_rules() {
    // Fail before building or starting anything when the tools are missing.
    let _ = (tool("prometheus"), tool("promtool"));
    let fx = Fixture::new();
    fx.function("hello", "hello_plain", json!({}));
    let (token_file, t) = tokens(fx.path(), &[("scraper", &["read"])]);
    let served = serve(fx.path(), &["--admin-tokens", token_file.to_str().unwrap()]).await;
    let (_host, base) = served.print_log("metrics: ");
    let c = reqwest::Client::builder().no_proxy().build().expect("an HTTP client");

    // Known traffic: 7 answered by `hello`, 3 matching no function.
    for _ in 0..7 {
        let r = c.get(format!("{base}/hello")).send().await.expect("GET /hello");
        assert_eq!(r.status(), 200);
        assert_eq!(r.text().await.expect("the body of /hello"), "plain hello\n");
    }
    for _ in 0..3 {
        let r = c
            .get(format!("{base}/nothing/here"))
            .send()
            .await
            .expect("GET /nothing/here");
        assert_eq!(r.status(), 404);
    }

    // The metrics are on the admin surface: a token is needed, and with
    // one the answer is OpenMetrics text.
    let r = c
        .get(format!("{base}/_fn/metrics"))
        .send()
        .await
        .expect("GET /_fn/metrics");
    assert_eq!(error_code(r, 401).await.0, "unauthorized");
    let r = c
        .get(format!("{base}/_fn/metrics"))
        .bearer_auth(&t["scraper"])
        .send()
        .await
        .expect("GET /_fn/metrics with a token");
    assert_eq!(r.status(), 200);
    let content_type = r.headers()["content-type"].to_str().expect("an ASCII content type");
    assert!(
        content_type.starts_with("application/openmetrics-text"),
        "{content_type}"
    );
    let version: Value = get_json(&c, &format!("{base}/_fn/health")).await["version"].clone();
    assert!(version.as_str().is_some_and(|v| !v.is_empty()), "{version}");

    let target = base.strip_prefix("http://").expect("an http:// base URL");
    let mut prom = Prometheus::start(target, &t["scraper"]);
    prom.wait_for_scrape().await;

    let (_, up) = prom.one(r#"up{job="wasmfn"}"#).await;
    assert_eq!(up, 1.0);
    let (_, ok) = prom
        .one(r#"wasmfn_requests_total{tenant="default",function="hello",method="GET",status="200"}"#)
        .await;
    assert_eq!(ok, 7.0);
    let (_, unmatched) = prom
        .one(r#"sum(wasmfn_requests_total{function="",status="404"})"#)
        .await;
    assert_eq!(unmatched, 3.0);
    let (_, timed) = prom
        .one(r#"wasmfn_request_duration_seconds_count{function="hello"}"#)
        .await;
    assert_eq!(timed, 7.0);
    let (labels, info) = prom.one("wasmfn_build_info").await;
    assert_eq!(info, 1.0);
    assert_eq!(labels["version"], version, "{labels}");
    let (_, cpu) = prom.one(r#"wasmfn_guest_cpu_seconds_total{function="hello"}"#).await;
    assert!(cpu > 0.0, "guest CPU seconds: {cpu}");
    let (_, instances) = prom.one(r#"sum(wasmfn_instantiations_total{function="hello"})"#).await;
    assert!(instances >= 1.0, "instantiations: {instances}");

    // The alert rules are loaded, evaluate without error, and none fires
    // (or is about to) on a healthy host.
    let rules = prom.api("rules", &[]).await.unwrap_or_else(|e| panic!("rules: {e}"));
    let groups = rules["groups"].as_array().expect("rule groups");
    let mut names: Vec<&str> = groups.iter().filter_map(|g| g["name"].as_str()).collect();
    names.sort_unstable();
    assert_eq!(names, ["wasmfn-host", "wasmfn-limits", "wasmfn-requests"], "{rules:#}");
    for rule in groups
        .iter()
        .flat_map(|g| g["rules"].as_array().expect("a group's rules"))
    {
        assert_ne!(rule["health"], "err", "{rule:#}");
        assert_eq!(rule["state"], "inactive", "{rule:#}");
    }
}
