//! Per-request store state: the WASI and wasi:http contexts, the resource
//! table, the memory limiter and the outbound policy.

use std::sync::{Arc, Mutex};

use wasmtime::ResourceLimiter;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use super::keyvalue::KeyValueGrant;
use super::observe::{GuestOutput, Observer, Stream};
use super::outbound::OutboundHooks;
use super::stdio::GuestLog;

/// What lives in each request's `Store`.
pub struct InstanceState {
    pub(crate) wasi: WasiCtx,
    pub(crate) http: WasiHttpCtx,
    pub(crate) table: ResourceTable,
    pub(crate) limiter: MemoryLimiter,
    pub(crate) hooks: OutboundHooks,
    /// Who the instance serves, for its log lines.
    pub(crate) tags: Arc<TagCell>,
    /// Its stdout and stderr, each one buffer whatever the handles.
    output: [GuestLog; 2],
    /// What it reads through `wasi:config/store`.
    pub(crate) config: Arc<GuestConfig>,
    /// The stores it may open through `wasi:keyvalue`.
    pub(crate) kv: Option<Arc<KeyValueGrant>>,
}

/// What a function may reach besides its request: the hosts it may call,
/// the values it reads through `wasi:config/store` and the stores it
/// opens through `wasi:keyvalue`.
#[derive(Clone, Default)]
pub struct Capabilities {
    /// Destinations the guest may send HTTP requests to; empty denies every one.
    pub outbound: Arc<[wasmfn_manifest::OutboundRule]>,
    /// Its configuration and the secrets it may read.
    pub config: Arc<GuestConfig>,
    /// Its key-value stores (`None`: it may open none).
    pub kv: Option<Arc<KeyValueGrant>>,
}

/// The keys and values a guest reads through `wasi:config/store`
/// (`get`, `get-all`): its `config` and the values of its listed secrets.
#[derive(Default)]
pub struct GuestConfig(pub(crate) wasmtime_wasi_config::WasiConfigVariables);

/// Shows no values: some are secrets.
impl std::fmt::Debug for GuestConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("GuestConfig(..)")
    }
}

impl<K: Into<String>, V: Into<String>> FromIterator<(K, V)> for GuestConfig {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        Self(iter.into_iter().map(|(k, v)| (k.into(), v.into())).collect())
    }
}

impl InstanceState {
    /// A fresh state: no environment, no arguments, no files, no sockets;
    /// stdout and stderr go to the log tagged by `tags`.
    pub(crate) fn new(tags: Arc<TagCell>, max_memory_bytes: u64, capabilities: Capabilities) -> Self {
        let stdout = GuestLog::new(tags.clone(), Stream::Stdout);
        let stderr = GuestLog::new(tags.clone(), Stream::Stderr);
        let wasi = WasiCtx::builder()
            .stdout(stdout.clone())
            .stderr(stderr.clone())
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .build();
        Self {
            wasi,
            http: WasiHttpCtx::new(),
            table: ResourceTable::new(),
            limiter: MemoryLimiter::new(max_memory_bytes),
            hooks: OutboundHooks {
                rules: capabilities.outbound,
                tags: tags.clone(),
            },
            tags,
            output: [stdout, stderr],
            config: capabilities.config,
            kv: capabilities.kv,
        }
    }

    /// Writes what the guest left without a newline, as its request ends.
    pub(crate) fn flush_output(&self) {
        for o in &self.output {
            o.flush_partial();
        }
    }
}

impl WasiView for InstanceState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for InstanceState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.hooks,
        }
    }
}

/// Caps the sum of all linear memories of one instance.
///
/// A refused `memory.grow` returns -1 inside the guest (it does not trap);
/// `denied` remembers it so that a trap that follows is reported as
/// out-of-memory.
pub(crate) struct MemoryLimiter {
    limit: usize,
    used: usize,
    pub(crate) denied: bool,
}

/// Table elements one instance may have; generous, only a backstop.
const MAX_TABLE_ELEMENTS: usize = 1 << 20;

impl MemoryLimiter {
    pub(crate) fn new(limit: u64) -> Self {
        Self {
            limit: usize::try_from(limit).unwrap_or(usize::MAX),
            used: 0,
            denied: false,
        }
    }
}

impl MemoryLimiter {
    /// The instance's linear memories together, in bytes: their largest
    /// so far, as wasm memories never shrink.
    pub(crate) fn used(&self) -> u64 {
        self.used as u64
    }
}

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(&mut self, current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        let next = self.used.saturating_add(desired.saturating_sub(current));
        if next > self.limit {
            self.denied = true;
            return Ok(false);
        }
        self.used = next;
        Ok(true)
    }

    fn table_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS)
    }
}

/// Names that tag everything a request's guest does in the log.
#[derive(Clone, Debug)]
pub struct InvokeTags {
    /// The tenant the function belongs to (`default` for the functions
    /// directory's); CPU is shared fairly between tenants first, then
    /// between functions.
    pub tenant: Arc<str>,
    /// The function's name, as in the catalog.
    pub function: Arc<str>,
    /// The request's id, as answered in errors and logged by the host.
    pub request_id: Arc<str>,
}

/// The names an instance's log lines carry, and where its output and
/// outbound requests are reported. An instance made ahead of its request
/// (a warm instance) learns its request when a request takes it, and an
/// instance kept for reuse learns each next one; anything it logs while
/// it has no request says `-`.
pub struct TagCell {
    function: Arc<str>,
    output: Option<Arc<dyn GuestOutput>>,
    request: Mutex<Option<Current>>,
    /// What observes an instance that serves several requests at once:
    /// no one of them is its request, so its outbound requests and
    /// key-value refusals are the function's.
    shared: Option<Arc<dyn Observer>>,
}

/// The request an instance serves now.
struct Current {
    id: Arc<str>,
    observer: Option<Arc<dyn Observer>>,
}

impl std::fmt::Debug for TagCell {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TagCell")
            .field("function", &self.function)
            .field("request_id", &self.request_id())
            .finish_non_exhaustive()
    }
}

impl TagCell {
    /// Tags for an instance of `function` that has no request yet (a warm
    /// one); its output lines go to `output` as well as to the log.
    pub fn new(function: Arc<str>, output: Option<Arc<dyn GuestOutput>>) -> Arc<Self> {
        Arc::new(Self {
            function,
            output,
            request: Mutex::new(None),
            shared: None,
        })
    }

    /// Tags for an instance that serves several requests at once: it never
    /// has one request, its lines say `-`, and `observer` is told of its
    /// outbound requests and key-value refusals.
    pub fn shared(
        function: Arc<str>,
        output: Option<Arc<dyn GuestOutput>>,
        observer: Option<Arc<dyn Observer>>,
    ) -> Arc<Self> {
        Arc::new(Self {
            function,
            output,
            request: Mutex::new(None),
            shared: observer,
        })
    }

    /// Tags for an instance made for the request `tags` names.
    pub fn for_request(tags: InvokeTags) -> Arc<Self> {
        let cell = Self::new(tags.function, None);
        cell.set_request(Some(tags.request_id), None);
        cell
    }

    /// Sets the request the instance serves now and what observes it
    /// (`None`: between requests).
    pub fn set_request(&self, id: Option<Arc<str>>, observer: Option<Arc<dyn Observer>>) {
        *self.request.lock().expect("request tag") = id.map(|id| Current { id, observer });
    }

    /// The function's name.
    pub fn function(&self) -> &str {
        &self.function
    }

    /// The request's id; `-` while the instance has no request.
    pub fn request_id(&self) -> Arc<str> {
        self.request
            .lock()
            .expect("request tag")
            .as_ref()
            .map_or_else(|| "-".into(), |c| c.id.clone())
    }

    /// What observes the request the instance serves now (for an instance
    /// serving several at once, the function's observer), if anything does.
    pub(crate) fn observer(&self) -> Option<Arc<dyn Observer>> {
        if let Some(shared) = &self.shared {
            return Some(shared.clone());
        }
        self.request.lock().expect("request tag").as_ref()?.observer.clone()
    }

    /// Where the function's output lines go besides the log.
    pub(crate) fn output(&self) -> Option<&Arc<dyn GuestOutput>> {
        self.output.as_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limiter_counts_all_memories() {
        let mut l = MemoryLimiter::new(100);
        assert!(l.memory_growing(0, 60, None).unwrap());
        assert!(!l.memory_growing(0, 50, None).unwrap());
        assert!(l.denied);
        assert!(l.memory_growing(0, 40, None).unwrap());
        assert!(!l.memory_growing(40, 41, None).unwrap());
    }

    #[test]
    fn an_instance_is_tagged_with_the_request_it_serves_now() {
        let cell = TagCell::new("f".into(), None);
        assert_eq!(&*cell.request_id(), "-");
        cell.set_request(Some("r1".into()), None);
        assert_eq!((cell.function(), &*cell.request_id()), ("f", "r1"));
        // Kept for reuse: between requests, then the next one.
        cell.set_request(None, None);
        assert_eq!(&*cell.request_id(), "-");
        assert!(cell.observer().is_none());
        cell.set_request(Some("r2".into()), None);
        assert_eq!(&*cell.request_id(), "r2");
    }
}
