//! Observability of the real binary: metrics scraped as Prometheus does,
//! and traces exported over OTLP to a receiver of the test's own.

mod prometheus;
mod traces;
