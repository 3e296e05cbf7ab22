//! The host's own endpoints under `/_fn`: health and catalog.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::AppState;
use super::error::ApiError;
use super::gateway::request_id;
use crate::registry::Snapshot;
use crate::routing::ClaimState;

/// `GET /_fn/health`
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
    }))
}

/// `GET /_fn/catalog`
pub(crate) async fn catalog(State(app): State<Arc<AppState>>) -> Json<Value> {
    Json(catalog_json(&app.registry.snapshot()))
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
                "source": f.spec.dir,
                "manifest": f.spec.manifest_path,
                "component": f.spec.component_path,
                "description": f.spec.description,
                "routes": f.spec.routes.iter().map(|r| r.to_string()).collect::<Vec<_>>(),
                "methods": f.spec.methods.iter().map(|m| m.as_str()).collect::<Vec<_>>(),
                "allow_hosts": f.spec.hosts.iter().map(|h| h.to_string()).collect::<Vec<_>>(),
                "force_url": f.spec.force_url,
                "policy": f.spec.policy,
                "stats": f.stats.view(Some(&f.gate)),
                "error": null,
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
    for (claim, methods) in s.table.claims() {
        let serving: Vec<&str> = methods
            .iter()
            .filter(|(_, st)| *st == ClaimState::Active)
            .map(|(m, _)| m.as_str())
            .collect();
        if serving.is_empty() {
            continue;
        }
        mapped
            .entry(claim.pattern.to_string())
            .or_default()
            .push(json!({
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
