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
    reload(dir, defaults, runtime, registry, extra_doc, None)
}

/// As [`load`], reusing what did not change since `previous`: a function
/// whose manifest and component are the same is kept as it is (slots,
/// queue and compiled code), and one whose new version fails keeps its
/// previous version serving (listed in [`Snapshot::kept`]).
pub fn reload(
    dir: &Path,
    defaults: &Policy,
    runtime: &Runtime,
    registry: &Registry,
    extra_doc: Option<Value>,
    previous: Option<&Snapshot>,
) -> anyhow::Result<Snapshot> {
    let fingerprint = crate::server::fingerprint(dir);
    let discovered = discover(dir, defaults)
        .map_err(|e| anyhow::anyhow!("cannot read functions directory `{}`: {e}", dir.display()))?;
    let mut failed = discovered.failed;
    let old = |name: &str| previous.and_then(|p| p.functions.iter().find(|f| f.spec.name == name));
    let prepared = prepare_all(&discovered.functions, runtime, &|spec| old(&spec.name).cloned());
    let mut functions: Vec<Arc<LoadedFunction>> = Vec::new();
    let mut kept = std::collections::BTreeMap::new();
    // `wasmfn` names the host's own schemas.
    let mut namespaces = HashSet::from(["wasmfn".to_string()]);
    for (spec, result) in discovered.functions.into_iter().zip(prepared) {
        let loaded = result.and_then(|prepared| match prepared {
            Prepared::Unchanged(f) => Ok(Loaded::Same(f)),
            Prepared::New {
                component,
                fragment,
                source,
                digest,
            } => {
                let ns = unique_namespace(&spec.name, &mut namespaces);
                let mounts = build_mounts(&spec, &ns, fragment.as_ref())
                    .map_err(|e| format!("function `{}`: {e}", spec.name))?;
                let api = FunctionApi {
                    digest,
                    namespace: ns,
                    source,
                    fragment,
                    mounts,
                };
                Ok(Loaded::New(component, api))
            }
        });
        match loaded {
            Ok(Loaded::Same(f)) => {
                namespaces.insert(f.namespace.clone());
                functions.push(f);
            }
            Ok(Loaded::New(component, api)) => {
                let stats = registry.stats_for(&spec.name);
                functions.push(Arc::new(LoadedFunction::new(spec, component, api, stats, runtime)));
            }
            Err(error) => match old(&spec.name) {
                Some(f) => {
                    tracing::error!(function = %spec.name, %error, "new version failed to load; the previous one keeps serving");
                    namespaces.insert(f.namespace.clone());
                    kept.insert(spec.name.clone(), error);
                    functions.push(f.clone());
                }
                None => failed.push(FailedSpec {
                    name: spec.name.clone(),
                    dir: spec.dir.clone(),
                    manifest_path: spec.manifest_path.clone(),
                    component_path: Some(spec.component_path.clone()),
                    error,
                }),
            },
        }
    }
    // A manifest that broke keeps the previous version serving too.
    failed.retain(|f| match old(&f.name) {
        Some(prev) if !functions.iter().any(|g| g.spec.name == f.name) => {
            tracing::error!(function = %f.name, error = %f.error, "new version failed to load; the previous one keeps serving");
            kept.insert(f.name.clone(), f.error.clone());
            functions.push(prev.clone());
            false
        }
        _ => true,
    });
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
        kept,
        fingerprint,
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

#[expect(clippy::large_enum_variant, reason = "one short-lived value per function at load")]
enum Prepared {
    /// Same manifest, same component: reuse the loaded function whole.
    Unchanged(Arc<LoadedFunction>),
    New {
        component: CompiledComponent,
        fragment: Option<Fragment>,
        source: &'static str,
        digest: u64,
    },
}

#[expect(clippy::large_enum_variant, reason = "one short-lived value per function at load")]
enum Loaded {
    Same(Arc<LoadedFunction>),
    New(CompiledComponent, FunctionApi),
}

fn digest(bytes: &[u8]) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    bytes.hash(&mut h);
    h.finish()
}

/// What one component's bytes compile and describe to. Functions that
/// share a component (the same bytes under the same limits) share it.
type Built = Result<(CompiledComponent, Option<String>), String>;
type BuiltKey = (u64, u64, u64);

#[derive(Default)]
struct Memo(std::sync::Mutex<std::collections::HashMap<BuiltKey, Arc<std::sync::OnceLock<Built>>>>);

impl Memo {
    fn cell(&self, key: BuiltKey) -> Arc<std::sync::OnceLock<Built>> {
        self.0
            .lock()
            .expect("no panics while held")
            .entry(key)
            .or_default()
            .clone()
    }
}

fn prepare_one(
    spec: &FunctionSpec,
    runtime: &Runtime,
    previous: Option<Arc<LoadedFunction>>,
    memo: &Memo,
) -> Result<Prepared, String> {
    let ceiling = runtime.config().memory_ceiling;
    if spec.policy.max_memory_bytes > ceiling {
        return Err(format!(
            "invalid `{}`: field `max_memory_bytes`: `{}` is above this host's ceiling of {ceiling} bytes (`--memory-ceiling`)",
            spec.manifest_path.display(),
            spec.policy.max_memory_bytes
        ));
    }
    let bytes = std::fs::read(&spec.component_path)
        .map_err(|e| format!("cannot read component `{}`: {e}", spec.component_path.display()))?;
    let digest = digest(&bytes);
    if let Some(old) = previous
        && old.digest == digest
        && old.spec == *spec
        && old.api_source != "sidecar"
    {
        return Ok(Prepared::Unchanged(old));
    }
    let cell = memo.cell((digest, spec.policy.timeout_ms, spec.policy.max_memory_bytes));
    // Other functions with the same component wait here, then share it.
    let built = cell.get_or_init(|| {
        let component = runtime
            .compile(&spec.component_path.display().to_string(), &bytes)
            .map_err(|e| e.to_string())?;
        let described = runtime.describe(
            &component,
            &spec.name,
            Duration::from_millis(spec.policy.timeout_ms),
            spec.policy.max_memory_bytes,
        )?;
        Ok((component, described))
    });
    let (component, described) = built.clone()?;
    let (fragment, source) = match described {
        Some(text) => {
            let fragment =
                Fragment::parse(&text).map_err(|e| format!("function `{}`: `describe` returned an {e}", spec.name))?;
            (Some(fragment), "describe")
        }
        None => match sidecar(spec)? {
            Some(f) => (Some(f), "sidecar"),
            None => (None, "none"),
        },
    };
    Ok(Prepared::New {
        component,
        fragment,
        source,
        digest,
    })
}

fn prepare_all(
    specs: &[FunctionSpec],
    runtime: &Runtime,
    previous: &(dyn Fn(&FunctionSpec) -> Option<Arc<LoadedFunction>> + Sync),
) -> Vec<Result<Prepared, String>> {
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(specs.len().max(1));
    let next = std::sync::atomic::AtomicUsize::new(0);
    let mut results: Vec<Option<Result<Prepared, String>>> = (0..specs.len()).map(|_| None).collect();
    let slots: Vec<std::sync::Mutex<&mut Option<_>>> = results.iter_mut().map(std::sync::Mutex::new).collect();
    let memo = Memo::default();
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some(spec) = specs.get(i) else { break };
                    let r = prepare_one(spec, runtime, previous(spec), &memo);
                    **slots[i].lock().expect("no panics while held") = Some(r);
                }
            });
        }
    });
    drop(slots);
    results.into_iter().map(|r| r.expect("every slot is filled")).collect()
}
