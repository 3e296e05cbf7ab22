//! What operators watch: `/_fn/metrics` (Prometheus) and each function's
//! recent log (`/_fn/functions/{name}/logs`, followed as server-sent events).

use std::convert::Infallible;
use std::sync::Arc;

use axum::Json;
use axum::extract::{Extension, Path, Query, Request, State};
use axum::http::header;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use serde::Deserialize;
use serde_json::json;

use super::functions::visible_tenant;
use crate::AppState;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::registry::FunctionStats;
use crate::request_id::request_id;
use crate::telemetry::logs::{LogLine, RING_LINES};
use crate::telemetry::metrics::{FunctionLabels, Now};
use crate::tenant::DEFAULT_TENANT;

/// The OpenMetrics text exposition, as Prometheus scrapes it.
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The host's metrics; a tenant's token sees its tenant's series only.
#[utoipa::path(get, path = "/_fn/metrics", tag = "wasmfn", security(("admin_token" = ["read"])),
    responses((status = 200, description = "Metrics in the OpenMetrics text format (`docs/observability.md`)", content_type = "application/openmetrics-text", body = String),
              (status = 404, description = "The host records no metrics (`metrics_disabled`)", body = Object)))]
pub(crate) async fn metrics(
    State(app): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    req: Request,
) -> Response {
    let tenant = caller.tenant.as_deref();
    match app.telemetry.exposition(|| now(&app), tenant) {
        Some(text) => ([(header::CONTENT_TYPE, OPENMETRICS)], text).into_response(),
        None => ApiError::MetricsDisabled.into_response_with(&request_id(req.headers())),
    }
}

/// What the gates and snapshots show at this scrape.
fn now(app: &AppState) -> Now {
    let tenants = app.registry.tenants();
    let mut functions = Vec::new();
    let mut states = Vec::new();
    for t in tenants.iter() {
        let s = t.snapshot();
        for f in &s.functions {
            functions.push((
                FunctionLabels {
                    tenant: t.id.clone(),
                    function: f.name.clone(),
                },
                f.gate.in_flight(),
                u64::from(f.gate.queued()),
            ));
        }
        states.push((t.id.clone(), s.functions.len(), s.failed.len()));
    }
    Now {
        functions,
        tenants: states,
        cache: app.runtime.cache_stats(),
    }
}

/// `?tail=N&follow=1`.
#[derive(Debug, Deserialize)]
pub(crate) struct LogQuery {
    tail: Option<String>,
    follow: Option<String>,
}

/// The last lines of a function's guest output and access log.
#[utoipa::path(get, path = "/_fn/functions/{name}/logs", tag = "wasmfn", security(("admin_token" = ["read"])),
    params(("name" = String, Path, description = "The function's name"),
           ("tail" = Option<u32>, Query, description = "How many of the last lines (default 100, at most 1000)"),
           ("follow" = Option<bool>, Query, description = "`1`: stream the tail, then each new line, as server-sent events")),
    responses((status = 200, description = "`lines`: time, kind (stdout, stderr, access), request_id, text; or an event stream with `follow=1`", body = Object),
              (status = 400, description = "A `tail` or `follow` that does not parse (`bad_query`)", body = Object),
              (status = 404, description = "No such function (`function_not_found`)", body = Object)))]
pub(crate) async fn function_logs(
    State(app): State<Arc<AppState>>,
    Path(name): Path<String>,
    Extension(caller): Extension<Caller>,
    Query(q): Query<LogQuery>,
    req: Request,
) -> Response {
    logs(&app, &caller, DEFAULT_TENANT, name, q, &request_id(req.headers()))
}

/// The last lines of a tenant's function's guest output and access log.
#[utoipa::path(get, path = "/_fn/tenants/{tenant}/functions/{name}/logs", tag = "wasmfn", security(("admin_token" = ["read"])),
    params(("tenant" = String, Path, description = "The tenant's id"),
           ("name" = String, Path, description = "The function's name"),
           ("tail" = Option<u32>, Query, description = "How many of the last lines (default 100, at most 1000)"),
           ("follow" = Option<bool>, Query, description = "`1`: stream the tail, then each new line, as server-sent events")),
    responses((status = 200, description = "As `GET /_fn/functions/{name}/logs`", body = Object),
              (status = 400, description = "A `tail` or `follow` that does not parse (`bad_query`)", body = Object),
              (status = 404, description = "No such tenant or function (`tenant_not_found`, `function_not_found`)", body = Object)))]
pub(crate) async fn tenant_function_logs(
    State(app): State<Arc<AppState>>,
    Path((tenant, name)): Path<(String, String)>,
    Extension(caller): Extension<Caller>,
    Query(q): Query<LogQuery>,
    req: Request,
) -> Response {
    logs(&app, &caller, &tenant, name, q, &request_id(req.headers()))
}

fn logs(app: &AppState, caller: &Caller, tenant: &str, name: String, q: LogQuery, id: &str) -> Response {
    let (tail, follow) = match parse(&q) {
        Ok(p) => p,
        Err(e) => return e.into_response_with(id),
    };
    let t = match visible_tenant(app, caller, tenant) {
        Ok(t) => t,
        Err(e) => return e.into_response_with(id),
    };
    let snapshot = t.snapshot();
    let known = snapshot.functions.iter().any(|f| *f.name == *name) || snapshot.failed.iter().any(|f| f.name == name);
    let stats = match t.stats.get(&name) {
        Some(s) if known => s,
        _ => return ApiError::FunctionNotFound { function: name }.into_response_with(id),
    };
    if follow {
        return follow_lines(&stats, tail);
    }
    Json(json!({
        "tenant": tenant,
        "function": name,
        "lines": stats.logs.tail(tail),
    }))
    .into_response()
}

fn parse(q: &LogQuery) -> Result<(usize, bool), ApiError> {
    let tail = match q.tail.as_deref() {
        None => 100,
        Some(n) => n
            .parse::<usize>()
            .ok()
            .filter(|n| *n <= RING_LINES)
            .ok_or_else(|| ApiError::BadQuery {
                message: format!("`tail` is `{n}`: give a number of lines from 0 to {RING_LINES}"),
            })?,
    };
    let follow = match q.follow.as_deref() {
        None | Some("0" | "false") => false,
        Some("" | "1" | "true") => true,
        Some(other) => {
            return Err(ApiError::BadQuery {
                message: format!("`follow` is `{other}`: give `1` (or `true`) to follow, `0` not to"),
            });
        }
    };
    Ok((tail, follow))
}

/// The tail, then every new line, as server-sent events (`data:` one JSON
/// line each); a follower that fell behind gets a `lagged` event saying
/// how many lines it missed. Ends when the client leaves.
fn follow_lines(stats: &Arc<FunctionStats>, tail: usize) -> Response {
    let (first, rx) = stats.logs.tail_and_follow(tail);
    let event = |l: &LogLine| {
        Event::default()
            .json_data(l)
            .unwrap_or_else(|_| Event::default().data("{}"))
    };
    let first = futures::stream::iter(first.iter().map(event).collect::<Vec<_>>());
    let rest = futures::stream::unfold(rx, move |mut rx| async move {
        match rx.next().await? {
            Ok(line) => Some((event(&line), rx)),
            Err(missed) => Some((Event::default().event("lagged").data(missed.to_string()), rx)),
        }
    });
    Sse::new(first.chain(rest).map(Ok::<_, Infallible>))
        .keep_alive(KeepAlive::default())
        .into_response()
}
