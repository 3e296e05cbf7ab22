//! The tenants API: define, read, change and delete tenants
//! (`/_fn/tenants/{id}`, scope `admin`, host-wide tokens only), and their
//! API keys (`/_fn/tenants/{id}/api-keys`, shown once, stored hashed).

use std::sync::Arc;

use axum::Json;
use axum::extract::{Extension, Path, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::functions::visible_tenant;
use crate::AppState;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::registry::Tenant;
use crate::request_id::request_id;
use crate::tenancy::TenantError;
use crate::tenant::TenantSettings;

fn tenant_error(e: TenantError) -> ApiError {
    match e {
        TenantError::Invalid(message) => ApiError::InvalidTenant { message },
        TenantError::Conflict(message) => ApiError::TenantConflict { message },
        TenantError::NotFound(tenant) => ApiError::TenantNotFound { tenant },
        TenantError::Deploy(e) => super::functions::deploy_error(e),
    }
}

/// The JSON body of a tenants-API request (at most 1 MiB), or a 422
/// `invalid_tenant` naming the field and showing `example`.
async fn json_body<T: serde::de::DeserializeOwned>(req: Request, example: &str) -> Result<T, ApiError> {
    let invalid = |message: String| ApiError::InvalidTenant {
        message: format!("{message} (expected {example})"),
    };
    let body = axum::body::to_bytes(req.into_body(), 1 << 20)
        .await
        .map_err(|_| invalid("the body is not a readable JSON object of at most 1 MiB".into()))?;
    let value: Value = serde_json::from_slice(&body).map_err(|e| invalid(e.to_string()))?;
    serde_path_to_error::deserialize(value).map_err(|e| invalid(format!("field `{}`: {}", e.path(), e.inner())))
}

/// A tenant as the API shows it.
fn tenant_json(app: &AppState, t: &Tenant) -> Value {
    let s = t.snapshot();
    let desired = app.desired();
    let stored = desired.tenants.get(&*t.id);
    json!({
        "id": &*t.id,
        "hosts": t.settings.settings.hosts,
        "quotas": t.settings.settings.quotas,
        "defined_by": if t.from_file { "file" } else if t.is_default() && stored.is_none_or(|s| s.created_at.is_none()) { "host" } else { "api" },
        "created_at": stored.and_then(|s| s.created_at.clone()),
        "functions": { "loaded": s.functions.len(), "failed": s.failed.len(), "deployed": s.deployed.len() },
        "api_keys": t.keys.load().len(),
        "in_flight": t.gate.as_ref().map(|g| g.in_flight()),
    })
}

/// Every tenant the token may see.
#[utoipa::path(get, path = "/_fn/tenants", tag = "wasmfn", security(("admin_token" = ["read"])),
    responses((status = 200, description = "`tenants`: id, hosts, quotas, functions, API keys", body = Object)))]
pub(crate) async fn list_tenants(
    State(app): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
) -> Json<Value> {
    let set = app.registry.tenants();
    let tenants: Vec<Value> = set
        .iter()
        .filter(|t| caller.may_see(&t.id))
        .map(|t| tenant_json(&app, t))
        .collect();
    Json(json!({ "tenants": tenants }))
}

/// One tenant.
#[utoipa::path(get, path = "/_fn/tenants/{tenant}", tag = "wasmfn", security(("admin_token" = ["read"])),
    params(("tenant" = String, Path, description = "The tenant's id")),
    responses((status = 200, description = "The tenant", body = Object),
              (status = 404, description = "No such tenant (`tenant_not_found`)", body = Object)))]
pub(crate) async fn get_tenant(
    State(app): State<Arc<AppState>>,
    Path(id): Path<String>,
    Extension(caller): Extension<Caller>,
    req: Request,
) -> Response {
    match visible_tenant(&app, &caller, &id) {
        Ok(t) => Json(tenant_json(&app, &t)).into_response(),
        Err(e) => e.into_response_with(&request_id(req.headers())),
    }
}

/// Defines a tenant or changes its hosts and quotas.
#[utoipa::path(put, path = "/_fn/tenants/{tenant}", tag = "wasmfn", security(("admin_token" = ["admin"])),
    params(("tenant" = String, Path, description = "The tenant's id: 1-63 of `a-z`, `0-9`, `-`")),
    request_body(content_type = "application/json", description = "`{\"hosts\": [\"api.acme.example\", \"*.acme.example\"], \"quotas\": {\"max_functions\": 10, \"requests_per_second\": 50, \"burst\": 100}}`"),
    responses((status = 201, description = "Created", body = Object),
              (status = 200, description = "Changed", body = Object),
              (status = 409, description = "A host another tenant serves, a tenant of `--tenants FILE`, or quotas its functions exceed (`tenant_conflict`)", body = Object),
              (status = 422, description = "Invalid id or settings (`invalid_tenant`)", body = Object)))]
pub(crate) async fn put_tenant(
    State(app): State<Arc<AppState>>,
    Path(id): Path<String>,
    Extension(caller): Extension<Caller>,
    req: Request,
) -> Response {
    let rid = request_id(req.headers());
    let settings = json_body::<TenantSettings>(
        req,
        r#"{"hosts": ["api.acme.example"], "quotas": {"max_functions": 10}}"#,
    )
    .await;
    let result = match settings {
        Ok(s) => app.put_tenant(&id, s).await.map_err(tenant_error),
        Err(e) => Err(e),
    };
    let resp = match result {
        Ok(created) => {
            let t = app.registry.tenant(&id).expect("just put");
            let status = if created { StatusCode::CREATED } else { StatusCode::OK };
            tracing::info!(tenant = %id, created, "tenant defined");
            (status, Json(tenant_json(&app, &t))).into_response()
        }
        Err(e) => e.into_response_with(&rid),
    };
    app.audit(&caller, &id, "tenant_put", None, None, None, resp.status(), &rid)
        .await;
    resp
}

/// Deletes a tenant, its functions and its keys; its requests in flight finish.
#[utoipa::path(delete, path = "/_fn/tenants/{tenant}", tag = "wasmfn", security(("admin_token" = ["admin"])),
    params(("tenant" = String, Path, description = "The tenant's id")),
    responses((status = 204, description = "Deleted"),
              (status = 404, description = "No such tenant (`tenant_not_found`)", body = Object),
              (status = 409, description = "`default`, or a tenant of `--tenants FILE` (`tenant_conflict`)", body = Object)))]
pub(crate) async fn delete_tenant(
    State(app): State<Arc<AppState>>,
    Path(id): Path<String>,
    Extension(caller): Extension<Caller>,
    req: Request,
) -> Response {
    let rid = request_id(req.headers());
    let resp = match app.delete_tenant(&id).await {
        Ok(()) => {
            tracing::info!(tenant = %id, "tenant deleted");
            StatusCode::NO_CONTENT.into_response()
        }
        Err(e) => tenant_error(e).into_response_with(&rid),
    };
    app.audit(&caller, &id, "tenant_delete", None, None, None, resp.status(), &rid)
        .await;
    resp
}

/// The tenant's API keys: ids, scopes and creation times, never the keys.
#[utoipa::path(get, path = "/_fn/tenants/{tenant}/api-keys", tag = "wasmfn", security(("admin_token" = ["read"])),
    params(("tenant" = String, Path, description = "The tenant's id")),
    responses((status = 200, description = "`api_keys`: id, scopes, created_at", body = Object),
              (status = 404, description = "No such tenant (`tenant_not_found`)", body = Object)))]
pub(crate) async fn list_api_keys(
    State(app): State<Arc<AppState>>,
    Path(id): Path<String>,
    Extension(caller): Extension<Caller>,
    req: Request,
) -> Response {
    if let Err(e) = visible_tenant(&app, &caller, &id) {
        return e.into_response_with(&request_id(req.headers()));
    }
    let keys: Vec<Value> = app
        .api_keys(&id)
        .iter()
        .map(|k| json!({ "id": k.id, "scopes": k.scopes, "created_at": k.created_at }))
        .collect();
    Json(json!({ "api_keys": keys })).into_response()
}

/// The body of `POST /_fn/tenants/{id}/api-keys`.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct NewKey {
    id: String,
    #[serde(default)]
    scopes: Vec<String>,
}

/// Creates an API key; the key is in this response only.
#[utoipa::path(post, path = "/_fn/tenants/{tenant}/api-keys", tag = "wasmfn", security(("admin_token" = ["admin"])),
    params(("tenant" = String, Path, description = "The tenant's id")),
    request_body(content_type = "application/json", description = "`{\"id\": \"mobile-app\", \"scopes\": [\"items:read\"]}`"),
    responses((status = 201, description = "`key` (shown once), `id`, `scopes`, `created_at`", body = Object),
              (status = 404, description = "No such tenant (`tenant_not_found`)", body = Object),
              (status = 409, description = "The id is taken (`tenant_conflict`)", body = Object),
              (status = 422, description = "Invalid id or scopes (`invalid_tenant`)", body = Object)))]
pub(crate) async fn create_api_key(
    State(app): State<Arc<AppState>>,
    Path(id): Path<String>,
    Extension(caller): Extension<Caller>,
    req: Request,
) -> Response {
    let rid = request_id(req.headers());
    if let Err(e) = visible_tenant(&app, &caller, &id) {
        return e.into_response_with(&rid);
    }
    let new: NewKey = match json_body(req, r#"{"id": "mobile-app", "scopes": ["items:read"]}"#).await {
        Ok(n) => n,
        Err(e) => return e.into_response_with(&rid),
    };
    let resp = match app.create_api_key(&id, &new.id, new.scopes).await {
        Ok((key, entry)) => {
            tracing::info!(tenant = %id, key = %entry.id, "API key created");
            (
                StatusCode::CREATED,
                Json(json!({ "key": key, "id": entry.id, "scopes": entry.scopes, "created_at": entry.created_at })),
            )
                .into_response()
        }
        Err(e) => tenant_error(e).into_response_with(&rid),
    };
    app.audit(
        &caller,
        &id,
        "api_key_create",
        Some(&new.id),
        None,
        None,
        resp.status(),
        &rid,
    )
    .await;
    resp
}

/// Revokes an API key: refused from the next request on.
#[utoipa::path(delete, path = "/_fn/tenants/{tenant}/api-keys/{key}", tag = "wasmfn", security(("admin_token" = ["admin"])),
    params(("tenant" = String, Path, description = "The tenant's id"), ("key" = String, Path, description = "The key's id")),
    responses((status = 204, description = "Revoked"),
              (status = 404, description = "No such tenant or key (`tenant_not_found`)", body = Object)))]
pub(crate) async fn delete_api_key(
    State(app): State<Arc<AppState>>,
    Path((id, key)): Path<(String, String)>,
    Extension(caller): Extension<Caller>,
    req: Request,
) -> Response {
    let rid = request_id(req.headers());
    if let Err(e) = visible_tenant(&app, &caller, &id) {
        return e.into_response_with(&rid);
    }
    let resp = match app.delete_api_key(&id, &key).await {
        Ok(()) => {
            tracing::info!(tenant = %id, key = %key, "API key revoked");
            StatusCode::NO_CONTENT.into_response()
        }
        Err(e) => tenant_error(e).into_response_with(&rid),
    };
    app.audit(
        &caller,
        &id,
        "api_key_delete",
        Some(&key),
        None,
        None,
        resp.status(),
        &rid,
    )
    .await;
    resp
}
