//! Requests the host makes itself, for functions' schedules: routed in
//! their tenant's table to their own function only.

use std::borrow::Cow;
use std::sync::Arc;

use axum::extract::Request;
use axum::http::Method;
use axum::response::Response;

use super::{ApiError, AppState, Record, Target, invoke, request_host, validate};
use crate::registry::{Snapshot, Tenant};
use wasmfn_routing::{RouteOutcome, split_path};

/// A request the host makes itself for schedule `schedule` of `function`
/// in `tenant`: routed in that tenant's table (to that function only),
/// checked against its declared operation, and run under the function's
/// limits with a request id and an access line of its own. No caller
/// credentials are asked for: the host is the caller.
pub(crate) async fn scheduled_request(
    app: &AppState,
    tenant: &Arc<Tenant>,
    function: &str,
    schedule: &str,
    mut req: Request,
) -> ScheduledOutcome {
    req.headers_mut().reserve(8);
    let (id, _) = crate::request_id::settle(&mut req);
    let record = app.telemetry.record(req.method(), req.uri().path(), req.headers(), &id);
    if let Some(r) = &record {
        r.tenant(&tenant.id);
        r.scheduled(schedule);
    }
    let resp = match route_scheduled(app, tenant, function, req, &id, record.clone()).await {
        Ok(r) => r,
        Err(e) => e.into_response_with(&id),
    };
    let resp = match record {
        Some(r) => r.respond(resp),
        None => resp,
    };
    // The whole body is read, so that a streamed response runs to its end
    // (and its limits apply); what went wrong is in the body of a failure.
    use http_body_util::BodyExt;
    let status = resp.status().as_u16();
    let body = match resp.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => {
            return ScheduledOutcome {
                request_id: id,
                status,
                error: Some(format!("the response broke off: {e}")),
            };
        }
    };
    let error = (status >= 400).then(|| {
        let text = String::from_utf8_lossy(&body[..body.len().min(1024)]);
        format!("status {status}: {}", text.trim())
    });
    ScheduledOutcome {
        request_id: id,
        status,
        error,
    }
}

/// The route of `snapshot` a scheduled request of `function` takes: its
/// match and the function's and mount's indexes; an error if the request
/// reaches no route or another function's.
fn resolve_scheduled<'s>(
    snapshot: &'s Snapshot,
    function: &str,
    method: &Method,
    host: &str,
    port: Option<u16>,
    segs: &[Cow<'_, str>],
    path: &str,
) -> Result<(wasmfn_routing::RouteMatch<'s>, usize, usize), String> {
    let RouteOutcome::Matched(m) = snapshot.table.route(method, host, port, segs) else {
        return Err(format!("`{method} {path}` matches no route of function `{function}`"));
    };
    let (fi, mi) = snapshot.mount_index[m.claim.tag];
    let name = &snapshot.functions[fi].name;
    if **name != *function {
        return Err(format!(
            "`{method} {path}` is served by function `{name}`, not `{function}`"
        ));
    }
    Ok((m, fi, mi))
}

/// Why `request` (made by a schedule of `function`) would not reach
/// `function` through `snapshot`'s routes, if it would not.
pub(crate) fn scheduled_route_problem(snapshot: &Snapshot, function: &str, request: &Request) -> Option<String> {
    let path = request.uri().path();
    let segs = match split_path(path) {
        Ok(s) => s,
        Err(e) => return Some(format!("`path` `{path}`: {e}")),
    };
    let (host, port) = request_host(request);
    resolve_scheduled(snapshot, function, request.method(), &host, port, &segs, path).err()
}

/// How a scheduled request went.
#[derive(Debug, Clone)]
pub(crate) struct ScheduledOutcome {
    /// Its request id (in the access log and the guest's `x-request-id`).
    pub request_id: String,
    /// The response's status.
    pub status: u16,
    /// Why it failed (a status of 400 or more), with the start of the body.
    pub error: Option<String>,
}

async fn route_scheduled(
    app: &AppState,
    tenant: &Arc<Tenant>,
    function: &str,
    req: Request,
    id: &str,
    record: Record,
) -> Result<Response, ApiError> {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let segs = split_path(&path).map_err(|e| ApiError::InvalidPath { message: e.to_string() })?;
    let (host, port) = request_host(&req);
    let snapshot = tenant.snapshot();
    let (m, fi, mi) = resolve_scheduled(&snapshot, function, &method, &host, port, &segs, &path)
        .map_err(|message| ApiError::InvalidPath { message })?;
    let f = snapshot.functions[fi].clone();
    let mount = &f.mounts[mi];
    let mut target = Target::new(mount, &m, &method);
    target.own = req
        .headers()
        .iter()
        .filter(|(k, _)| k.as_str().starts_with("x-fn-schedule"))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    if let Some(r) = &record {
        r.matched(
            &f.name,
            &f.stats,
            mount.route_header.as_ref().and_then(|h| h.to_str().ok()),
        );
    }
    let operation = mount.operation(&method).cloned();
    drop(snapshot);
    let req = match operation.as_ref().and_then(|o| o.validator.as_ref()) {
        Some(v) => validate(v, &f, req, &target.params).await?,
        None => req,
    };
    invoke(app, tenant, &f, req, id, target, record).await
}
