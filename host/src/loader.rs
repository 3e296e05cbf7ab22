//! Loading: discovery, then compiling every function (in parallel) and
//! building the route table, into a [`Snapshot`] ready to swap in.

use std::path::Path;
use std::sync::Arc;
use std::time::SystemTime;

use crate::discovery::{FailedSpec, FunctionSpec, discover};
use crate::manifest::Policy;
use crate::registry::{LoadedFunction, Registry, Snapshot};
use crate::routing::{RouteClaim, RouteTable};
use crate::runtime::{CompiledComponent, LoadError, Runtime};

/// Discovers and compiles every function under `dir`.
///
/// Only an unreadable `dir` is an error; broken functions are listed in
/// [`Snapshot::failed`] and everything else loads.
pub fn load(
    dir: &Path,
    defaults: &Policy,
    runtime: &Runtime,
    registry: &Registry,
) -> anyhow::Result<Snapshot> {
    let discovered = discover(dir, defaults)
        .map_err(|e| anyhow::anyhow!("cannot read functions directory `{}`: {e}", dir.display()))?;
    let mut failed = discovered.failed;
    let compiled = compile_all(&discovered.functions, runtime);
    let mut functions = Vec::new();
    for (spec, result) in discovered.functions.into_iter().zip(compiled) {
        match result {
            Ok(component) => {
                let stats = registry.stats_for(&spec.name);
                functions.push(Arc::new(LoadedFunction::new(spec, component, stats)));
            }
            Err(e) => {
                tracing::error!(function = %spec.name, error = %e, "function failed to load; skipped");
                failed.push(FailedSpec {
                    name: spec.name.clone(),
                    dir: spec.dir.clone(),
                    manifest_path: spec.manifest_path.clone(),
                    component_path: Some(spec.component_path.clone()),
                    error: e,
                });
            }
        }
    }
    failed.sort_by(|a, b| a.name.cmp(&b.name));
    for f in &failed {
        tracing::error!(function = %f.name, error = %f.error, "function not served");
    }
    let specs: Vec<&FunctionSpec> = functions.iter().map(|f| &f.spec).collect();
    let table = RouteTable::build(claims(&specs));
    for c in table.conflicts() {
        tracing::warn!(route = %c.route, method = %c.method, functions = ?c.functions, "route conflict: nobody serves it");
    }
    Ok(Snapshot {
        functions,
        failed,
        table,
        loaded_at: SystemTime::now(),
    })
}

/// Route claims of every function; `RouteClaim::function` indexes `specs`.
pub fn claims(specs: &[&FunctionSpec]) -> Vec<RouteClaim> {
    specs
        .iter()
        .enumerate()
        .flat_map(|(i, f)| {
            f.routes.iter().map(move |r| RouteClaim {
                function: i,
                function_name: f.name.clone(),
                pattern: r.clone(),
                methods: f.methods.clone(),
                hosts: f.hosts.clone(),
                force_url: f.force_url,
            })
        })
        .collect()
}

fn compile_one(spec: &FunctionSpec, runtime: &Runtime) -> Result<CompiledComponent, String> {
    let ceiling = runtime.config().memory_ceiling;
    if spec.policy.max_memory_bytes > ceiling {
        return Err(format!(
            "invalid `{}`: field `max_memory_bytes`: `{}` is above this host's ceiling of {ceiling} bytes (`--memory-ceiling`)",
            spec.manifest_path.display(),
            spec.policy.max_memory_bytes
        ));
    }
    runtime
        .compile_file(&spec.component_path)
        .map_err(|e: LoadError| e.to_string())
}

fn compile_all(
    specs: &[FunctionSpec],
    runtime: &Runtime,
) -> Vec<Result<CompiledComponent, String>> {
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(specs.len().max(1));
    let next = std::sync::atomic::AtomicUsize::new(0);
    let mut results: Vec<Option<Result<CompiledComponent, String>>> =
        (0..specs.len()).map(|_| None).collect();
    let slots: Vec<std::sync::Mutex<&mut Option<_>>> =
        results.iter_mut().map(std::sync::Mutex::new).collect();
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some(spec) = specs.get(i) else { break };
                    let r = compile_one(spec, runtime);
                    **slots[i].lock().expect("no panics while held") = Some(r);
                }
            });
        }
    });
    drop(slots);
    results
        .into_iter()
        .map(|r| r.expect("every slot is filled"))
        .collect()
}
