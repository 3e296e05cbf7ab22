//! The wasmfn host as a library: it loads a functions directory and serves
//! it as one API. Start one with [`Host::builder`]:
//!
//! ```no_run
//! # async fn run() -> anyhow::Result<()> {
//! use wasmfn_server::{Host, HostConfig};
//!
//! let host = Host::builder(HostConfig::new("functions")).load().await?;
//! let running = host.start("127.0.0.1:0".parse()?).await?;
//! println!("serving on http://{}", running.addr);
//! running.stop().await?;
//! # Ok(())
//! # }
//! ```
//!
//! The only crate that names axum. A request walks forward through its
//! modules, never back:
//!
//! | step | module | what it does |
//! |---|---|---|
//! | connection | [`Host`] (`host.rs`) | `/_fn` to the admin router, everything else straight to the gateway |
//! | request id | `request_id` | keeps a sane client id or makes one |
//! | gateway | `gateway` | host and route match ([`routing`]), validation ([`openapi`]), admission, invocation ([`runtime`]) |
//! | admission | [`admission`] | concurrency gates with queues, body and response size limits |
//! | errors | [`ApiError`] | the one error shape, one status per code (`docs/errors.md`) |
//! | admin | `admin` | public: `/_fn/health`, `ready`, `openapi.json`, `docs`; behind [`auth`]: `catalog`, `status`, `reload`, `functions`, `audit` |
//!
//! Every listener runs the accept loop of `listen` (request-head limits,
//! TLS for the admin listener). At load (off the request path): [`loader`]
//! discovers, compiles and describes every function into a
//! [`registry::Snapshot`], which the [`registry::Registry`] swaps in
//! atomically; `watch` reloads when the functions directory changes;
//! [`deploy`] loads one function's new version beside what serves and keeps
//! it in the [`state`] directory. The crates below are re-exported for
//! embedders and tests: [`manifest`], [`routing`], [`openapi`], [`runtime`].

mod admin;
pub mod admission;
pub mod auth;
pub mod callers;
pub mod deploy;
mod error;
mod gateway;
mod host;
mod listen;
pub mod loader;
pub mod oci;
pub mod registry;
mod report;
mod request_id;
pub mod schedule;
pub mod secrets;
pub mod shared;
pub mod state;
pub mod telemetry;
mod tenancy;
pub mod tenant;
mod watch;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::get;

pub use wasmfn_manifest as manifest;
pub use wasmfn_openapi as openapi;
pub use wasmfn_routing as routing;
pub use wasmfn_runtime as runtime;

pub use admin::{admin_document, catalog_json};
pub use auth::{AdminAccess, AdminTokens, Scope};
pub use error::ApiError;
pub use gateway::{FN_FUNCTION, FN_PARAM_PREFIX, FN_PATH, FN_ROUTE};
pub use host::{AdminListener, Drain, Drained, Host, HostBuilder, RELEASE_WAIT, RunningHost};
pub use listen::{DEFAULT_MAX_HEADER_BYTES, HeadLimits, MIN_MAX_HEADER_BYTES, TlsFiles};
pub use report::RouteReport;
pub use request_id::{REQUEST_ID, request_id};
pub use watch::{fingerprint, watch};

use crate::admission::ConcurrencyGate;
use crate::registry::Registry;
use wasmfn_manifest::Policy;
use wasmfn_runtime::{Runtime, RuntimeConfig};

/// Host-wide settings, from CLI flags or their environment twins.
#[derive(Debug, Clone)]
pub struct HostConfig {
    /// The directory whose functions are loaded and served.
    pub functions_dir: PathBuf,
    /// Limits for functions that do not set their own.
    pub defaults: Policy,
    /// Invocations running at once across all functions.
    pub max_concurrency: u32,
    /// Describe `/_fn/*` in the OpenAPI document too.
    pub openapi_admin: bool,
    /// Check responses against their declared schemas (development).
    pub validate_responses: bool,
    /// Settings of the sandbox; `max_instances` is raised to fit `max_concurrency`.
    pub runtime: RuntimeConfig,
    /// Who may use the admin surface.
    pub admin: AdminAccess,
    /// Where deployed functions, the desired state and the audit log are
    /// kept; `None`: the host takes no deploys.
    pub state_dir: Option<PathBuf>,
    /// Versions kept per deployed function (rollback reaches back this far).
    pub keep_versions: usize,
    /// The largest deploy upload accepted, in bytes (413 beyond).
    pub max_deploy_bytes: u64,
    /// Limits on request heads, on every listener.
    pub head_limits: HeadLimits,
    /// The operator's fixed tenants (`--tenants FILE`), read at start.
    pub tenants_file: Option<PathBuf>,
    /// Metrics, the access log and traces.
    pub telemetry: telemetry::TelemetryConfig,
    /// `--secrets-dir`: secrets as files, `<name>` for the tenant `default`, `<tenant>/<name>` for others.
    pub secrets_dir: Option<PathBuf>,
    /// `--secrets-key-file`: the key secrets set through the admin API are sealed under.
    pub secrets_key_file: Option<PathBuf>,
    /// Whether a function whose secret is set nowhere fails (`false` for
    /// `wasmfn check` and `openapi`, which run no function).
    pub secrets_required: bool,
    /// Where functions' key-value stores are kept.
    pub key_value: KeyValueBackend,
    /// How deploys from OCI registries reach them: credentials, plain-HTTP registries.
    pub registries: wasmfn_oci::RegistryOptions,
    /// A Redis (`redis://…`) holding the desired state shared by several
    /// hosts; `None`: the state directory alone.
    pub state_store: Option<String>,
    /// With `state_store`: the repository (`oci://REGISTRY/REPOSITORY`)
    /// the shared state's blobs (components, manifests, fragments) are
    /// kept in, instead of the store itself.
    pub blob_registry: Option<String>,
}

/// Where functions' key-value stores (`wasi:keyvalue`) are kept.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum KeyValueBackend {
    /// One SQLite database in the state directory (`kv.sqlite3`); a host
    /// without a state directory has no stores.
    #[default]
    Embedded,
    /// A Redis server (`redis://…`), shared by several hosts.
    Redis(String),
}

impl HostConfig {
    /// Serves `functions_dir` with the default limits and 256 invocations at once.
    pub fn new(functions_dir: impl Into<PathBuf>) -> Self {
        Self {
            functions_dir: functions_dir.into(),
            defaults: Policy::default(),
            max_concurrency: 256,
            openapi_admin: false,
            validate_responses: false,
            runtime: RuntimeConfig::default(),
            admin: AdminAccess::default(),
            state_dir: None,
            keep_versions: 5,
            max_deploy_bytes: 64 << 20,
            head_limits: HeadLimits::default(),
            tenants_file: None,
            telemetry: telemetry::TelemetryConfig::default(),
            secrets_dir: None,
            secrets_key_file: None,
            secrets_required: true,
            key_value: KeyValueBackend::Embedded,
            registries: wasmfn_oci::RegistryOptions::default(),
            state_store: None,
            blob_registry: None,
        }
    }
}

/// Shared state of a running host.
pub struct AppState {
    /// The functions serving now, and their counters.
    pub registry: Registry,
    /// The sandbox every function runs in.
    pub runtime: Runtime,
    /// The host-wide gate: `max_concurrency` slots, a queue of four times that, 10 s of waiting.
    pub host_gate: ConcurrencyGate,
    /// The settings the host started with.
    pub config: HostConfig,
    /// When the host loaded; `/_fn/health` reports the uptime from it.
    pub started: Instant,
    /// Set at the first shutdown signal: `/_fn/ready` answers 503 from then on.
    draining: std::sync::atomic::AtomicBool,
    /// One reload at a time.
    reloading: tokio::sync::Mutex<()>,
    /// Build errors of functions (from `wasmfn dev`), shown in the catalog.
    pub build_errors: dashmap::DashMap<String, String>,
    /// Deployed functions and the state directory; `None` without `state_dir`.
    pub deployments: Option<deploy::Deployments>,
    /// How long a version that left the serving set may finish its requests.
    retire_after: Duration,
    /// Who may use the admin surface now: `config.admin`, with the tokens
    /// read again at each [`AppState::reload_admin_tokens`].
    pub(crate) access: arc_swap::ArcSwap<AdminAccess>,
    /// Metrics, access log and traces of every request.
    pub(crate) telemetry: Arc<telemetry::Telemetry>,
    /// The key of `--secrets-key-file`, read at start.
    pub(crate) secrets_key: Option<secrets::SecretsKey>,
    /// Where functions' key-value stores are kept (`None`: nowhere).
    pub(crate) kv: Option<wasmfn_kv::KeyValue>,
    /// The client of the OCI registries deploys name.
    pub(crate) registries: wasmfn_oci::Registries,
    /// The functions directory's components named by OCI reference.
    pub(crate) oci: oci::OciComponents,
    /// Every function's schedules, their next runs and last results.
    pub(crate) scheduler: schedule::Scheduler,
}

/// What a reload did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ReloadReport {
    /// Functions serving after the reload.
    pub functions: usize,
    /// Functions that failed to load and serve nothing.
    pub failed: usize,
    /// Functions whose new version failed while the previous one serves.
    pub kept_previous: Vec<String>,
    /// Routes and methods claimed by several functions, which none of them serves.
    pub conflicts: usize,
    /// How long the reload took, in ms.
    pub duration_ms: u64,
}

impl AppState {
    /// Creates the runtime and loads every function once.
    pub(crate) fn load(config: HostConfig, retire_after: Duration) -> anyhow::Result<Arc<Self>> {
        let mut rc = config.runtime.clone();
        // Room for every invocation plus loads running beside them.
        rc.max_instances = rc.max_instances.max(config.max_concurrency.saturating_add(16));
        let runtime = Runtime::new(rc)?;
        let telemetry = Arc::new(telemetry::Telemetry::start(&config.telemetry)?);
        let registry = Registry::default();
        if config.blob_registry.is_some() && config.state_store.is_none() {
            anyhow::bail!(
                "`--blob-registry` keeps the blobs of a shared state: it needs `--state-store` (a host alone keeps them in its state directory)"
            );
        }
        let deployments = match (&config.state_dir, &config.state_store) {
            (Some(d), Some(url)) => Some(deploy::Deployments::open_shared(d, config.keep_versions, url, &config)?),
            (Some(d), None) => Some(deploy::Deployments::open(d, config.keep_versions)?),
            (None, Some(_)) => {
                anyhow::bail!("`--state-store` needs a state directory (`--state-dir`) to keep its copy in")
            }
            (None, None) => None,
        };
        let secrets_key = match &config.secrets_key_file {
            Some(p) => Some(secrets::SecretsKey::load(p)?),
            None => None,
        };
        let source = secrets::SecretSource {
            sealed: sealed_secrets(deployments.as_ref()),
            key: secrets_key.clone(),
            dir: config.secrets_dir.clone(),
            lenient: !config.secrets_required,
        };
        let kv = open_key_value(&config)?;
        let registries =
            wasmfn_oci::Registries::new(&config.registries).map_err(|e| anyhow::anyhow!("`--registry-auth`: {e}"))?;
        let oci = oci::OciComponents::open(
            config.registries.clone(),
            config.state_dir.as_ref().map(|d| d.join("oci")).as_deref(),
            config.max_deploy_bytes,
        )?;
        let tenants = tenancy::load_tenants(
            &config,
            &runtime,
            deployments.as_ref(),
            &source,
            kv.as_ref(),
            Some(&oci),
        )?;
        registry.set_tenants(tenants);
        let host_gate = ConcurrencyGate::new(
            config.max_concurrency,
            config.max_concurrency.saturating_mul(4),
            Duration::from_secs(10),
        );
        Ok(Arc::new(Self {
            registry,
            runtime,
            host_gate,
            started: Instant::now(),
            draining: Default::default(),
            reloading: tokio::sync::Mutex::new(()),
            build_errors: Default::default(),
            deployments,
            retire_after,
            access: arc_swap::ArcSwap::from_pointee(config.admin.clone()),
            telemetry,
            secrets_key,
            kv,
            registries,
            oci,
            scheduler: Default::default(),
            config,
        }))
    }

    /// Reads the admin token file again (`tokens_file`) and puts its
    /// tokens in force; gives how many there are. A file that does not read
    /// or parse changes nothing.
    pub fn reload_admin_tokens(&self) -> anyhow::Result<usize> {
        let current = self.access.load_full();
        let Some(path) = &current.tokens_file else {
            anyhow::bail!("this host was started without `--admin-tokens`: there is no token file to read again");
        };
        let tokens = AdminTokens::load(path)?;
        let n = tokens.len();
        self.access.store(Arc::new(AdminAccess {
            tokens: Some(tokens),
            ..(*current).clone()
        }));
        Ok(n)
    }

    /// Whether the host has begun to drain (see [`Drain`]).
    pub fn is_draining(&self) -> bool {
        self.draining.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Loads the functions directory again and swaps the new snapshot in.
    /// Requests in flight finish on the snapshot they started with;
    /// unchanged functions are reused as they are.
    pub async fn reload(self: &Arc<Self>) -> anyhow::Result<ReloadReport> {
        let _one_at_a_time = self.reloading.lock().await;
        let tenant = self.registry.tenants().default_tenant().clone();
        self.reload_tenant(&tenant).await
    }

    /// Loads `tenant` again (for `default`, its functions directory too)
    /// and swaps its new snapshot in; the caller holds `reloading`.
    pub(crate) async fn reload_tenant(
        self: &Arc<Self>,
        tenant: &Arc<registry::Tenant>,
    ) -> anyhow::Result<ReloadReport> {
        let started = Instant::now();
        let app = self.clone();
        let target = tenant.clone();
        let tenant = tenant.clone();
        let secrets = self.secret_source();
        let next = tokio::task::spawn_blocking(move || {
            let previous = tenant.snapshot();
            let extra = app.extra_doc(&tenant);
            let c = &app.config;
            let deployed = app
                .deployments
                .as_ref()
                .map(|d| d.set(&tenant.id, &c.defaults))
                .unwrap_or_default();
            let dir = tenant.is_default().then_some(c.functions_dir.as_path());
            let next = loader::reload(
                dir,
                loader::Loading {
                    defaults: &c.defaults,
                    runtime: &app.runtime,
                    stats: &tenant.stats,
                    quotas: Some(&tenant.settings),
                    extra_doc: extra,
                    memo: &loader::Memo::default(),
                    tenant: &tenant.id,
                    secrets: &secrets,
                    kv: app.kv.as_ref(),
                    oci: Some(&app.oci),
                },
                Some(&previous),
                deployed,
            )?;
            anyhow::Ok((next, previous))
        })
        .await??;
        let (next, previous) = next;
        let report = ReloadReport {
            functions: next.functions.len(),
            failed: next.failed.len(),
            kept_previous: next.kept.keys().cloned().collect(),
            conflicts: next.table.conflicts().len(),
            duration_ms: started.elapsed().as_millis() as u64,
        };
        let leaving = deploy::leaving(&previous, &next);
        target.swap(next);
        self.retire(leaving);
        tracing::info!(
            tenant = %target.id,
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

/// The secrets set through the admin API, by tenant, as the state directory keeps them.
/// The key-value backend `config` asks for; `None` for a host that runs
/// no function (`check`, `openapi`) or has no state directory.
fn open_key_value(config: &HostConfig) -> anyhow::Result<Option<wasmfn_kv::KeyValue>> {
    if !config.secrets_required {
        return Ok(None);
    }
    let kv = match (&config.key_value, &config.state_dir) {
        (KeyValueBackend::Redis(url), _) => {
            wasmfn_kv::KeyValue::redis(url).map_err(|e| anyhow::anyhow!("`--kv-redis-url`: {e}"))?
        }
        (KeyValueBackend::Embedded, Some(dir)) => {
            let path = dir.join("kv.sqlite3");
            wasmfn_kv::KeyValue::embedded(&path)
                .map_err(|e| anyhow::anyhow!("the key-value store `{}` cannot be opened: {e}", path.display()))?
        }
        (KeyValueBackend::Embedded, None) => return Ok(None),
    };
    tracing::info!(backend = kv.kind(), "key-value stores");
    Ok(Some(kv))
}

fn sealed_secrets(
    deployments: Option<&deploy::Deployments>,
) -> std::collections::BTreeMap<String, std::collections::BTreeMap<String, secrets::SealedSecret>> {
    deployments
        .map(|d| {
            d.desired()
                .tenants
                .into_iter()
                .filter(|(_, t)| !t.secrets.is_empty())
                .map(|(id, t)| (id, t.secrets))
                .collect()
        })
        .unwrap_or_default()
}

impl AppState {
    /// Where secrets come from now (the admin API's as of the desired state).
    pub(crate) fn secret_source(&self) -> secrets::SecretSource {
        secrets::SecretSource {
            sealed: sealed_secrets(self.deployments.as_ref()),
            key: self.secrets_key.clone(),
            dir: self.config.secrets_dir.clone(),
            lenient: !self.config.secrets_required,
        }
    }
}

/// The `/_fn/*` endpoints (with the request-id middleware): the public
/// ones (`health`, `ready`, `openapi.json`, `docs`) always, the admin
/// surface (behind [`AdminAccess`]) when `with_admin`; anything else
/// answers 404.
pub fn router(app: Arc<AppState>, with_admin: bool) -> Router {
    let mut r = Router::new()
        .route("/_fn/health", get(admin::health))
        .route("/_fn/ready", get(admin::ready))
        .route("/_fn/openapi.json", get(admin::openapi_json))
        .route("/_fn/docs", get(admin::docs))
        .route("/_fn/docs/{asset}", get(admin::docs_asset));
    if with_admin {
        r = r.merge(admin::surface(app.clone()));
    }
    r.fallback(admin::not_found)
        .layer(axum::middleware::from_fn(request_id::with_request_id))
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
    /// The service for `app`, with its `/_fn` router built once: the admin
    /// surface included unless it has a listener of its own (`with_admin`).
    pub fn new(app: Arc<AppState>, with_admin: bool) -> Self {
        Self {
            admin: router(app.clone(), with_admin),
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
