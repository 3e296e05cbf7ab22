//! `/_fn/secrets` and `/_fn/tenants/{id}/secrets`: secrets set, listed
//! (names and times, never values) and deleted through the admin API.

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
use crate::request_id::request_id;
use crate::secrets::{MAX_SECRET_BYTES, SecretError};
use crate::tenant::DEFAULT_TENANT;

fn secret_error(e: SecretError) -> ApiError {
    match e {
        SecretError::Unavailable(message) => ApiError::SecretsUnavailable { message },
        SecretError::Invalid(message) => ApiError::InvalidSecret { message },
        SecretError::NotFound(name) => ApiError::SecretNotFound { name },
        SecretError::NoTenant(tenant) => ApiError::TenantNotFound { tenant },
        SecretError::State(e) => ApiError::state(&e),
    }
}

/// The value of `{"value": "..."}`; errors never quote the body.
async fn value_of(req: Request) -> Result<String, ApiError> {
    let invalid = |m: &str| ApiError::InvalidSecret {
        message: format!("{m}; send `{{\"value\": \"…\"}}` (a string of at most {MAX_SECRET_BYTES} bytes)"),
    };
    let body = axum::body::to_bytes(req.into_body(), MAX_SECRET_BYTES * 2 + 1024)
        .await
        .map_err(|_| invalid("the body is too large or broke off"))?;
    let v: Value = serde_json::from_slice(&body).map_err(|_| invalid("the body is not JSON"))?;
    match v.get("value") {
        Some(Value::String(s)) if v.as_object().is_some_and(|o| o.len() == 1) => Ok(s.clone()),
        Some(Value::String(_)) => Err(invalid("the object has fields besides `value`")),
        Some(_) => Err(invalid("`value` is not a string")),
        None => Err(invalid("there is no `value`")),
    }
}

/// Sets a secret of the tenant `default`.
#[utoipa::path(put, path = "/_fn/secrets/{name}", tag = "wasmfn", security(("admin_token" = ["deploy"])),
    params(("name" = String, Path, description = "The secret's name: 1-64 of `a-z`, `0-9`, `_`")),
    request_body(content_type = "application/json", description = "`{\"value\": \"…\"}`"),
    responses((status = 200, description = "`name`, `updated_at`, `created`; the tenant's functions read the new value", body = Object),
              (status = 409, description = "No `--secrets-key-file` or no state directory (`secrets_unavailable`)", body = Object),
              (status = 422, description = "A bad name or value (`invalid_secret`)", body = Object)))]
pub(crate) async fn put_secret(
    State(app): State<Arc<AppState>>,
    Path(name): Path<String>,
    Extension(caller): Extension<Caller>,
    req: Request,
) -> Response {
    put(app, caller, DEFAULT_TENANT.into(), name, req).await
}

/// Sets a secret of a tenant.
#[utoipa::path(put, path = "/_fn/tenants/{tenant}/secrets/{name}", tag = "wasmfn", security(("admin_token" = ["deploy"])),
    params(("tenant" = String, Path, description = "The tenant's id"),
           ("name" = String, Path, description = "The secret's name")),
    request_body(content_type = "application/json", description = "`{\"value\": \"…\"}`"),
    responses((status = 200, description = "As `PUT /_fn/secrets/{name}`", body = Object),
              (status = 404, description = "No such tenant (`tenant_not_found`)", body = Object),
              (status = 409, description = "`secrets_unavailable`", body = Object),
              (status = 422, description = "`invalid_secret`", body = Object)))]
pub(crate) async fn put_tenant_secret(
    State(app): State<Arc<AppState>>,
    Path((tenant, name)): Path<(String, String)>,
    Extension(caller): Extension<Caller>,
    req: Request,
) -> Response {
    put(app, caller, tenant, name, req).await
}

async fn put(app: Arc<AppState>, caller: Caller, tenant: String, name: String, req: Request) -> Response {
    let id = request_id(req.headers());
    // Another tenant's (or no tenant's) secrets: 404, and nothing in any audit log.
    if let Err(e) = visible_tenant(&app, &caller, &tenant) {
        return e.into_response_with(&id);
    }
    let result = async {
        let value = value_of(req).await?;
        app.put_secret(&tenant, &name, value).await.map_err(secret_error)
    }
    .await;
    let resp = match result {
        Ok(created) => {
            tracing::info!(tenant, secret = name, created, "secret set");
            let updated_at = app
                .list_secrets(&tenant)
                .into_iter()
                .find(|s| s.name == name)
                .map(|s| s.updated_at);
            Json(json!({ "name": name, "updated_at": updated_at, "created": created })).into_response()
        }
        Err(e) => e.into_response_with(&id),
    };
    app.audit(
        &caller,
        &tenant,
        "secret_set",
        Some(&name),
        None,
        None,
        resp.status(),
        &id,
    )
    .await;
    resp
}

/// The secrets of the tenant `default` set through the admin API: names and times, never values.
#[utoipa::path(get, path = "/_fn/secrets", tag = "wasmfn", security(("admin_token" = ["read"])),
    responses((status = 200, description = "`secrets`: name, updated_at", body = Object)))]
pub(crate) async fn list_secrets(
    State(app): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    req: Request,
) -> Response {
    list(&app, &caller, DEFAULT_TENANT, &request_id(req.headers()))
}

/// A tenant's secrets set through the admin API: names and times, never values.
#[utoipa::path(get, path = "/_fn/tenants/{tenant}/secrets", tag = "wasmfn", security(("admin_token" = ["read"])),
    params(("tenant" = String, Path, description = "The tenant's id")),
    responses((status = 200, description = "`secrets`: name, updated_at", body = Object),
              (status = 404, description = "No such tenant (`tenant_not_found`)", body = Object)))]
pub(crate) async fn list_tenant_secrets(
    State(app): State<Arc<AppState>>,
    Path(tenant): Path<String>,
    Extension(caller): Extension<Caller>,
    req: Request,
) -> Response {
    list(&app, &caller, &tenant, &request_id(req.headers()))
}

fn list(app: &AppState, caller: &Caller, tenant: &str, id: &str) -> Response {
    if let Err(e) = visible_tenant(app, caller, tenant) {
        return e.into_response_with(id);
    }
    Json(json!({ "tenant": tenant, "secrets": app.list_secrets(tenant) })).into_response()
}

/// Deletes a secret of the tenant `default` set through the admin API.
#[utoipa::path(delete, path = "/_fn/secrets/{name}", tag = "wasmfn", security(("admin_token" = ["deploy"])),
    params(("name" = String, Path, description = "The secret's name")),
    responses((status = 200, description = "`name`, `deleted`; a function that lists it and has it from no other provider stops serving", body = Object),
              (status = 404, description = "No such secret (`secret_not_found`)", body = Object)))]
pub(crate) async fn delete_secret(
    State(app): State<Arc<AppState>>,
    Path(name): Path<String>,
    Extension(caller): Extension<Caller>,
    req: Request,
) -> Response {
    delete(app, caller, DEFAULT_TENANT.into(), name, req).await
}

/// Deletes a secret of a tenant set through the admin API.
#[utoipa::path(delete, path = "/_fn/tenants/{tenant}/secrets/{name}", tag = "wasmfn", security(("admin_token" = ["deploy"])),
    params(("tenant" = String, Path, description = "The tenant's id"),
           ("name" = String, Path, description = "The secret's name")),
    responses((status = 200, description = "As `DELETE /_fn/secrets/{name}`", body = Object),
              (status = 404, description = "No such tenant or secret (`tenant_not_found`, `secret_not_found`)", body = Object)))]
pub(crate) async fn delete_tenant_secret(
    State(app): State<Arc<AppState>>,
    Path((tenant, name)): Path<(String, String)>,
    Extension(caller): Extension<Caller>,
    req: Request,
) -> Response {
    delete(app, caller, tenant, name, req).await
}

async fn delete(app: Arc<AppState>, caller: Caller, tenant: String, name: String, req: Request) -> Response {
    let id = request_id(req.headers());
    if let Err(e) = visible_tenant(&app, &caller, &tenant) {
        return e.into_response_with(&id);
    }
    let result = app.delete_secret(&tenant, &name).await.map_err(secret_error);
    let resp = match result {
        Ok(()) => {
            tracing::info!(tenant, secret = name, "secret deleted");
            (StatusCode::OK, Json(json!({ "name": name, "deleted": true }))).into_response()
        }
        Err(e) => e.into_response_with(&id),
    };
    app.audit(
        &caller,
        &tenant,
        "secret_delete",
        Some(&name),
        None,
        None,
        resp.status(),
        &id,
    )
    .await;
    resp
}
