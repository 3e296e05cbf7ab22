//! Scheduled invocations: each function's `schedules`, fired by the host
//! on their cron patterns as requests of its own (`x-fn-schedule: <id>`),
//! under the function's limits, with a request id and an access line.
//!
//! With several hosts on one Redis (`--kv-redis-url` or `--state-store`), each run fires
//! **once**: the host that takes the run's lease in Redis runs it, and keeps
//! the lease alive while it tries; the others watch the lease, and take it
//! over if it runs out before the run is done (the host died), applying
//! what is left of the retry policy. A host that starts (or gets a new
//! schedule) watches the runs of the last lease period that other hosts
//! took, too. Without Redis, runs are this host's alone. Runs missed while
//! no host was up are not replayed.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::Request;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use serde_json::{Value, json};

use crate::AppState;
use crate::registry::{LoadedFunction, Snapshot, Tenant};
use wasmfn_manifest::Schedule;
use wasmfn_routing::HostRule;

/// How long a finished run's lease is kept, so that late hosts see it done.
const DONE_FOR: Duration = Duration::from_secs(3600);
/// Added to the function's timeout: how long a lease outlives its holder's last word.
const LEASE_MARGIN: Duration = Duration::from_secs(3);
/// The longest the loop sleeps: how soon a reload's new schedules count.
const LOOP_AT_MOST: Duration = Duration::from_millis(500);

/// `(tenant, function, schedule id)`.
type Key = (String, String, String);

/// A run of a schedule: its key, the schedule, the tick it is for.
type Due = (Key, Schedule, DateTime<Utc>);

/// The most ticks of one schedule a host watches when it starts.
const ADOPT_AT_MOST: usize = 16;

/// The schedules of every tenant's functions, their next runs and last results.
#[derive(Debug, Default)]
pub struct Scheduler {
    entries: Mutex<BTreeMap<Key, Entry>>,
    /// Runs taken by this host when there is no shared store: name → until when.
    local: Mutex<HashMap<String, Instant>>,
}

#[derive(Debug)]
struct Entry {
    schedule: Schedule,
    next: Option<DateTime<Utc>>,
    last: Option<Run>,
    runs: u64,
    failures: u64,
    /// Runs due here: being tried by this host, or watched while another does.
    running: u32,
    /// Runs this host is trying now (it holds their leases).
    attempting: u32,
}

/// One run, as `GET /_fn/schedules` shows it.
#[derive(Debug, Clone, Serialize)]
struct Run {
    /// The time the pattern named (RFC 3339, UTC).
    tick: String,
    /// When it ended.
    finished: String,
    /// `ok` or `failed`.
    result: &'static str,
    /// The last attempt's status (none if no response was had).
    status: Option<u16>,
    /// Attempts made by the host that ended it.
    attempts: u32,
    /// The last attempt's request id.
    request_id: Option<String>,
    /// Why it failed.
    error: Option<String>,
}

impl Run {
    /// A run of `tick` that failed before any attempt was made here.
    fn not_made(tick: DateTime<Utc>, error: String) -> Self {
        Run {
            tick: rfc3339(tick),
            finished: rfc3339(Utc::now()),
            result: "failed",
            status: None,
            attempts: 0,
            request_id: None,
            error: Some(error),
        }
    }
}

/// Runs the schedules of `app` until it drains.
pub(crate) async fn run(app: Arc<AppState>) {
    loop {
        if app.is_draining() {
            return;
        }
        let now = Utc::now();
        let (due, adopted) = app.scheduler.refresh(&app, now);
        for (key, schedule, tick) in due {
            let app = app.clone();
            tokio::spawn(async move { fire(app, key, schedule, tick).await });
        }
        for (key, schedule, tick) in adopted {
            let app = app.clone();
            tokio::spawn(async move { adopt(app, key, schedule, tick).await });
        }
        let wait = app
            .scheduler
            .earliest()
            .and_then(|t| (t - Utc::now()).to_std().ok())
            .map_or(LOOP_AT_MOST, |d| d.min(LOOP_AT_MOST));
        tokio::time::sleep(wait).await;
    }
}

impl Scheduler {
    /// Brings the entries in line with what each tenant serves now, and
    /// takes the runs that are due (at most one per schedule: missed ticks
    /// are not replayed). A schedule new here (the host just started, or
    /// the function just came) also gives its ticks of the last lease
    /// period when the host shares a lease store: runs another host may be
    /// making, to watch ([`adopt`]).
    fn refresh(&self, app: &AppState, now: DateTime<Utc>) -> (Vec<Due>, Vec<Due>) {
        // Each schedule, with its function's lease period.
        let mut seen: Vec<(Key, Schedule, Duration)> = Vec::new();
        for tenant in app.registry.tenants().iter() {
            let snapshot = tenant.snapshot();
            for f in &snapshot.functions {
                let ttl = Duration::from_millis(f.spec.policy.timeout_ms) + LEASE_MARGIN;
                for s in &f.spec.schedules {
                    seen.push((
                        (tenant.id.to_string(), f.spec.name.clone(), s.id.clone()),
                        s.clone(),
                        ttl,
                    ));
                }
            }
        }
        let shared = shared_leases(app).is_some();
        let mut entries = self.entries.lock().expect("no panics while held");
        entries.retain(|k, _| seen.iter().any(|(s, ..)| s == k));
        let mut due = Vec::new();
        let mut adopted = Vec::new();
        for (key, schedule, ttl) in seen {
            if shared && !entries.contains_key(&key) {
                let recent = recent_ticks(&schedule, now, ttl);
                adopted.extend(recent.into_iter().map(|t| (key.clone(), schedule.clone(), t)));
            }
            let e = entries.entry(key.clone()).or_insert_with(|| Entry {
                next: schedule.next_after(now),
                schedule: schedule.clone(),
                last: None,
                runs: 0,
                failures: 0,
                running: 0,
                attempting: 0,
            });
            if e.schedule != schedule {
                e.next = schedule.next_after(now);
                e.schedule = schedule.clone();
            }
            if let Some(tick) = e.next.filter(|t| *t <= now) {
                e.next = schedule.next_after(now);
                e.running += 1;
                due.push((key, schedule, tick));
            }
        }
        for (key, ..) in &adopted {
            if let Some(e) = entries.get_mut(key) {
                e.running += 1;
            }
        }
        (due, adopted)
    }

    /// The soonest next run.
    fn earliest(&self) -> Option<DateTime<Utc>> {
        let entries = self.entries.lock().expect("no panics while held");
        entries.values().filter_map(|e| e.next).min()
    }

    fn ended(&self, key: &Key, run: Option<Run>) {
        let mut entries = self.entries.lock().expect("no panics while held");
        if let Some(e) = entries.get_mut(key) {
            e.running = e.running.saturating_sub(1);
            if let Some(run) = run {
                e.runs += 1;
                if run.result != "ok" {
                    e.failures += 1;
                }
                e.last = Some(run);
            }
        }
    }

    fn attempting(&self, key: &Key, start: bool) {
        let mut entries = self.entries.lock().expect("no panics while held");
        if let Some(e) = entries.get_mut(key) {
            e.attempting = if start {
                e.attempting + 1
            } else {
                e.attempting.saturating_sub(1)
            };
        }
    }

    /// Takes run `name` on this host alone, for `ttl`.
    fn claim_local(&self, name: &str, ttl: Duration) -> bool {
        let mut local = self.local.lock().expect("no panics while held");
        let now = Instant::now();
        local.retain(|_, until| *until > now);
        if local.contains_key(name) {
            return false;
        }
        local.insert(name.to_string(), now + ttl.max(DONE_FOR));
        true
    }

    /// Every schedule of `tenant` (serving `snapshot`): its pattern,
    /// request, next run, last result, counts, and why its request would
    /// not reach its function, if it would not.
    pub(crate) fn json(&self, tenant: &str, snapshot: &Snapshot) -> Value {
        let problems = &snapshot.schedule_problems;
        let entries = self.entries.lock().expect("no panics while held");
        let list: Vec<Value> = entries
            .iter()
            .filter(|((t, _, _), _)| t == tenant)
            .map(|((_, function, id), e)| {
                let s = &e.schedule;
                json!({
                    "function": function,
                    "id": id,
                    "cron": s.cron,
                    "timezone": s.timezone.name(),
                    "method": s.method.as_str(),
                    "path": s.path,
                    "retries": {"max": s.retries, "backoff_ms": s.backoff_ms},
                    "next_run": e.next.map(rfc3339),
                    "running": e.running,
                    "attempting": e.attempting,
                    "runs": e.runs,
                    "failures": e.failures,
                    "last_run": e.last,
                    "problem": problems
                        .iter()
                        .find(|(f, i, _)| f == function && i == id)
                        .map(|(_, _, why)| why),
                })
            })
            .collect();
        json!({"tenant": tenant, "schedules": list})
    }
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// The name of the run of schedule `key` at `tick`, in the lease store.
fn run_name((tenant, function, id): &Key, tick: DateTime<Utc>) -> String {
    format!("schedule:{tenant}:{function}:{id}:{}", tick.timestamp_millis())
}

/// Leases in the Redis of the key-value stores, else in that of the shared
/// state; `None` when the host shares neither.
fn shared_leases(app: &AppState) -> Option<wasmfn_kv::SharedLeases> {
    app.kv.as_ref().and_then(|kv| kv.shared_leases()).or_else(|| {
        app.deployments
            .as_ref()
            .and_then(|d| d.shared.as_ref())
            .map(|s| s.leases())
    })
}

/// How long a run's lease lasts: the function's timeout and the margin.
fn lease_ttl(app: &AppState, key: &Key) -> Duration {
    function_timeout(app, key).unwrap_or(Duration::from_secs(30)) + LEASE_MARGIN
}

/// The ticks of `schedule` in the lease period before `now` (`now`
/// included), the latest [`ADOPT_AT_MOST`].
fn recent_ticks(schedule: &Schedule, now: DateTime<Utc>, ttl: Duration) -> Vec<DateTime<Utc>> {
    let Ok(ttl) = chrono::Duration::from_std(ttl) else {
        return Vec::new();
    };
    let mut ticks = Vec::new();
    let mut t = now - ttl;
    while let Some(next) = schedule.next_after(t).filter(|n| *n <= now) {
        ticks.push(next);
        t = next;
    }
    let skip = ticks.len().saturating_sub(ADOPT_AT_MOST);
    ticks.split_off(skip)
}

/// Fires the run of `schedule` at `tick`, once across the hosts that share a store.
async fn fire(app: Arc<AppState>, key: Key, schedule: Schedule, tick: DateTime<Utc>) {
    let name = run_name(&key, tick);
    let ttl = lease_ttl(&app, &key);
    let shared = shared_leases(&app);
    let run = match &shared {
        None => {
            if app.scheduler.claim_local(&name, ttl) {
                Some(attempts(&app, &key, &schedule, tick, 1, None, &name, ttl).await)
            } else {
                None
            }
        }
        Some(leases) => match leases.claim(&name, "1", ttl).await {
            Ok(true) => Some(attempts(&app, &key, &schedule, tick, 1, Some(leases), &name, ttl).await),
            Ok(false) => watch(&app, &key, &schedule, tick, leases, &name, ttl).await,
            Err(e) => Some(Run::not_made(
                tick,
                format!(
                    "not run: the lease store cannot be reached, and without it another host might run it too ({e})"
                ),
            )),
        },
    };
    if let Some(r) = &run
        && r.result != "ok"
    {
        tracing::warn!(tenant = %key.0, function = %key.1, schedule = %key.2, error = r.error.as_deref().unwrap_or(""), "scheduled run failed");
    }
    app.scheduler.ended(&key, run);
}

/// A run of a tick this host did not see come (it started, or learnt the
/// schedule, after it): watched like one this host found taken, so that it
/// is taken over if the host making it goes away. A tick whose lease is not
/// there was not taken by any host, and is not replayed.
async fn adopt(app: Arc<AppState>, key: Key, schedule: Schedule, tick: DateTime<Utc>) {
    // A host takes a run's lease at its tick: a moment later it is there.
    if let Ok(early) = (tick + chrono::Duration::seconds(1) - Utc::now()).to_std() {
        tokio::time::sleep(early).await;
    }
    let name = run_name(&key, tick);
    let run = match shared_leases(&app) {
        Some(leases) => match leases.get(&name).await {
            Ok(Some(v)) if v != "done" => {
                watch(&app, &key, &schedule, tick, &leases, &name, lease_ttl(&app, &key)).await
            }
            _ => None,
        },
        None => None,
    };
    app.scheduler.ended(&key, run);
}

/// Watches a run another host took: if its lease runs out before it is
/// done, takes it over with what is left of the retry policy. `None` when
/// the other host ended it.
async fn watch(
    app: &Arc<AppState>,
    key: &Key,
    schedule: &Schedule,
    tick: DateTime<Utc>,
    leases: &wasmfn_kv::SharedLeases,
    name: &str,
    ttl: Duration,
) -> Option<Run> {
    let mut attempt: u32 = 1;
    loop {
        tokio::time::sleep(ttl / 2).await;
        if app.is_draining() {
            return None;
        }
        match leases.get(name).await {
            Ok(Some(v)) if v == "done" => return None,
            Ok(Some(v)) => attempt = v.parse().unwrap_or(attempt),
            Ok(None) => {
                let next = attempt + 1;
                match leases.claim(name, &next.to_string(), ttl).await {
                    Ok(true) if next > schedule.retries + 1 => {
                        let _ = leases.set(name, "done", DONE_FOR).await;
                        return Some(Run::not_made(
                            tick,
                            format!(
                                "the host running attempt {attempt} went away, and no retry is left \
                                 (`retries.max` is {})",
                                schedule.retries
                            ),
                        ));
                    }
                    Ok(true) => {
                        tracing::warn!(schedule = %key.2, function = %key.1, attempt = next, "scheduled run taken over: its host went away");
                        return Some(attempts(app, key, schedule, tick, next, Some(leases), name, ttl).await);
                    }
                    Ok(false) => {}
                    Err(_) => {}
                }
            }
            // The store is away: the holder cannot be watched; try later.
            Err(_) => {}
        }
    }
}

/// Tries the run from attempt `first` until one succeeds or the retry
/// policy is spent, keeping its lease alive; then marks it done.
#[expect(clippy::too_many_arguments, reason = "one run's whole context")]
async fn attempts(
    app: &Arc<AppState>,
    key: &Key,
    schedule: &Schedule,
    tick: DateTime<Utc>,
    first: u32,
    leases: Option<&wasmfn_kv::SharedLeases>,
    name: &str,
    ttl: Duration,
) -> Run {
    app.scheduler.attempting(key, true);
    let last = schedule.retries + 1;
    let mut made = 0;
    let mut outcome = None;
    let mut error = None;
    for attempt in first..=last {
        if attempt > first {
            tokio::time::sleep(Duration::from_millis(schedule.backoff_ms)).await;
        }
        if let Some(l) = leases {
            let _ = l.set(name, &attempt.to_string(), ttl).await;
        }
        made += 1;
        match one_request(app, key, schedule, tick).await {
            Ok(o) if o.error.is_none() => {
                outcome = Some(o);
                error = None;
                break;
            }
            Ok(o) => {
                error = o.error.clone();
                outcome = Some(o);
            }
            Err(e) => error = Some(e),
        }
        if app.is_draining() {
            break;
        }
    }
    if let Some(l) = leases {
        let _ = l.set(name, "done", DONE_FOR).await;
    }
    app.scheduler.attempting(key, false);
    Run {
        tick: rfc3339(tick),
        finished: rfc3339(Utc::now()),
        result: if error.is_none() { "ok" } else { "failed" },
        status: outcome.as_ref().map(|o| o.status),
        attempts: made,
        request_id: outcome.map(|o| o.request_id),
        error,
    }
}

/// The function's timeout, as it serves now.
fn function_timeout(app: &AppState, (tenant, function, _): &Key) -> Option<Duration> {
    let t = app.registry.tenant(tenant)?;
    let s = t.snapshot();
    let f = s.functions.iter().find(|f| f.spec.name == *function)?;
    Some(Duration::from_millis(f.spec.policy.timeout_ms))
}

/// One attempt: the request the schedule describes, to the function as it serves now.
async fn one_request(
    app: &Arc<AppState>,
    (tenant_id, function, id): &Key,
    schedule: &Schedule,
    tick: DateTime<Utc>,
) -> Result<crate::gateway::ScheduledOutcome, String> {
    let tenant: Arc<Tenant> = app
        .registry
        .tenant(tenant_id)
        .ok_or_else(|| format!("tenant `{tenant_id}` is gone"))?;
    let req = {
        let s = tenant.snapshot();
        let f = s
            .functions
            .iter()
            .find(|f| f.spec.name == *function)
            .ok_or_else(|| format!("function `{function}` is not serving"))?;
        request(f, schedule, tick)?
    };
    Ok(crate::gateway::scheduled_request(app, &tenant, function, id, req).await)
}

/// The request `schedule` of `f` makes for the run of `tick`.
fn request(f: &LoadedFunction, schedule: &Schedule, tick: DateTime<Utc>) -> Result<Request, String> {
    let path = match &schedule.path {
        Some(p) => p.clone(),
        None => f
            .spec
            .routes
            .first()
            .map(|r| r.to_string())
            .ok_or_else(|| "the function has no route".to_string())?,
    };
    let mut req = Request::builder()
        .method(schedule.method.clone())
        .uri(&path)
        .header(http::header::HOST, request_host(f.spec.hosts.first()))
        .header(SCHEDULE_HEADER, schedule.id.as_str())
        .header(SCHEDULE_RUN_HEADER, rfc3339(tick));
    let body = match &schedule.body {
        Some(v) => {
            req = req.header(http::header::CONTENT_TYPE, "application/json");
            Body::from(serde_json::to_vec(v).expect("JSON serialises"))
        }
        None => Body::empty(),
    };
    req.body(body)
        .map_err(|e| format!("`path` `{path}` does not make a request: {e}"))
}

/// The schedules of `snapshot`'s functions whose request would not reach
/// their own function (another function's route, or none): `(function,
/// schedule id, why)`. Found once per load (kept in
/// [`Snapshot::schedule_problems`]), logged, listed by `wasmfn check` and
/// shown in `GET /_fn/schedules`; such a schedule's runs fail until it is
/// mended.
pub fn problems(snapshot: &Snapshot) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    for f in &snapshot.functions {
        for s in &f.spec.schedules {
            let why = match request(f, s, Utc::now()) {
                Ok(req) => crate::gateway::scheduled_route_problem(snapshot, &f.spec.name, &req),
                Err(e) => Some(e),
            };
            if let Some(why) = why {
                out.push((
                    f.spec.name.clone(),
                    s.id.clone(),
                    format!("schedule `{}`: {why}; set its `path` to a route of this function", s.id),
                ));
            }
        }
    }
    out
}

/// The header that tells the guest which schedule made the request.
pub const SCHEDULE_HEADER: &str = "x-fn-schedule";
/// The header that tells the guest which run (the time the pattern named,
/// RFC 3339) the request is for: the same for every attempt of a run, so a
/// guest can tell a retry from the next run.
pub const SCHEDULE_RUN_HEADER: &str = "x-fn-schedule-run";

/// A `Host` the function's first host rule admits (any, without rules).
fn request_host(rule: Option<&HostRule>) -> String {
    let Some(rule) = rule else {
        return "localhost".into();
    };
    let name = if rule.is_subdomains() {
        format!("schedule.{}", rule.name())
    } else {
        rule.name().to_string()
    };
    match rule.port() {
        Some(p) => format!("{name}:{p}"),
        None => name,
    }
}
