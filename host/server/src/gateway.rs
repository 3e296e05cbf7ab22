//! The request pipeline for functions: route, check limits, invoke,
//! stream the response back. Every step that says no answers with
//! [`ApiError`].

use std::borrow::Cow;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, header};
use axum::response::{IntoResponse, Response};
use http_body::Body as _;

use super::AppState;
use super::error::ApiError;
use crate::admission::{GateError, LimitedBody, LimitedResponse};
use crate::callers::{CallerCheck, Denied, Verified};
use crate::registry::{FunctionStats, LoadedFunction, Tenant};
use crate::request_id::REQUEST_ID;
use crate::telemetry::{Limit, RequestRecord};
use wasmfn_manifest::CorsPolicy;
use wasmfn_openapi::{OperationValidator, Rejection};
use wasmfn_routing::{RouteOutcome, split_host_port, split_path};
use wasmfn_runtime::{GuestBody, InvokeError, InvokeRequest, InvokeTags, Observer};

mod scheduled;
pub(crate) use scheduled::{ScheduledOutcome, scheduled_request, scheduled_route_problem};

/// The shortest wait for slots that gets a `queue` span of its own.
const QUEUE_SPAN_AFTER: Duration = Duration::from_micros(100);

/// The matched route pattern, e.g. `/users/{id}`.
pub const FN_ROUTE: HeaderName = HeaderName::from_static("x-fn-route");
/// The name of the function that serves the request.
pub const FN_FUNCTION: HeaderName = HeaderName::from_static("x-fn-function");
/// The operation's path as the function declared it: `/{id}`.
pub const FN_PATH: HeaderName = HeaderName::from_static("x-fn-path");
/// Prefix of one header per path parameter: `x-fn-param-id`.
pub const FN_PARAM_PREFIX: &str = "x-fn-param-";

/// Every request that is not for `/_fn/*`, straight from the connection:
/// the request id settled as [`with_request_id`](crate::request_id::with_request_id) does, without a router
/// or middleware stack in between.
pub(crate) async fn function_request(app: Arc<AppState>, mut req: Request) -> Response {
    // Room for the request id and the host's `x-fn-*` headers at once.
    req.headers_mut().reserve(8);
    let (id, value) = crate::request_id::settle(&mut req);
    let record = app.telemetry.record(req.method(), req.uri().path(), req.headers(), &id);
    let mut resp = match handle(&app, req, &id, record.as_ref()).await {
        Ok(r) => r,
        Err(e) => e.into_response_with(&id),
    };
    resp.headers_mut().insert(REQUEST_ID, value);
    match record {
        Some(r) => r.respond(resp),
        None => resp,
    }
}

/// The request's host (lower-case, without port) and port, from `Host` or
/// the URI's authority.
pub(crate) fn request_host(req: &Request) -> (Cow<'_, str>, Option<u16>) {
    let raw = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| req.uri().authority().map(|a| a.as_str()))
        .unwrap_or_default();
    split_host_port(raw).unwrap_or((Cow::Borrowed(raw), None))
}

/// What is recorded of the request, when anything is.
type Record = Option<Arc<RequestRecord>>;

async fn handle(
    app: &AppState,
    req: Request,
    id: &str,
    record: Option<&Arc<RequestRecord>>,
) -> Result<Response, ApiError> {
    let method = req.method().clone();
    let path = req.uri().path();
    let segs = split_path(path).map_err(|e| ApiError::InvalidPath { message: e.to_string() })?;
    let (host, port) = request_host(&req);
    let tenant = app.registry.tenants().for_host(&host).clone();
    if let Some(r) = record {
        r.tenant(&tenant.id);
    }
    let snapshot = tenant.snapshot();
    if method == Method::OPTIONS
        && CorsPolicy::is_preflight(&method, req.headers())
        && let Some(resp) = preflight(&snapshot, &req, &host, port, &segs)
    {
        return Ok(resp);
    }
    let (function, target, operation, check) = match snapshot.table.route(&method, &host, port, &segs) {
        RouteOutcome::Matched(m) => {
            let (fi, mi) = snapshot.mount_index[m.claim.tag];
            let f = &snapshot.functions[fi];
            let mount = &f.mounts[mi];
            let target = Target::new(mount, &m, &method);
            let check = f.checks.get(mi).cloned().flatten();
            if let Some(r) = record {
                r.matched(
                    &f.name,
                    &f.stats,
                    mount.route_header.as_ref().and_then(|h| h.to_str().ok()),
                );
            }
            (f.clone(), target, mount.operation(&method).cloned(), check)
        }
        RouteOutcome::NotFound if method == Method::GET && path == "/openapi.json" => {
            return Ok(super::admin::openapi_response(&snapshot));
        }
        RouteOutcome::NotFound if method == Method::GET && path == "/docs" => {
            let page = wasmfn_openapi::docs_page("/_fn/docs", "/openapi.json");
            return Ok(axum::response::Html(page).into_response());
        }
        RouteOutcome::NotFound => return Err(ApiError::NotFound { path: path.to_string() }),
        RouteOutcome::MethodNotAllowed { allow } => {
            return Err(ApiError::MethodNotAllowed {
                method: method.to_string(),
                allow: allow.iter().map(|m| m.to_string()).collect(),
            });
        }
        RouteOutcome::MisdirectedHost => {
            return Err(ApiError::MisdirectedRequest {
                host: host.into_owned(),
            });
        }
        RouteOutcome::Conflict { route, functions } => {
            return Err(ApiError::RouteConflict {
                route,
                method: method.to_string(),
                functions,
            });
        }
    };
    drop(snapshot);
    let record = record.cloned();
    let Some(cors) = function.cors.clone() else {
        return serve(app, &tenant, &function, req, id, target, operation, check, record).await;
    };
    // The host's CORS headers go on every answer of the function, its own
    // errors included, so that a script can read them.
    let mut origin = HeaderMap::new();
    if let Some(o) = req.headers().get(header::ORIGIN) {
        origin.insert(header::ORIGIN, o.clone());
    }
    let mut resp = match serve(app, &tenant, &function, req, id, target, operation, check, record).await {
        Ok(r) => r,
        Err(e) => e.into_response_with(id),
    };
    cors.apply(&origin, resp.headers_mut());
    Ok(resp)
}

/// Authenticates the caller (the route's `auth`), checks the request
/// against its declared operation, and runs it.
#[expect(clippy::too_many_arguments, reason = "what routing decided")]
async fn serve(
    app: &AppState,
    tenant: &Tenant,
    function: &Arc<LoadedFunction>,
    req: Request,
    id: &str,
    mut target: Target,
    operation: Option<Arc<wasmfn_openapi::Operation>>,
    check: Option<Arc<CallerCheck>>,
    record: Record,
) -> Result<Response, ApiError> {
    if let Some(check) = check {
        let keys = tenant.keys.load();
        let verified = check
            .check(&tenant.id, req.headers(), req.uri().query(), &keys)
            .await
            .map_err(|d| {
                FunctionStats::bump(&function.stats.rejected);
                refused(&record, Limit::Auth);
                denied(d)
            })?;
        target.verified = Some(verified);
    }
    let req = match operation.as_ref().and_then(|o| o.validator.as_ref()) {
        Some(v) => {
            let started = Instant::now();
            let checked = validate(v, function, req, &target.params).await;
            if let Some(r) = &record {
                r.step("validate", started);
                match &checked {
                    Err(ApiError::PayloadTooLarge { .. }) => r.refused(Limit::BodyTooLarge),
                    Err(_) => r.refused(Limit::Validation),
                    Ok(_) => {}
                }
            }
            checked?
        }
        None => req,
    };
    if app.config.validate_responses {
        target.check_response = operation.as_ref().and_then(|o| o.validator.clone());
    }
    invoke(app, tenant, function, req, id, target, record).await
}

/// Tells the record, if any, which limit refused the request.
fn refused(record: &Record, limit: Limit) {
    if let Some(r) = record {
        r.refused(limit);
    }
}

fn denied(d: Denied) -> ApiError {
    if d.unavailable {
        return ApiError::ServiceUnavailable {
            reason: d.message,
            retry_after: 5,
        };
    }
    ApiError::CallerRefused {
        status: d.status,
        message: d.message,
        challenge: d.challenge,
    }
}

/// The host's answer to a CORS preflight for a route whose function has
/// `cors`: routed as the method it asks about; `None` when no such route
/// (then the `OPTIONS` request goes on as any other).
fn preflight(
    snapshot: &crate::registry::Snapshot,
    req: &Request,
    host: &str,
    port: Option<u16>,
    segs: &[Cow<'_, str>],
) -> Option<Response> {
    let asked = req
        .headers()
        .get(header::ACCESS_CONTROL_REQUEST_METHOD)?
        .to_str()
        .ok()?;
    let asked = Method::from_bytes(asked.as_bytes()).ok()?;
    let RouteOutcome::Matched(m) = snapshot.table.route(&asked, host, port, segs) else {
        return None;
    };
    let (f, mount) = snapshot.mount(m.claim.tag);
    let cors = f.cors.as_ref()?;
    Some(
        cors.preflight(req.headers(), &mount.methods)
            .into_response(Body::empty()),
    )
}

/// What routing decided, for the guest's headers.
struct Target {
    /// `x-fn-route` and `x-fn-path`, made when the function was loaded.
    route: Option<HeaderValue>,
    path: Option<HeaderValue>,
    params: Vec<(String, String)>,
    forward_as_get: bool,
    /// Set when responses are to be checked (`--validate-responses`).
    check_response: Option<Arc<OperationValidator>>,
    /// What the caller check established, for `x-fn-auth-*`.
    verified: Option<Verified>,
    /// The host's own `x-fn-*` headers of a request it makes itself (a schedule's).
    own: Vec<(HeaderName, HeaderValue)>,
}

impl Target {
    /// Where route match `m` on `mount` sends a `method` request; no caller
    /// verified yet, responses not checked, no headers of the host's own.
    fn new(mount: &wasmfn_openapi::Mount, m: &wasmfn_routing::RouteMatch<'_>, method: &Method) -> Self {
        Target {
            route: mount.route_header.clone(),
            path: mount.path_header.clone(),
            params: m.params.iter().map(|(k, v)| (k.to_string(), v.clone())).collect(),
            forward_as_get: method == Method::HEAD && !m.claim.methods.contains(&Method::HEAD),
            check_response: None,
            verified: None,
            own: Vec::new(),
        }
    }
}

/// Checks a request against its declared operation before any instance
/// exists; a JSON body is read whole (within `max_body_bytes`) to be checked.
async fn validate(
    v: &OperationValidator,
    f: &LoadedFunction,
    req: Request,
    params: &[(String, String)],
) -> Result<Request, ApiError> {
    let rejected = |r: Rejection| match r {
        Rejection::UnsupportedMediaType { got, expected } => ApiError::UnsupportedMediaType { got, expected },
        Rejection::Invalid(issues) => ApiError::ValidationFailed { issues },
    };
    let has_body = req.body().size_hint().exact() != Some(0);
    v.check_head(params, req.uri().query(), req.headers(), has_body)
        .map_err(rejected)?;
    let content_type = req.headers().get(header::CONTENT_TYPE).and_then(|c| c.to_str().ok());
    if !has_body || !v.wants_json_body(content_type) {
        return Ok(req);
    }
    let limit = f.spec.policy.max_body_bytes;
    let (parts, body) = req.into_parts();
    let bytes = match axum::body::to_bytes(body, usize::try_from(limit).unwrap_or(usize::MAX)).await {
        Ok(b) => b,
        Err(_) => {
            FunctionStats::bump(&f.stats.body_too_large);
            return Err(ApiError::PayloadTooLarge { limit });
        }
    };
    v.check_json_body(&bytes).map_err(rejected)?;
    Ok(Request::from_parts(parts, Body::from(bytes)))
}

/// The function's overflow answer (429 or 503, `overflow_status`) when
/// its gate, or its tenant's (`tenant`), gave no slot.
fn overflow(f: &LoadedFunction, e: GateError, tenant: Option<&str>, record: &Record) -> ApiError {
    FunctionStats::bump(&f.stats.rejected);
    let limit = match (&e, tenant) {
        (_, Some(_)) => Limit::Quota,
        (GateError::QueueTimeout { .. }, None) => Limit::QueueTimeout,
        (GateError::QueueFull { .. }, None) => Limit::Overflow,
    };
    refused(record, limit);
    let retry_after = f.spec.policy.queue_timeout_ms.div_ceil(1000).max(1);
    let reason = match tenant {
        Some(t) => format!("the API's concurrency quota (tenant `{t}`): {e}"),
        None => e.to_string(),
    };
    if f.spec.policy.overflow_status == 503 {
        ApiError::ServiceUnavailable {
            reason: format!("function `{}`: {reason}", f.name),
            retry_after,
        }
    } else {
        ApiError::TooManyRequests {
            function: f.name.to_string(),
            reason,
            retry_after,
        }
    }
}

/// Admits the request (body size as declared, the function's gate, the
/// host's gate), runs it, and answers with the guest's response under the
/// response limits.
async fn invoke(
    app: &AppState,
    tenant: &Tenant,
    f: &Arc<LoadedFunction>,
    req: Request,
    id: &str,
    target: Target,
    record: Record,
) -> Result<Response, ApiError> {
    let policy = &f.spec.policy;
    FunctionStats::bump(&f.stats.requests);
    if let Some(rate) = &tenant.rate
        && let Err(wait) = rate.check()
    {
        FunctionStats::bump(&f.stats.rejected);
        refused(&record, Limit::RateLimited);
        return Err(ApiError::RateLimited {
            rate: rate.settings(),
            retry_after: wait.as_secs_f64().ceil().max(1.0) as u64,
        });
    }
    refuse_declared_oversize(f, req.headers()).inspect_err(|_| refused(&record, Limit::BodyTooLarge))?;
    let queued = Instant::now();
    let permit = f.gate.acquire().await.map_err(|e| overflow(f, e, None, &record))?;
    let tenant_permit = match &tenant.gate {
        Some(g) => Some(
            g.acquire_queued(policy.max_queue, Duration::from_millis(policy.queue_timeout_ms))
                .await
                .map_err(|e| overflow(f, e, Some(&tenant.id), &record))?,
        ),
        None => None,
    };
    let host_permit = app.host_gate.acquire().await.map_err(|e| {
        FunctionStats::bump(&f.stats.rejected);
        refused(&record, Limit::Overflow);
        ApiError::ServiceUnavailable {
            reason: e.to_string(),
            retry_after: 1,
        }
    })?;
    // A wait worth a span: one that did wait.
    if let Some(r) = &record
        && queued.elapsed() >= QUEUE_SPAN_AFTER
        && r.traced()
    {
        r.step("queue", queued);
    }
    // The timeout counts from the moment the function gets its slot.
    let deadline = Instant::now() + Duration::from_millis(policy.timeout_ms);
    let (mut parts, body) = req.into_parts();
    set_guest_headers(&mut parts, f, &target);
    if let Some(r) = &record {
        r.trace_headers(&mut parts.headers);
    }
    let exceeded = Arc::new(AtomicBool::new(false));
    let body = LimitedBody::new(body, policy.max_body_bytes, exceeded.clone());
    let tags = InvokeTags {
        tenant: tenant.id.clone(),
        function: f.name.clone(),
        request_id: id.into(),
    };
    let result = app
        .runtime
        .invoke(
            &f.component,
            InvokeRequest {
                request: http::Request::from_parts(parts, body),
                tags: tags.clone(),
                deadline,
                max_memory_bytes: policy.max_memory_bytes,
                capabilities: f.capabilities.clone(),
                guard: Box::new((permit, tenant_permit, host_permit)),
                warm: Some(f.warm.clone()),
                reuse: f.reuse.clone(),
                lanes: f.lanes.clone(),
                retire: Some(f.retire.clone()),
                observer: record.clone().map(|r| r as Arc<dyn Observer>),
                output: Some(f.stats.clone()),
                shared_observer: f.lanes.as_ref().and_then(|_| {
                    app.telemetry
                        .shared_observer(&f.stats.shared_observer, &tenant.id, &f.name)
                }),
            },
        )
        .await;
    // A body cut at its limit before the response began is the client's
    // error, whatever the guest made of it.
    if exceeded.load(Ordering::Relaxed) {
        FunctionStats::bump(&f.stats.body_too_large);
        refused(&record, Limit::BodyTooLarge);
        return Err(ApiError::PayloadTooLarge {
            limit: policy.max_body_bytes,
        });
    }
    let resp = limit_response(
        f,
        id,
        tags,
        result.map_err(|e| invoke_error(f, id, e, &record))?,
        &record,
    )?;
    match target.check_response {
        Some(v) if v.has_response_schema(resp.status().as_u16()) && is_json(resp.headers()) => {
            let route = target.route.as_ref().and_then(|r| r.to_str().ok()).unwrap_or_default();
            Ok(check_response(&v, f, id, route, resp).await)
        }
        _ => Ok(resp),
    }
}

/// A `Content-Length` over `max_body_bytes` is refused before the request
/// waits for a slot.
fn refuse_declared_oversize(f: &LoadedFunction, headers: &HeaderMap) -> Result<(), ApiError> {
    let limit = f.spec.policy.max_body_bytes;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit) {
        FunctionStats::bump(&f.stats.body_too_large);
        return Err(ApiError::PayloadTooLarge { limit });
    }
    Ok(())
}

/// The headers the guest sees: the host's `x-fn-*` (route, path,
/// function, one per path parameter) replacing any client copy, and a
/// `Host`; `HEAD` forwarded as `GET` to a function that declares no `HEAD`.
fn set_guest_headers(parts: &mut http::request::Parts, f: &LoadedFunction, target: &Target) {
    if target.forward_as_get {
        parts.method = Method::GET;
    }
    let h = &mut parts.headers;
    // Nothing from the client may pose as the host's own headers.
    let spoofed: Vec<HeaderName> = h.keys().filter(|k| k.as_str().starts_with("x-fn-")).cloned().collect();
    for k in spoofed {
        h.remove(&k);
    }
    if let Some(v) = target.route.clone() {
        h.insert(FN_ROUTE, v);
    }
    if let Some(v) = target.path.clone() {
        h.insert(FN_PATH, v);
    }
    if let Some(v) = f.name_header.clone() {
        h.insert(FN_FUNCTION, v);
    }
    if let Some(v) = &target.verified {
        v.set_headers(h);
    }
    for (k, v) in &target.own {
        h.insert(k.clone(), v.clone());
    }
    for (k, v) in &target.params {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(format!("{FN_PARAM_PREFIX}{}", k.to_ascii_lowercase()).as_bytes()),
            HeaderValue::from_bytes(v.as_bytes()),
        ) {
            h.insert(name, value);
        }
    }
    if !h.contains_key(header::HOST) {
        h.insert(header::HOST, HeaderValue::from_static("localhost"));
    }
}

/// The guest's response under `max_response_bytes`: refused whole when its
/// size is known before the head goes out (a response made whole, or one
/// with `content-length`), else cut where a streamed body crosses it.
fn limit_response(
    f: &LoadedFunction,
    id: &str,
    tags: InvokeTags,
    resp: http::Response<GuestBody>,
    record: &Record,
) -> Result<Response, ApiError> {
    let limit = f.spec.policy.max_response_bytes;
    if let Some(size) = resp.body().size_hint().exact()
        && size > limit
    {
        FunctionStats::bump(&f.stats.response_too_large);
        refused(record, Limit::ResponseTooLarge);
        tracing::warn!(
            function = %f.name,
            request_id = id,
            size,
            limit,
            "response body exceeds max_response_bytes; not sent"
        );
        return Err(ApiError::ResponseTooLarge {
            function: f.name.to_string(),
            size,
            limit,
        });
    }
    let stats = f.stats.clone();
    let record = record.clone();
    Ok(resp.map(|b| {
        Body::new(LimitedResponse::new(
            b,
            limit,
            tags,
            Box::new(move || {
                FunctionStats::bump(&stats.response_too_large);
                refused(&record, Limit::ResponseTooLarge);
            }),
        ))
    }))
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or("").trim().to_ascii_lowercase())
        .is_some_and(|m| m == "application/json" || m.ends_with("+json"))
}

/// Development aid: reads a JSON response whole, logs how it differs from
/// its declared schema, and passes it on unchanged.
async fn check_response(v: &OperationValidator, f: &LoadedFunction, id: &str, route: &str, resp: Response) -> Response {
    let (parts, body) = resp.into_parts();
    let status = parts.status.as_u16();
    match axum::body::to_bytes(body, usize::MAX).await {
        Ok(bytes) => {
            let issues = v.check_response(status, &bytes);
            if !issues.is_empty() {
                tracing::warn!(
                    function = %f.name,
                    request_id = id,
                    route,
                    status,
                    issues = %serde_json::to_string(&issues).unwrap_or_default(),
                    "response does not match its declared schema"
                );
            }
            Response::from_parts(parts, Body::from(bytes))
        }
        Err(e) => {
            tracing::warn!(function = %f.name, request_id = id, error = %e, "response body failed while being checked");
            ApiError::FunctionError {
                function: f.name.to_string(),
            }
            .into_response_with(id)
        }
    }
}

fn invoke_error(f: &LoadedFunction, id: &str, e: InvokeError, record: &Record) -> ApiError {
    let function = f.name.to_string();
    match e {
        InvokeError::Timeout => {
            FunctionStats::bump(&f.stats.timed_out);
            refused(record, Limit::Timeout);
            tracing::warn!(
                function,
                request_id = id,
                timeout_ms = f.spec.policy.timeout_ms,
                "function timed out"
            );
            ApiError::GatewayTimeout {
                function,
                timeout_ms: f.spec.policy.timeout_ms,
            }
        }
        InvokeError::OutOfMemory(detail) => {
            FunctionStats::bump(&f.stats.out_of_memory);
            refused(record, Limit::OutOfMemory);
            tracing::error!(function, request_id = id, detail, "function ran out of memory");
            ApiError::OutOfMemory {
                function,
                limit: f.spec.policy.max_memory_bytes,
            }
        }
        InvokeError::Capacity(detail) => {
            FunctionStats::bump(&f.stats.rejected);
            refused(record, Limit::Overflow);
            tracing::warn!(function, request_id = id, detail, "no instance slot free");
            ApiError::ServiceUnavailable {
                reason: "no instance slot is free".into(),
                retry_after: 1,
            }
        }
        InvokeError::Interrupted if f.retire.is_set() => {
            tracing::warn!(
                function,
                request_id = id,
                "interrupted: this version was replaced or removed and its drain ran out of time"
            );
            ApiError::VersionRetired { function }
        }
        InvokeError::Interrupted => {
            tracing::warn!(function, request_id = id, "interrupted: the drain ran out of time");
            ApiError::ShuttingDown
        }
        InvokeError::RequestBody(message) => {
            tracing::warn!(function, request_id = id, message, "request body failed");
            ApiError::RequestBodyFailed { message }
        }
        other => {
            FunctionStats::bump(&f.stats.trapped);
            tracing::error!(function, request_id = id, error = %other, "function failed");
            ApiError::FunctionError { function }
        }
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn only_the_fn_prefix_is_the_admin_surface() {
        use super::super::is_admin_path;
        for p in ["/_fn", "/_fn/", "/_fn/health", "/_fn/docs/x.js"] {
            assert!(is_admin_path(p), "{p}");
        }
        for p in ["/", "/_fnx", "/_fn_health", "/api/_fn", "/hello"] {
            assert!(!is_admin_path(p), "{p}");
        }
    }
}
