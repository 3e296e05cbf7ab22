//! Loading: discovery, compiling every function (in parallel), asking each
//! to describe itself, mounting its operations, building the route table
//! and the OpenAPI document, into a [`Snapshot`] ready to swap in.

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde_json::Value;

use crate::discovery::{FailedSpec, FunctionSpec, discover};
use crate::manifest::Policy;
use crate::openapi::{self, DocFunction, Fragment, Mount, build_mounts, namespace};
use crate::registry::{FunctionApi, LoadedFunction, Registry, Snapshot};
use crate::routing::{RouteClaim, RouteTable};
use crate::runtime::{CompiledComponent, Runtime};

/// Discovers, compiles and describes every function under `dir`.
///
/// Only an unreadable `dir` is an error; broken functions are listed in
/// [`Snapshot::failed`] and everything else loads. `extra_doc` is merged
/// into the OpenAPI document (the host's own endpoints, when asked for).
pub fn load(
    dir: &Path,
    defaults: &Policy,
    runtime: &Runtime,
    registry: &Registry,
    extra_doc: Option<Value>,
) -> anyhow::Result<Snapshot> {
    let discovered = discover(dir, defaults)
        .map_err(|e| anyhow::anyhow!("cannot read functions directory `{}`: {e}", dir.display()))?;
    let mut failed = discovered.failed;
    let prepared = prepare_all(&discovered.functions, runtime);
    let mut functions = Vec::new();
    // `wasmfn` names the host's own schemas.
    let mut namespaces = HashSet::from(["wasmfn".to_string()]);
    for (spec, result) in discovered.functions.into_iter().zip(prepared) {
        let loaded = result.and_then(|(component, fragment, source)| {
            let ns = unique_namespace(&spec.name, &mut namespaces);
            let mounts =
                build_mounts(&spec, &ns, fragment.as_ref()).map_err(|e| format!("function `{}`: {e}", spec.name))?;
            Ok((
                component,
                FunctionApi {
                    namespace: ns,
                    source,
                    fragment,
                    mounts,
                },
            ))
        });
        match loaded {
            Ok((component, api)) => {
                let stats = registry.stats_for(&spec.name);
                functions.push(Arc::new(LoadedFunction::new(spec, component, api, stats)));
            }
            Err(error) => failed.push(FailedSpec {
                name: spec.name.clone(),
                dir: spec.dir.clone(),
                manifest_path: spec.manifest_path.clone(),
                component_path: Some(spec.component_path.clone()),
                error,
            }),
        }
    }
    failed.sort_by(|a, b| a.name.cmp(&b.name));
    for f in &failed {
        tracing::error!(function = %f.name, error = %f.error, "function not served");
    }
    let (claims, mount_index) = claims(functions.iter().map(|f| (&f.spec, f.mounts.as_slice())));
    let table = RouteTable::build(claims);
    for c in table.conflicts() {
        tracing::warn!(route = %c.route, method = %c.method, functions = ?c.functions, "route conflict: nobody serves it");
    }
    let doc_functions: Vec<DocFunction> = functions
        .iter()
        .map(|f| DocFunction {
            name: &f.spec.name,
            namespace: &f.namespace,
            description: f.spec.description.as_deref(),
            fragment: f.fragment.as_ref(),
        })
        .collect();
    let routes = table.claims().map(|(claim, states)| {
        let (fi, mi) = mount_index[claim.tag];
        let active = states
            .iter()
            .filter(|(_, s)| *s == crate::routing::ClaimState::Active)
            .map(|(m, _)| m.clone())
            .collect();
        (&functions[fi].mounts[mi], active)
    });
    let doc = openapi::document(&doc_functions, routes, extra_doc);
    let openapi = serde_json::to_vec_pretty(&doc).expect("documents serialise").into();
    drop(doc_functions);
    Ok(Snapshot {
        functions,
        failed,
        table,
        mount_index,
        openapi,
        loaded_at: SystemTime::now(),
    })
}

fn unique_namespace(name: &str, taken: &mut HashSet<String>) -> String {
    let base = namespace(name);
    let mut ns = base.clone();
    let mut n = 2;
    while !taken.insert(ns.clone()) {
        ns = format!("{base}_{n}");
        n += 1;
    }
    ns
}

/// Route claims of every function's mounts, and `tag` → (function, mount).
pub fn claims<'a>(
    functions: impl Iterator<Item = (&'a FunctionSpec, &'a [Mount])>,
) -> (Vec<RouteClaim>, Vec<(usize, usize)>) {
    let mut claims = Vec::new();
    let mut index = Vec::new();
    for (fi, (spec, mounts)) in functions.enumerate() {
        for (mi, mount) in mounts.iter().enumerate() {
            claims.push(RouteClaim {
                function: fi,
                function_name: spec.name.clone(),
                pattern: mount.pattern.clone(),
                methods: mount.methods.clone(),
                hosts: spec.hosts.clone(),
                force_url: spec.force_url,
                tag: index.len(),
            });
            index.push((fi, mi));
        }
    }
    (claims, index)
}

/// Reads and checks a sidecar fragment named by the manifest.
pub fn sidecar(spec: &FunctionSpec) -> Result<Option<Fragment>, String> {
    let Some(path) = &spec.openapi_path else {
        return Ok(None);
    };
    let text =
        std::fs::read_to_string(path).map_err(|e| format!("cannot read OpenAPI fragment `{}`: {e}", path.display()))?;
    Fragment::parse(&text)
        .map(Some)
        .map_err(|e| format!("function `{}`: `{}`: {e}", spec.name, path.display()))
}

type Prepared = (CompiledComponent, Option<Fragment>, &'static str);

fn prepare_one(spec: &FunctionSpec, runtime: &Runtime) -> Result<Prepared, String> {
    let ceiling = runtime.config().memory_ceiling;
    if spec.policy.max_memory_bytes > ceiling {
        return Err(format!(
            "invalid `{}`: field `max_memory_bytes`: `{}` is above this host's ceiling of {ceiling} bytes (`--memory-ceiling`)",
            spec.manifest_path.display(),
            spec.policy.max_memory_bytes
        ));
    }
    let component = runtime.compile_file(&spec.component_path).map_err(|e| e.to_string())?;
    let described = runtime.describe(
        &component,
        &spec.name,
        Duration::from_millis(spec.policy.timeout_ms),
        spec.policy.max_memory_bytes,
    )?;
    match described {
        Some(text) => {
            let fragment =
                Fragment::parse(&text).map_err(|e| format!("function `{}`: `describe` returned an {e}", spec.name))?;
            Ok((component, Some(fragment), "describe"))
        }
        None => match sidecar(spec)? {
            Some(f) => Ok((component, Some(f), "sidecar")),
            None => Ok((component, None, "none")),
        },
    }
}

fn prepare_all(specs: &[FunctionSpec], runtime: &Runtime) -> Vec<Result<Prepared, String>> {
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(specs.len().max(1));
    let next = std::sync::atomic::AtomicUsize::new(0);
    let mut results: Vec<Option<Result<Prepared, String>>> = (0..specs.len()).map(|_| None).collect();
    let slots: Vec<std::sync::Mutex<&mut Option<_>>> = results.iter_mut().map(std::sync::Mutex::new).collect();
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some(spec) = specs.get(i) else { break };
                    let r = prepare_one(spec, runtime);
                    **slots[i].lock().expect("no panics while held") = Some(r);
                }
            });
        }
    });
    drop(slots);
    results.into_iter().map(|r| r.expect("every slot is filled")).collect()
}
