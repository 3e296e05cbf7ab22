//! Loading: discovery, compiling every function (in parallel), asking each
//! to describe itself, mounting its operations, building the route table
//! and the OpenAPI document, into a [`Snapshot`] ready to swap in.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde_json::Value;

use crate::registry::{FunctionApi, Granted, LoadedFunction, Registry, Snapshot, StatsBook};
use crate::secrets::SecretSource;
use crate::tenant::CheckedSettings;
use wasmfn_kv::KeyValue;
use wasmfn_manifest::Policy;
use wasmfn_manifest::digest::content_digest;
use wasmfn_manifest::discovery::{Discovery, FailedSpec, FunctionSpec, discover};
use wasmfn_openapi::{self as openapi, DocFunction, Fragment, Mount, build_mounts, namespace};
use wasmfn_routing::{RouteClaim, RouteTable};
use wasmfn_runtime::{CompiledComponent, KeyValueGrant, Runtime};

mod error;

pub use error::LoadError;

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
    let tenant = registry.tenants().default_tenant().clone();
    reload(
        Some(dir),
        Loading {
            defaults,
            runtime,
            stats: &tenant.stats,
            quotas: None,
            extra_doc,
            memo: &Memo::default(),
            tenant: &tenant.id,
            secrets: &SecretSource::default(),
            kv: None,
            oci: None,
        },
        None,
        DeployedSet::default(),
    )
}

/// What a load of one tenant works with.
pub struct Loading<'a> {
    /// Limits for functions that do not set their own.
    pub defaults: &'a Policy,
    /// The sandbox the functions are compiled for.
    pub runtime: &'a Runtime,
    /// The tenant's counters.
    pub stats: &'a StatsBook,
    /// The tenant's settings: a function beyond its quotas fails.
    pub quotas: Option<&'a CheckedSettings>,
    /// Merged into the document (the host's own endpoints, when asked for).
    pub extra_doc: Option<Value>,
    /// Shared with the loads of other tenants at start.
    pub memo: &'a Memo,
    /// The tenant loaded.
    pub tenant: &'a str,
    /// Where its functions' secrets come from.
    pub secrets: &'a SecretSource,
    /// Where its functions' key-value stores are kept (`None`: the host
    /// has none, and a function that lists a store fails).
    pub kv: Option<&'a KeyValue>,
    /// Where components named by OCI reference are pulled to (`None`:
    /// such a function fails).
    pub oci: Option<&'a crate::oci::OciComponents>,
}

/// The functions deployed through the admin API, as a load takes them.
#[derive(Debug, Default)]
pub struct DeployedSet {
    /// The specs of their serving versions, and those that cannot be read.
    pub specs: Discovery,
    /// Name → the serving component's digest (`sha256:…`), for every
    /// deployed function (those that fail to load included).
    pub digests: BTreeMap<String, String>,
}

/// As [`load`], with the functions of `deployed` (deployed through the
/// admin API) beside those of `dir`, and reusing what did not change since
/// `previous`: a function whose manifest and component are the same is
/// kept as it is (slots, queue and compiled code), and one whose new
/// version fails keeps its previous version serving (listed in
/// [`Snapshot::kept`]). A folder named as a deployed function fails.
/// `dir` is the functions directory (the tenant `default` only); a
/// function beyond its tenant's `quotas` fails.
pub fn reload(
    dir: Option<&Path>,
    with: Loading<'_>,
    previous: Option<&Snapshot>,
    deployed: DeployedSet,
) -> anyhow::Result<Snapshot> {
    let Loading {
        defaults,
        runtime,
        stats,
        quotas,
        extra_doc,
        memo,
        tenant,
        secrets,
        kv,
        oci,
    } = with;
    let DeployedSet {
        specs: deployed,
        digests,
    } = deployed;
    let (fingerprint, discovered) = match dir {
        Some(dir) => (
            crate::fingerprint(dir),
            discover(dir, defaults)
                .map_err(|e| anyhow::anyhow!("cannot read functions directory `{}`: {e}", dir.display()))?,
        ),
        None => (0, Discovery::default()),
    };
    let mut failed = discovered.failed;
    let deployed_names: HashSet<&str> = deployed
        .functions
        .iter()
        .map(|f| f.name.as_str())
        .chain(deployed.failed.iter().map(|f| f.name.as_str()))
        .collect();
    let mut specs = Vec::with_capacity(discovered.functions.len() + deployed.functions.len());
    let mut discovered_functions = discovered.functions;
    // Components named by OCI reference, pulled (or as pinned); those that
    // cannot be are loaded as versions that fail, so that the previous
    // version of each, if any, keeps serving.
    let unpulled = crate::oci::resolve_all(oci, dir.is_some(), &mut discovered_functions, previous);
    for spec in discovered_functions {
        if deployed_names.contains(spec.name.as_str()) {
            failed.push(FailedSpec {
                error: format!(
                    "folder `{}`: a function deployed through the admin API is named `{}`; rename the folder, \
                     or undeploy the other (`wasmfn undeploy {}`)",
                    spec.dir.display(),
                    spec.name,
                    spec.name
                ),
                name: spec.name,
                dir: spec.dir,
                manifest_path: spec.manifest_path,
                component_path: Some(spec.component_path),
            });
        } else {
            specs.push(spec);
        }
    }
    specs.extend(deployed.functions);
    failed.extend(deployed.failed);
    // Functions whose new manifest is broken: their previous version, if
    // still granted what it was made with, serves on (below).
    let broken: HashSet<String> = failed.iter().map(|f| f.name.clone()).collect();
    if let Some(q) = quotas {
        specs.retain(|spec| match quota_refusal(q, spec) {
            Some(error) => {
                failed.push(FailedSpec {
                    name: spec.name.clone(),
                    dir: spec.dir.clone(),
                    manifest_path: spec.manifest_path.clone(),
                    component_path: Some(spec.component_path.clone()),
                    error,
                });
                false
            }
            None => true,
        });
    }
    // What each is granted. A function whose secret no provider has fails,
    // and no earlier version of it serves on: a secret deleted on purpose
    // must stop what used it.
    let mut configs = HashMap::new();
    specs.retain(|spec| match grant(secrets, kv, tenant, quotas, &spec.policy) {
        Ok(c) => {
            configs.insert(spec.name.clone(), c);
            true
        }
        Err(error) => {
            failed.push(FailedSpec {
                name: spec.name.clone(),
                dir: spec.dir.clone(),
                manifest_path: spec.manifest_path.clone(),
                component_path: Some(spec.component_path.clone()),
                error: format!("function `{}`: {error}", spec.name),
            });
            false
        }
    });
    // The loaded version of a function, when its configuration and secrets
    // are still what it was made with.
    let old = |name: &str| {
        previous.and_then(|p| {
            p.functions.iter().find(|f| {
                f.spec.name == name && configs.get(name).is_some_and(|g: &Granted| g.digest == f.grant_digest)
            })
        })
    };
    let prepared = prepare_all(&specs, runtime, &|spec| old(&spec.name).cloned(), memo);
    let mut functions: Vec<Arc<LoadedFunction>> = Vec::new();
    let mut kept = std::collections::BTreeMap::new();
    // `wasmfn` names the host's own schemas.
    let mut namespaces = HashSet::from(["wasmfn".to_string()]);
    for (spec, result) in specs.into_iter().zip(prepared) {
        let config = configs.get(&spec.name).cloned().expect("resolved above");
        let result = match unpulled.get(&spec.name) {
            Some(error) => Err(LoadError::Invalid(error.clone())),
            None => result.and_then(|p| mount(spec.clone(), p, runtime, stats, &mut namespaces, config)),
        };
        match result {
            Ok(f) => functions.push(f),
            Err(error) => match old(&spec.name).map(|f| (f, error.to_string())) {
                Some((f, error)) => {
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
                    error: error.to_string(),
                }),
            },
        }
    }
    // A manifest that broke keeps the previous version serving too, unless
    // what it was granted changed (a secret deleted on purpose stops it).
    failed.retain(|f| {
        if !broken.contains(&f.name) || functions.iter().any(|g| g.spec.name == f.name) {
            return true;
        }
        let Some(prev) = previous.and_then(|p| p.functions.iter().find(|g| g.spec.name == f.name)) else {
            return true;
        };
        match grant(secrets, kv, tenant, quotas, &prev.spec.policy) {
            Ok(g) if g.digest == prev.grant_digest => {
                tracing::error!(function = %f.name, error = %f.error, "new version failed to load; the previous one keeps serving");
                kept.insert(f.name.clone(), f.error.clone());
                functions.push(prev.clone());
                false
            }
            _ => true,
        }
    });
    failed.sort_by(|a, b| a.name.cmp(&b.name));
    for f in &failed {
        tracing::error!(function = %f.name, error = %f.error, "function not served");
    }
    Ok(assemble(functions, failed, kept, fingerprint, extra_doc, digests))
}

/// `previous` with `spec` loaded in place of the function of that name (or
/// beside the others when there is none): the new version compiled,
/// described and mounted, the route table and the document made again.
/// Nothing else is loaded again. An error leaves `previous` as it is.
pub fn with_function(
    previous: &Snapshot,
    spec: FunctionSpec,
    with: Loading<'_>,
    deployed: BTreeMap<String, String>,
) -> Result<Snapshot, LoadError> {
    let Loading {
        runtime,
        stats,
        quotas,
        extra_doc,
        memo,
        tenant,
        secrets,
        kv,
        ..
    } = with;
    if let Some(error) = quotas.and_then(|q| quota_refusal(q, &spec)) {
        return Err(LoadError::Quota(error));
    }
    let config = grant(secrets, kv, tenant, quotas, &spec.policy)
        .map_err(|e| LoadError::Invalid(format!("function `{}`: {e}", spec.name)))?;
    let old = previous
        .functions
        .iter()
        .find(|f| f.spec.name == spec.name && f.grant_digest == config.digest)
        .cloned();
    let mut namespaces: HashSet<String> = previous
        .functions
        .iter()
        .filter(|f| f.spec.name != spec.name)
        .map(|f| f.namespace.clone())
        .chain(["wasmfn".to_string()])
        .collect();
    let prepared = prepare_one(&spec, runtime, old, memo)?;
    let name = spec.name.clone();
    let f = mount(spec, prepared, runtime, stats, &mut namespaces, config)?;
    let mut functions: Vec<Arc<LoadedFunction>> = previous
        .functions
        .iter()
        .filter(|g| g.spec.name != name)
        .cloned()
        .collect();
    functions.push(f);
    let failed = previous.failed.iter().filter(|g| g.name != name).cloned().collect();
    let mut kept = previous.kept.clone();
    kept.remove(&name);
    Ok(assemble(
        functions,
        failed,
        kept,
        previous.fingerprint,
        extra_doc,
        deployed,
    ))
}

/// `previous` without the function `name`; `deployed` as in [`DeployedSet::digests`].
pub fn without_function(
    previous: &Snapshot,
    name: &str,
    extra_doc: Option<Value>,
    deployed: BTreeMap<String, String>,
) -> Snapshot {
    let functions = previous
        .functions
        .iter()
        .filter(|g| g.spec.name != name)
        .cloned()
        .collect();
    let failed = previous.failed.iter().filter(|g| g.name != name).cloned().collect();
    let mut kept = previous.kept.clone();
    kept.remove(name);
    assemble(functions, failed, kept, previous.fingerprint, extra_doc, deployed)
}

/// What a function of `tenant` with `policy` is granted: what it reads
/// through `wasi:config/store` (see [`SecretSource::config_for`]) and the
/// key-value stores it lists, under the tenant's quotas. An error names
/// what is missing and how to provide it.
fn grant(
    secrets: &SecretSource,
    kv: Option<&KeyValue>,
    tenant: &str,
    quotas: Option<&CheckedSettings>,
    policy: &wasmfn_manifest::Policy,
) -> Result<Granted, String> {
    use sha2::Digest as _;
    let (config, config_digest) = secrets.config_for(tenant, policy)?;
    let mut digest = sha2::Sha256::new();
    digest.update(config_digest);
    let kv = match (policy.key_value_stores.as_slice(), kv) {
        ([], _) => None,
        // `check` and `openapi` run no function: no store is needed.
        (_, None) if secrets.lenient => None,
        (_, None) => {
            return Err(
                "field `key_value_stores`: this host has no key-value backend; start it with a state \
                        directory (`--state-dir`) or `--kv-redis-url`"
                    .into(),
            );
        }
        (stores, Some(backend)) => {
            let limits = quotas.map(|q| q.settings.quotas.kv_limits()).unwrap_or_default();
            for s in stores {
                digest.update((s.len() as u64).to_le_bytes());
                digest.update(s.as_bytes());
            }
            digest.update(format!("{limits:?}").as_bytes());
            Some(Arc::new(KeyValueGrant {
                backend: backend.clone(),
                tenant: tenant.into(),
                stores: stores.into(),
                limits: Arc::new(limits),
            }))
        }
    };
    Ok(Granted {
        config,
        kv,
        digest: digest.finalize().into(),
    })
}

/// A prepared function, mounted under its routes (or the loaded one, unchanged).
fn mount(
    spec: FunctionSpec,
    prepared: Prepared,
    runtime: &Runtime,
    stats: &StatsBook,
    namespaces: &mut HashSet<String>,
    granted: Granted,
) -> Result<Arc<LoadedFunction>, LoadError> {
    match prepared {
        Prepared::Unchanged(f) => {
            namespaces.insert(f.namespace.clone());
            Ok(f)
        }
        Prepared::New {
            component,
            fragment,
            source,
            digest,
        } => {
            let ns = unique_namespace(&spec.name, namespaces);
            let mounts = build_mounts(&spec, &ns, fragment.as_ref()).map_err(|source| LoadError::Mount {
                function: spec.name.clone(),
                source: Box::new(source),
            });
            let mounts = match mounts {
                Ok(m) => m,
                Err(e) => {
                    namespaces.remove(&ns);
                    return Err(e);
                }
            };
            let checks = crate::callers::checks_for(&spec, &mounts).map_err(|e| {
                namespaces.remove(&ns);
                LoadError::Invalid(format!("function `{}`: {e}", spec.name))
            })?;
            let cors = match &spec.policy.cors {
                Some(c) => {
                    Some(Arc::new(wasmfn_manifest::CorsPolicy::new(c).map_err(|e| {
                        LoadError::Invalid(format!("function `{}`: {e}", spec.name))
                    })?))
                }
                None => None,
            };
            let api = FunctionApi {
                digest,
                namespace: ns,
                source,
                fragment,
                mounts,
                checks,
                cors,
                granted,
            };
            let stats = stats.stats_for(&spec.name);
            Ok(Arc::new(LoadedFunction::new(spec, component, api, stats, runtime)))
        }
    }
}

/// Why `spec` may not run under its tenant's quotas.
fn quota_refusal(q: &CheckedSettings, spec: &FunctionSpec) -> Option<String> {
    q.settings
        .quotas
        .refuse_policy(&spec.name, &spec.policy, q.outbound_ceiling.as_deref())
}

/// The route table and the document of `functions`, as one snapshot;
/// those named in `deployed` came through the admin API.
fn assemble(
    functions: Vec<Arc<LoadedFunction>>,
    failed: Vec<FailedSpec>,
    kept: BTreeMap<String, String>,
    fingerprint: u64,
    extra_doc: Option<Value>,
    deployed: BTreeMap<String, String>,
) -> Snapshot {
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
            origin: Some(if deployed.contains_key(&f.spec.name) {
                "deployed"
            } else {
                "directory"
            }),
        })
        .collect();
    let routes = table.serving().map(|(claim, methods)| {
        let (fi, mi) = mount_index[claim.tag];
        (&functions[fi].mounts[mi], methods.into_iter().cloned().collect())
    });
    let doc = openapi::document(&doc_functions, routes, extra_doc);
    let openapi = serde_json::to_vec_pretty(&doc).expect("documents serialise").into();
    drop(doc_functions);
    let mut snapshot = Snapshot {
        functions,
        failed,
        table,
        mount_index,
        openapi,
        kept,
        fingerprint,
        loaded_at: SystemTime::now(),
        deployed,
        schedule_problems: Vec::new(),
    };
    snapshot.schedule_problems = crate::schedule::problems(&snapshot);
    for (function, schedule, problem) in &snapshot.schedule_problems {
        tracing::warn!(%function, %schedule, %problem, "a schedule's request does not reach its function");
    }
    snapshot
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

/// The route table the manifests under `dir` describe, without compiling
/// anything (functions that describe themselves show only their mount
/// points), with `(function, error)` for each that cannot be mounted.
pub fn plan_routes(dir: &Path) -> anyhow::Result<(RouteTable, Vec<(String, String)>)> {
    let d = discover(dir, &Policy::default())
        .map_err(|e| anyhow::anyhow!("cannot read functions directory `{}`: {e}", dir.display()))?;
    let mut failed: Vec<(String, String)> = d.failed.iter().map(|f| (f.name.clone(), f.error.clone())).collect();
    let mut mounted: Vec<(&FunctionSpec, Vec<Mount>)> = Vec::new();
    for spec in &d.functions {
        let ns = namespace(&spec.name);
        let mounts = sidecar(spec).and_then(|f| {
            build_mounts(spec, &ns, f.as_ref()).map_err(|source| LoadError::Mount {
                function: spec.name.clone(),
                source: Box::new(source),
            })
        });
        match mounts {
            Ok(m) => mounted.push((spec, m)),
            Err(e) => failed.push((spec.name.clone(), e.to_string())),
        }
    }
    let (claims, _) = claims(mounted.iter().map(|(s, m)| (*s, m.as_slice())));
    Ok((RouteTable::build(claims), failed))
}

/// Reads and checks a sidecar fragment named by the manifest.
pub fn sidecar(spec: &FunctionSpec) -> Result<Option<Fragment>, LoadError> {
    let Some(path) = &spec.openapi_path else {
        return Ok(None);
    };
    let text = std::fs::read_to_string(path).map_err(|source| LoadError::ReadFragment {
        path: path.clone(),
        source: Arc::new(source),
    })?;
    Fragment::parse(&text).map(Some).map_err(|source| LoadError::Sidecar {
        function: spec.name.clone(),
        path: path.clone(),
        source: Box::new(source),
    })
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

/// What one component's bytes compile and describe to. Functions that
/// share a component (the same bytes under the same limits) share it.
type Built = Result<(CompiledComponent, Option<String>), LoadError>;
type BuiltKey = (u64, u64, u64);

/// Components compiled and described during one load, by content and
/// limits: functions with the same bytes under the same limits (in one
/// tenant or several, at start) share one compiled component.
#[derive(Default)]
pub struct Memo(std::sync::Mutex<std::collections::HashMap<BuiltKey, Arc<std::sync::OnceLock<Built>>>>);

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
) -> Result<Prepared, LoadError> {
    let ceiling = runtime.config().memory_ceiling;
    if spec.policy.max_memory_bytes > ceiling {
        return Err(LoadError::AboveMemoryCeiling {
            manifest: spec.manifest_path.clone(),
            asked: spec.policy.max_memory_bytes,
            ceiling,
        });
    }
    let (at_once, in_all) = (spec.policy.instance_concurrency, spec.policy.instance_reuse);
    if at_once > in_all {
        return Err(LoadError::InstanceConcurrency {
            manifest: spec.manifest_path.clone(),
            message: format!(
                "{at_once} requests at once is more than `instance_reuse` ({in_all}) allows an instance in all; \
                 set `instance_reuse` to {at_once} or more"
            ),
        });
    }
    let bytes = std::fs::read(&spec.component_path).map_err(|source| LoadError::ReadComponent {
        path: spec.component_path.clone(),
        source: Arc::new(source),
    })?;
    let digest = content_digest(&bytes);
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
            .map_err(|e| LoadError::Compile(Arc::new(e)))?;
        let described = runtime
            .describe(
                &component,
                &spec.name,
                Duration::from_millis(spec.policy.timeout_ms),
                spec.policy.max_memory_bytes,
            )
            .map_err(|e| LoadError::Describe(Arc::new(e)))?;
        Ok((component, described))
    });
    let (component, described) = built.clone()?;
    if at_once > 1 && component.http_interface() != wasmfn_runtime::HttpInterface::P3 {
        return Err(LoadError::InstanceConcurrency {
            manifest: spec.manifest_path.clone(),
            message: format!(
                "{at_once} needs a component that exports `wasi:http/handler@0.3.0`; `{}` exports `{}`, \
                 whose instances serve one request at a time: remove the field (or set it to 1)",
                spec.component_path.display(),
                component.http_interface().export_name()
            ),
        });
    }
    let (fragment, source) = match described {
        Some(text) => {
            let fragment = Fragment::parse(&text).map_err(|source| LoadError::Described {
                function: spec.name.clone(),
                source: Box::new(source),
            })?;
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
    memo: &Memo,
) -> Vec<Result<Prepared, LoadError>> {
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(specs.len().max(1));
    let next = std::sync::atomic::AtomicUsize::new(0);
    let mut results: Vec<Option<Result<Prepared, LoadError>>> = (0..specs.len()).map(|_| None).collect();
    let slots: Vec<std::sync::Mutex<&mut Option<_>>> = results.iter_mut().map(std::sync::Mutex::new).collect();
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some(spec) = specs.get(i) else { break };
                    let r = prepare_one(spec, runtime, previous(spec), memo);
                    **slots[i].lock().expect("no panics while held") = Some(r);
                }
            });
        }
    });
    drop(slots);
    results.into_iter().map(|r| r.expect("every slot is filled")).collect()
}
