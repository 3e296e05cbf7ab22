//! The live set of functions: an immutable [`Snapshot`] swapped atomically
//! on load and reload, read without locks on every request, and counters
//! per function that outlive reloads.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use dashmap::DashMap;
use serde::Serialize;

use crate::admission::{ConcurrencyGate, RateLimit};
use crate::callers::{ApiKeys, CallerCheck};
use crate::telemetry::logs::LogRing;
use crate::tenant::{CheckedSettings, DEFAULT_TENANT, HostIndex, TenantSettings};
use wasmfn_manifest::CorsPolicy;
use wasmfn_manifest::discovery::{FailedSpec, FunctionSpec};
use wasmfn_openapi::{Fragment, Mount};
use wasmfn_routing::RouteTable;
use wasmfn_runtime::{
    Capabilities, CompiledComponent, GuestConfig, GuestOutput, Interrupt, KeyValueGrant, LanePool, ReusePool, Runtime,
    Stream, WarmSlot,
};

/// A function that is compiled, mounted and serving.
pub struct LoadedFunction {
    /// The function as discovered: its manifest, paths and policy.
    pub spec: FunctionSpec,
    /// The function's name, as in the catalog and `x-fn-function`.
    pub name: Arc<str>,
    /// `x-fn-function` as sent to the guest (`None`: not a valid header value).
    pub name_header: Option<http::HeaderValue>,
    /// The prefix of this function's schema names in the document.
    pub namespace: String,
    /// Where the function's description came from: `describe`, `sidecar` or `none`.
    pub api_source: &'static str,
    /// Its OpenAPI fragment, from `describe` or the sidecar; `None` when it has none.
    pub fragment: Option<Fragment>,
    /// Every route it serves, expanded by its fragment.
    pub mounts: Vec<Mount>,
    /// The caller check of each mount (by index; `None`: open to anyone).
    pub checks: Vec<Option<Arc<CallerCheck>>>,
    /// Its CORS rules, answered and added by the host.
    pub cors: Option<Arc<CorsPolicy>>,
    /// The compiled component, shared with functions whose bytes and limits are the same.
    pub component: CompiledComponent,
    /// A digest of the component's bytes: an unchanged function is reused
    /// as it is on reload.
    pub digest: u64,
    /// Its slots and queue, from `max_concurrency`, `max_queue` and `queue_timeout_ms`.
    pub gate: ConcurrencyGate,
    /// What its guest may reach besides its request: the hosts it may call
    /// out to (`allowed_outbound_hosts`), what it reads through
    /// `wasi:config/store` (its `config` and secrets) and the key-value
    /// stores it may open.
    pub capabilities: Capabilities,
    /// A digest of what it was granted (see [`Granted`]): a function whose
    /// values or stores changed is made again.
    pub grant_digest: [u8; 32],
    /// Its counters, kept across reloads by the [`Registry`].
    pub stats: Arc<FunctionStats>,
    /// The instance made ahead for its next request.
    pub warm: Arc<WarmSlot>,
    /// Its idle instances, when they serve several requests (`instance_reuse`).
    pub reuse: Option<Arc<ReusePool>>,
    /// Its instances that serve several requests at once
    /// (`instance_concurrency` above 1).
    pub lanes: Option<Arc<LanePool>>,
    /// Set when this version has left the serving set and its drain ran
    /// out: whatever of it still runs is interrupted.
    pub retire: Arc<Interrupt>,
}

impl LoadedFunction {
    /// Puts a compiled function together: its gate, outbound rules and warm slot come from `spec`'s policy.
    pub fn new(
        spec: FunctionSpec,
        component: CompiledComponent,
        api: FunctionApi,
        stats: Arc<FunctionStats>,
        runtime: &Runtime,
    ) -> Self {
        let p = &spec.policy;
        let name: Arc<str> = spec.name.as_str().into();
        let capabilities = Capabilities {
            outbound: p.allowed_outbound_hosts.clone().into(),
            config: api.granted.config,
            kv: api.granted.kv,
        };
        let warm = runtime.warm_slot(
            &component,
            name.clone(),
            Some(stats.clone()),
            p.max_memory_bytes,
            capabilities.clone(),
            Duration::from_millis(p.timeout_ms),
        );
        let reuse = runtime.reuse_pool(
            p.instance_reuse,
            Duration::from_millis(p.instance_idle_ms),
            p.max_concurrency,
        );
        let lanes = runtime.lane_pool(
            p.instance_concurrency,
            p.instance_reuse,
            Duration::from_millis(p.instance_idle_ms),
        );
        let gate = ConcurrencyGate::new(
            p.max_concurrency,
            p.max_queue,
            Duration::from_millis(p.queue_timeout_ms),
        );
        Self {
            name_header: http::HeaderValue::from_str(&name).ok(),
            name,
            namespace: api.namespace,
            api_source: api.source,
            fragment: api.fragment,
            mounts: api.mounts,
            checks: api.checks,
            cors: api.cors,
            digest: api.digest,
            capabilities,
            grant_digest: api.granted.digest,
            component,
            warm,
            reuse,
            lanes,
            gate,
            stats,
            spec,
            retire: Arc::default(),
        }
    }
}

/// A function's API, as the loader worked it out.
pub struct FunctionApi {
    /// A digest of the component's bytes (see [`LoadedFunction::digest`]).
    pub digest: u64,
    /// The prefix of its schema names in the document, unique among the functions.
    pub namespace: String,
    /// Where the description came from: `describe`, `sidecar` or `none`.
    pub source: &'static str,
    /// The OpenAPI fragment, if the function has one.
    pub fragment: Option<Fragment>,
    /// Every route it serves, expanded by its fragment.
    pub mounts: Vec<Mount>,
    /// See [`LoadedFunction::checks`].
    pub checks: Vec<Option<Arc<CallerCheck>>>,
    /// See [`LoadedFunction::cors`].
    pub cors: Option<Arc<CorsPolicy>>,
    /// What its guest is granted.
    pub granted: Granted,
}

/// What a function's guest is granted by its manifest and its tenant,
/// besides its request and outbound hosts.
#[derive(Debug, Clone)]
pub struct Granted {
    /// What it reads through `wasi:config/store`: its `config` and secrets.
    pub config: Arc<GuestConfig>,
    /// The key-value stores it may open (`key_value_stores`) and the
    /// tenant's quotas on them; `None` when it lists none.
    pub kv: Option<Arc<KeyValueGrant>>,
    /// A digest of it all: values, store names, quotas.
    pub digest: [u8; 32],
}

/// Live counters of one function.
#[derive(Debug, Default)]
pub struct FunctionStats {
    /// Requests that passed routing and validation and reached admission.
    pub requests: AtomicU64,
    /// Requests refused for want of a slot: function or host gate full, or no instance free (429/503).
    pub rejected: AtomicU64,
    /// Invocations that sent no response head within `timeout_ms` (504).
    pub timed_out: AtomicU64,
    /// Invocations answered `function_error` (500): the guest trapped, returned an error or sent no response.
    pub trapped: AtomicU64,
    /// Invocations that hit `max_memory_bytes` (500).
    pub out_of_memory: AtomicU64,
    /// Request bodies over `max_body_bytes` (413).
    pub body_too_large: AtomicU64,
    /// Response bodies over `max_response_bytes`, refused before the head or cut while streaming.
    pub response_too_large: AtomicU64,
    /// Its recent guest output and access lines.
    pub logs: LogRing,
    /// Its metric series, found at its first request.
    pub(crate) metrics: std::sync::OnceLock<crate::telemetry::metrics::Handles>,
    /// What observes its instances that serve several requests at once,
    /// made at its first request.
    pub(crate) shared_observer: crate::telemetry::SharedObserver,
}

/// Counters as shown in the catalog.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct StatsView {
    /// Requests holding one of the function's slots now.
    pub in_flight: u64,
    /// Requests waiting in the function's queue now.
    pub queued: u64,
    /// See [`FunctionStats::requests`].
    pub requests: u64,
    /// See [`FunctionStats::rejected`].
    pub rejected: u64,
    /// See [`FunctionStats::timed_out`].
    pub timed_out: u64,
    /// See [`FunctionStats::trapped`].
    pub trapped: u64,
    /// See [`FunctionStats::out_of_memory`].
    pub out_of_memory: u64,
    /// See [`FunctionStats::body_too_large`].
    pub body_too_large: u64,
    /// See [`FunctionStats::response_too_large`].
    pub response_too_large: u64,
}

impl FunctionStats {
    /// Adds one to a counter.
    pub fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// The counters now, with the gate's in-flight and queued counts (0 without a gate).
    pub fn view(&self, gate: Option<&ConcurrencyGate>) -> StatsView {
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        StatsView {
            in_flight: gate.map_or(0, |g| g.in_flight()),
            queued: gate.map_or(0, |g| u64::from(g.queued())),
            requests: g(&self.requests),
            rejected: g(&self.rejected),
            timed_out: g(&self.timed_out),
            trapped: g(&self.trapped),
            out_of_memory: g(&self.out_of_memory),
            body_too_large: g(&self.body_too_large),
            response_too_large: g(&self.response_too_large),
        }
    }
}

impl GuestOutput for FunctionStats {
    fn line(&self, request_id: &str, stream: Stream, text: &str) {
        self.logs.line(request_id, stream, text);
    }
}

/// Everything serving at one moment.
pub struct Snapshot {
    /// Indexed by `RouteClaim::function`.
    pub functions: Vec<Arc<LoadedFunction>>,
    /// Functions that could not be loaded and serve nothing, by name; listed in the catalog.
    pub failed: Vec<FailedSpec>,
    /// The routes of every serving function, conflicts included.
    pub table: RouteTable,
    /// `RouteClaim::tag` → (function, mount).
    pub mount_index: Vec<(usize, usize)>,
    /// The unified OpenAPI document, serialised once at load.
    pub openapi: bytes::Bytes,
    /// Functions whose newer version failed to load while the previous one
    /// keeps serving: name → the newer version's error.
    pub kept: std::collections::BTreeMap<String, String>,
    /// The functions directory's fingerprint as this snapshot read it.
    pub fingerprint: u64,
    /// When this snapshot was made.
    pub loaded_at: SystemTime,
    /// Functions deployed through the admin API (the others come from the
    /// functions directory): name → digest of the serving component (`sha256:…`).
    pub deployed: std::collections::BTreeMap<String, String>,
    /// Schedules whose request would not reach their own function:
    /// `(function, schedule id, why)`, found at load ([`crate::schedule::problems`]).
    pub schedule_problems: Vec<(String, String, String)>,
}

impl Snapshot {
    /// The mount a claim stands for.
    pub fn mount(&self, tag: usize) -> (&Arc<LoadedFunction>, &Mount) {
        let (f, m) = self.mount_index[tag];
        (&self.functions[f], &self.functions[f].mounts[m])
    }

    /// A snapshot that serves nothing: the registry's before the first load.
    pub fn empty() -> Self {
        Self {
            functions: Vec::new(),
            failed: Vec::new(),
            table: RouteTable::default(),
            mount_index: Vec::new(),
            openapi: bytes::Bytes::new(),
            kept: Default::default(),
            fingerprint: 0,
            loaded_at: SystemTime::now(),
            deployed: Default::default(),
            schedule_problems: Vec::new(),
        }
    }
}

/// Counters per function name, kept across reloads.
#[derive(Debug, Default)]
pub struct StatsBook(DashMap<String, Arc<FunctionStats>>);

impl StatsBook {
    /// The counters of a function by name, if it has any yet.
    pub fn get(&self, name: &str) -> Option<Arc<FunctionStats>> {
        self.0.get(name).map(|s| s.clone())
    }

    /// The counters of a function by name, created on first use.
    pub fn stats_for(&self, name: &str) -> Arc<FunctionStats> {
        if let Some(s) = self.0.get(name) {
            return s.clone();
        }
        self.0.entry(name.to_string()).or_default().clone()
    }
}

/// One tenant as it serves: its settings, its snapshot, its counters, its
/// gate and rate limit, its API keys.
pub struct Tenant {
    /// Its id (`default` for the functions directory's).
    pub id: Arc<str>,
    /// Its hosts and quotas, checked.
    pub settings: CheckedSettings,
    /// Whether the operator's `--tenants FILE` defines it (the admin API cannot change it then).
    pub from_file: bool,
    current: ArcSwap<Snapshot>,
    /// Counters of its functions.
    pub stats: StatsBook,
    /// `quotas.max_concurrency`: all its invocations at once.
    pub gate: Option<ConcurrencyGate>,
    /// `quotas.requests_per_second` and `burst`.
    pub rate: Option<RateLimit>,
    /// The API keys its callers present.
    pub keys: ArcSwap<ApiKeys>,
}

impl std::fmt::Debug for Tenant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tenant").field("id", &self.id).finish_non_exhaustive()
    }
}

impl Tenant {
    /// A tenant serving `snapshot`.
    pub fn new(id: &str, settings: CheckedSettings, from_file: bool, snapshot: Arc<Snapshot>, keys: ApiKeys) -> Self {
        let q = &settings.settings.quotas;
        let gate = q
            .max_concurrency
            .map(|n| ConcurrencyGate::new(n, 0, Duration::from_millis(1)));
        let rate = q.requests_per_second.map(|r| RateLimit::new(r, q.burst.unwrap_or(r)));
        Self {
            id: id.into(),
            settings,
            from_file,
            current: ArcSwap::new(snapshot),
            stats: StatsBook::default(),
            gate,
            rate,
            keys: ArcSwap::from_pointee(keys),
        }
    }

    /// The same tenant under new settings: its snapshot, counters and keys carried over.
    pub fn with_settings(&self, settings: CheckedSettings, from_file: bool) -> Self {
        let mut t = Self::new(
            &self.id,
            settings,
            from_file,
            self.snapshot(),
            (**self.keys.load()).clone(),
        );
        t.stats = StatsBook(self.stats.0.clone());
        t
    }

    /// The snapshot serving now.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.current.load_full()
    }

    /// Replaces the snapshot; requests in flight keep the one they began with.
    pub fn swap(&self, next: Snapshot) {
        self.current.store(Arc::new(next));
    }

    /// Whether it is the tenant `default`.
    pub fn is_default(&self) -> bool {
        &*self.id == DEFAULT_TENANT
    }
}

/// Every tenant and the index of their hosts.
pub struct TenantSet {
    default: Arc<Tenant>,
    by_id: BTreeMap<String, Arc<Tenant>>,
    hosts: HostIndex<Arc<Tenant>>,
}

impl TenantSet {
    /// `default` and the others; a host claimed by two tenants is an error.
    pub fn new(default: Arc<Tenant>, others: Vec<Arc<Tenant>>) -> Result<Self, String> {
        let hosts = HostIndex::build(others.iter().map(|t| (&*t.id, t.settings.hosts.as_slice(), t.clone())))?;
        let mut by_id: BTreeMap<String, Arc<Tenant>> = others.into_iter().map(|t| (t.id.to_string(), t)).collect();
        by_id.insert(DEFAULT_TENANT.to_string(), default.clone());
        Ok(Self { default, by_id, hosts })
    }

    /// The tenant serving `host` (lowercase, without port).
    pub fn for_host(&self, host: &str) -> &Arc<Tenant> {
        self.hosts.find(host).unwrap_or(&self.default)
    }

    /// The tenant `id`.
    pub fn get(&self, id: &str) -> Option<&Arc<Tenant>> {
        self.by_id.get(id)
    }

    /// The tenant `default`.
    pub fn default_tenant(&self) -> &Arc<Tenant> {
        &self.default
    }

    /// Every tenant, by id.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<Tenant>> {
        self.by_id.values()
    }

    /// How many tenants there are, `default` included.
    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    /// Never: `default` is always there.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// This set with `tenant` added or replaced (by id); a host it claims
    /// that another tenant serves is an error.
    pub fn with(&self, tenant: Arc<Tenant>) -> Result<Self, String> {
        let mut others: Vec<Arc<Tenant>> = self
            .by_id
            .values()
            .filter(|t| !t.is_default() && t.id != tenant.id)
            .cloned()
            .collect();
        if tenant.is_default() {
            return Self::new(tenant, others);
        }
        others.push(tenant);
        Self::new(self.default.clone(), others)
    }

    /// This set without the tenant `id`.
    pub fn without(&self, id: &str) -> Self {
        let others = self
            .by_id
            .values()
            .filter(|t| !t.is_default() && &*t.id != id)
            .cloned()
            .collect();
        Self::new(self.default.clone(), others).expect("removing a tenant frees hosts only")
    }
}

/// The tenants and their snapshots.
pub struct Registry {
    tenants: ArcSwap<TenantSet>,
}

impl Default for Registry {
    fn default() -> Self {
        let default = Arc::new(Tenant::new(
            DEFAULT_TENANT,
            TenantSettings::default()
                .check(DEFAULT_TENANT)
                .expect("the default settings are valid"),
            false,
            Arc::new(Snapshot::empty()),
            ApiKeys::default(),
        ));
        Self {
            tenants: ArcSwap::from_pointee(TenantSet::new(default, Vec::new()).expect("one tenant")),
        }
    }
}

impl Registry {
    /// The tenant `default`'s snapshot serving now.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.tenants.load().default.snapshot()
    }

    /// Replaces the tenant `default`'s snapshot.
    pub fn swap(&self, next: Snapshot) {
        self.tenants.load().default.swap(next);
    }

    /// The tenants now.
    pub fn tenants(&self) -> arc_swap::Guard<Arc<TenantSet>> {
        self.tenants.load()
    }

    /// The tenant `id`, if it exists.
    pub fn tenant(&self, id: &str) -> Option<Arc<Tenant>> {
        self.tenants.load().get(id).cloned()
    }

    /// Replaces the set of tenants.
    pub fn set_tenants(&self, next: TenantSet) {
        self.tenants.store(Arc::new(next));
    }

    /// The counters of a function of the tenant `default`.
    pub fn stats_for(&self, name: &str) -> Arc<FunctionStats> {
        self.tenants.load().default.stats.stats_for(name)
    }
}
