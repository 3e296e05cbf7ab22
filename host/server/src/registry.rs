//! The live set of functions: an immutable [`Snapshot`] swapped atomically
//! on load and reload, read without locks on every request, and counters
//! per function that outlive reloads.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use dashmap::DashMap;
use serde::Serialize;

use crate::admission::ConcurrencyGate;
use wasmfn_manifest::OutboundRule;
use wasmfn_manifest::discovery::{FailedSpec, FunctionSpec};
use wasmfn_openapi::{Fragment, Mount};
use wasmfn_routing::RouteTable;
use wasmfn_runtime::{CompiledComponent, Interrupt, Runtime, WarmSlot};

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
    /// The compiled component, shared with functions whose bytes and limits are the same.
    pub component: CompiledComponent,
    /// A digest of the component's bytes: an unchanged function is reused
    /// as it is on reload.
    pub digest: u64,
    /// Its slots and queue, from `max_concurrency`, `max_queue` and `queue_timeout_ms`.
    pub gate: ConcurrencyGate,
    /// The hosts it may call out to (`allowed_outbound_hosts`).
    pub outbound: Arc<[OutboundRule]>,
    /// Its counters, kept across reloads by the [`Registry`].
    pub stats: Arc<FunctionStats>,
    /// The instance made ahead for its next request.
    pub warm: Arc<WarmSlot>,
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
        let outbound: Arc<[OutboundRule]> = p.allowed_outbound_hosts.clone().into();
        let warm = runtime.warm_slot(
            &component,
            name.clone(),
            p.max_memory_bytes,
            outbound.clone(),
            Duration::from_millis(p.timeout_ms),
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
            digest: api.digest,
            outbound,
            component,
            warm,
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
        }
    }
}

/// The current snapshot and the counters.
pub struct Registry {
    current: ArcSwap<Snapshot>,
    stats: DashMap<String, Arc<FunctionStats>>,
}

impl Default for Registry {
    fn default() -> Self {
        Self {
            current: ArcSwap::from_pointee(Snapshot::empty()),
            stats: DashMap::new(),
        }
    }
}

impl Registry {
    /// The snapshot serving now.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.current.load_full()
    }

    /// Replaces the snapshot; requests in flight keep the one they began with.
    pub fn swap(&self, next: Snapshot) {
        self.current.store(Arc::new(next));
    }

    /// The counters of a function by name, created on first use and kept
    /// across reloads.
    pub fn stats_for(&self, name: &str) -> Arc<FunctionStats> {
        self.stats.entry(name.to_string()).or_default().clone()
    }
}
