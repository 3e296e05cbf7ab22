//! The deploy API: list, read, deploy, roll back and undeploy the
//! functions of the tenant `default` (`/_fn/functions/…`) and of any other
//! tenant (`/_fn/tenants/{id}/functions/…`), with the same handlers.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::{Extension, Path, Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::AppState;
use crate::auth::Caller;
use crate::deploy::{DeployError, Upload, digest_label};
use crate::error::ApiError;
use crate::registry::{Snapshot, Tenant};
use crate::request_id::request_id;
use crate::state::{ArtifactSource, DesiredState};
use crate::tenant::DEFAULT_TENANT;

pub(crate) fn deploy_error(e: DeployError) -> ApiError {
    match e {
        DeployError::Disabled => ApiError::Forbidden { message: e.to_string() },
        DeployError::Quota(message) => ApiError::QuotaExceeded { message },
        DeployError::ComponentTooLarge { .. } => ApiError::QuotaExceeded { message: e.to_string() },
        DeployError::InvalidName(_) | DeployError::Invalid(_) => ApiError::InvalidFunction { message: e.to_string() },
        DeployError::Conflict { message, functions } => ApiError::DeployConflict { message, functions },
        DeployError::NotDeployed(function) => ApiError::FunctionNotFound { function },
        DeployError::NoPreviousVersion(function) => ApiError::NoPreviousVersion { function },
        DeployError::State(e) => ApiError::state(&e),
    }
}

/// One function as `/_fn/functions` lists it.
fn function_json(desired: &DesiredState, tenant: &str, s: &Snapshot, name: &str) -> Option<Value> {
    let deployment = desired.function(tenant, name);
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
        v["source"] = json!(d.current().and_then(|c| c.source.as_ref()));
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
                    "source": ver.source,
                })
            })
            .collect();
    }
    Some(v)
}

/// Every function: deployed ones with their versions, and those of the functions directory.
#[utoipa::path(get, path = "/_fn/functions", tag = "wasmfn", security(("admin_token" = ["read"])),
    responses((status = 200, description = "`functions`: name, origin, state, routes, digest and versions", body = Object)))]
pub(crate) async fn list_functions(
    State(app): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    req: Request,
) -> Response {
    list(&app, &caller, DEFAULT_TENANT, &request_id(req.headers()))
}

/// Every function of a tenant.
#[utoipa::path(get, path = "/_fn/tenants/{tenant}/functions", tag = "wasmfn", security(("admin_token" = ["read"])),
    params(("tenant" = String, Path, description = "The tenant's id")),
    responses((status = 200, description = "`functions`, as `GET /_fn/functions` lists them", body = Object),
              (status = 404, description = "No such tenant (`tenant_not_found`)", body = Object)))]
pub(crate) async fn list_tenant_functions(
    State(app): State<Arc<AppState>>,
    Path(tenant): Path<String>,
    Extension(caller): Extension<Caller>,
    req: Request,
) -> Response {
    list(&app, &caller, &tenant, &request_id(req.headers()))
}

fn list(app: &AppState, caller: &Caller, tenant: &str, id: &str) -> Response {
    let t = match visible_tenant(app, caller, tenant) {
        Ok(t) => t,
        Err(e) => return e.into_response_with(id),
    };
    let s = t.snapshot();
    let desired = app.desired();
    let mut names: Vec<&str> = s
        .functions
        .iter()
        .map(|f| f.spec.name.as_str())
        .chain(s.failed.iter().map(|f| f.name.as_str()))
        .chain(desired.functions(tenant).into_iter().flatten().map(|(n, _)| n.as_str()))
        .collect();
    names.sort();
    names.dedup();
    let functions: Vec<Value> = names
        .iter()
        .filter_map(|n| function_json(&desired, tenant, &s, n))
        .collect();
    Json(json!({ "functions": functions })).into_response()
}

/// The tenant `id` if `caller` may see it; another tenant's is 404, as one that does not exist.
pub(crate) fn visible_tenant(app: &AppState, caller: &Caller, id: &str) -> Result<Arc<Tenant>, ApiError> {
    let not_found = || ApiError::TenantNotFound { tenant: id.to_string() };
    if !caller.may_see(id) {
        return Err(not_found());
    }
    app.registry.tenant(id).ok_or_else(not_found)
}

/// One function, as listed by `GET /_fn/functions`.
#[utoipa::path(get, path = "/_fn/functions/{name}", tag = "wasmfn", security(("admin_token" = ["read"])),
    params(("name" = String, Path, description = "The function's name")),
    responses((status = 200, description = "The function", body = Object),
              (status = 404, description = "No such function (`function_not_found`)", body = Object)))]
pub(crate) async fn get_function(
    State(app): State<Arc<AppState>>,
    Path(name): Path<String>,
    Extension(caller): Extension<Caller>,
    req: Request,
) -> Response {
    get_one(&app, &caller, DEFAULT_TENANT, name, &request_id(req.headers()))
}

/// One function of a tenant.
#[utoipa::path(get, path = "/_fn/tenants/{tenant}/functions/{name}", tag = "wasmfn", security(("admin_token" = ["read"])),
    params(("tenant" = String, Path, description = "The tenant's id"), ("name" = String, Path, description = "The function's name")),
    responses((status = 200, description = "The function", body = Object),
              (status = 404, description = "No such tenant or function (`tenant_not_found`, `function_not_found`)", body = Object)))]
pub(crate) async fn get_tenant_function(
    State(app): State<Arc<AppState>>,
    Path((tenant, name)): Path<(String, String)>,
    Extension(caller): Extension<Caller>,
    req: Request,
) -> Response {
    get_one(&app, &caller, &tenant, name, &request_id(req.headers()))
}

fn get_one(app: &AppState, caller: &Caller, tenant: &str, name: String, id: &str) -> Response {
    let t = match visible_tenant(app, caller, tenant) {
        Ok(t) => t,
        Err(e) => return e.into_response_with(id),
    };
    match function_json(&app.desired(), tenant, &t.snapshot(), &name) {
        Some(v) => Json(v).into_response(),
        None => ApiError::FunctionNotFound { function: name }.into_response_with(id),
    }
}

/// The largest refused upload still read (and dropped) before the answer.
const DRAIN_REFUSED_UPLOAD: u64 = 256 << 20;

/// Reads and drops a body, for at most `within`.
async fn drain(body: axum::body::Body, within: Duration) {
    use http_body_util::BodyExt;
    let mut body = body;
    let _ = tokio::time::timeout(within, async { while let Some(Ok(_)) = body.frame().await {} }).await;
}

/// Reads the parts of a deploy upload.
async fn read_upload(name: String, req: Request, limit: u64) -> Result<Upload, ApiError> {
    use axum::extract::FromRequest;
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if let Some(n) = declared.filter(|n| *n > limit) {
        // Read what the client sends anyway (up to a bound) so that it
        // reads the 413 instead of a connection closed in mid-upload.
        if n <= DRAIN_REFUSED_UPLOAD {
            drain(req.into_body(), Duration::from_secs(5)).await;
        }
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
        source: None,
    })
}

/// A deploy from an OCI registry: `{"component": "oci://…", "manifest": {…}, "openapi": {…}}`.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct FromRegistry {
    component: String,
    #[serde(default)]
    manifest: Option<Value>,
    #[serde(default)]
    openapi: Option<Value>,
}

/// The largest JSON deploy body (the manifest and fragment, not the component).
const MAX_DEPLOY_JSON: usize = 4 << 20;

/// Whether a deploy request names its component by reference (a JSON body).
fn is_json(req: &Request) -> bool {
    req.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json"))
}

/// Reads a JSON deploy body and pulls the artifact it names: its component,
/// and its manifest and fragment unless the body gives them.
async fn pull_upload(app: &AppState, name: String, req: Request) -> Result<Upload, ApiError> {
    let bad = |message: String| ApiError::BadUpload {
        message: format!(
            "{message}; send `{{\"component\": \"oci://REGISTRY/REPOSITORY:TAG\"}}`, with `manifest` \
             (the fn.config.json object) unless the artifact carries one, and optionally `openapi`"
        ),
    };
    let body = axum::body::to_bytes(req.into_body(), MAX_DEPLOY_JSON)
        .await
        .map_err(|e| {
            bad(format!(
                "the body cannot be read ({e}; at most {MAX_DEPLOY_JSON} bytes)"
            ))
        })?;
    let request: FromRegistry =
        serde_json::from_slice(&body).map_err(|e| bad(format!("the body is not valid: {e}")))?;
    let reference = wasmfn_oci::OciRef::parse(&request.component).map_err(|e| ApiError::InvalidArtifact {
        message: format!("field `component`: {e}"),
    })?;
    let pulled = app
        .registries
        .pull(&reference, Some(app.config.max_deploy_bytes))
        .await
        .map_err(artifact_error)?;
    let text = |v: Value| match v {
        Value::String(s) => s,
        other => other.to_string(),
    };
    let manifest = match request.manifest {
        Some(m) => text(m),
        None => pulled.manifest.ok_or_else(|| {
            bad(format!(
                "the artifact `{reference}` carries no manifest (it was not pushed by `wasmfn push`), \
                 so the body must give `manifest`"
            ))
        })?,
    };
    Ok(Upload {
        name,
        manifest,
        component: pulled.component.into(),
        openapi: request.openapi.map(text).or(pulled.openapi),
        source: Some(ArtifactSource {
            reference: request.component,
            digest: pulled.digest,
        }),
    })
}

/// The answer to a pull that failed.
fn artifact_error(e: wasmfn_oci::OciError) -> ApiError {
    use wasmfn_oci::OciError as E;
    let message = e.to_string();
    match e {
        E::Unreachable { .. } | E::Registry { .. } => ApiError::RegistryUnavailable { message },
        _ => ApiError::InvalidArtifact { message },
    }
}

/// Deploys a new version of a function (or its first).
#[utoipa::path(put, path = "/_fn/functions/{name}", tag = "wasmfn", security(("admin_token" = ["deploy"])),
    params(("name" = String, Path, description = "The function's name: 1-63 of `a-z`, `0-9`, `-`")),
    request_body(content(("multipart/form-data"), ("application/json")), description = "An upload: parts `manifest` (fn.config.json), `component` (.wasm), optional `openapi` (fragment). Or, from an OCI registry, JSON `{\"component\": \"oci://registry/repository:tag\", \"manifest\": {…}, \"openapi\": {…}}` (`manifest` and `openapi` default to what the artifact carries)"),
    responses((status = 201, description = "Deployed: a new function", body = Object),
              (status = 200, description = "Deployed: a new version, or the same bytes again (`changed: false`)", body = Object),
              (status = 400, description = "Not a deploy upload (`bad_upload`)", body = Object),
              (status = 409, description = "Routes or name taken (`deploy_conflict`)", body = Object),
              (status = 413, description = "Over `--max-deploy-bytes` (`deploy_too_large`)", body = Object),
              (status = 422, description = "Not a valid function (`invalid_function`), or an OCI artifact that cannot be used (`invalid_artifact`)", body = Object),
              (status = 502, description = "The OCI registry cannot be reached (`registry_unavailable`)", body = Object)))]
pub(crate) async fn put_function(
    State(app): State<Arc<AppState>>,
    Path(name): Path<String>,
    Extension(caller): Extension<Caller>,
    req: Request,
) -> Response {
    put(app, caller, DEFAULT_TENANT.to_string(), name, req).await
}

/// Deploys a new version of a tenant's function (or its first).
#[utoipa::path(put, path = "/_fn/tenants/{tenant}/functions/{name}", tag = "wasmfn", security(("admin_token" = ["deploy"])),
    params(("tenant" = String, Path, description = "The tenant's id"), ("name" = String, Path, description = "The function's name: 1-63 of `a-z`, `0-9`, `-`")),
    request_body(content(("multipart/form-data"), ("application/json")), description = "An upload: parts `manifest` (fn.config.json), `component` (.wasm), optional `openapi` (fragment). Or, from an OCI registry, JSON `{\"component\": \"oci://registry/repository:tag\", \"manifest\": {…}, \"openapi\": {…}}` (`manifest` and `openapi` default to what the artifact carries)"),
    responses((status = 201, description = "Deployed: a new function", body = Object),
              (status = 200, description = "Deployed: a new version, or the same bytes again (`changed: false`)", body = Object),
              (status = 400, description = "Not a deploy upload (`bad_upload`)", body = Object),
              (status = 404, description = "No such tenant (`tenant_not_found`)", body = Object),
              (status = 409, description = "Routes or name taken (`deploy_conflict`)", body = Object),
              (status = 413, description = "Over `--max-deploy-bytes` (`deploy_too_large`)", body = Object),
              (status = 422, description = "Not a valid function (`invalid_function`), an OCI artifact that cannot be used (`invalid_artifact`), or beyond the tenant's quotas (`quota_exceeded`)", body = Object),
              (status = 502, description = "The OCI registry cannot be reached (`registry_unavailable`)", body = Object)))]
pub(crate) async fn put_tenant_function(
    State(app): State<Arc<AppState>>,
    Path((tenant, name)): Path<(String, String)>,
    Extension(caller): Extension<Caller>,
    req: Request,
) -> Response {
    put(app, caller, tenant, name, req).await
}

async fn put(app: Arc<AppState>, caller: Caller, tenant: String, name: String, req: Request) -> Response {
    let id = request_id(req.headers());
    let t = match visible_tenant(&app, &caller, &tenant) {
        Ok(t) => t,
        Err(e) => return e.into_response_with(&id),
    };
    let previous = app.deployments.as_ref().and_then(|d| {
        d.desired()
            .function(&tenant, &name)
            .and_then(|f| f.current().map(|v| digest_label(&v.component)))
    });
    let upload = if is_json(&req) {
        pull_upload(&app, name.clone(), req).await
    } else {
        read_upload(name.clone(), req, app.config.max_deploy_bytes).await
    };
    let result = match upload {
        Ok(upload) => app.deploy(&t, upload, &caller).await.map_err(deploy_error),
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
    app.telemetry.deployed(&tenant, new_digest.is_some());
    app.audit(
        &caller,
        &tenant,
        "deploy",
        Some(&name),
        previous,
        new_digest,
        resp.status(),
        &id,
    )
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
    rollback(app, caller, DEFAULT_TENANT.to_string(), name, req).await
}

/// Serves the version of a tenant's function deployed before the current one again.
#[utoipa::path(post, path = "/_fn/tenants/{tenant}/functions/{name}/rollback", tag = "wasmfn", security(("admin_token" = ["deploy"])),
    params(("tenant" = String, Path, description = "The tenant's id"), ("name" = String, Path, description = "The function's name")),
    responses((status = 200, description = "The previous version serves", body = Object),
              (status = 404, description = "No such tenant, or not deployed (`tenant_not_found`, `function_not_found`)", body = Object),
              (status = 409, description = "No earlier version (`no_previous_version`), or its routes are taken (`deploy_conflict`)", body = Object)))]
pub(crate) async fn rollback_tenant_function(
    State(app): State<Arc<AppState>>,
    Path((tenant, name)): Path<(String, String)>,
    Extension(caller): Extension<Caller>,
    req: Request,
) -> Response {
    rollback(app, caller, tenant, name, req).await
}

async fn rollback(app: Arc<AppState>, caller: Caller, tenant: String, name: String, req: Request) -> Response {
    let id = request_id(req.headers());
    let t = match visible_tenant(&app, &caller, &tenant) {
        Ok(t) => t,
        Err(e) => return e.into_response_with(&id),
    };
    let (resp, old, new) = match app.rollback(&t, &name).await {
        Ok(d) => {
            tracing::info!(function = %d.name, digest = %d.digest, "rolled back");
            let old = d.previous_digest.clone();
            let new = Some(d.digest.clone());
            (Json(&d).into_response(), old, new)
        }
        Err(e) => (deploy_error(e).into_response_with(&id), None, None),
    };
    app.audit(&caller, &tenant, "rollback", Some(&name), old, new, resp.status(), &id)
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
    undeploy(app, caller, DEFAULT_TENANT.to_string(), name, req).await
}

/// Stops serving a tenant's deployed function; its requests in flight finish.
#[utoipa::path(delete, path = "/_fn/tenants/{tenant}/functions/{name}", tag = "wasmfn", security(("admin_token" = ["deploy"])),
    params(("tenant" = String, Path, description = "The tenant's id"), ("name" = String, Path, description = "The function's name")),
    responses((status = 204, description = "Undeployed"),
              (status = 404, description = "No such tenant, or not deployed (`tenant_not_found`, `function_not_found`)", body = Object)))]
pub(crate) async fn delete_tenant_function(
    State(app): State<Arc<AppState>>,
    Path((tenant, name)): Path<(String, String)>,
    Extension(caller): Extension<Caller>,
    req: Request,
) -> Response {
    undeploy(app, caller, tenant, name, req).await
}

async fn undeploy(app: Arc<AppState>, caller: Caller, tenant: String, name: String, req: Request) -> Response {
    let id = request_id(req.headers());
    let t = match visible_tenant(&app, &caller, &tenant) {
        Ok(t) => t,
        Err(e) => return e.into_response_with(&id),
    };
    let (resp, old) = match app.undeploy(&t, &name).await {
        Ok(old) => {
            tracing::info!(function = %name, "undeployed");
            (StatusCode::NO_CONTENT.into_response(), old)
        }
        Err(e) => (deploy_error(e).into_response_with(&id), None),
    };
    app.audit(&caller, &tenant, "undeploy", Some(&name), old, None, resp.status(), &id)
        .await;
    resp
}
