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
//! - this module: [`Runtime`] and [`RuntimeConfig`] (engines, pooling,
//!   memory images, compile cache), [`CompiledComponent`], [`CompileError`].
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

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use wasmtime::component::{Component, ComponentExportIndex, InstancePre, Linker};
use wasmtime::{Config, Engine, EngineWeak, InstanceAllocationStrategy, PoolingAllocationConfig};
use wasmtime_wasi_http::p2::bindings::ProxyIndices;
use wasmtime_wasi_http::p3::bindings::ServiceIndices;

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

/// A component that failed to load, with a message for the catalog.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CompileError {
    /// The component file could not be read.
    #[error("cannot read component `{path}`: {source}")]
    Read {
        /// The component's path, as shown in messages.
        path: String,
        /// Why reading failed.
        #[source]
        source: std::io::Error,
    },
    /// The bytes are not a component: no `\0asm` header, or a core module.
    #[error("`{path}` is not a WebAssembly component: {reason}")]
    NotAComponent {
        /// The component's path, as shown in messages.
        path: String,
        /// What the bytes are instead, and how to make a component of them.
        reason: &'static str,
    },
    /// wasmtime refused to compile the component, or its engine could not be made.
    #[error("cannot compile `{path}`: {message}")]
    Compile {
        /// The component's path, as shown in messages.
        path: String,
        /// wasmtime's error, with its causes.
        message: String,
    },
    /// The component imports something the host does not provide, or with another type.
    #[error("cannot link `{path}`: {message}")]
    Link {
        /// The component's path, as shown in messages.
        path: String,
        /// wasmtime's error, with its causes.
        message: String,
    },
    /// The component exports neither `wasi:http/incoming-handler@0.2`
    /// nor `wasi:http/handler@0.3`.
    #[error("`{path}` does not export `wasi:http/incoming-handler@0.2.x` (or `wasi:http/handler@0.3.0`): {message}")]
    NoHandler {
        /// The component's path, as shown in messages.
        path: String,
        /// wasmtime's error, with its causes.
        message: String,
    },
    /// The component exports `wasmfn:function/handler`, but not with the type `wit/wasmfn.wit` declares.
    #[error("`{path}`: {message}")]
    BadHandler {
        /// The component's path, as shown in messages.
        path: String,
        /// What is wrong with the export.
        message: String,
    },
}

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

/// An engine and its linker, for one way of initialising linear memory.
#[derive(Clone)]
struct Tier {
    engine: Engine,
    linker: Linker<InstanceState>,
    pooling: bool,
    cow: bool,
}

/// How a component's linear memories start, and from how large an image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryImage {
    /// Bytes its core modules initialise from active data segments.
    pub bytes: u64,
    /// Mapped copy-on-write (`true`) or copied into each instance.
    pub copy_on_write: bool,
}

impl MemoryImage {
    /// How the catalog names the way the image is initialised.
    pub fn init_name(&self) -> &'static str {
        if self.copy_on_write { "copy-on-write" } else { "copied" }
    }
}

/// Which `wasi:http` a component serves requests through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum HttpInterface {
    /// `wasi:http/incoming-handler@0.2.x` (WASIp2): one instance serves one
    /// request at a time.
    P2,
    /// `wasi:http/handler@0.3.0` (WASIp3), an async `handle`: experimental,
    /// as wasmtime 48 implements it.
    P3,
}

impl HttpInterface {
    /// The export, as the catalog names it.
    pub fn export_name(&self) -> &'static str {
        match self {
            HttpInterface::P2 => "wasi:http/incoming-handler",
            HttpInterface::P3 => "wasi:http/handler",
        }
    }

    /// The `wasi:http` version: `0.2` (any 0.2.x) or `0.3.0`.
    pub fn version(&self) -> &'static str {
        match self {
            HttpInterface::P2 => "0.2",
            HttpInterface::P3 => "0.3.0",
        }
    }

    /// Whether wasmtime marks its support experimental.
    pub fn experimental(&self) -> bool {
        matches!(self, HttpInterface::P3)
    }
}

/// Where a component's `wasi:http` handler is among its exports.
#[derive(Clone)]
enum Handler {
    P2(ProxyIndices),
    P3(ServiceIndices),
}

/// A compiled, pre-instantiated component, ready for requests.
#[derive(Clone)]
pub struct CompiledComponent {
    pre: InstancePre<InstanceState>,
    /// Its `wasi:http` handler.
    handler: Handler,
    /// `wasmfn:function/handler.handle`, when it exports it.
    whole: Option<ComponentExportIndex>,
    image: MemoryImage,
}

impl CompiledComponent {
    /// Its memory image and how instances get it.
    pub fn memory_image(&self) -> MemoryImage {
        self.image
    }

    /// Which `wasi:http` it serves requests through.
    pub fn http_interface(&self) -> HttpInterface {
        match self.handler {
            Handler::P2(_) => HttpInterface::P2,
            Handler::P3(_) => HttpInterface::P3,
        }
    }

    /// Whether requests are handled whole (`wasmfn:function/handler`).
    pub fn handles_whole(&self) -> bool {
        self.whole.is_some()
    }

    /// The same component served through `wasi:http/incoming-handler`
    /// even if it handles requests whole: for comparing the two paths.
    pub fn through_wasi_http(&self) -> Self {
        Self {
            whole: None,
            ..self.clone()
        }
    }
}

fn engine_config(pooling: Option<&RuntimeConfig>, cow: bool, cache: Option<&wasmtime::Cache>, p3: bool) -> Config {
    let mut config = Config::new();
    // Compiled code is cached on disk, keyed by the component's bytes, the
    // engine's settings and wasmtime's version; an entry that does not
    // deserialise is compiled again and replaced.
    config.cache(cache.cloned());
    config.wasm_component_model(true);
    if p3 {
        // `wasi:http@0.3` components: async exports, streams and futures.
        config.wasm_component_model_async(true);
    } else {
        // Without it, every call into a component goes through the
        // concurrent event loop, which a 0.2 component does not need.
        config.concurrency_support(false);
    }
    config.epoch_interruption(true);
    config.cranelift_opt_level(wasmtime::OptLevel::Speed);
    config.memory_init_cow(cow);
    if let Some(rc) = pooling {
        // Requests' instances, and the warm ones waiting for requests.
        let n = rc.max_instances.saturating_add(rc.warm_instances);
        let keep = usize::try_from(Runtime::keep_resident_for(rc)).unwrap_or(usize::MAX);
        let mut pool = PoolingAllocationConfig::default();
        pool.total_component_instances(n)
            .total_core_instances(n.saturating_mul(16))
            .total_memories(n.saturating_mul(4))
            .total_tables(n.saturating_mul(4))
            .total_stacks(n)
            .max_core_instances_per_component(64)
            .max_memories_per_component(8)
            .max_tables_per_component(8)
            .max_core_instance_size(8 << 20)
            .max_component_instance_size(8 << 20)
            .max_memory_size(usize::try_from(rc.memory_ceiling).unwrap_or(usize::MAX))
            .linear_memory_keep_resident(keep)
            .table_keep_resident(keep.min(1 << 20))
            .pagemap_scan(wasmtime::Enabled::Auto);
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    }
    config
}

fn wasm_err(e: wasmtime::Error) -> anyhow::Error {
    anyhow::anyhow!("{e:#}")
}

impl Tier {
    /// An engine (pooling if `config` asks and the machine allows) that maps
    /// memory images copy-on-write or copies them, and its linker; with
    /// `p3`, for `wasi:http@0.3` components.
    fn new(config: &RuntimeConfig, cow: bool, cache: Option<&wasmtime::Cache>, p3: bool) -> anyhow::Result<Self> {
        let on_demand = || Engine::new(&engine_config(None, cow, cache, p3)).map_err(wasm_err);
        let (engine, pooling) = if config.pooling {
            match Engine::new(&engine_config(Some(config), cow, cache, p3)) {
                Ok(e) => (e, true),
                Err(e) => {
                    tracing::warn!(error = %format!("{e:#}"), "pooling allocator unavailable; using on-demand allocation");
                    (on_demand()?, false)
                }
            }
        } else {
            (on_demand()?, false)
        };
        let mut linker = Linker::new(&engine);
        // Components built from Rust std, Python or JavaScript import
        // wasi:cli and wasi:filesystem too; they get them, empty.
        wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(wasm_err)?;
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker).map_err(wasm_err)?;
        if p3 {
            // The same for WASIp3, for components that serve
            // `wasi:http@0.3`; outgoing requests go through the same hooks
            // (the function's outbound rules) on both.
            wasmtime_wasi::p3::add_to_linker(&mut linker).map_err(wasm_err)?;
            wasmtime_wasi_http::p3::add_to_linker(&mut linker).map_err(wasm_err)?;
        }
        // `wasi:config/store`: the function's `config` and listed secrets.
        wasmtime_wasi_config::add_to_linker(&mut linker, |s: &mut InstanceState| {
            wasmtime_wasi_config::WasiConfig::from(&s.config.0)
        })
        .map_err(wasm_err)?;
        // `wasi:keyvalue`: the stores of the function's `key_value_stores`.
        keyvalue::add_to_linker(&mut linker).map_err(wasm_err)?;
        Ok(Self {
            engine,
            linker,
            pooling,
            cow,
        })
    }
}

/// Whether a component exports `wasi:http/handler@0.3.x` (looked for at
/// any depth: a nested component's export only puts the component on the
/// engine that could serve it, where it is served as 0.2 all the same).
fn exports_wasi_http_p3(bytes: &[u8]) -> bool {
    wasmparser::Parser::new(0)
        .parse_all(bytes)
        .any(|payload| match payload {
            Ok(wasmparser::Payload::ComponentExportSection(reader)) => reader
                .into_iter()
                .any(|e| e.is_ok_and(|e| e.name.name.starts_with("wasi:http/handler@0.3."))),
            _ => false,
        })
}

/// Bytes of linear memory that `bytes`' core modules (nested at any depth)
/// initialise from active data segments: the size of the memory images
/// instances start from. 0 for what does not parse (compiling it reports
/// why).
pub fn memory_image_bytes(bytes: &[u8]) -> u64 {
    let mut total = 0u64;
    for payload in wasmparser::Parser::new(0).parse_all(bytes) {
        let Ok(payload) = payload else { return 0 };
        if let wasmparser::Payload::DataSection(reader) = payload {
            for data in reader {
                let Ok(data) = data else { return 0 };
                if matches!(data.kind, wasmparser::DataKind::Active { .. }) {
                    total = total.saturating_add(data.data.len() as u64);
                }
            }
        }
    }
    total
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

    /// The tier for a component whose memory images have `image_bytes`,
    /// or for a `wasi:http@0.3` component (`p3`; its images mapped as the
    /// host maps small ones).
    fn tier_for(&self, image_bytes: u64, p3: bool) -> Result<Tier, String> {
        let (slot, cow, what) = if p3 {
            (&self.p3, self.config.memory_cow, "wasi:http@0.3 components")
        } else if !self.split || image_bytes <= self.config.cow_max_image_bytes {
            return Ok(self.first.clone());
        } else {
            (&self.copied, false, "copied memory images")
        };
        let mut made = slot.lock().expect("tier");
        if let Some(tier) = made.as_ref() {
            return Ok(tier.clone());
        }
        let tier = Tier::new(&self.config, cow, self.cache.as_ref(), p3)
            .map_err(|e| format!("cannot create the engine for {what}: {e:#}"))?;
        self.ticking.lock().expect("epoch engines").push(tier.engine.weak());
        *made = Some(tier.clone());
        Ok(tier)
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

    /// Reads, checks, compiles and pre-instantiates a component file.
    pub fn compile_file(&self, path: &Path) -> Result<CompiledComponent, CompileError> {
        let shown = path.display().to_string();
        let bytes = std::fs::read(path).map_err(|source| CompileError::Read {
            path: shown.clone(),
            source,
        })?;
        self.compile(&shown, &bytes)
    }

    /// Compiles component bytes; `path` is only used in messages.
    pub fn compile(&self, path: &str, bytes: &[u8]) -> Result<CompiledComponent, CompileError> {
        let not = |reason| CompileError::NotAComponent {
            path: path.to_string(),
            reason,
        };
        if bytes.len() < 8 || &bytes[..4] != b"\0asm" {
            return Err(not("it does not start with the `\\0asm` header"));
        }
        if bytes[4..8] == [1, 0, 0, 0] {
            return Err(not(
                "it is a core module; build it for `wasm32-wasip2` or wrap it with `wasm-tools component new`",
            ));
        }
        let image_bytes = memory_image_bytes(bytes);
        let tier = self
            .tier_for(image_bytes, exports_wasi_http_p3(bytes))
            .map_err(|message| CompileError::Compile {
                path: path.to_string(),
                message,
            })?;
        let component = Component::new(&tier.engine, bytes).map_err(|e| CompileError::Compile {
            path: path.to_string(),
            message: format!("{e:#}"),
        })?;
        let pre = tier
            .linker
            .instantiate_pre(&component)
            .map_err(|e| CompileError::Link {
                path: path.to_string(),
                message: format!("{e:#}"),
            })?;
        // A component that exports the 0.3 handler is served through it
        // (as `wasmtime serve` does), even if it also exports the 0.2 one.
        let handler = match ServiceIndices::new(&pre) {
            Ok(service) => Handler::P3(service),
            Err(_) => Handler::P2(ProxyIndices::new(&pre).map_err(|e| CompileError::NoHandler {
                path: path.to_string(),
                message: format!("{e:#}"),
            })?),
        };
        let whole = whole::find(&component).map_err(|message| CompileError::BadHandler {
            path: path.to_string(),
            message,
        })?;
        let image = MemoryImage {
            bytes: image_bytes,
            copy_on_write: tier.cow,
        };
        Ok(CompiledComponent {
            pre,
            handler,
            whole,
            image,
        })
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        self.ticker_stop.store(true, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_0_3_handler_is_found_among_a_components_exports() {
        let with = |name: &str| {
            wat::parse_str(format!(r#"(component (instance $i) (export "{name}" (instance $i)))"#)).unwrap()
        };
        assert!(exports_wasi_http_p3(&with("wasi:http/handler@0.3.0")));
        assert!(exports_wasi_http_p3(&with("wasi:http/handler@0.3.1")));
        assert!(!exports_wasi_http_p3(&with("wasi:http/incoming-handler@0.2.12")));
        assert!(!exports_wasi_http_p3(&with("wasi:http/handler@0.30.0")));
        assert!(!exports_wasi_http_p3(b"\0asm\x0d\0\x01\0garbage"));
    }

    #[test]
    fn memory_images_count_active_data_of_every_core_module() {
        let component = wat::parse_str(
            r#"(component
                (core module $a
                    (memory 1)
                    (data (i32.const 0) "abc")
                    (data "passive, not part of the image"))
                (component $inner
                    (core module $b (memory 1) (data (i32.const 8) "defgh"))))"#,
        )
        .unwrap();
        assert_eq!(memory_image_bytes(&component), 8);
        assert_eq!(memory_image_bytes(&wat::parse_str("(component)").unwrap()), 0);
        assert_eq!(
            memory_image_bytes(b"\0asm\x0d\0\x01\0garbage"),
            0,
            "what does not parse"
        );
    }
}
