//! What the host tells its operators: metrics ([`metrics`], scraped at
//! `/_fn/metrics`), traces ([`trace`], exported over OTLP), the access log
//! and each function's recent log ([`logs`]).
//!
//! Each function request gets a [`RequestRecord`] when it arrives. The
//! gateway tells it what routing, admission and the runtime decided; the
//! runtime tells it (as its [`Observer`]) how the instance was got, each
//! outbound request and how the guest ended; the response body counts the
//! bytes out. When the last of them lets go (the response sent and the
//! guest done), the record is written once: metrics, the access line and
//! the request's spans.

pub mod logs;
pub(crate) mod metrics;
pub mod trace;

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime};

use axum::body::Body;
use bytes::Bytes;
use http::{HeaderMap, Method};
use http_body::{Frame, SizeHint};
use opentelemetry::trace::{Span as _, SpanKind, Status, TraceContextExt, Tracer as _};
use opentelemetry::{Context as TraceContext, KeyValue};
use opentelemetry_sdk::trace::Span;

use crate::registry::FunctionStats;
pub(crate) use metrics::Limit;
use metrics::{Ended, FunctionLabels, Metrics, Now};
pub use trace::TraceConfig;
use wasmfn_runtime::{InstanceKind, Invocation, Observer, OutboundDone, OutboundOutcome};

/// How the host observes its requests; from `--no-metrics`,
/// `--access-log` and the OpenTelemetry settings.
#[derive(Debug, Clone)]
pub struct TelemetryConfig {
    /// Record metrics (and each function's access lines); on unless
    /// `--no-metrics`, which exists to measure what they cost.
    pub metrics: bool,
    /// Write an access-log line per function request to the process log (`--access-log`).
    pub access_log: bool,
    /// Export traces; `None`: off, at no cost on the request path.
    pub traces: Option<TraceConfig>,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        Self {
            metrics: true,
            access_log: false,
            traces: None,
        }
    }
}

/// The host's telemetry, shared by every request.
pub(crate) struct Telemetry {
    metrics: Option<Metrics>,
    tracing: Option<trace::Tracing>,
    access_log: bool,
}

impl Telemetry {
    pub(crate) fn start(config: &TelemetryConfig) -> anyhow::Result<Self> {
        let tracing = match &config.traces {
            Some(t) => Some(trace::Tracing::start(t)?),
            None => None,
        };
        Ok(Self {
            metrics: config.metrics.then(Metrics::new),
            tracing,
            access_log: config.access_log,
        })
    }

    /// Whether anything is recorded per request.
    fn per_request(&self) -> bool {
        self.metrics.is_some() || self.tracing.is_some() || self.access_log
    }

    /// The exposition at `/_fn/metrics`; `None` with `--no-metrics`.
    pub(crate) fn exposition(&self, now: impl FnOnce() -> Now, tenant: Option<&str>) -> Option<String> {
        Some(self.metrics.as_ref()?.encode(now(), tenant))
    }

    /// Counts a deploy through the admin API.
    pub(crate) fn deployed(&self, tenant: &str, ok: bool) {
        if let Some(m) = &self.metrics {
            m.deployed(tenant, ok);
        }
    }

    /// Exports what is still buffered (at shutdown).
    pub(crate) fn shutdown(&self) {
        if let Some(t) = &self.tracing {
            t.shutdown();
        }
    }

    /// A record for a function request that just arrived; `None` when
    /// nothing is recorded per request.
    pub(crate) fn record(
        self: &Arc<Self>,
        method: &Method,
        path: &str,
        headers: &HeaderMap,
        id: &str,
    ) -> Option<Arc<RequestRecord>> {
        if !self.per_request() {
            return None;
        }
        let bytes_in = headers
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let server = self.tracing.as_ref().and_then(|t| {
            let parent = trace::extract(&t.propagator, headers);
            let method = metrics::method_label(method.as_str());
            // Attributes only once the sampler said yes: a request not
            // sampled costs as little as can be.
            let mut span = t
                .tracer
                .span_builder(method)
                .with_kind(SpanKind::Server)
                .start_with_context(&t.tracer, &parent);
            if !span.span_context().is_sampled() {
                return None;
            }
            span.set_attribute(KeyValue::new("http.request.method", method));
            span.set_attribute(KeyValue::new("url.path", path.to_string()));
            span.set_attribute(KeyValue::new("wasmfn.request_id", id.to_string()));
            Some(span)
        });
        Some(Arc::new(RequestRecord {
            telemetry: self.clone(),
            started: Instant::now(),
            id: id.into(),
            method: method.clone(),
            path: path.into(),
            bytes_in,
            bytes_out: AtomicU64::new(0),
            state: Mutex::new(State {
                tenant: None,
                schedule: None,
                function: None,
                route: None,
                status: 0,
                limit: None,
                invocation: None,
                spans: server.map(|server| Spans {
                    cx: TraceContext::new().with_remote_span_context(server.span_context().clone()),
                    server,
                    guest: None,
                }),
            }),
        }))
    }

    /// What observes the function's instances that serve several requests
    /// at once (`instance_concurrency`), made once per function (kept in
    /// `cell`); `None` when metrics are off.
    pub(crate) fn shared_observer(
        self: &Arc<Self>,
        cell: &SharedObserver,
        tenant: &Arc<str>,
        function: &Arc<str>,
    ) -> Option<Arc<dyn Observer>> {
        cell.0
            .get_or_init(|| {
                self.metrics.as_ref()?;
                Some(Arc::new(SharedInstance {
                    telemetry: self.clone(),
                    labels: FunctionLabels {
                        tenant: tenant.clone(),
                        function: function.clone(),
                    },
                }) as Arc<dyn Observer>)
            })
            .clone()
    }
}

/// One function request, recorded when it is over (see the module's doc).
pub(crate) struct RequestRecord {
    telemetry: Arc<Telemetry>,
    started: Instant,
    id: Arc<str>,
    method: Method,
    path: Box<str>,
    bytes_in: u64,
    bytes_out: AtomicU64,
    state: Mutex<State>,
}

struct State {
    tenant: Option<Arc<str>>,
    /// The schedule that made the request, when the host made it.
    schedule: Option<Arc<str>>,
    /// The function's name and its counters (its log ring).
    function: Option<(Arc<str>, Arc<FunctionStats>)>,
    route: Option<Arc<str>>,
    status: u16,
    limit: Option<Limit>,
    invocation: Option<Invocation>,
    spans: Option<Spans>,
}

/// The request's spans, when it is traced and sampled.
struct Spans {
    server: Span,
    /// A context whose span is the server span: the parent of the others.
    cx: TraceContext,
    /// From the moment the instance is ready to the guest's end.
    guest: Option<(Span, TraceContext)>,
}

impl RequestRecord {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The tenant the request's host picked.
    pub(crate) fn tenant(&self, tenant: &Arc<str>) {
        let mut s = self.state();
        s.tenant = Some(tenant.clone());
        if let Some(spans) = &mut s.spans {
            spans
                .server
                .set_attribute(KeyValue::new("wasmfn.tenant", tenant.to_string()));
        }
    }

    /// The request is one the host made for schedule `id`.
    pub(crate) fn scheduled(&self, id: &str) {
        self.state().schedule = Some(id.into());
    }

    /// The function and route that matched.
    pub(crate) fn matched(&self, function: &Arc<str>, stats: &Arc<FunctionStats>, route: Option<&str>) {
        let mut s = self.state();
        s.function = Some((function.clone(), stats.clone()));
        s.route = route.map(Into::into);
        if let Some(spans) = &mut s.spans {
            spans
                .server
                .set_attribute(KeyValue::new("wasmfn.function", function.to_string()));
            if let Some(r) = route {
                spans
                    .server
                    .update_name(format!("{} {r}", metrics::method_label(self.method.as_str())));
                spans.server.set_attribute(KeyValue::new("http.route", r.to_string()));
                spans.server.set_attribute(KeyValue::new("wasmfn.route", r.to_string()));
            }
        }
    }

    /// A limit refused the request or stopped its function.
    pub(crate) fn refused(&self, limit: Limit) {
        self.state().limit = Some(limit);
    }

    /// A step that took from `since` until now (`queue`, `validate`), as a
    /// child span of the request's.
    pub(crate) fn step(&self, name: &'static str, since: Instant) {
        let s = self.state();
        if let Some(spans) = &s.spans {
            self.child(spans, name, since, Vec::new()).end();
        }
    }

    /// Whether the request is traced (its steps worth timing).
    pub(crate) fn traced(&self) -> bool {
        self.state().spans.is_some()
    }

    fn child(&self, spans: &Spans, name: &'static str, since: Instant, attributes: Vec<KeyValue>) -> Span {
        let tracer = &self.telemetry.tracing.as_ref().expect("spans only when traced").tracer;
        tracer
            .span_builder(name)
            .with_start_time(SystemTime::now() - since.elapsed())
            .with_attributes(attributes)
            .start_with_context(tracer, &spans.cx)
    }

    /// Sets the guest's `traceparent` (and `tracestate`) to the request's
    /// span, so that the guest's own spans join the trace.
    pub(crate) fn trace_headers(&self, headers: &mut HeaderMap) {
        let s = self.state();
        if let (Some(spans), Some(t)) = (&s.spans, &self.telemetry.tracing) {
            trace::inject(&t.propagator, &spans.cx, headers);
        }
    }

    /// The response's status, and its body wrapped to count what goes out
    /// and to hold this record until the body ends.
    pub(crate) fn respond(self: Arc<Self>, resp: axum::response::Response) -> axum::response::Response {
        self.state().status = resp.status().as_u16();
        resp.map(|body| {
            Body::new(Counted {
                inner: body,
                record: self,
            })
        })
    }

    /// Writes the record: metrics, the access line, the spans' ends.
    fn write(&mut self) {
        let seconds = self.started.elapsed().as_secs_f64();
        let bytes_out = self.bytes_out.load(Ordering::Relaxed);
        let state = self.state.get_mut().unwrap_or_else(|e| e.into_inner());
        let inv = state.invocation.as_ref();
        if let Some(m) = &self.telemetry.metrics {
            let ended = Ended {
                method: self.method.as_str(),
                status: state.status,
                seconds,
                limit: state.limit,
                invocation: inv,
            };
            match (&state.tenant, &state.function) {
                // A function's handles, looked up once for its life.
                (Some(tenant), Some((function, stats))) => {
                    let handles = stats.metrics.get_or_init(|| {
                        m.handles(FunctionLabels {
                            tenant: tenant.clone(),
                            function: function.clone(),
                        })
                    });
                    m.ended(handles, &ended);
                }
                (tenant, _) => {
                    let labels = FunctionLabels {
                        tenant: tenant.clone().unwrap_or_else(|| crate::tenant::DEFAULT_TENANT.into()),
                        function: "".into(),
                    };
                    m.ended(&m.handles(labels), &ended);
                }
            }
        }
        let cpu_ms = inv.map_or(0.0, |i| i.cpu.as_secs_f64() * 1000.0);
        let instance = inv.map_or("-", |i| i.kind.as_str());
        let limit = state.limit.map_or("-", Limit::as_str);
        let trace_id = state
            .spans
            .as_ref()
            .map(|s| s.server.span_context().trace_id().to_string());
        if self.telemetry.access_log {
            tracing::info!(
                target: "wasmfn::access",
                request_id = %self.id,
                trace_id = trace_id.as_deref().unwrap_or("-"),
                tenant = state.tenant.as_deref().unwrap_or(crate::tenant::DEFAULT_TENANT),
                function = state.function.as_ref().map_or("", |(f, _)| &**f),
                route = state.route.as_deref().unwrap_or("-"),
                schedule = state.schedule.as_deref().unwrap_or("-"),
                method = %self.method,
                path = %self.path,
                status = state.status,
                duration_ms = seconds * 1000.0,
                bytes_in = self.bytes_in,
                bytes_out,
                guest_cpu_ms = cpu_ms,
                instance,
                limit,
                "request"
            );
        }
        if let Some(mut spans) = state.spans.take() {
            if let Some((mut guest, _)) = spans.guest.take() {
                if let Some(inv) = inv {
                    guest_attributes(&mut guest, inv);
                }
                guest.end();
            }
            let status = state.status;
            spans
                .server
                .set_attribute(KeyValue::new("http.response.status_code", i64::from(status)));
            if status >= 500 {
                spans.server.set_status(Status::error(format!("status {status}")));
            }
            if let Some(l) = state.limit {
                spans.server.set_attribute(KeyValue::new("wasmfn.limit", l.as_str()));
            }
            spans.server.end();
        }
        if let Some((_, stats)) = &state.function
            && self.telemetry.metrics.is_some()
        {
            stats.logs.push_access(
                self.id.clone(),
                logs::AccessLine {
                    method: self.method.clone(),
                    path: std::mem::take(&mut self.path),
                    status: state.status,
                    duration_ms: seconds * 1000.0,
                    bytes_in: self.bytes_in,
                    bytes_out,
                    cpu_ms,
                    instance,
                    limit,
                },
            );
        }
    }
}

fn guest_attributes(span: &mut Span, inv: &Invocation) {
    span.set_attribute(KeyValue::new("wasmfn.guest.cpu_seconds", inv.cpu.as_secs_f64()));
    if let Some(peak) = inv.memory_peak_bytes {
        span.set_attribute(KeyValue::new("wasmfn.memory.peak_bytes", peak as i64));
    }
    span.set_attribute(KeyValue::new("wasmfn.exit", inv.exit.as_str()));
    if inv.exit != wasmfn_runtime::Exit::Ok {
        span.set_status(Status::error(inv.exit.as_str()));
    }
}

impl Drop for RequestRecord {
    fn drop(&mut self) {
        self.write();
    }
}

impl Observer for RequestRecord {
    fn instance_ready(&self, kind: InstanceKind, instantiation: Duration) {
        let mut s = self.state();
        let Some(spans) = &mut s.spans else { return };
        let since = Instant::now() - instantiation;
        self.child(
            spans,
            "instantiate",
            since,
            vec![KeyValue::new("wasmfn.instance.kind", kind.as_str())],
        )
        .end();
        let guest = self.child(spans, "guest", Instant::now(), Vec::new());
        let cx = TraceContext::new().with_remote_span_context(guest.span_context().clone());
        spans.guest = Some((guest, cx));
    }

    fn outbound(&self, method: &Method, uri: &http::Uri, host: &str, headers: &mut HeaderMap) -> Option<OutboundDone> {
        let (labels, span) = {
            let s = self.state();
            let labels = FunctionLabels {
                tenant: s.tenant.clone()?,
                function: s.function.as_ref()?.0.clone(),
            };
            let span = match (&s.spans, &self.telemetry.tracing) {
                (
                    Some(Spans {
                        guest: Some((_, cx)), ..
                    }),
                    Some(t),
                ) => {
                    let span = t
                        .tracer
                        .span_builder(method.to_string())
                        .with_kind(SpanKind::Client)
                        .with_attributes([
                            KeyValue::new("http.request.method", method.to_string()),
                            KeyValue::new("server.address", host.to_string()),
                            KeyValue::new("url.full", uri.to_string()),
                        ])
                        .start_with_context(&t.tracer, cx);
                    let span_cx = TraceContext::new().with_remote_span_context(span.span_context().clone());
                    trace::inject(&t.propagator, &span_cx, headers);
                    Some(span)
                }
                _ => None,
            };
            (labels, span)
        };
        let telemetry = self.telemetry.clone();
        let host: Box<str> = host.into();
        Some(Box::new(move |outcome: OutboundOutcome, status: Option<u16>| {
            if let Some(m) = &telemetry.metrics {
                m.outbound(&labels, &host, outcome);
            }
            if let Some(mut span) = span {
                if let Some(status) = status {
                    span.set_attribute(KeyValue::new("http.response.status_code", i64::from(status)));
                }
                if outcome != OutboundOutcome::Ok {
                    span.set_status(Status::error(outcome.as_str()));
                }
                span.end();
            }
        }))
    }

    fn key_value_refused(&self) {
        let Some(m) = &self.telemetry.metrics else { return };
        let labels = {
            let s = self.state();
            match (&s.tenant, &s.function) {
                (Some(tenant), Some((function, ..))) => FunctionLabels {
                    tenant: tenant.clone(),
                    function: function.clone(),
                },
                _ => return,
            }
        };
        m.rejected(&labels, metrics::Limit::KvQuota);
    }

    fn finished(&self, invocation: &Invocation) {
        let mut s = self.state();
        s.invocation = Some(*invocation);
        if let Some((mut guest, _)) = s.spans.as_mut().and_then(|sp| sp.guest.take()) {
            guest_attributes(&mut guest, invocation);
            guest.end();
        }
    }
}

/// A function's observer of its instances that serve several requests at
/// once, made at its first request ([`Telemetry::shared_observer`]).
#[derive(Default)]
pub(crate) struct SharedObserver(std::sync::OnceLock<Option<Arc<dyn Observer>>>);

impl std::fmt::Debug for SharedObserver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SharedObserver")
    }
}

/// An instance that serves several requests at once belongs to no one of
/// them: its outbound requests and key-value refusals are counted for its
/// function, and join no request's trace.
struct SharedInstance {
    telemetry: Arc<Telemetry>,
    labels: FunctionLabels,
}

impl Observer for SharedInstance {
    fn outbound(&self, _: &Method, _: &http::Uri, host: &str, _: &mut HeaderMap) -> Option<OutboundDone> {
        let (telemetry, labels, host) = (self.telemetry.clone(), self.labels.clone(), Box::<str>::from(host));
        Some(Box::new(move |outcome: OutboundOutcome, _| {
            if let Some(m) = &telemetry.metrics {
                m.outbound(&labels, &host, outcome);
            }
        }))
    }

    fn key_value_refused(&self) {
        if let Some(m) = &self.telemetry.metrics {
            m.rejected(&self.labels, metrics::Limit::KvQuota);
        }
    }
}

pin_project_lite::pin_project! {
    /// A response body that counts its bytes and holds its request's
    /// record until it ends or is dropped.
    struct Counted {
        #[pin]
        inner: Body,
        record: Arc<RequestRecord>,
    }
}

impl http_body::Body for Counted {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.project();
        let polled = this.inner.poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled
            && let Some(data) = frame.data_ref()
        {
            this.record.bytes_out.fetch_add(data.len() as u64, Ordering::Relaxed);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
