//! The HTTP server: the gateway for functions, the `/_fn/*` admin
//! endpoints, and the one error shape. The only room that touches axum.

mod admin;
mod error;
mod gateway;
mod watch;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::get;
use tokio::net::TcpListener;

pub use admin::{admin_document, catalog_json};
pub use error::ApiError;
pub use gateway::{FN_FUNCTION, FN_PARAM_PREFIX, FN_PATH, FN_ROUTE, REQUEST_ID, request_id};
pub use watch::{fingerprint, watch};

use crate::loader;
use crate::manifest::Policy;
use crate::policy::ConcurrencyGate;
use crate::registry::Registry;
use crate::runtime::{Runtime, RuntimeConfig};

/// Host-wide settings, from CLI flags or their environment twins.
#[derive(Debug, Clone)]
pub struct HostConfig {
    pub functions_dir: PathBuf,
    /// Limits for functions that do not set their own.
    pub defaults: Policy,
    /// Invocations running at once across all functions.
    pub max_concurrency: u32,
    /// Describe `/_fn/*` in the OpenAPI document too.
    pub openapi_admin: bool,
    /// Check responses against their declared schemas (development).
    pub validate_responses: bool,
    pub runtime: RuntimeConfig,
}

impl HostConfig {
    pub fn new(functions_dir: impl Into<PathBuf>) -> Self {
        Self {
            functions_dir: functions_dir.into(),
            defaults: Policy::default(),
            max_concurrency: 256,
            openapi_admin: false,
            validate_responses: false,
            runtime: RuntimeConfig::default(),
        }
    }
}

/// Shared state of a running host.
pub struct AppState {
    pub registry: Registry,
    pub runtime: Runtime,
    pub host_gate: ConcurrencyGate,
    pub config: HostConfig,
    pub started: Instant,
    /// One reload at a time.
    reloading: tokio::sync::Mutex<()>,
    /// Build errors of functions (from `wasmfn dev`), shown in the catalog.
    pub build_errors: dashmap::DashMap<String, String>,
}

/// What a reload did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ReloadReport {
    pub functions: usize,
    pub failed: usize,
    /// Functions whose new version failed while the previous one serves.
    pub kept_previous: Vec<String>,
    pub conflicts: usize,
    pub duration_ms: u64,
}

impl AppState {
    /// Creates the runtime and loads every function once.
    pub fn load(config: HostConfig) -> anyhow::Result<Arc<Self>> {
        let mut rc = config.runtime.clone();
        // Room for every invocation plus loads running beside them.
        rc.max_instances = rc.max_instances.max(config.max_concurrency.saturating_add(16));
        let runtime = Runtime::new(rc)?;
        let registry = Registry::default();
        let extra = config.openapi_admin.then(admin::admin_document);
        let snapshot = loader::load(&config.functions_dir, &config.defaults, &runtime, &registry, extra)?;
        registry.swap(snapshot);
        let host_gate = ConcurrencyGate::new(
            config.max_concurrency,
            config.max_concurrency.saturating_mul(4),
            Duration::from_secs(10),
        );
        Ok(Arc::new(Self {
            registry,
            runtime,
            host_gate,
            config,
            started: Instant::now(),
            reloading: tokio::sync::Mutex::new(()),
            build_errors: Default::default(),
        }))
    }

    /// Loads the functions directory again and swaps the new snapshot in.
    /// Requests in flight finish on the snapshot they started with;
    /// unchanged functions are reused as they are.
    pub async fn reload(self: &Arc<Self>) -> anyhow::Result<ReloadReport> {
        let _one_at_a_time = self.reloading.lock().await;
        let started = Instant::now();
        let app = self.clone();
        let next = tokio::task::spawn_blocking(move || {
            let previous = app.registry.snapshot();
            let extra = app.config.openapi_admin.then(admin::admin_document);
            let c = &app.config;
            loader::reload(
                &c.functions_dir,
                &c.defaults,
                &app.runtime,
                &app.registry,
                extra,
                Some(&previous),
            )
        })
        .await??;
        let report = ReloadReport {
            functions: next.functions.len(),
            failed: next.failed.len(),
            kept_previous: next.kept.keys().cloned().collect(),
            conflicts: next.table.conflicts().len(),
            duration_ms: started.elapsed().as_millis() as u64,
        };
        self.registry.swap(next);
        tracing::info!(
            functions = report.functions,
            failed = report.failed,
            kept_previous = ?report.kept_previous,
            conflicts = report.conflicts,
            duration_ms = report.duration_ms,
            "reloaded"
        );
        Ok(report)
    }
}

/// The `/_fn/*` endpoints (with [`gateway::with_request_id`]); anything
/// under `/_fn` they do not take falls back to the gateway.
pub fn router(app: Arc<AppState>) -> Router {
    Router::new()
        .route("/_fn/health", get(admin::health))
        .route("/_fn/catalog", get(admin::catalog))
        .route("/_fn/openapi.json", get(admin::openapi_json))
        .route("/_fn/reload", axum::routing::post(admin::reload))
        .route("/_fn/docs", get(admin::docs))
        .route("/_fn/docs/{asset}", get(admin::docs_asset))
        .route("/_fn", axum::routing::any(admin::not_found))
        .route("/_fn/{*rest}", axum::routing::any(admin::not_found))
        .fallback(gateway::gateway)
        .layer(axum::middleware::from_fn(gateway::with_request_id))
        .with_state(app)
}

/// Whether a path belongs to the host's own `/_fn` endpoints.
fn is_admin_path(path: &str) -> bool {
    path.strip_prefix("/_fn")
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// What every connection serves: `/_fn` and below go to the admin
/// [`router`]; every other request goes straight to the gateway, with no
/// router or middleware in between (the path every function request takes).
#[derive(Clone)]
pub struct Front {
    app: Arc<AppState>,
    admin: Router,
}

impl Front {
    pub fn new(app: Arc<AppState>) -> Self {
        Self {
            admin: router(app.clone()),
            app,
        }
    }
}

impl tower_service::Service<axum::extract::Request> for Front {
    type Response = axum::response::Response;
    type Error = std::convert::Infallible;
    type Future = std::pin::Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, _: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), Self::Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: axum::extract::Request) -> Self::Future {
        if is_admin_path(req.uri().path()) {
            let mut admin = self.admin.clone();
            Box::pin(async move { tower_service::Service::call(&mut admin, req).await })
        } else {
            let app = self.app.clone();
            Box::pin(async move { Ok(gateway::function_request(app, req).await) })
        }
    }
}

/// Serves until `shutdown` resolves, then drains connections.
pub async fn serve(
    listener: TcpListener,
    app: Arc<AppState>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use axum::serve::ListenerExt;
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    use axum::ServiceExt;
    axum::serve(listener, Front::new(app).into_make_service())
        .with_graceful_shutdown(shutdown)
        .await
}

/// A host running in the background, for tests and embedding.
pub struct RunningHost {
    pub addr: SocketAddr,
    pub app: Arc<AppState>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl RunningHost {
    /// Loads the functions and serves them on `listen` (use port 0 for any).
    pub async fn start(config: HostConfig, listen: SocketAddr) -> anyhow::Result<Self> {
        let app = tokio::task::spawn_blocking(move || AppState::load(config)).await??;
        let listener = TcpListener::bind(listen).await?;
        let addr = listener.local_addr()?;
        let (stop, rx) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(serve(listener, app.clone(), async move {
            let _ = rx.await;
        }));
        Ok(Self {
            addr,
            app,
            stop: Some(stop),
            task,
        })
    }

    /// Stops accepting, drains, and waits for the server to end.
    pub async fn stop(mut self) -> std::io::Result<()> {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        (&mut self.task).await.unwrap_or(Ok(()))
    }
}
