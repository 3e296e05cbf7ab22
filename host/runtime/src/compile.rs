//! Engines and what is compiled on them: one engine (and its linker) per
//! way of initialising linear memory (memory images mapped copy-on-write,
//! or copied), and one for `wasi:http@0.3` components, which need the
//! component model's concurrency; a component is compiled on the engine
//! that fits it and pre-instantiated, its `wasi:http` handler found.

use std::path::Path;

use wasmtime::component::{Component, ComponentExportIndex, InstancePre, Linker};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};
use wasmtime_wasi_http::p2::bindings::ProxyIndices;
use wasmtime_wasi_http::p3::bindings::ServiceIndices;

use super::state::InstanceState;
use super::{Runtime, RuntimeConfig, keyvalue, whole};

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

/// An engine and its linker, for one way of initialising linear memory.
#[derive(Clone)]
pub(crate) struct Tier {
    pub(crate) engine: Engine,
    pub(crate) linker: Linker<InstanceState>,
    pub(crate) pooling: bool,
    pub(crate) cow: bool,
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
pub(crate) enum Handler {
    P2(ProxyIndices),
    P3(ServiceIndices),
}

/// A compiled, pre-instantiated component, ready for requests.
#[derive(Clone)]
pub struct CompiledComponent {
    pub(crate) pre: InstancePre<InstanceState>,
    /// Its `wasi:http` handler.
    pub(crate) handler: Handler,
    /// `wasmfn:function/handler.handle`, when it exports it.
    pub(crate) whole: Option<ComponentExportIndex>,
    pub(crate) image: MemoryImage,
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
    pub(crate) fn new(
        config: &RuntimeConfig,
        cow: bool,
        cache: Option<&wasmtime::Cache>,
        p3: bool,
    ) -> anyhow::Result<Self> {
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
        let p3 = exports_wasi_http_p3(bytes);
        let tier = self
            .tier_for(image_bytes, p3)
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
        let handler = match (ServiceIndices::new(&pre), ProxyIndices::new(&pre)) {
            (Ok(service), _) => Handler::P3(service),
            (Err(_), Ok(proxy)) => Handler::P2(proxy),
            // Neither: why the one it tried to export is not usable.
            (Err(e3), Err(e2)) => {
                return Err(CompileError::NoHandler {
                    path: path.to_string(),
                    message: format!("{:#}", if p3 { e3 } else { e2 }),
                });
            }
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
