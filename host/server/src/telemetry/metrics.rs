//! The host's metrics, kept by `prometheus-client` and exposed at
//! `/_fn/metrics` in the OpenMetrics text format. Counters and histograms
//! are recorded as requests end; gauges of what is happening now
//! (in flight, queued, functions by state) and host-wide counters kept
//! elsewhere (the compile cache) are read when Prometheus scrapes.
//!
//! Label values are bounded: tenants and functions exist, routes never
//! appear raw, a request that matched no function counts under
//! `function=""`, and a denied outbound request under `host=""`.

use std::sync::atomic::AtomicU64;
use std::sync::{Arc, OnceLock};

use prometheus_client::encoding::{EncodeLabelSet, text};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::{Registry, Unit};

use wasmfn_runtime::{InstanceKind, Invocation, OutboundOutcome};

/// `{tenant, function}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct FunctionLabels {
    pub(crate) tenant: Arc<str>,
    pub(crate) function: Arc<str>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    tenant: Arc<str>,
    function: Arc<str>,
    method: &'static str,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    tenant: Arc<str>,
    function: Arc<str>,
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    tenant: Arc<str>,
    function: Arc<str>,
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutboundLabels {
    tenant: Arc<str>,
    function: Arc<str>,
    host: Arc<str>,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DeployLabels {
    tenant: Arc<str>,
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    tenant: Arc<str>,
    state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VersionLabels {
    version: &'static str,
}

/// Why the host refused a request or stopped its function: the values of
/// `wasmfn_limit_rejections_total`'s `reason`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Limit {
    /// `timeout_ms` passed.
    Timeout,
    /// The function's (or the host's) slots and queue were full, or no instance slot was free.
    Overflow,
    /// It waited in the queue for `queue_timeout_ms`.
    QueueTimeout,
    /// `max_body_bytes`.
    BodyTooLarge,
    /// `max_response_bytes`.
    ResponseTooLarge,
    /// `max_memory_bytes`.
    OutOfMemory,
    /// The tenant's `requests_per_second`.
    RateLimited,
    /// The tenant's `max_concurrency`.
    Quota,
    /// The route's `auth` refused the caller.
    Auth,
    /// The request did not match its declared operation.
    Validation,
    /// A key-value write of the guest passed its tenant's quota (the
    /// guest got the error; the request went on).
    KvQuota,
}

impl Limit {
    /// The label value.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Limit::Timeout => "timeout",
            Limit::Overflow => "overflow",
            Limit::QueueTimeout => "queue_timeout",
            Limit::BodyTooLarge => "body_too_large",
            Limit::ResponseTooLarge => "response_too_large",
            Limit::OutOfMemory => "out_of_memory",
            Limit::RateLimited => "rate_limited",
            Limit::Quota => "quota",
            Limit::Auth => "auth",
            Limit::Validation => "validation",
            Limit::KvQuota => "kv_quota",
        }
    }
}

/// One function's series, found once and kept (with its counters) for
/// the function's life: a request then records without looking them up.
/// Series a function never uses (a kind of instance, memory for a request
/// no guest ran) are made when first used, not before.
#[derive(Debug)]
pub(crate) struct Handles {
    labels: FunctionLabels,
    duration: Histogram,
    cpu: OnceLock<Counter<f64, AtomicU64>>,
    memory: OnceLock<Histogram>,
    kinds: [OnceLock<Counter>; 3],
}

/// What one request did, as recorded when it ends.
pub(crate) struct Ended<'a> {
    pub(crate) method: &'a str,
    pub(crate) status: u16,
    pub(crate) seconds: f64,
    pub(crate) limit: Option<Limit>,
    pub(crate) invocation: Option<&'a Invocation>,
}

/// What the host's gates and snapshots show now, read at each scrape.
pub(crate) struct Now {
    /// Per function: in flight, queued.
    pub(crate) functions: Vec<(FunctionLabels, u64, u64)>,
    /// Per tenant: serving and failed functions.
    pub(crate) tenants: Vec<(Arc<str>, usize, usize)>,
    /// Compile cache hits and misses, when the cache is on.
    pub(crate) cache: Option<(usize, usize)>,
}

/// The host's metrics.
pub(crate) struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    duration: Family<FunctionLabels, Histogram>,
    cpu: Family<FunctionLabels, Counter<f64, AtomicU64>>,
    memory: Family<FunctionLabels, Histogram>,
    rejections: Family<ReasonLabels, Counter>,
    instantiations: Family<KindLabels, Counter>,
    outbound: Family<OutboundLabels, Counter>,
    deploys: Family<DeployLabels, Counter>,
}

impl Metrics {
    pub(crate) fn new() -> Self {
        let mut registry = Registry::with_prefix("wasmfn");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "requests",
            "Requests answered, by tenant, function (\"\" when none matched), method and status",
            requests.clone(),
        );
        let duration = Family::<FunctionLabels, Histogram>::new_with_constructor(|| {
            // 0.5 ms to ~33 s.
            Histogram::new(exponential_buckets(0.0005, 2.0, 17))
        });
        registry.register_with_unit(
            "request_duration",
            "Time from the request's arrival to the end of its response",
            Unit::Seconds,
            duration.clone(),
        );
        let cpu = Family::<FunctionLabels, Counter<f64, AtomicU64>>::default();
        registry.register_with_unit(
            "guest_cpu",
            "Time spent running guests (instantiation included when a request made its instance)",
            Unit::Seconds,
            cpu.clone(),
        );
        let memory = Family::<FunctionLabels, Histogram>::new_with_constructor(|| {
            // 64 KiB to 8 GiB.
            Histogram::new(exponential_buckets(65536.0, 2.0, 18))
        });
        registry.register_with_unit(
            "instance_memory_peak",
            "Linear memory of the instance at its largest, per invocation",
            Unit::Bytes,
            memory.clone(),
        );
        let rejections = Family::<ReasonLabels, Counter>::default();
        registry.register(
            "limit_rejections",
            "Requests refused or stopped by a limit, by reason",
            rejections.clone(),
        );
        let instantiations = Family::<KindLabels, Counter>::default();
        registry.register(
            "instantiations",
            "Instances that served a request, by how they were got: warm, fresh or reused",
            instantiations.clone(),
        );
        let outbound = Family::<OutboundLabels, Counter>::default();
        registry.register(
            "outbound_requests",
            "Outbound HTTP requests of guests, by destination host (\"\" when denied) and outcome",
            outbound.clone(),
        );
        let deploys = Family::<DeployLabels, Counter>::default();
        registry.register(
            "deploys",
            "Deploys through the admin API, by tenant and result (ok, refused)",
            deploys.clone(),
        );
        registry.register(
            "build",
            "The host's version",
            Info::new(VersionLabels {
                version: env!("CARGO_PKG_VERSION"),
            }),
        );
        Self {
            registry,
            requests,
            duration,
            cpu,
            memory,
            rejections,
            instantiations,
            outbound,
            deploys,
        }
    }

    /// The series of the function `labels` names.
    pub(crate) fn handles(&self, labels: FunctionLabels) -> Handles {
        Handles {
            duration: self.duration.get_or_create(&labels).clone(),
            labels,
            cpu: OnceLock::new(),
            memory: OnceLock::new(),
            kinds: Default::default(),
        }
    }

    /// Records a request of the function `h` names that ended.
    pub(crate) fn ended(&self, h: &Handles, e: &Ended<'_>) {
        let FunctionLabels { tenant, function } = &h.labels;
        self.requests
            .get_or_create(&RequestLabels {
                tenant: tenant.clone(),
                function: function.clone(),
                method: method_label(e.method),
                status: e.status,
            })
            .inc();
        h.duration.observe(e.seconds);
        if let Some(limit) = e.limit {
            self.rejected(&h.labels, limit);
        }
        if let Some(inv) = e.invocation {
            h.cpu
                .get_or_init(|| self.cpu.get_or_create(&h.labels).clone())
                .inc_by(inv.cpu.as_secs_f64());
            if let Some(peak) = inv.memory_peak_bytes {
                h.memory
                    .get_or_init(|| self.memory.get_or_create(&h.labels).clone())
                    .observe(peak as f64);
            }
            let slot = match inv.kind {
                InstanceKind::Warm => 0,
                InstanceKind::Fresh => 1,
                InstanceKind::Reused => 2,
            };
            h.kinds[slot]
                .get_or_init(|| {
                    self.instantiations
                        .get_or_create(&KindLabels {
                            tenant: tenant.clone(),
                            function: function.clone(),
                            kind: inv.kind.as_str(),
                        })
                        .clone()
                })
                .inc();
        }
    }

    /// Counts a refusal of the function `labels` names.
    pub(crate) fn rejected(&self, labels: &FunctionLabels, limit: Limit) {
        self.rejections
            .get_or_create(&ReasonLabels {
                tenant: labels.tenant.clone(),
                function: labels.function.clone(),
                reason: limit.as_str(),
            })
            .inc();
    }

    /// Counts an outbound request of a guest.
    pub(crate) fn outbound(&self, labels: &FunctionLabels, host: &str, outcome: OutboundOutcome) {
        let host = if outcome == OutboundOutcome::Denied { "" } else { host };
        self.outbound
            .get_or_create(&OutboundLabels {
                tenant: labels.tenant.clone(),
                function: labels.function.clone(),
                host: host.into(),
                outcome: outcome.as_str(),
            })
            .inc();
    }

    /// Counts a deploy through the admin API.
    pub(crate) fn deployed(&self, tenant: &str, ok: bool) {
        self.deploys
            .get_or_create(&DeployLabels {
                tenant: tenant.into(),
                result: if ok { "ok" } else { "refused" },
            })
            .inc();
    }

    /// The exposition: everything recorded, then what `now` shows;
    /// only `tenant`'s series when given (a tenant's token).
    pub(crate) fn encode(&self, now: Now, tenant: Option<&str>) -> String {
        let mut scraped = Registry::with_prefix("wasmfn");
        let inflight = Family::<FunctionLabels, Gauge>::default();
        let queued = Family::<FunctionLabels, Gauge>::default();
        for (labels, in_flight, queue) in now.functions {
            inflight.get_or_create(&labels).set(in_flight as i64);
            queued.get_or_create(&labels).set(queue as i64);
        }
        scraped.register("inflight_requests", "Requests running in a guest now", inflight);
        scraped.register(
            "queue_depth",
            "Requests waiting for a slot of their function now",
            queued,
        );
        let functions = Family::<StateLabels, Gauge>::default();
        for (tenant, serving, failed) in now.tenants {
            for (state, n) in [("serving", serving), ("failed", failed)] {
                functions
                    .get_or_create(&StateLabels {
                        tenant: tenant.clone(),
                        state,
                    })
                    .set(n as i64);
            }
        }
        scraped.register(
            "functions",
            "Functions by tenant and state (serving, failed to load)",
            functions,
        );
        if let Some((hits, misses)) = now.cache {
            scraped.register(
                "compile_cache_hits",
                "Components found compiled in the compile cache",
                ConstCounter::new(hits as u64),
            );
            scraped.register(
                "compile_cache_misses",
                "Components compiled because the compile cache did not have them",
                ConstCounter::new(misses as u64),
            );
        }
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = text::encode_registry(&mut out, &self.registry);
        let _ = text::encode_registry(&mut out, &scraped);
        let _ = text::encode_eof(&mut out);
        match tenant {
            Some(t) => only_tenant(&out, t),
            None => out,
        }
    }
}

/// A method as a label value: the standard ones as they are, any other
/// `_OTHER` (as OpenTelemetry's conventions say), so that clients cannot
/// make up label values.
pub(crate) fn method_label(method: &str) -> &'static str {
    match method {
        "GET" => "GET",
        "HEAD" => "HEAD",
        "POST" => "POST",
        "PUT" => "PUT",
        "DELETE" => "DELETE",
        "PATCH" => "PATCH",
        "OPTIONS" => "OPTIONS",
        "TRACE" => "TRACE",
        "CONNECT" => "CONNECT",
        _ => "_OTHER",
    }
}

/// The exposition with only the samples of `tenant` (its descriptors
/// kept): a sample without a `tenant` label is host-wide and left out.
fn only_tenant(exposition: &str, tenant: &str) -> String {
    let wanted = format!("tenant=\"{tenant}\"");
    let mut out = String::with_capacity(exposition.len() / 2);
    for line in exposition.lines() {
        let keep = line.starts_with('#') || sample_labels(line).is_some_and(|labels| has_label(labels, &wanted));
        if keep {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// The label block of a sample line, between its first `{` and the `}`
/// that closes it (label values are quoted and may hold either).
fn sample_labels(line: &str) -> Option<&str> {
    let start = line.find('{')?;
    let mut quoted = false;
    let mut escaped = false;
    for (i, c) in line[start + 1..].char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            '}' if !quoted => return Some(&line[start + 1..start + 1 + i]),
            _ => {}
        }
    }
    None
}

/// Whether `labels` (`a="x",b="y"`) holds the label `wanted` (`name="value"`) whole.
fn has_label(labels: &str, wanted: &str) -> bool {
    let mut quoted = false;
    let mut escaped = false;
    let mut start = 0;
    for (i, c) in labels.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            ',' if !quoted => {
                if &labels[start..i] == wanted {
                    return true;
                }
                start = i + 1;
            }
            _ => {}
        }
    }
    &labels[start..] == wanted
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn labels(tenant: &str, function: &str) -> FunctionLabels {
        FunctionLabels {
            tenant: tenant.into(),
            function: function.into(),
        }
    }

    fn now() -> Now {
        Now {
            functions: vec![(labels("acme", "hello"), 2, 1)],
            tenants: vec![("acme".into(), 3, 1), ("default".into(), 1, 0)],
            cache: Some((4, 5)),
        }
    }

    #[test]
    fn every_metric_is_exposed_with_its_labels() {
        let m = Metrics::new();
        let inv = Invocation {
            kind: InstanceKind::Warm,
            cpu: Duration::from_millis(250),
            memory_peak_bytes: Some(2 << 20),
            exit: wasmfn_runtime::Exit::Ok,
        };
        let hello = labels("acme", "hello");
        for _ in 0..3 {
            m.ended(
                &m.handles(hello.clone()),
                &Ended {
                    method: "GET",
                    status: 200,
                    seconds: 0.002,
                    limit: None,
                    invocation: Some(&inv),
                },
            );
        }
        m.ended(
            &m.handles(labels("default", "")),
            &Ended {
                method: "GET",
                status: 404,
                seconds: 0.0001,
                limit: None,
                invocation: None,
            },
        );
        m.ended(
            &m.handles(hello.clone()),
            &Ended {
                method: "POST",
                status: 429,
                seconds: 0.0001,
                limit: Some(Limit::RateLimited),
                invocation: None,
            },
        );
        m.ended(
            &m.handles(hello.clone()),
            &Ended {
                method: "BREW",
                status: 405,
                seconds: 0.0001,
                limit: None,
                invocation: None,
            },
        );
        m.outbound(&hello, "api.example.com", OutboundOutcome::Ok);
        m.outbound(&hello, "evil.example.net", OutboundOutcome::Denied);
        m.deployed("acme", true);
        let out = m.encode(now(), None);
        for expected in [
            r#"wasmfn_requests_total{tenant="acme",function="hello",method="GET",status="200"} 3"#,
            r#"wasmfn_requests_total{tenant="default",function="",method="GET",status="404"} 1"#,
            r#"wasmfn_requests_total{tenant="acme",function="hello",method="_OTHER",status="405"} 1"#,
            r#"wasmfn_request_duration_seconds_count{tenant="acme",function="hello"} 5"#,
            r#"wasmfn_guest_cpu_seconds_total{tenant="acme",function="hello"} 0.75"#,
            r#"wasmfn_instance_memory_peak_bytes_count{tenant="acme",function="hello"} 3"#,
            r#"wasmfn_limit_rejections_total{tenant="acme",function="hello",reason="rate_limited"} 1"#,
            r#"wasmfn_instantiations_total{tenant="acme",function="hello",kind="warm"} 3"#,
            r#"wasmfn_outbound_requests_total{tenant="acme",function="hello",host="api.example.com",outcome="ok"} 1"#,
            r#"wasmfn_outbound_requests_total{tenant="acme",function="hello",host="",outcome="denied"} 1"#,
            r#"wasmfn_deploys_total{tenant="acme",result="ok"} 1"#,
            r#"wasmfn_inflight_requests{tenant="acme",function="hello"} 2"#,
            r#"wasmfn_queue_depth{tenant="acme",function="hello"} 1"#,
            r#"wasmfn_functions{tenant="acme",state="failed"} 1"#,
            r#"wasmfn_compile_cache_hits_total 4"#,
            r#"wasmfn_compile_cache_misses_total 5"#,
            r#"wasmfn_build_info{version=""#,
        ] {
            assert!(out.contains(expected), "missing {expected} in\n{out}");
        }
        assert!(out.ends_with("# EOF\n"), "{out}");
        assert_eq!(out.matches("# EOF").count(), 1);
    }

    #[test]
    fn a_tenant_sees_only_its_own_series() {
        let m = Metrics::new();
        for t in ["acme", "globex"] {
            m.ended(
                &m.handles(labels(t, "hello")),
                &Ended {
                    method: "GET",
                    status: 200,
                    seconds: 0.001,
                    limit: None,
                    invocation: None,
                },
            );
        }
        let out = m.encode(now(), Some("acme"));
        assert!(out.contains(r#"tenant="acme",function="hello",method="GET""#), "{out}");
        assert!(!out.contains("globex"), "{out}");
        assert!(!out.contains(r#"tenant="default""#), "{out}");
        assert!(
            !out.contains("compile_cache_hits_total 4"),
            "host-wide series are not a tenant's: {out}"
        );
        assert!(out.contains("# TYPE wasmfn_requests counter"), "{out}");
        assert!(out.ends_with("# EOF\n"));
    }

    #[test]
    fn a_label_is_matched_whole_and_outside_quotes() {
        assert!(has_label(r#"tenant="a",function="b""#, r#"tenant="a""#));
        assert!(!has_label(r#"tenant="ab",function="b""#, r#"tenant="a""#));
        assert!(!has_label(r#"function="x,tenant=\"a\"",tenant="b""#, r#"tenant="a""#));
        assert_eq!(sample_labels(r#"m{a="}",b="c"} 1"#), Some(r#"a="}",b="c""#));
        assert_eq!(sample_labels("m 1"), None);
    }
}
