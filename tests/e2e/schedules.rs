//! Scheduled invocations through the binary: runs on time with their
//! request, retries, failures and the listing; manifests that cannot be
//! scheduled; several hosts on one Redis firing each run once, and a run
//! taken over when its host is killed.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::harness::*;
use crate::kv::Redis;

/// A `ticker` function with `schedules`, its store `default`.
fn ticker(fx: &Fixture, schedules: Value, extra: Value) {
    let mut manifest = json!({
        "key_value_stores": ["default"],
        "invoke": {"methods": ["GET", "POST"]},
        "schedules": schedules,
    });
    for (k, v) in extra.as_object().unwrap() {
        manifest[k] = v.clone();
    }
    fx.function("ticker", "ticker", manifest);
}

/// Everything the ticker's store holds.
async fn store(base: &str) -> BTreeMap<String, String> {
    let v: Value = reqwest::get(format!("{base}/ticker"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    v.as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
        .collect()
}

fn count(store: &BTreeMap<String, String>, key: &str) -> u64 {
    store.get(key).map_or(0, |v| v.parse().unwrap())
}

/// The values of every key starting with `prefix`.
fn under<'a>(store: &'a BTreeMap<String, String>, prefix: &str) -> Vec<(&'a str, u64)> {
    store
        .iter()
        .filter_map(|(k, v)| Some((k.strip_prefix(prefix)?, v.parse().unwrap())))
        .collect()
}

async fn schedules(base: &str, token: &str) -> Value {
    let r = reqwest::Client::new()
        .get(format!("{base}/_fn/schedules"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

fn entry(listing: &Value, id: &str) -> Value {
    listing["schedules"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == id)
        .unwrap_or_else(|| panic!("no schedule `{id}` in {listing}"))
        .clone()
}

/// Waits up to `within` for `check` on the ticker's store.
async fn until(base: &str, within: Duration, what: &str, check: impl Fn(&BTreeMap<String, String>) -> bool) {
    let end = Instant::now() + within;
    loop {
        let s = store(base).await;
        if check(&s) {
            return;
        }
        assert!(Instant::now() < end, "{what} within {within:?}: {s:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn schedules_run_on_time_with_their_request_retries_and_results() {
    let fx = Fixture::new();
    ticker(
        &fx,
        json!([
            {"id": "every-second", "cron": "* * * * * *", "method": "POST", "body": {"hello": "world"}},
            {"id": "retried", "cron": "* * * * * *", "method": "POST", "body": {"fail_first": 2},
             "retries": {"max": 2, "backoff_ms": 50}},
            {"id": "failing", "cron": "*/2 * * * * *", "method": "POST", "body": {"fail_first": 1000}},
            {"id": "nightly", "cron": "0 3 * * *", "timezone": "Europe/Paris"},
            {"id": "astray", "cron": "0 3 * * *", "path": "/elsewhere"}
        ]),
        json!({}),
    );
    let (file, t) = tokens(fx.path(), &[("reader", &["read"])]);
    let mut served = serve(fx.path(), &["--admin-tokens", file.to_str().unwrap(), "--access-log"]).await;
    let base = served.base.clone();
    until(&base, Duration::from_secs(10), "three runs of every-second", |s| {
        count(s, "runs:every-second") >= 3
    })
    .await;
    let s = store(&base).await;
    assert_eq!(s["method:every-second"], "Method::Post");
    assert_eq!(
        serde_json::from_str::<Value>(&s["body:every-second"]).unwrap(),
        json!({"hello": "world"})
    );
    // Each run of `every-second` once; `retried` three attempts per run, never more.
    assert!(
        under(&s, "attempts:every-second:").iter().all(|(_, n)| *n == 1),
        "{s:?}"
    );
    let retried = under(&s, "attempts:retried:");
    assert!(retried.iter().any(|(_, n)| *n == 3), "{s:?}");
    assert!(retried.iter().all(|(_, n)| *n <= 3), "{s:?}");
    // The guest was told which run: an RFC 3339 time on a whole second.
    let (tick, _) = under(&s, "attempts:every-second:")[0];
    assert!(tick.ends_with(".000Z") && tick.len() == 24, "{tick}");

    let listing = schedules(&base, &t["reader"]).await;
    assert_eq!(listing["tenant"], "default");
    let every = entry(&listing, "every-second");
    assert_eq!(every["function"], "ticker");
    assert!(every["problem"].is_null(), "{every}");
    // A schedule whose request reaches no route of its function says so.
    let astray = entry(&listing, "astray");
    assert_eq!(
        astray["problem"],
        "schedule `astray`: `GET /elsewhere` matches no route of function `ticker`; \
         set its `path` to a route of this function",
        "{astray}"
    );
    assert_eq!(every["cron"], "* * * * * *");
    assert!(every["runs"].as_u64().unwrap() >= 3, "{every}");
    assert_eq!(every["failures"], 0);
    assert_eq!(every["last_run"]["result"], "ok");
    assert_eq!(every["last_run"]["status"], 200);
    assert_eq!(every["last_run"]["attempts"], 1);
    let request_id = every["last_run"]["request_id"].as_str().unwrap().to_string();
    assert_eq!(request_id.len(), 32, "{every}");
    let retried = entry(&listing, "retried");
    assert_eq!(retried["retries"], json!({"max": 2, "backoff_ms": 50}));
    assert_eq!(
        (&retried["last_run"]["result"], &retried["last_run"]["attempts"]),
        (&json!("ok"), &json!(3))
    );
    let failing = entry(&listing, "failing");
    assert!(failing["failures"].as_u64().unwrap() >= 1, "{failing}");
    assert_eq!(failing["last_run"]["result"], "failed");
    assert_eq!(failing["last_run"]["status"], 500);
    assert!(
        failing["last_run"]["error"].as_str().unwrap().starts_with("status 500"),
        "{failing}"
    );
    // 03:00 in Paris: 02:00 UTC in winter, 01:00 UTC in summer.
    let nightly = entry(&listing, "nightly");
    assert_eq!(nightly["timezone"], "Europe/Paris");
    let next = nightly["next_run"].as_str().unwrap();
    assert!(
        next.ends_with("T02:00:00.000Z") || next.ends_with("T01:00:00.000Z"),
        "{nightly}"
    );
    assert_eq!(nightly["runs"], 0);

    // An access line per run, naming its schedule.
    let line = loop {
        let line = served.line_with("wasmfn::access").await;
        if line.contains("every-second") {
            break line;
        }
    };
    assert!(
        line.contains("schedule") && line.contains("ticker") && line.contains("/ticker"),
        "{line}"
    );
    // A caller cannot pose as the scheduler.
    let r = reqwest::Client::new()
        .post(format!("{base}/ticker"))
        .header("x-fn-schedule", "every-second")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.json::<Value>().await.unwrap().get("attempt").is_none());
}

#[test]
fn schedules_that_cannot_run_are_refused_naming_the_field() {
    let cases = [
        (
            json!({"schedules": [{"cron": "every minute"}]}),
            "entry 0, `cron`: `every minute` is not a cron pattern",
        ),
        (
            json!({"schedules": [{"cron": "* * * * *", "method": "DELETE"}]}),
            "entry 0, `method`: the function answers GET, POST only",
        ),
        (
            json!({"invoke": {"routes": ["/t/{id}"]}, "schedules": [{"cron": "* * * * *"}]}),
            "entry 0, `path`: the function's first route has parameters",
        ),
        (
            json!({"schedules": [{"cron": "* * * * *", "timezone": "Paris"}]}),
            "`timezone`: `Paris` is not an IANA time zone",
        ),
    ];
    for (extra, want) in cases {
        let fx = Fixture::new();
        let mut manifest = json!({"key_value_stores": ["default"], "invoke": {"methods": ["GET", "POST"]}});
        for (k, v) in extra.as_object().unwrap() {
            manifest[k] = v.clone();
        }
        fx.function("ticker", "ticker", manifest);
        let (ok, out, err) = wasmfn(&["check", fx.path().to_str().unwrap()], &[]);
        assert!(!ok, "{extra}: {out}");
        let all = format!("{out}{err}");
        assert!(
            all.contains("field `schedules`") && all.contains(want),
            "{extra}: {all}"
        );
    }
    // An overlay runs nothing.
    let fx = Fixture::new();
    fx.function("api/ticker", "ticker", json!({"key_value_stores": ["default"]}));
    fx.file(
        "api/fn.config.json",
        &json!({"schedules": [{"cron": "* * * * *"}]}).to_string(),
    );
    let (ok, out, err) = wasmfn(&["check", fx.path().to_str().unwrap()], &[]);
    assert!(!ok);
    assert!(
        format!("{out}{err}").contains("a policy overlay (a manifest without `component`) runs nothing"),
        "{out}{err}"
    );
}

#[tokio::test]
async fn hosts_on_one_redis_fire_each_run_once() {
    let redis = Redis::start();
    let fx = Fixture::new();
    ticker(
        &fx,
        json!([{"id": "tick", "cron": "* * * * * *", "method": "POST"}]),
        json!({}),
    );
    let url = redis.url();
    let mut hosts = Vec::new();
    for _ in 0..3 {
        hosts.push(serve(fx.path(), &["--kv-redis-url", &url]).await.print_log(""));
    }
    let base = hosts[0].1.clone();
    until(&base, Duration::from_secs(10), "a first run", |s| {
        count(s, "runs:tick") >= 1
    })
    .await;
    let first = count(&store(&base).await, "runs:tick");
    let window = Duration::from_secs(20);
    tokio::time::sleep(window).await;
    let s = store(&base).await;
    let fired = count(&s, "runs:tick") - first;
    println!("20 s on three hosts: {fired} runs");
    assert!((19..=21).contains(&fired), "{fired} runs in 20 s: {s:?}");
    let ticks = under(&s, "started:tick:");
    let twice: Vec<_> = ticks.iter().filter(|(_, n)| *n != 1).collect();
    assert!(twice.is_empty(), "runs started more than once: {twice:?}");
    // Every host knows the schedule; the runs were shared out.
    for (mut child, _) in hosts {
        child.kill().await.unwrap();
    }
}

#[tokio::test]
async fn a_run_whose_host_is_killed_is_taken_over_once() {
    let redis = Redis::start();
    let fx = Fixture::new();
    // A run every 10 s that takes 6 s (long enough for a second host to
    // start meanwhile); the lease lasts the timeout (8 s) and 3 s more.
    ticker(
        &fx,
        json!([{"id": "slow", "cron": "*/10 * * * * *", "method": "POST", "body": {"sleep_ms": 6000},
                "retries": {"max": 1, "backoff_ms": 10}}]),
        json!({"timeout_ms": 8000}),
    );
    let (file, t) = tokens(fx.path(), &[("reader", &["read"])]);
    let url = redis.url();
    let flags = ["--kv-redis-url", url.as_str(), "--admin-tokens", file.to_str().unwrap()];
    // Host `a` alone, until its run is in the guest (started, not ended).
    let (mut killed, owner_base) = serve(fx.path(), &flags).await.print_log("[a] ");
    let end = Instant::now() + Duration::from_secs(25);
    while entry(&schedules(&owner_base, &t["reader"]).await, "slow")["attempting"] != 1 {
        assert!(Instant::now() < end, "host a tried no run");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut tick = String::new();
    until(
        &owner_base,
        Duration::from_secs(5),
        "the run started in the guest",
        |s| {
            under(s, "started:slow:")
                .iter()
                .any(|(t, _)| !s.contains_key(&format!("attempts:slow:{t}")))
        },
    )
    .await;
    let s = store(&owner_base).await;
    for (t, _) in under(&s, "started:slow:") {
        if !s.contains_key(&format!("attempts:slow:{t}")) {
            tick = t.to_string();
        }
    }
    // Host `b` starts after that run's tick: it watches the run all the
    // same (a run of the last lease period that another host took), and
    // `a` is killed before the run ends.
    let (_b, survivor) = serve(fx.path(), &flags).await.print_log("[b] ");
    let survivor = &survivor;
    assert!(
        !store(survivor).await.contains_key(&format!("attempts:slow:{tick}")),
        "the run ended before host b was up: a slower guest is needed"
    );
    signal(&killed, "KILL");
    killed.wait().await.unwrap();
    // The survivor takes that run over once its lease runs out (the
    // timeout and 3 s), and ends it: started twice, ended once.
    let ended = format!("attempts:slow:{tick}");
    until(survivor, Duration::from_secs(25), "the run taken over and ended", |s| {
        s.contains_key(&ended)
    })
    .await;
    let s = store(survivor).await;
    assert_eq!(count(&s, &format!("started:slow:{tick}")), 2, "{tick}: {s:?}");
    assert_eq!(count(&s, &ended), 1, "{tick}: {s:?}");
    let e = entry(&schedules(survivor, &t["reader"]).await, "slow");
    assert_eq!(e["last_run"]["result"], "ok", "{e}");
    assert_eq!(e["failures"], 0, "{e}");
}
