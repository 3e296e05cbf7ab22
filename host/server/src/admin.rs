//! The host's own endpoints under `/_fn`: the public ones (health,
//! readiness, the document and its docs) and the admin surface behind
//! [`AdminAccess`](crate::AdminAccess): catalog, status, reload, the
//! deployed functions and the audit log.

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
use crate::auth::Caller;
use crate::deploy::{DeployError, Upload, digest_label};
use crate::registry::Snapshot;
use crate::request_id::request_id;
use crate::state::{AuditEntry, DesiredState};
use wasmfn_openapi::{SWAGGER_ASSETS, docs_page};

/// The host's own endpoints, described for the OpenAPI document.
#[derive(OpenApi)]
#[openapi(
    paths(health, ready, catalog, status, openapi_json, reload, list_functions, get_function,
          put_function, rollback_function, delete_function, audit),
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
    responses((status = 200, description = "`status` is `ok`, or `degraded` while a function failed to load", body = Object)))]
pub(crate) async fn health(State(app): State<Arc<AppState>>) -> Json<Value> {
    let failed = app.registry.snapshot().failed.len();
    Json(json!({
        "status": if failed == 0 { "ok" } else { "degraded" },
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
    Json(json!({
        "status": if failed == 0 { "ok" } else { "degraded" },
        "version": env!("CARGO_PKG_VERSION"),
        "state_dir": app.deployments.as_ref().map(|d| d.root()),
        // How the admin surface is guarded: the tokens in force (null:
        // none, loopback only) and whether loopback clients may write.
        "admin": {
            "tokens": app.access.load().tokens.as_ref().map(|t| t.len()),
            "loopback_writes": app.access.load().loopback_writes,
        },
        "deployed": s.deployed.len(),
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

/// Every function (ready or failed), every mapped route, every conflict.
#[utoipa::path(get, path = "/_fn/catalog", tag = "wasmfn", security(("admin_token" = ["read"])),
    responses((status = 200, description = "Functions, `mapped_routes` and `mapped_route_conflicts`", body = Object)))]
pub(crate) async fn catalog(State(app): State<Arc<AppState>>) -> Json<Value> {
    let mut doc = catalog_json(&app.registry.snapshot());
    for f in doc["functions"].as_array_mut().into_iter().flatten() {
        let name = f["name"].as_str().unwrap_or_default().to_string();
        if let Some(e) = app.build_errors.get(&name) {
            f["build_error"] = json!(e.value());
        }
    }
    Json(doc)
}

/// The unified OpenAPI 3.1 document.
#[utoipa::path(get, path = "/_fn/openapi.json", tag = "wasmfn",
    responses((status = 200, description = "The OpenAPI document of every function", body = Object)))]
pub(crate) async fn openapi_json(State(app): State<Arc<AppState>>) -> Response {
    openapi_response(&app)
}

pub(crate) fn openapi_response(app: &AppState) -> Response {
    let doc = app.registry.snapshot().openapi.clone();
    ([(header::CONTENT_TYPE, "application/json")], doc).into_response()
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
    app.audit(&caller, "reload", None, None, None, resp.status(), &id).await;
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
                // How requests reach it: whole (`wasmfn:function/handler`), or
                // through `wasi:http/incoming-handler`.
                "handler": if f.component.handles_whole() { wasmfn_runtime::HANDLER_INTERFACE } else { "wasi:http/incoming-handler" },
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
        .route("/_fn/audit", get(audit))
        .route_layer(axum::middleware::from_fn_with_state(app, guard))
}

/// Lets an admin request in (its [`Caller`] recorded for the handler) or
/// answers 401/403.
async fn guard(State(app): State<Arc<AppState>>, mut req: Request, next: axum::middleware::Next) -> Response {
    match app
        .access
        .load()
        .check(req.method(), req.headers(), crate::listen::peer(&req))
    {
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

fn deploy_error(e: DeployError) -> ApiError {
    match e {
        DeployError::Disabled => ApiError::Forbidden { message: e.to_string() },
        DeployError::InvalidName(_) | DeployError::Invalid(_) => ApiError::InvalidFunction { message: e.to_string() },
        DeployError::Conflict { message, functions } => ApiError::DeployConflict { message, functions },
        DeployError::NotDeployed(function) => ApiError::FunctionNotFound { function },
        DeployError::NoPreviousVersion(function) => ApiError::NoPreviousVersion { function },
        DeployError::State(e) => ApiError::StateFailed { message: e.to_string() },
    }
}

/// One function as `/_fn/functions` lists it.
fn function_json(desired: &DesiredState, s: &Snapshot, name: &str) -> Option<Value> {
    let deployment = desired.functions.get(name);
    let loaded = s.functions.iter().find(|f| *f.spec.name == *name);
    let failed = s.failed.iter().find(|f| f.name == name);
    if deployment.is_none() && loaded.is_none() && failed.is_none() {
        return None;
    }
    let state = match (loaded, failed) {
        (Some(_), _) => "ready",
        _ => "failed",
    };
    let mut v = json!({
        "name": name,
        "origin": if deployment.is_some() { "deployed" } else { "directory" },
        "state": state,
        "routes": loaded.map(|f| f.spec.routes.iter().map(|r| r.to_string()).collect::<Vec<_>>()).unwrap_or_default(),
        "error": failed.map(|f| f.error.clone()).or_else(|| s.kept.get(name).cloned()),
    });
    if let Some(d) = deployment {
        v["digest"] = json!(d.current().map(|c| digest_label(&c.component)));
        v["versions"] = d
            .versions
            .iter()
            .rev()
            .map(|ver| {
                json!({
                    "digest": digest_label(&ver.component),
                    "manifest_digest": digest_label(&ver.manifest),
                    "openapi_digest": ver.openapi.as_deref().map(digest_label),
                    "deployed_at": ver.deployed_at,
                    "deployed_by": ver.token,
                })
            })
            .collect();
    }
    Some(v)
}

/// Every function: deployed ones with their versions, and those of the functions directory.
#[utoipa::path(get, path = "/_fn/functions", tag = "wasmfn", security(("admin_token" = ["read"])),
    responses((status = 200, description = "`functions`: name, origin, state, routes, digest and versions", body = Object)))]
pub(crate) async fn list_functions(State(app): State<Arc<AppState>>) -> Json<Value> {
    let s = app.registry.snapshot();
    let desired = app.desired();
    let mut names: Vec<&str> = s
        .functions
        .iter()
        .map(|f| f.spec.name.as_str())
        .chain(s.failed.iter().map(|f| f.name.as_str()))
        .chain(desired.functions.keys().map(String::as_str))
        .collect();
    names.sort();
    names.dedup();
    let functions: Vec<Value> = names.iter().filter_map(|n| function_json(&desired, &s, n)).collect();
    Json(json!({ "functions": functions }))
}

/// One function, as listed by `GET /_fn/functions`.
#[utoipa::path(get, path = "/_fn/functions/{name}", tag = "wasmfn", security(("admin_token" = ["read"])),
    params(("name" = String, Path, description = "The function's name")),
    responses((status = 200, description = "The function", body = Object),
              (status = 404, description = "No such function (`function_not_found`)", body = Object)))]
pub(crate) async fn get_function(State(app): State<Arc<AppState>>, Path(name): Path<String>, req: Request) -> Response {
    let s = app.registry.snapshot();
    match function_json(&app.desired(), &s, &name) {
        Some(v) => Json(v).into_response(),
        None => ApiError::FunctionNotFound { function: name }.into_response_with(&request_id(req.headers())),
    }
}

/// Reads the parts of a deploy upload.
async fn read_upload(name: String, req: Request, limit: u64) -> Result<Upload, ApiError> {
    use axum::extract::FromRequest;
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(ApiError::DeployTooLarge { limit });
    }
    let bad = |message: String| ApiError::BadUpload {
        message: format!(
            "{message}; send `multipart/form-data` with parts `manifest` (the fn.config.json text), \
             `component` (the .wasm) and optionally `openapi` (a fragment)"
        ),
    };
    let mut multipart = axum::extract::Multipart::from_request(req, &())
        .await
        .map_err(|e| bad(e.body_text()))?;
    let (mut manifest, mut component, mut openapi) = (None, None, None);
    loop {
        let field = match multipart.next_field().await {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => return Err(ApiError::DeployTooLarge { limit }),
            Err(e) => return Err(bad(e.body_text())),
        };
        let part = field.name().unwrap_or_default().to_string();
        let bytes = match field.bytes().await {
            Ok(b) => b,
            Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => return Err(ApiError::DeployTooLarge { limit }),
            Err(e) => return Err(bad(e.body_text())),
        };
        let text = |b: bytes::Bytes| {
            String::from_utf8(b.to_vec()).map_err(|_| bad(format!("part `{part}` is not UTF-8 text")))
        };
        match part.as_str() {
            "manifest" => manifest = Some(text(bytes)?),
            "openapi" => openapi = Some(text(bytes)?),
            "component" => component = Some(bytes),
            other => return Err(bad(format!("unknown part `{other}`"))),
        }
    }
    let manifest = manifest.ok_or_else(|| bad("part `manifest` is missing".into()))?;
    let component = component.ok_or_else(|| bad("part `component` is missing".into()))?;
    Ok(Upload {
        name,
        manifest,
        component,
        openapi,
    })
}

/// Deploys a new version of a function (or its first).
#[utoipa::path(put, path = "/_fn/functions/{name}", tag = "wasmfn", security(("admin_token" = ["deploy"])),
    params(("name" = String, Path, description = "The function's name: 1-63 of `a-z`, `0-9`, `-`")),
    request_body(content_type = "multipart/form-data", description = "Parts `manifest` (fn.config.json), `component` (.wasm), optional `openapi` (fragment)"),
    responses((status = 201, description = "Deployed: a new function", body = Object),
              (status = 200, description = "Deployed: a new version, or the same bytes again (`changed: false`)", body = Object),
              (status = 400, description = "Not a deploy upload (`bad_upload`)", body = Object),
              (status = 409, description = "Routes or name taken (`deploy_conflict`)", body = Object),
              (status = 413, description = "Over `--max-deploy-bytes` (`deploy_too_large`)", body = Object),
              (status = 422, description = "Not a valid function (`invalid_function`)", body = Object)))]
pub(crate) async fn put_function(
    State(app): State<Arc<AppState>>,
    Path(name): Path<String>,
    Extension(caller): Extension<Caller>,
    req: Request,
) -> Response {
    let id = request_id(req.headers());
    let previous = app.deployments.as_ref().and_then(|d| {
        d.desired()
            .functions
            .get(&name)
            .and_then(|f| f.current().map(|v| digest_label(&v.component)))
    });
    let result = match read_upload(name.clone(), req, app.config.max_deploy_bytes).await {
        Ok(upload) => app.deploy(upload, &caller).await.map_err(deploy_error),
        Err(e) => Err(e),
    };
    let (resp, new_digest) = match result {
        Ok(d) => {
            let status = if d.created { StatusCode::CREATED } else { StatusCode::OK };
            let mut body = serde_json::to_value(&d).expect("serialises");
            body["changed"] = json!(!d.unchanged);
            tracing::info!(function = %d.name, digest = %d.digest, changed = !d.unchanged, "deployed");
            ((status, Json(body)).into_response(), Some(d.digest))
        }
        Err(e) => (e.into_response_with(&id), None),
    };
    app.audit(&caller, "deploy", Some(&name), previous, new_digest, resp.status(), &id)
        .await;
    resp
}

/// Serves the version deployed before the current one again.
#[utoipa::path(post, path = "/_fn/functions/{name}/rollback", tag = "wasmfn", security(("admin_token" = ["deploy"])),
    params(("name" = String, Path, description = "The function's name")),
    responses((status = 200, description = "The previous version serves", body = Object),
              (status = 404, description = "Not deployed (`function_not_found`)", body = Object),
              (status = 409, description = "No earlier version (`no_previous_version`), or its routes are taken (`deploy_conflict`)", body = Object)))]
pub(crate) async fn rollback_function(
    State(app): State<Arc<AppState>>,
    Path(name): Path<String>,
    Extension(caller): Extension<Caller>,
    req: Request,
) -> Response {
    let id = request_id(req.headers());
    let (resp, old, new) = match app.rollback(&name).await {
        Ok(d) => {
            tracing::info!(function = %d.name, digest = %d.digest, "rolled back");
            let old = d.previous_digest.clone();
            let new = Some(d.digest.clone());
            (Json(&d).into_response(), old, new)
        }
        Err(e) => (deploy_error(e).into_response_with(&id), None, None),
    };
    app.audit(&caller, "rollback", Some(&name), old, new, resp.status(), &id)
        .await;
    resp
}

/// Stops serving a deployed function; its requests in flight finish.
#[utoipa::path(delete, path = "/_fn/functions/{name}", tag = "wasmfn", security(("admin_token" = ["deploy"])),
    params(("name" = String, Path, description = "The function's name")),
    responses((status = 204, description = "Undeployed"),
              (status = 404, description = "Not deployed (`function_not_found`)", body = Object),
              (status = 409, description = "A function of the functions directory (`deploy_conflict`)", body = Object)))]
pub(crate) async fn delete_function(
    State(app): State<Arc<AppState>>,
    Path(name): Path<String>,
    Extension(caller): Extension<Caller>,
    req: Request,
) -> Response {
    let id = request_id(req.headers());
    let (resp, old) = match app.undeploy(&name).await {
        Ok(old) => {
            tracing::info!(function = %name, "undeployed");
            (StatusCode::NO_CONTENT.into_response(), old)
        }
        Err(e) => (deploy_error(e).into_response_with(&id), None),
    };
    app.audit(&caller, "undeploy", Some(&name), old, None, resp.status(), &id)
        .await;
    resp
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
    axum::extract::Query(q): axum::extract::Query<AuditQuery>,
    req: Request,
) -> Response {
    let limit = q.limit.unwrap_or(100).min(10_000);
    if app.deployments.is_none() {
        return Json(json!({ "entries": [] })).into_response();
    }
    match app.on_disk(move |d| d.dir.read_audit(limit)).await {
        Ok(entries) => Json(json!({ "entries": entries })).into_response(),
        Err(e) => ApiError::StateFailed { message: e.to_string() }.into_response_with(&request_id(req.headers())),
    }
}
