//! The WebAssembly runtime of wasmfn, and the only crate that names
//! wasmtime: engines for the process (one per way of initialising linear
//! memory), components compiled and pre-instantiated at load, and an
//! instance for every request (made ahead when warm), with its limits
//! enforced inside the sandbox.
//!
//! ```no_run
//! use wasmfn_runtime::{Runtime, RuntimeConfig};
//!
//! let runtime = Runtime::new(RuntimeConfig::default())?;
//! let component = runtime.compile_file("functions/hello/hello.wasm".as_ref())?;
//! let described = runtime.describe(&component, "hello", std::time::Duration::from_secs(2), 64 << 20)?;
//! println!("{}", described.unwrap_or_default());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! - this module: [`Runtime`] and [`RuntimeConfig`] (pooling, memory
//!   images, compile cache, the epoch ticker, tenants' CPU shares).
//! - `compile`: the engines (by memory image, and one for `wasi:http@0.3`)
//!   and their linkers; [`CompiledComponent`], [`CompileError`],
//!   [`HttpInterface`].
//! - `invoke`: [`Runtime::invoke`], one request through one instance:
//!   deadline, CPU share, memory limiter, [`InvokeError`] by the type of
//!   what failed, never by its text.
//! - `fair`: the run slots every running guest's polls pass while two
//!   tenants or more are active, shared fairly between tenants, then
//!   between a tenant's functions; the threads busy tenants' guests are
//!   polled on meanwhile, off tokio's workers.
//! - `whole`: the `wasmfn:function/handler` export, requests taken whole.
//! - `warm`: [`WarmSlot`], an instance made ahead for a function's next request.
//! - `share`: [`Load`], invocations running per tenant and function; a
//!   heavy guest's pause per tick beside lighter neighbours.
//! - `reuse`: [`ReusePool`], instances that serve several requests in
//!   sequence (`instance_reuse`), and what they may not keep.
//! - `lanes`: [`LanePool`], `wasi:http@0.3` instances that serve several
//!   requests at once (`instance_concurrency`).
//! - `describe`: the `wasmfn:function/metadata` export ([`DescribeError`]).
//! - `outbound`: outgoing HTTP, checked against the function's rules.
//! - `state`, `stdio`: what each store holds; guest output as log lines.

mod compile;
mod describe;
mod fair;
mod interrupt;
mod invoke;
mod keyvalue;
mod lanes;
mod observe;
mod outbound;
mod reuse;
mod share;
mod state;
mod stdio;
mod warm;
mod whole;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use wasmtime::EngineWeak;

pub(crate) use compile::Handler;
use compile::Tier;
pub use compile::{CompileError, CompiledComponent, HttpInterface, MemoryImage, memory_image_bytes};
pub use describe::{DescribeError, METADATA_INTERFACE};
pub use interrupt::Interrupt;
pub use invoke::{GuestBody, InvokeError, InvokeRequest, RequestBodyError};
pub use keyvalue::KeyValueGrant;
pub use lanes::{LanePool, LaneStats};
pub use observe::{Exit, GuestOutput, InstanceKind, Invocation, Observer, OutboundDone, OutboundOutcome, Stream};
pub use reuse::{ReuseHost, ReusePool, ReuseStats};
pub use share::Load;
pub use state::{Capabilities, GuestConfig, InstanceState, InvokeTags, TagCell};
pub use warm::{WarmBudget, WarmSlot, WarmStats};
pub use whole::HANDLER_INTERFACE;

/// `$XDG_CACHE_HOME/wasmfn/compiled` (or `~/.cache/wasmfn/compiled`): the
/// default compile cache, beside the toolchains folder and never around
/// it (wasmtime's cache cleanup deletes what it does not know).
pub fn default_cache_dir() -> Option<std::path::PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| std::path::PathBuf::from(h).join(".cache")))?;
    Some(base.join("wasmfn").join("compiled"))
}

/// How often the epoch ticks: the granularity of timeouts, and how often a
/// guest that computes without pause yields to other requests.
pub const EPOCH_TICK: Duration = Duration::from_millis(1);

/// Process-wide runtime settings.
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    /// Instances that may exist at once (the pooling allocator's size).
    pub max_instances: u32,
    /// The largest `max_memory_bytes` any function may ask for.
    pub memory_ceiling: u64,
    /// Use the pooling allocator when the machine allows it.
    pub pooling: bool,
    /// Where compiled components are cached on disk (`None`: no cache).
    pub cache_dir: Option<std::path::PathBuf>,
    /// Bytes at the start of each pooled linear memory that are reset in
    /// place between instances instead of being returned to the kernel
    /// (`None`: as [`Runtime::keep_resident_for`] chooses).
    pub keep_resident: Option<u64>,
    /// Map linear-memory initial images copy-on-write (up to
    /// `cow_max_image_bytes`); `false` copies every image.
    pub memory_cow: bool,
    /// Components whose memory images are larger than this are copied into
    /// each instance's memory instead of mapped copy-on-write (where the
    /// kernel finds dirty pages, see [`pagemap_scan_supported`]).
    pub cow_max_image_bytes: u64,
    /// Warm instances (made ahead for a function's next request) that may
    /// wait at once, host-wide; 0 makes every instance on its request.
    pub warm_instances: u32,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        Self {
            max_instances: 256,
            memory_ceiling: 1 << 30,
            pooling: true,
            cache_dir: None,
            keep_resident: None,
            memory_cow: true,
            cow_max_image_bytes: DEFAULT_COW_MAX_IMAGE_BYTES,
            warm_instances: 16,
        }
    }
}

/// Whether the kernel has the `PAGEMAP_SCAN` ioctl (Linux 6.7), with which
/// the pooling allocator resets only the pages an instance dirtied.
pub fn pagemap_scan_supported() -> bool {
    let Ok(release) = std::fs::read_to_string("/proc/sys/kernel/osrelease") else {
        return false;
    };
    let mut parts = release.trim().split(|c: char| !c.is_ascii_digit());
    let major: u32 = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    let minor: u32 = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    (major, minor) >= (6, 7)
}

/// Kept resident per memory when dirty pages can be found cheaply: enough
/// for a Rust guest's stack, data and first heap pages.
const KEEP_RESIDENT_SCAN: u64 = 16 << 20;
/// Kept resident otherwise: every byte of it is reset with `memset`.
const KEEP_RESIDENT_MEMSET: u64 = 64 << 10;

/// Memory images up to this size are mapped copy-on-write by default;
/// larger ones (an interpreter and its initialised heap) are copied.
///
/// An instance's writes to a copy-on-write image fault page by page, and a
/// page that was mapped before it is written costs a TLB shootdown on every
/// core the process runs on; the pooling allocator keeps written pages
/// resident only while the dirty pages form at most 32 runs, past which it
/// returns the rest to the kernel and the next instance faults them again.
/// An interpreter writes all over its heap, so each request paid ~500 such
/// faults (Python); copying the image at instantiation costs a `memcpy`
/// and no faults. Measured: `docs/performance.md`.
pub const DEFAULT_COW_MAX_IMAGE_BYTES: u64 = 1 << 20;

/// The engines, their linkers and the epoch ticker.
pub struct Runtime {
    /// For memory images mapped copy-on-write (or for all images when no
    /// image is ever copied, or none is ever mapped).
    first: Tier,
    /// For memory images larger than `cow_max_image_bytes`: made when the
    /// first such component loads (it reserves a pool of its own).
    copied: Mutex<Option<Tier>>,
    /// Whether `copied` is used at all.
    split: bool,
    /// For `wasi:http@0.3` components: an engine with the component model's
    /// concurrency (async exports, streams, futures), made when the first
    /// such component loads. The other engines run without it, so a 0.2
    /// component's calls take wasmtime's plain async path.
    p3: Mutex<Option<Tier>>,
    config: RuntimeConfig,
    cache: Option<wasmtime::Cache>,
    /// The engines the ticker advances.
    ticking: Arc<Mutex<Vec<EngineWeak>>>,
    ticker_stop: Arc<AtomicBool>,
    /// Ticks of the ticker so far: an epoch that advanced without one was
    /// a kick of the fair scheduler.
    epoch_ticks: Arc<AtomicU64>,
    /// Set when a draining host stops everything still running.
    interrupt: Arc<Interrupt>,
    /// The run slots every running guest's polls pass.
    fair: Arc<fair::Scheduler>,
    /// Each tenant's place at `fair` and its functions' loads, by name
    /// (kept for the process's life: one small entry per tenant and
    /// function name ever invoked).
    tenants: dashmap::DashMap<Arc<str>, Arc<TenantShare>>,
    warm: Arc<WarmBudget>,
    reuse: Arc<ReuseHost>,
}

/// One tenant's part of the CPU: its place at the fair scheduler, and how
/// many of its invocations run (and are heavy), in all and by function.
struct TenantShare {
    fair: Arc<fair::Tenant>,
    load: Arc<Load>,
    functions: dashmap::DashMap<Arc<str>, Arc<FunctionShare>>,
}

/// One function of a tenant: its turn among the tenant's functions, its load.
struct FunctionShare {
    id: u64,
    load: Arc<Load>,
}

impl Runtime {
    /// Creates the first engine (pooling if possible), its linker and the
    /// epoch ticker; the engine for copied memory images is made when the
    /// first component that needs it loads.
    pub fn new(config: RuntimeConfig) -> anyhow::Result<Self> {
        let cache = config.cache_dir.as_ref().and_then(|dir| {
            let mut cc = wasmtime::CacheConfig::new();
            cc.with_directory(dir);
            match wasmtime::Cache::new(cc) {
                Ok(c) => Some(c),
                Err(e) => {
                    tracing::warn!(dir = %dir.display(), error = %format!("{e:#}"), "compile cache unavailable; compiling every time");
                    None
                }
            }
        });
        let split = config.memory_cow && pagemap_scan_supported();
        let first = Tier::new(&config, config.memory_cow, cache.as_ref(), false)?;
        let ticking = Arc::new(Mutex::new(vec![first.engine.weak()]));
        let ticker_stop = Arc::new(AtomicBool::new(false));
        let epoch_ticks = Arc::new(AtomicU64::new(0));
        let fair = fair::Scheduler::new(
            {
                let ticking = ticking.clone();
                move || {
                    for engine in ticking
                        .lock()
                        .expect("epoch engines")
                        .iter()
                        .filter_map(EngineWeak::upgrade)
                    {
                        engine.increment_epoch();
                    }
                }
            },
            epoch_ticks.clone(),
        );
        {
            let ticking = ticking.clone();
            let stop = ticker_stop.clone();
            let ticks = epoch_ticks.clone();
            let fair = Arc::downgrade(&fair);
            std::thread::Builder::new().name("wasmfn-epoch".into()).spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(EPOCH_TICK);
                    // Counted first: a guest that sees the new epoch sees the tick.
                    ticks.fetch_add(1, Ordering::Release);
                    let engines = ticking.lock().expect("epoch engines");
                    for engine in engines.iter().filter_map(EngineWeak::upgrade) {
                        engine.increment_epoch();
                    }
                    drop(engines);
                    if let Some(fair) = fair.upgrade() {
                        fair.on_tick();
                    }
                }
            })?;
        }
        Ok(Self {
            first,
            copied: Mutex::new(None),
            split,
            p3: Mutex::new(None),
            cache,
            ticking,
            ticker_stop,
            epoch_ticks,
            interrupt: Arc::default(),
            fair,
            tenants: dashmap::DashMap::new(),
            warm: WarmBudget::new(config.warm_instances as usize),
            reuse: Arc::default(),
            config,
        })
    }

    /// The keep-resident size `config` asks for, or the automatic one.
    pub fn keep_resident_for(config: &RuntimeConfig) -> u64 {
        let auto = if pagemap_scan_supported() {
            KEEP_RESIDENT_SCAN
        } else {
            KEEP_RESIDENT_MEMSET
        };
        config.keep_resident.unwrap_or(auto).min(config.memory_ceiling)
    }

    /// Stops every invocation still running, now and from now on: each
    /// ends with [`InvokeError::Interrupted`]. For a host whose drain ran
    /// out of time.
    pub fn interrupt_all(&self) {
        tracing::warn!("interrupting every invocation still running");
        self.interrupt.trigger();
    }

    /// Whether the pooling allocator is in use.
    pub fn pooling(&self) -> bool {
        self.first.pooling
    }

    /// Memory images up to this many bytes are mapped copy-on-write, larger
    /// ones copied; `None` when every image is treated alike (CoW turned
    /// off, or a kernel without `PAGEMAP_SCAN`, where only CoW was measured).
    pub fn cow_max_image_bytes(&self) -> Option<u64> {
        self.split.then_some(self.config.cow_max_image_bytes)
    }

    /// What an invocation of `function` of `tenant` counts in.
    fn shares(&self, tenant: &Arc<str>, function: &Arc<str>) -> (Arc<TenantShare>, Arc<FunctionShare>) {
        let tenant = match self.tenants.get(tenant) {
            Some(t) => t.clone(),
            None => self
                .tenants
                .entry(tenant.clone())
                .or_insert_with(|| {
                    Arc::new(TenantShare {
                        fair: self.fair.tenant(),
                        load: Arc::default(),
                        functions: dashmap::DashMap::new(),
                    })
                })
                .clone(),
        };
        let function = match tenant.functions.get(function) {
            Some(f) => f.clone(),
            None => tenant
                .functions
                .entry(function.clone())
                .or_insert_with(|| {
                    Arc::new(FunctionShare {
                        id: self.fair.id(),
                        load: Arc::default(),
                    })
                })
                .clone(),
        };
        (tenant, function)
    }

    /// Compile cache hits and misses since start, when the cache is on.
    pub fn cache_stats(&self) -> Option<(usize, usize)> {
        self.cache.as_ref().map(|c| (c.cache_hits(), c.cache_misses()))
    }

    /// A slot for one function's warm instance, made with its limits.
    pub fn warm_slot(
        &self,
        component: &CompiledComponent,
        function: Arc<str>,
        output: Option<Arc<dyn GuestOutput>>,
        max_memory_bytes: u64,
        capabilities: Capabilities,
        timeout: Duration,
    ) -> Arc<WarmSlot> {
        WarmSlot::new(
            component.pre.engine().clone(),
            self.warm.clone(),
            component,
            (function, output),
            max_memory_bytes,
            capabilities,
            timeout,
        )
    }

    /// The pool of a function version whose instances serve up to
    /// `max_uses` requests each (`instance_reuse`), idle at most
    /// `idle_for` (`instance_idle_ms`); `None` for 1, an instance per
    /// request. At most `max_concurrency` instances wait idle (all the
    /// pool's instances when 0).
    pub fn reuse_pool(&self, max_uses: u32, idle_for: Duration, max_concurrency: u32) -> Option<Arc<ReusePool>> {
        if max_uses <= 1 {
            return None;
        }
        let cap = match max_concurrency {
            0 => self.config.max_instances,
            n => n.min(self.config.max_instances),
        };
        Some(ReusePool::new(self.reuse.clone(), max_uses, idle_for, cap as usize))
    }

    /// The lanes of a function version whose `wasi:http@0.3` instances
    /// serve up to `per_instance` requests at once (`instance_concurrency`)
    /// and `max_uses` in all (`instance_reuse`, at least `per_instance`),
    /// each ending after `idle_for` without a request; `None` for 1.
    pub fn lane_pool(&self, per_instance: u32, max_uses: u32, idle_for: Duration) -> Option<Arc<LanePool>> {
        (per_instance > 1).then(|| LanePool::new(per_instance, max_uses, idle_for))
    }

    /// How instances have been reused since start.
    pub fn reuse_stats(&self) -> ReuseStats {
        self.reuse.stats()
    }

    /// How warm instances have been used since start.
    pub fn warm_stats(&self) -> WarmStats {
        self.warm.stats()
    }

    /// The settings this runtime was made with.
    pub fn config(&self) -> &RuntimeConfig {
        &self.config
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        self.ticker_stop.store(true, Ordering::Relaxed);
    }
}
