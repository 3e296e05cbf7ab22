//! The host's own endpoints under `/_fn`: the public ones (health,
//! readiness, the document and its docs, per tenant by `Host`) and the
//! admin surface behind [`AdminAccess`](crate::AdminAccess): catalog,
//! status, reload, the deployed functions (`functions`), the tenants and
//! their keys (`tenants`) and the audit log.

mod functions;
mod observe;
mod secrets;
mod tenants;

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::{Extension, Path, Request, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use utoipa::OpenApi;

use super::AppState;
use super::error::ApiError;
use crate::auth::{Caller, Scope};
use crate::registry::Snapshot;
use crate::request_id::request_id;
use crate::state::AuditEntry;
use crate::tenant::DEFAULT_TENANT;
use functions::*;
use observe::*;
use secrets::*;
use tenants::*;
use wasmfn_openapi::{SWAGGER_ASSETS, docs_page};

/// The host's own endpoints, described for the OpenAPI document.
#[derive(OpenApi)]
#[openapi(
    paths(health, ready, catalog, status, openapi_json, reload, list_functions, get_function,
          put_function, rollback_function, delete_function, audit, list_tenants, get_tenant, put_tenant,
          delete_tenant, list_tenant_functions, get_tenant_function, put_tenant_function,
          rollback_tenant_function, delete_tenant_function, list_api_keys, create_api_key, delete_api_key,
          metrics, function_logs, tenant_function_logs, put_secret, put_tenant_secret, list_secrets,
          list_tenant_secrets, delete_secret, delete_tenant_secret, list_schedules, list_tenant_schedules),
    tags((name = "wasmfn", description = "The host's own endpoints.")),
    modifiers(&AdminTokenScheme)
)]
struct AdminApi;

/// The admin surface's bearer tokens, as a security scheme.
struct AdminTokenScheme;

impl utoipa::Modify for AdminTokenScheme {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let scheme = HttpBuilder::new()
            .scheme(HttpAuthScheme::Bearer)
            .description(Some(
                "An admin token from the host's `--admin-tokens` file; scopes `read`, `deploy`, `admin`",
            ))
            .build();
        doc.components
            .get_or_insert_with(Default::default)
            .add_security_scheme("admin_token", SecurityScheme::Http(scheme));
    }
}

/// The OpenAPI description of `/_fn/*`, merged into the document when the
/// operator asks for it (`--openapi-admin`).
pub fn admin_document() -> Value {
    serde_json::to_value(AdminApi::openapi()).expect("the admin document serialises")
}

/// Liveness: `status` and `version`, nothing more (the details are at
/// `/_fn/status`, on the admin surface).
#[utoipa::path(get, path = "/_fn/health", tag = "wasmfn",
    responses((status = 200, description = "`status` is `ok`, or `degraded` while a function failed to load or the shared state store cannot be reached", body = Object)))]
pub(crate) async fn health(State(app): State<Arc<AppState>>) -> Json<Value> {
    let failed = app.registry.snapshot().failed.len();
    let store = app.deployments.as_ref().and_then(|d| d.degraded());
    Json(json!({
        "status": if failed == 0 && store.is_none() { "ok" } else { "degraded" },
        "version": env!("CARGO_PKG_VERSION"),
    }))
}

/// What the host runs: functions loaded and failed, conflicts, the
/// instance pool, warm instances, the compile cache, the state directory.
#[utoipa::path(get, path = "/_fn/status", tag = "wasmfn", security(("admin_token" = ["read"])),
    responses((status = 200, description = "The host's status and settings", body = Object)))]
pub(crate) async fn status(State(app): State<Arc<AppState>>) -> Json<Value> {
    let s = app.registry.snapshot();
    let failed = s.failed.len();
    let store = app.deployments.as_ref().and_then(|d| d.degraded());
    let shared = app.deployments.as_ref().and_then(|d| d.shared.as_ref());
    Json(json!({
        "status": if failed == 0 && store.is_none() { "ok" } else { "degraded" },
        "version": env!("CARGO_PKG_VERSION"),
        "state_dir": app.deployments.as_ref().map(|d| d.root()),
        // The shared desired state (`--state-store`): the version this host
        // serves, and why the store cannot be reached when it cannot.
        "state_store": shared.map(|s| json!({"version": s.version(), "error": store})),
        // How the admin surface is guarded: the tokens in force (null:
        // none, loopback only) and whether loopback clients may write.
        "admin": {
            "tokens": app.access.load().tokens.as_ref().map(|t| t.len()),
            "loopback_writes": app.access.load().loopback_writes,
        },
        "deployed": s.deployed.len(),
        // Tenants besides `default`, and their functions.
        "tenants": {
            "count": app.registry.tenants().len() - 1,
            "functions": app.registry.tenants().iter().filter(|t| !t.is_default()).map(|t| t.snapshot().functions.len()).sum::<usize>(),
        },
        "uptime_seconds": app.started.elapsed().as_secs(),
        "functions": { "loaded": s.functions.len(), "failed": failed },
        "conflicts": s.table.conflicts().len(),
        "pooling_allocator": app.runtime.pooling(),
        "keep_resident_bytes": app.runtime.pooling().then(|| wasmfn_runtime::Runtime::keep_resident_for(&app.config.runtime)),
        // Memory images up to this size are mapped copy-on-write, larger
        // ones copied (null: all alike, see `memory_cow`).
        "cow_max_image_bytes": app.runtime.cow_max_image_bytes(),
        "memory_cow": app.config.runtime.memory_cow,
        "warm_instances": app.runtime.warm_stats(),
        "instance_reuse": app.runtime.reuse_stats(),
        "worker_threads": tokio::runtime::Handle::current().metrics().num_workers(),
        "compile_cache": app.runtime.cache_stats().map(|(hits, misses)| json!({
            "directory": app.config.runtime.cache_dir,
            "hits": hits,
            "misses": misses,
        })),
    }))
}

/// Readiness: 200 while the host serves, 503 from the moment it starts to
/// drain (a load balancer stops sending before the listener closes).
#[utoipa::path(get, path = "/_fn/ready", tag = "wasmfn",
    responses((status = 200, description = "Loaded and serving", body = Object),
              (status = 503, description = "Draining: shutting down (`shutting_down`)", body = Object)))]
pub(crate) async fn ready(State(app): State<Arc<AppState>>, req: Request) -> Response {
    if app.is_draining() {
        return ApiError::ShuttingDown.into_response_with(&request_id(req.headers()));
    }
    Json(json!({"status": "ready"})).into_response()
}

/// Every schedule of the tenant `default` (or of the token's tenant).
#[utoipa::path(get, path = "/_fn/schedules", tag = "wasmfn", security(("admin_token" = ["read"])),
    responses((status = 200, description = "`schedules`: function, id, cron, timezone, method, path, retries, `next_run`, `running`, `runs`, `failures`, `last_run`", body = Object)))]
pub(crate) async fn list_schedules(
    State(app): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    req: Request,
) -> Response {
    let tenant = caller.tenant.clone().unwrap_or_else(|| DEFAULT_TENANT.to_string());
    schedules(&app, &caller, &tenant, &request_id(req.headers()))
}

/// Every schedule of a tenant's functions.
#[utoipa::path(get, path = "/_fn/tenants/{tenant}/schedules", tag = "wasmfn", security(("admin_token" = ["read"])),
    params(("tenant" = String, Path, description = "The tenant's id")),
    responses((status = 200, description = "`schedules`, as `GET /_fn/schedules` lists them", body = Object),
              (status = 404, description = "No such tenant (`tenant_not_found`)", body = Object)))]
pub(crate) async fn list_tenant_schedules(
    State(app): State<Arc<AppState>>,
    Path(tenant): Path<String>,
    Extension(caller): Extension<Caller>,
    req: Request,
) -> Response {
    schedules(&app, &caller, &tenant, &request_id(req.headers()))
}

fn schedules(app: &AppState, caller: &Caller, tenant: &str, id: &str) -> Response {
    match visible_tenant(app, caller, tenant) {
        Ok(t) => Json(app.scheduler.json(tenant, &t.snapshot())).into_response(),
        Err(e) => e.into_response_with(id),
    }
}

/// Every function (ready or failed), every mapped route, every conflict.
#[utoipa::path(get, path = "/_fn/catalog", tag = "wasmfn", security(("admin_token" = ["read"])),
    params(("tenant" = Option<String>, Query, description = "Whose catalog (default: the token's tenant, else `default`)")),
    responses((status = 200, description = "Functions, `mapped_routes` and `mapped_route_conflicts` of one tenant", body = Object),
              (status = 404, description = "No such tenant (`tenant_not_found`)", body = Object)))]
pub(crate) async fn catalog(
    State(app): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    axum::extract::Query(q): axum::extract::Query<TenantQuery>,
    req: Request,
) -> Response {
    let id = q
        .tenant
        .or_else(|| caller.tenant.clone())
        .unwrap_or_else(|| DEFAULT_TENANT.to_string());
    let tenant = match visible_tenant(&app, &caller, &id) {
        Ok(t) => t,
        Err(e) => return e.into_response_with(&request_id(req.headers())),
    };
    let mut doc = catalog_json(&tenant.snapshot());
    doc["tenant"] = json!(id);
    if tenant.is_default() {
        for f in doc["functions"].as_array_mut().into_iter().flatten() {
            let name = f["name"].as_str().unwrap_or_default().to_string();
            if let Some(e) = app.build_errors.get(&name) {
                f["build_error"] = json!(e.value());
            }
            let pin = f["artifact"]["reference"].as_str().and_then(|r| app.oci.pin(r));
            if let Some(pin) = pin {
                f["artifact"]["digest"] = json!(pin.digest);
            }
        }
    }
    Json(doc).into_response()
}

/// `?tenant=ID`.
#[derive(Debug, serde::Deserialize)]
pub(crate) struct TenantQuery {
    tenant: Option<String>,
}

/// The unified OpenAPI 3.1 document.
#[utoipa::path(get, path = "/_fn/openapi.json", tag = "wasmfn",
    responses((status = 200, description = "The OpenAPI document of every function", body = Object)))]
pub(crate) async fn openapi_json(State(app): State<Arc<AppState>>, req: Request) -> Response {
    let host = crate::gateway::request_host(&req).0.into_owned();
    let tenant = app.registry.tenants().for_host(&host).clone();
    openapi_response(&tenant.snapshot())
}

/// The document of the tenant serving `snapshot`.
pub(crate) fn openapi_response(snapshot: &Snapshot) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], snapshot.openapi.clone()).into_response()
}

/// `GET /_fn/docs`: Swagger UI.
pub(crate) async fn docs() -> Html<String> {
    Html(docs_page("/_fn/docs", "/_fn/openapi.json"))
}

/// The embedded Swagger UI assets.
pub(crate) async fn docs_asset(Path(name): Path<String>, req: Request) -> Response {
    match SWAGGER_ASSETS.iter().find(|(n, _, _)| *n == name) {
        Some((_, ct, bytes)) => (
            StatusCode::OK,
            [
                (header::CONTENT_TYPE, *ct),
                (header::CACHE_CONTROL, "public, max-age=86400"),
            ],
            *bytes,
        )
            .into_response(),
        None => not_found(req).await,
    }
}

/// Loads the functions directory again and swaps it in.
#[utoipa::path(post, path = "/_fn/reload", tag = "wasmfn", security(("admin_token" = ["deploy"])),
    responses((status = 200, description = "What the reload did", body = Object),
              (status = 500, description = "The functions directory could not be read", body = Object)))]
pub(crate) async fn reload(
    State(app): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    req: Request,
) -> Response {
    let id = request_id(req.headers());
    let resp = match app.reload().await {
        Ok(report) => Json(report).into_response(),
        Err(e) => {
            let message = format!("{e:#}");
            tracing::error!(request_id = %id, error = %message, "reload failed");
            ApiError::ReloadFailed { message }.into_response_with(&id)
        }
    };
    app.audit(&caller, DEFAULT_TENANT, "reload", None, None, None, resp.status(), &id)
        .await;
    resp
}

/// Unknown `/_fn/*` paths.
pub(crate) async fn not_found(req: Request) -> Response {
    let id = request_id(req.headers());
    ApiError::NotFound {
        path: req.uri().path().to_string(),
    }
    .into_response_with(&id)
    .into_response()
}

/// The catalog document: every function (ready or failed), every mapped
/// route, every conflict.
pub fn catalog_json(s: &Snapshot) -> Value {
    let mut functions: Vec<Value> = s
        .functions
        .iter()
        .map(|f| {
            json!({
                "name": f.spec.name,
                "state": "ready",
                "origin": if s.deployed.contains_key(&f.spec.name) { "deployed" } else { "directory" },
                "digest": s.deployed.get(&f.spec.name),
                "api": {"source": f.api_source, "namespace": f.namespace},
                "source": f.spec.dir,
                "manifest": f.spec.manifest_path,
                "component": f.spec.component_path,
                // The OCI artifact its manifest names, and (filled in by the
                // handler) the digest that reference is pinned to.
                "artifact": f.spec.component_ref.as_ref().map(|r| json!({"reference": r})),
                // How requests reach it: whole (`wasmfn:function/handler`), or
                // through `wasi:http/incoming-handler` (0.2) or
                // `wasi:http/handler` (0.3, experimental).
                "handler": if f.component.handles_whole() { wasmfn_runtime::HANDLER_INTERFACE } else { f.component.http_interface().export_name() },
                "wasi_http": {
                    "version": f.component.http_interface().version(),
                    "experimental": f.component.http_interface().experimental(),
                },
                // The data its instances start with, and how they get it.
                "memory_image": {
                    "bytes": f.component.memory_image().bytes,
                    "init": f.component.memory_image().init_name(),
                },
                "description": f.spec.description,
                "routes": f.spec.routes.iter().map(|r| r.to_string()).collect::<Vec<_>>(),
                "methods": f.spec.methods.iter().map(|m| m.as_str()).collect::<Vec<_>>(),
                "allow_hosts": f.spec.hosts.iter().map(|h| h.to_string()).collect::<Vec<_>>(),
                "force_url": f.spec.force_url,
                "policy": f.spec.policy,
                // Instances waiting for its next request, kept from earlier
                // ones (`policy.instance_reuse` above 1; null otherwise).
                "idle_instances": f.reuse.as_ref().map(|p| p.idle_count()),
                // Instances serving several requests at once
                // (`policy.instance_concurrency` above 1; null otherwise).
                "concurrent_instances": f.lanes.as_ref().map(|l| l.stats()),
                "stats": f.stats.view(Some(&f.gate)),
                "error": null,
                "reload_error": s.kept.get(&f.spec.name),
            })
        })
        .collect();
    functions.extend(s.failed.iter().map(|f| {
        json!({
            "name": f.name,
            "state": "failed",
            "origin": if s.deployed.contains_key(&f.name) { "deployed" } else { "directory" },
            "source": f.dir,
            "manifest": f.manifest_path,
            "component": f.component_path,
            "error": f.error,
        })
    }));
    functions.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));

    let mut mapped: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for (claim, methods) in s.table.serving() {
        if methods.is_empty() {
            continue;
        }
        let serving: Vec<&str> = methods.iter().map(|m| m.as_str()).collect();
        mapped.entry(claim.pattern.to_string()).or_default().push(json!({
            "function": claim.function_name,
            "methods": serving,
            "hosts": claim.hosts.iter().map(|h| h.to_string()).collect::<Vec<_>>(),
            "force_url": claim.force_url,
        }));
    }
    let mut conflicts: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for c in s.table.conflicts() {
        conflicts
            .entry(c.route.clone())
            .or_default()
            .push(json!({ "method": c.method, "functions": c.functions }));
    }
    json!({
        "functions": functions,
        "mapped_routes": mapped,
        "mapped_route_conflicts": conflicts,
    })
}

/// The admin surface: every route behind the access check.
pub(crate) fn surface(app: Arc<AppState>) -> axum::Router<Arc<AppState>> {
    let limit = usize::try_from(app.config.max_deploy_bytes).unwrap_or(usize::MAX);
    axum::Router::new()
        .route("/_fn/catalog", get(catalog))
        .route("/_fn/status", get(status))
        .route("/_fn/reload", post(reload))
        .route("/_fn/functions", get(list_functions))
        .route(
            "/_fn/functions/{name}",
            get(get_function)
                .put(put_function)
                .delete(delete_function)
                .layer(axum::extract::DefaultBodyLimit::max(limit)),
        )
        .route("/_fn/functions/{name}/rollback", post(rollback_function))
        .route("/_fn/functions/{name}/logs", get(function_logs))
        .route("/_fn/metrics", get(metrics))
        .route("/_fn/secrets", get(list_secrets))
        .route(
            "/_fn/secrets/{name}",
            axum::routing::put(put_secret).delete(delete_secret),
        )
        .route("/_fn/tenants/{tenant}/secrets", get(list_tenant_secrets))
        .route(
            "/_fn/tenants/{tenant}/secrets/{name}",
            axum::routing::put(put_tenant_secret).delete(delete_tenant_secret),
        )
        .route("/_fn/audit", get(audit))
        .route("/_fn/schedules", get(list_schedules))
        .route("/_fn/tenants/{tenant}/schedules", get(list_tenant_schedules))
        .route("/_fn/tenants", get(list_tenants))
        .route(
            "/_fn/tenants/{tenant}",
            get(get_tenant).put(put_tenant).delete(delete_tenant),
        )
        .route("/_fn/tenants/{tenant}/functions", get(list_tenant_functions))
        .route(
            "/_fn/tenants/{tenant}/functions/{name}",
            get(get_tenant_function)
                .put(put_tenant_function)
                .delete(delete_tenant_function)
                .layer(axum::extract::DefaultBodyLimit::max(limit)),
        )
        .route(
            "/_fn/tenants/{tenant}/functions/{name}/rollback",
            post(rollback_tenant_function),
        )
        .route("/_fn/tenants/{tenant}/functions/{name}/logs", get(tenant_function_logs))
        .route(
            "/_fn/tenants/{tenant}/api-keys",
            get(list_api_keys).post(create_api_key),
        )
        .route(
            "/_fn/tenants/{tenant}/api-keys/{key}",
            axum::routing::delete(delete_api_key),
        )
        .route_layer(axum::middleware::from_fn_with_state(app, guard))
}

/// The scope a request to the admin surface needs: reads `read`, writes
/// `deploy`, and changes to tenants and their keys `admin`; host-wide
/// endpoints (`status`, `reload`, creating tenants) refuse tenant tokens.
fn required_scope(method: &axum::http::Method, path: &str) -> (Scope, bool) {
    let read = Scope::for_method(method) == Scope::Read;
    let tenants = path.strip_prefix("/_fn/tenants");
    let host_wide = matches!(path, "/_fn/status" | "/_fn/reload");
    match tenants {
        // `/_fn/tenants/{id}` itself: defining, changing, deleting a tenant.
        Some(rest) if !read && !rest.trim_start_matches('/').contains('/') => (Scope::Admin, true),
        Some(rest) if rest.contains("/api-keys") && !read => (Scope::Admin, false),
        _ if read => (Scope::Read, host_wide),
        _ => (Scope::Deploy, host_wide),
    }
}

/// Lets an admin request in (its [`Caller`] recorded for the handler) or
/// answers 401/403.
async fn guard(State(app): State<Arc<AppState>>, mut req: Request, next: axum::middleware::Next) -> Response {
    let (scope, host_wide) = required_scope(req.method(), req.uri().path());
    match app.access.load().check(scope, req.headers(), crate::listen::peer(&req)) {
        Ok(caller) if host_wide && !caller.host_wide() => {
            let id = request_id(req.headers());
            ApiError::Forbidden {
                message: format!(
                    "token `{}` is bound to tenant `{}`; `{} {}` acts on the whole host and needs a token \
                     without a tenant",
                    caller.token.as_deref().unwrap_or_default(),
                    caller.tenant.as_deref().unwrap_or_default(),
                    req.method(),
                    req.uri().path()
                ),
            }
            .into_response_with(&id)
        }
        Ok(caller) => {
            req.extensions_mut().insert(caller);
            next.run(req).await
        }
        Err(refusal) => {
            let id = request_id(req.headers());
            tracing::info!(
                request_id = %id,
                method = %req.method(),
                path = req.uri().path(),
                peer = ?crate::listen::peer(&req),
                "admin request refused: {refusal:?}"
            );
            refusal.into_response(&id)
        }
    }
}

impl AppState {
    /// Appends an admin write to the audit log (hosts with a state directory).
    #[expect(clippy::too_many_arguments, reason = "the fields of one audit line")]
    pub(crate) async fn audit(
        self: &Arc<Self>,
        caller: &Caller,
        tenant: &str,
        action: &str,
        function: Option<&str>,
        old_digest: Option<String>,
        new_digest: Option<String>,
        status: StatusCode,
        request_id: &str,
    ) {
        if self.deployments.is_none() {
            return;
        }
        let entry = AuditEntry {
            time: crate::state::now_rfc3339(),
            token: caller.token.clone(),
            tenant: Some(tenant.to_string()),
            action: action.into(),
            function: function.map(str::to_string),
            old_digest,
            new_digest,
            result: if status.is_success() {
                "ok".into()
            } else {
                format!("{}", status.as_u16())
            },
            status: status.as_u16(),
            request_id: request_id.into(),
        };
        tracing::info!(
            token = ?entry.token,
            tenant,
            action,
            function,
            status = entry.status,
            request_id,
            "admin write"
        );
        if let Err(e) = self.on_disk(move |d| d.dir.audit(&entry)).await {
            tracing::error!(error = %e, "cannot append to the audit log");
        }
    }
}

/// `?limit=N` of `/_fn/audit`.
#[derive(Debug, serde::Deserialize)]
pub(crate) struct AuditQuery {
    limit: Option<usize>,
}

/// The last admin writes, oldest first.
#[utoipa::path(get, path = "/_fn/audit", tag = "wasmfn", security(("admin_token" = ["read"])),
    params(("limit" = Option<usize>, Query, description = "How many of the last entries (default 100, at most 10000)")),
    responses((status = 200, description = "`entries`: time, token, action, function, old and new digest, result, status, request id", body = Object)))]
pub(crate) async fn audit(
    State(app): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    axum::extract::Query(q): axum::extract::Query<AuditQuery>,
    req: Request,
) -> Response {
    let limit = q.limit.unwrap_or(100).min(10_000);
    if app.deployments.is_none() {
        return Json(json!({ "entries": [] })).into_response();
    }
    let only = caller.tenant.clone();
    let read = move |d: &crate::deploy::Deployments| {
        d.dir.read_audit_where(limit, |e| {
            only.as_deref()
                .is_none_or(|t| e.tenant.as_deref().unwrap_or(DEFAULT_TENANT) == t)
        })
    };
    match app.on_disk(read).await {
        Ok(entries) => Json(json!({ "entries": entries })).into_response(),
        Err(e) => ApiError::StateFailed { message: e.to_string() }.into_response_with(&request_id(req.headers())),
    }
}
