//! OpenTelemetry traces over OTLP/HTTP (protobuf), configured by the
//! standard variables or `--otlp-endpoint`, off when neither names an
//! endpoint. The W3C trace context is taken from incoming requests, given
//! to the guest, and injected into the guest's outbound requests.

use std::time::Duration;

use anyhow::Context as _;
use http::HeaderMap;
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{BatchSpanProcessor, SdkTracerProvider, Tracer};

/// Where spans go, as the operator configured it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceConfig {
    /// The full URL spans are POSTed to (`…/v1/traces`).
    pub traces_url: String,
}

impl TraceConfig {
    /// From `--otlp-endpoint` (a base URL, as `OTEL_EXPORTER_OTLP_ENDPOINT`)
    /// or the standard variables: `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` (the
    /// full URL), else `OTEL_EXPORTER_OTLP_ENDPOINT` (a base URL). `None`
    /// when none is set, or when `OTEL_SDK_DISABLED=true` or
    /// `OTEL_TRACES_EXPORTER=none`.
    pub fn resolve(flag: Option<&str>) -> anyhow::Result<Option<Self>> {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
        if var("OTEL_SDK_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true"))
            || var("OTEL_TRACES_EXPORTER").is_some_and(|v| v.eq_ignore_ascii_case("none"))
        {
            return Ok(None);
        }
        if let Some(protocol) = var("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL").or_else(|| var("OTEL_EXPORTER_OTLP_PROTOCOL"))
            && protocol != "http/protobuf"
        {
            anyhow::bail!(
                "OTEL_EXPORTER_OTLP_PROTOCOL is `{protocol}`: wasmfn exports traces over `http/protobuf` only; \
                 set it to `http/protobuf` (or leave it unset) and point the endpoint at the collector's HTTP port (4318)"
            );
        }
        let url = match (
            flag,
            var("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"),
            var("OTEL_EXPORTER_OTLP_ENDPOINT"),
        ) {
            (Some(base), _, _) => signal_url(base, "--otlp-endpoint")?,
            (None, Some(full), _) => {
                check_url(&full, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")?;
                full
            }
            (None, None, Some(base)) => signal_url(&base, "OTEL_EXPORTER_OTLP_ENDPOINT")?,
            (None, None, None) => return Ok(None),
        };
        Ok(Some(Self { traces_url: url }))
    }
}

/// `base` + `/v1/traces`, as the OTLP specification builds it.
fn signal_url(base: &str, from: &str) -> anyhow::Result<String> {
    check_url(base, from)?;
    Ok(format!("{}/v1/traces", base.trim_end_matches('/')))
}

fn check_url(url: &str, from: &str) -> anyhow::Result<()> {
    let uri: http::Uri = url
        .parse()
        .with_context(|| format!("{from}: `{url}` is not a URL; give the collector's, e.g. http://127.0.0.1:4318"))?;
    match uri.scheme_str() {
        Some("http") if uri.host().is_some() => Ok(()),
        Some("https") => anyhow::bail!(
            "{from}: `{url}`: wasmfn exports traces over plain HTTP only; send them to a collector beside it \
             (an OpenTelemetry Collector sidecar or agent on http://…:4318) that forwards over TLS"
        ),
        _ => anyhow::bail!("{from}: `{url}` is not an http:// URL with a host, e.g. http://127.0.0.1:4318"),
    }
}

/// The exporter and tracer of a host whose traces are on.
pub(crate) struct Tracing {
    provider: SdkTracerProvider,
    pub(crate) tracer: Tracer,
    pub(crate) propagator: TraceContextPropagator,
}

impl Tracing {
    /// Starts the batch exporter: spans leave in batches from a thread of
    /// their own, never on the request path. Sampling follows
    /// `OTEL_TRACES_SAMPLER` and its argument (parent-based, always on,
    /// when unset); headers come from `OTEL_EXPORTER_OTLP_HEADERS`.
    pub(crate) fn start(config: &TraceConfig) -> anyhow::Result<Self> {
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_endpoint(config.traces_url.clone())
            .with_timeout(Duration::from_secs(10))
            .with_headers(otlp_headers()?)
            .build()
            .context("the OTLP span exporter")?;
        let mut resource = Resource::builder();
        if std::env::var_os("OTEL_SERVICE_NAME").is_none() {
            resource = resource.with_service_name("wasmfn");
        }
        let resource = resource
            .with_attribute(opentelemetry::KeyValue::new(
                "service.version",
                env!("CARGO_PKG_VERSION"),
            ))
            .build();
        let provider = SdkTracerProvider::builder()
            .with_span_processor(BatchSpanProcessor::builder(exporter).build())
            .with_resource(resource)
            .build();
        let tracer = provider.tracer("wasmfn");
        Ok(Self {
            provider,
            tracer,
            propagator: TraceContextPropagator::new(),
        })
    }

    /// Sends what is still buffered and stops the exporter (at shutdown).
    pub(crate) fn shutdown(&self) {
        if let Err(e) = self.provider.shutdown() {
            tracing::warn!(error = %e, "traces not all exported at shutdown");
        }
    }
}

/// `OTEL_EXPORTER_OTLP_TRACES_HEADERS` or `OTEL_EXPORTER_OTLP_HEADERS`:
/// `key=value` pairs, comma-separated, values percent-encoded.
fn otlp_headers() -> anyhow::Result<std::collections::HashMap<String, String>> {
    let (name, raw) = match std::env::var("OTEL_EXPORTER_OTLP_TRACES_HEADERS") {
        Ok(v) => ("OTEL_EXPORTER_OTLP_TRACES_HEADERS", v),
        Err(_) => match std::env::var("OTEL_EXPORTER_OTLP_HEADERS") {
            Ok(v) => ("OTEL_EXPORTER_OTLP_HEADERS", v),
            Err(_) => return Ok(Default::default()),
        },
    };
    let mut out = std::collections::HashMap::new();
    for pair in raw.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let Some((k, v)) = pair.split_once('=') else {
            anyhow::bail!("{name}: `{pair}` is not `key=value`; give e.g. `authorization=Bearer%20abc,x-team=a`");
        };
        let v = percent_encoding::percent_decode_str(v.trim())
            .decode_utf8()
            .with_context(|| format!("{name}: the value of `{}` is not UTF-8 once decoded", k.trim()))?;
        out.insert(k.trim().to_string(), v.into_owned());
    }
    Ok(out)
}

/// Reads a trace context from request headers.
pub(crate) struct HeaderExtractor<'a>(pub(crate) &'a HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|k| k.as_str()).collect()
    }
}

/// Writes a trace context into request headers.
pub(crate) struct HeaderInjector<'a>(pub(crate) &'a mut HeaderMap);

impl Injector for HeaderInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(k), Ok(v)) = (
            http::HeaderName::from_bytes(key.as_bytes()),
            http::HeaderValue::from_str(&value),
        ) {
            self.0.insert(k, v);
        }
    }
}

/// Uses the propagator's trait in one place.
pub(crate) fn extract(propagator: &TraceContextPropagator, headers: &HeaderMap) -> opentelemetry::Context {
    propagator.extract(&HeaderExtractor(headers))
}

/// Writes `cx`'s span context into `headers` (`traceparent`, `tracestate`).
pub(crate) fn inject(propagator: &TraceContextPropagator, cx: &opentelemetry::Context, headers: &mut HeaderMap) {
    propagator.inject_context(cx, &mut HeaderInjector(headers));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_base_url_gets_the_signal_path_and_a_bad_one_is_named() {
        assert_eq!(
            signal_url("http://127.0.0.1:4318/", "--otlp-endpoint").unwrap(),
            "http://127.0.0.1:4318/v1/traces"
        );
        let e = signal_url("collector:4318", "--otlp-endpoint").unwrap_err().to_string();
        assert!(e.contains("--otlp-endpoint") && e.contains("http://"), "{e}");
        let e = signal_url("https://c.example:4318", "OTEL_EXPORTER_OTLP_ENDPOINT")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("OTEL_EXPORTER_OTLP_ENDPOINT") && e.contains("plain HTTP"),
            "{e}"
        );
    }

    #[test]
    fn a_trace_context_goes_through_headers_both_ways() {
        let p = TraceContextPropagator::new();
        let mut h = HeaderMap::new();
        h.insert(
            "traceparent",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
                .parse()
                .unwrap(),
        );
        let cx = extract(&p, &h);
        let mut out = HeaderMap::new();
        inject(&p, &cx, &mut out);
        assert_eq!(out["traceparent"], h["traceparent"]);
    }
}
