//! The host's own endpoints under `/_fn`: health and catalog.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Request, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use serde_json::{Value, json};
use utoipa::OpenApi;

use super::AppState;
use super::error::ApiError;
use crate::registry::Snapshot;
use crate::request_id::request_id;
use wasmfn_openapi::{SWAGGER_ASSETS, docs_page};

/// The host's own endpoints, described for the OpenAPI document.
#[derive(OpenApi)]
#[openapi(
    paths(health, ready, catalog, openapi_json, reload),
    tags((name = "wasmfn", description = "The host's own endpoints."))
)]
struct AdminApi;

/// The OpenAPI description of `/_fn/*`, merged into the document when the
/// operator asks for it (`--openapi-admin`).
pub fn admin_document() -> Value {
    serde_json::to_value(AdminApi::openapi()).expect("the admin document serialises")
}

/// Liveness and a summary of what is loaded.
#[utoipa::path(get, path = "/_fn/health", tag = "wasmfn",
    responses((status = 200, description = "`status` is `ok`, or `degraded` while a function failed to load", body = Object)))]
pub(crate) async fn health(State(app): State<Arc<AppState>>) -> Json<Value> {
    let s = app.registry.snapshot();
    let failed = s.failed.len();
    Json(json!({
        "status": if failed == 0 { "ok" } else { "degraded" },
        "version": env!("CARGO_PKG_VERSION"),
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
#[utoipa::path(get, path = "/_fn/catalog", tag = "wasmfn",
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
#[utoipa::path(post, path = "/_fn/reload", tag = "wasmfn",
    responses((status = 200, description = "What the reload did", body = Object),
              (status = 500, description = "The functions directory could not be read", body = Object)))]
pub(crate) async fn reload(State(app): State<Arc<AppState>>, req: Request) -> Response {
    match app.reload().await {
        Ok(report) => Json(report).into_response(),
        Err(e) => {
            let id = request_id(req.headers());
            let message = format!("{e:#}");
            tracing::error!(request_id = %id, error = %message, "reload failed");
            ApiError::ReloadFailed { message }.into_response_with(&id)
        }
    }
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
