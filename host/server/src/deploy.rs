//! Deploying at runtime: a function's new version (manifest, component,
//! optional fragment) is validated whole (parsed, compiled, described,
//! mounted, checked for route conflicts) beside what serves, then written
//! to the state directory and swapped in. Rollback and undeploy take the
//! same path. One change at a time; in-flight requests finish on the
//! version they started with, and a version that leaves is interrupted
//! only once its drain runs out.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde::Serialize;

use crate::AppState;
use crate::auth::Caller;
use crate::loader::DeployedSet;
use crate::registry::{LoadedFunction, Snapshot, Tenant};
use crate::state::{ArtifactSource, Deployment, DesiredState, StateDir, StateError, Version, now_rfc3339};
use crate::tenant::DEFAULT_TENANT;
use wasmfn_manifest::discovery::{Discovery, FailedSpec, FunctionSpec, standalone_spec};
use wasmfn_manifest::{FunctionManifest, Policy};
use wasmfn_openapi::Fragment;

/// Deployed functions: the state directory and the desired state it holds.
pub struct Deployments {
    pub(crate) dir: StateDir,
    pub(crate) desired: std::sync::Mutex<DesiredState>,
    keep_versions: usize,
    /// The desired state shared with other hosts (`--state-store`), if any.
    pub(crate) shared: Option<crate::shared::SharedStore>,
}

impl std::fmt::Debug for Deployments {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deployments")
            .field("dir", &self.dir.root())
            .field("keep_versions", &self.keep_versions)
            .finish()
    }
}

/// A new version, as uploaded.
#[derive(Debug, Clone)]
pub struct Upload {
    /// The function's name.
    pub name: String,
    /// The `fn.config.json` text (its `component` field is ignored).
    pub manifest: String,
    /// The component's bytes.
    pub component: Bytes,
    /// The OpenAPI fragment's text, for components that do not describe themselves.
    pub openapi: Option<String>,
    /// The OCI artifact the parts were pulled from; `None` for an upload.
    pub source: Option<ArtifactSource>,
}

/// Why a change was refused; what serves is unchanged.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DeployError {
    /// The host keeps no state directory.
    #[error("this host keeps no state directory, so it takes no deploys (start it with `--state-dir DIR`)")]
    Disabled,
    /// The name is not `[a-z0-9-]{1,63}`.
    #[error(
        "`{0}` is not a function name: use 1 to 63 lowercase letters, digits and `-`, starting with a letter or digit"
    )]
    InvalidName(String),
    /// The upload is not a valid function: manifest, fragment, component, load.
    #[error("{0}")]
    Invalid(String),
    /// The new version would take routes other functions serve, or a directory function's name.
    #[error("{message}")]
    Conflict {
        /// What conflicts.
        message: String,
        /// The functions involved.
        functions: Vec<String>,
    },
    /// No deployed function has the name.
    #[error("no function `{0}` is deployed")]
    NotDeployed(String),
    /// The tenant's `max_functions`, `max_memory_bytes` or outbound ceiling refuses it.
    #[error("{0}")]
    Quota(String),
    /// The component is larger than the tenant's `max_component_bytes`.
    #[error("the component is {size} bytes, above the tenant's quota of {limit} bytes (`quotas.max_component_bytes`)")]
    ComponentTooLarge {
        /// The component's size.
        size: u64,
        /// The quota.
        limit: u64,
    },
    /// Rollback with no earlier version.
    #[error("function `{0}` has no earlier version to roll back to")]
    NoPreviousVersion(String),
    /// The state directory could not be written; nothing changed.
    #[error("{0}")]
    State(#[from] StateError),
}

/// What a deploy or rollback did.
#[derive(Debug, Clone, Serialize)]
pub struct Deployed {
    /// The function.
    pub name: String,
    /// The serving component's digest (`sha256:…`).
    pub digest: String,
    /// The digest that served before (`None`: the function is new).
    #[serde(skip)]
    pub previous_digest: Option<String>,
    /// Its routes.
    pub routes: Vec<String>,
    /// `ready`.
    pub state: &'static str,
    /// Whether the function did not exist before.
    #[serde(skip)]
    pub created: bool,
    /// Whether the upload was the serving version's bytes again (nothing changed).
    #[serde(skip)]
    pub unchanged: bool,
}

/// Whether `name` is a valid name for a deployed function.
pub fn is_valid_name(name: &str) -> bool {
    (1..=63).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
}

/// `sha256:<hex>`.
pub fn digest_label(hex: &str) -> String {
    format!("sha256:{hex}")
}

impl Deployments {
    /// Opens the state directory and reads what it holds.
    pub fn open(root: &Path, keep_versions: usize) -> Result<Self, StateError> {
        let dir = StateDir::open(root)?;
        let desired = dir.load()?;
        let removed = dir.collect_garbage(&desired);
        if removed > 0 {
            tracing::info!(removed, "state directory: unreferenced blobs removed");
        }
        Ok(Self {
            dir,
            desired: std::sync::Mutex::new(desired),
            keep_versions: keep_versions.max(1),
            shared: None,
        })
    }

    /// As [`Deployments::open`], with the desired state shared through the
    /// store at `url` (`--state-store`), its blobs in `config`'s
    /// `blob_registry` if it names one: the store's state is read (or this
    /// one stored as its first) before anything loads.
    pub fn open_shared(
        root: &Path,
        keep_versions: usize,
        url: &str,
        config: &crate::HostConfig,
    ) -> anyhow::Result<Self> {
        let blobs = crate::shared::BlobRegistry::from_config(config)?;
        let mut d = Self::open(root, keep_versions)?;
        let mut desired = d.desired();
        let shared = crate::shared::SharedStore::open(url, &d.dir, &mut desired, blobs)?;
        *d.desired.lock().expect("no panics while held") = desired;
        d.shared = Some(shared);
        Ok(d)
    }

    /// Why the shared state store cannot be reached, if the host has one and it cannot.
    pub fn degraded(&self) -> Option<String> {
        self.shared.as_ref().and_then(|s| s.degraded())
    }

    /// The state directory.
    pub fn root(&self) -> &Path {
        self.dir.root()
    }

    /// The desired state now.
    pub fn desired(&self) -> DesiredState {
        self.desired.lock().expect("no panics while held").clone()
    }

    /// The specs of every deployed function's serving version of `tenant`
    /// (those whose stored parts are missing or damaged listed as failed),
    /// and their digests.
    pub fn set(&self, tenant: &str, defaults: &Policy) -> DeployedSet {
        set_of(&self.dir, &self.desired(), tenant, defaults)
    }

    /// The spec of `version` of `name`, reading its manifest (and, with
    /// `verify`, checking every part against its digest).
    fn spec(
        &self,
        tenant: &str,
        name: &str,
        v: &Version,
        defaults: &Policy,
        verify: bool,
    ) -> Result<FunctionSpec, String> {
        spec_of(&self.dir, tenant, name, v, defaults, verify)
    }
}

/// See [`Deployments::set`]; also used at start, before the tenants exist.
pub(crate) fn set_of(dir: &StateDir, desired: &DesiredState, tenant: &str, defaults: &Policy) -> DeployedSet {
    let mut out = Discovery::default();
    for (name, d) in desired.functions(tenant).into_iter().flatten() {
        let Some(v) = d.current() else { continue };
        match spec_of(dir, tenant, name, v, defaults, true) {
            Ok(spec) => out.functions.push(spec),
            Err(error) => out.failed.push(FailedSpec {
                name: name.clone(),
                dir: dir.root().to_path_buf(),
                manifest_path: manifest_label(tenant, name),
                component_path: Some(dir.blob_path(&v.component)),
                error,
            }),
        }
    }
    DeployedSet {
        specs: out,
        digests: deployed_digests(desired, tenant),
    }
}

/// How a deployed function's manifest is named in messages: `hello/fn.config.json`
/// (`acme/hello/fn.config.json` for a tenant other than `default`).
fn manifest_label(tenant: &str, name: &str) -> PathBuf {
    if tenant == DEFAULT_TENANT {
        PathBuf::from(format!("{name}/fn.config.json"))
    } else {
        PathBuf::from(format!("{tenant}/{name}/fn.config.json"))
    }
}

fn spec_of(
    dir: &StateDir,
    tenant: &str,
    name: &str,
    v: &Version,
    defaults: &Policy,
    verify: bool,
) -> Result<FunctionSpec, String> {
    {
        let text = dir.read_blob(&v.manifest)?;
        let text = String::from_utf8(text).map_err(|_| "the stored manifest is not UTF-8".to_string())?;
        let label = manifest_label(tenant, name);
        let manifest = FunctionManifest::parse(&label, &text).map_err(|e| e.to_string())?;
        if verify {
            dir.read_blob(&v.component)?;
            if let Some(o) = &v.openapi {
                dir.read_blob(o)?;
            }
        }
        let openapi = v.openapi.as_ref().map(|o| dir.blob_path(o));
        let mut spec = standalone_spec(
            name,
            &label,
            &manifest,
            &dir.blob_path(&v.component),
            openapi.as_deref(),
            defaults,
        )
        .map_err(|e| e.to_string())?;
        spec.dir = dir.root().to_path_buf();
        Ok(spec)
    }
}

impl Deployments {
    /// Writes `next` (versions beyond `keep_versions` dropped) and makes it
    /// the desired state; then removes blobs nothing names any more.
    pub(crate) fn commit(&self, mut next: DesiredState) -> Result<(), StateError> {
        for d in next.tenants.values_mut().flat_map(|t| t.functions.values_mut()) {
            let extra = d.versions.len().saturating_sub(self.keep_versions);
            d.versions.drain(..extra);
        }
        if let Some(shared) = &self.shared {
            shared.publish(&self.dir, &next)?;
        }
        self.dir.save(&next)?;
        *self.desired.lock().expect("no panics while held") = next.clone();
        self.dir.collect_garbage(&next);
        Ok(())
    }

    /// Makes `next`, stored by another host, the desired state here.
    pub(crate) fn adopt(&self, next: DesiredState) -> Result<(), StateError> {
        self.dir.save(&next)?;
        *self.desired.lock().expect("no panics while held") = next.clone();
        self.dir.collect_garbage(&next);
        Ok(())
    }
}

/// The digests of the serving versions of `tenant`'s deployed functions.
pub(crate) fn deployed_digests(state: &DesiredState, tenant: &str) -> std::collections::BTreeMap<String, String> {
    state
        .functions(tenant)
        .into_iter()
        .flatten()
        .filter_map(|(n, d)| Some((n.clone(), digest_label(&d.current()?.component))))
        .collect()
}

impl AppState {
    /// What is deployed now (empty on a host without a state directory).
    pub(crate) fn desired(&self) -> DesiredState {
        self.deployments.as_ref().map(|d| d.desired()).unwrap_or_default()
    }

    fn deployments(&self) -> Result<&Deployments, DeployError> {
        self.deployments.as_ref().ok_or(DeployError::Disabled)
    }

    /// Runs `f` (writes and syncs of the state directory) on a blocking
    /// thread, so that no request waits behind an `fsync`.
    pub(crate) async fn on_disk<T: Send + 'static>(
        self: &Arc<Self>,
        f: impl FnOnce(&Deployments) -> T + Send + 'static,
    ) -> T {
        let app = self.clone();
        tokio::task::spawn_blocking(move || f(app.deployments.as_ref().expect("checked by the caller")))
            .await
            .expect("state directory work does not panic")
    }

    /// Validates `upload` whole and, if it loads, makes it the serving
    /// version of its function in `tenant`.
    pub async fn deploy(
        self: &Arc<Self>,
        tenant: &Arc<Tenant>,
        upload: Upload,
        caller: &Caller,
    ) -> Result<Deployed, DeployError> {
        let deps = self.deployments()?;
        if !is_valid_name(&upload.name) {
            return Err(DeployError::InvalidName(upload.name));
        }
        let name = upload.name.clone();
        let _one_at_a_time = self.reloading.lock().await;
        // The tenant as it is now (its settings may have changed while this waited).
        let tenant = self.registry.tenant(&tenant.id).ok_or(DeployError::Disabled)?;
        let tid = tenant.id.to_string();
        let quotas = &tenant.settings.settings.quotas;
        if let Some(limit) = quotas.max_component_bytes
            && upload.component.len() as u64 > limit
        {
            return Err(DeployError::ComponentTooLarge {
                size: upload.component.len() as u64,
                limit,
            });
        }
        let label = manifest_label(&tid, &name);
        FunctionManifest::parse(&label, &upload.manifest).map_err(|e| DeployError::Invalid(e.to_string()))?;
        if let Some(text) = &upload.openapi {
            Fragment::parse(text)
                .map_err(|e| DeployError::Invalid(format!("part `openapi` of function `{name}`: {e}")))?;
        }
        let previous = tenant.snapshot();
        if tenant.is_default() {
            refuse_directory_name(&previous, &name)?;
        }
        if let Some(max) = quotas.max_functions {
            let desired = deps.desired();
            let functions = desired.functions(&tid);
            let count = functions.map_or(0, |f| f.len());
            if !functions.is_some_and(|f| f.contains_key(&name)) && count >= max as usize {
                return Err(DeployError::Quota(format!(
                    "tenant `{tid}` has {count} functions, its quota (`quotas.max_functions`); \
                     undeploy one before deploying `{name}`"
                )));
            }
        }
        let token = caller.token.clone();
        let version = self
            .on_disk(move |deps| {
                Ok::<_, StateError>(Version {
                    component: deps.dir.put_blob(&upload.component)?,
                    manifest: deps.dir.put_blob(upload.manifest.as_bytes())?,
                    openapi: match &upload.openapi {
                        Some(t) => Some(deps.dir.put_blob(t.as_bytes())?),
                        None => None,
                    },
                    deployed_at: now_rfc3339(),
                    token,
                    source: upload.source,
                })
            })
            .await?;
        let desired = deps.desired();
        let current = desired.function(&tid, &name).and_then(|d| d.current().cloned());
        let serving = previous.functions.iter().any(|f| *f.spec.name == name);
        if let Some(c) = &current
            && c.same_content(&version)
            && serving
        {
            return Ok(self.deployed(&tid, &previous, &name, current.as_ref(), false, true));
        }
        let mut next = desired.clone();
        next.tenants
            .entry(tid.clone())
            .or_default()
            .functions
            .entry(name.clone())
            .or_default()
            .versions
            .push(version);
        let snapshot = self.load_version(&tenant, &previous, &name, &next).await?;
        self.on_disk(move |deps| deps.commit(next)).await?;
        let out = self.deployed(&tid, &snapshot, &name, current.as_ref(), current.is_none(), false);
        self.swap_in(&tenant, snapshot, &previous);
        Ok(out)
    }

    /// Serves the version deployed before the current one again (the
    /// current one is dropped).
    pub async fn rollback(self: &Arc<Self>, tenant: &Arc<Tenant>, name: &str) -> Result<Deployed, DeployError> {
        let deps = self.deployments()?;
        let _one_at_a_time = self.reloading.lock().await;
        let tenant = self.registry.tenant(&tenant.id).ok_or(DeployError::Disabled)?;
        let tid = tenant.id.to_string();
        let desired = deps.desired();
        let d = desired
            .function(&tid, name)
            .ok_or_else(|| DeployError::NotDeployed(name.to_string()))?;
        if d.versions.len() < 2 {
            return Err(DeployError::NoPreviousVersion(name.to_string()));
        }
        let current = d.current().cloned();
        let mut next = desired.clone();
        next.tenants
            .get_mut(&tid)
            .and_then(|t| t.functions.get_mut(name))
            .expect("listed")
            .versions
            .pop();
        let previous = tenant.snapshot();
        let snapshot = self.load_version(&tenant, &previous, name, &next).await?;
        self.on_disk(move |deps| deps.commit(next)).await?;
        let out = self.deployed(&tid, &snapshot, name, current.as_ref(), false, false);
        self.swap_in(&tenant, snapshot, &previous);
        Ok(out)
    }

    /// Stops serving a deployed function and forgets its versions; its
    /// requests in flight finish. Gives the digest that served.
    pub async fn undeploy(self: &Arc<Self>, tenant: &Arc<Tenant>, name: &str) -> Result<Option<String>, DeployError> {
        let deps = self.deployments()?;
        let _one_at_a_time = self.reloading.lock().await;
        let tenant = self.registry.tenant(&tenant.id).ok_or(DeployError::Disabled)?;
        let tid = tenant.id.to_string();
        let previous = tenant.snapshot();
        let desired = deps.desired();
        let Some(d) = desired.function(&tid, name) else {
            if tenant.is_default() {
                refuse_directory_name(&previous, name)?;
            }
            return Err(DeployError::NotDeployed(name.to_string()));
        };
        let old = d.current().map(|v| digest_label(&v.component));
        let mut next = desired.clone();
        if let Some(t) = next.tenants.get_mut(&tid) {
            t.functions.remove(name);
        }
        let extra = self.extra_doc(&tenant);
        let snapshot = crate::loader::without_function(&previous, name, extra, deployed_digests(&next, &tid));
        self.on_disk(move |deps| deps.commit(next)).await?;
        self.swap_in(&tenant, snapshot, &previous);
        Ok(old)
    }

    /// `previous` with the serving version of `name` in `next` loaded, or why it does not load.
    async fn load_version(
        self: &Arc<Self>,
        tenant: &Arc<Tenant>,
        previous: &Arc<Snapshot>,
        name: &str,
        next: &DesiredState,
    ) -> Result<Snapshot, DeployError> {
        let tid = tenant.id.to_string();
        let v = next
            .function(&tid, name)
            .and_then(|d| d.current())
            .expect("never empty")
            .clone();
        let app = self.clone();
        let prev = previous.clone();
        let fname = name.to_string();
        let digests = deployed_digests(next, &tid);
        let tenant = tenant.clone();
        let secrets = self.secret_source();
        let snapshot = tokio::task::spawn_blocking(move || {
            let deps = app.deployments.as_ref().expect("checked by the caller");
            let spec = deps
                .spec(&tid, &fname, &v, &app.config.defaults, false)
                .map_err(DeployError::Invalid)?;
            let extra = app.extra_doc(&tenant);
            crate::loader::with_function(
                &prev,
                spec,
                crate::loader::Loading {
                    defaults: &app.config.defaults,
                    runtime: &app.runtime,
                    stats: &tenant.stats,
                    quotas: Some(&tenant.settings),
                    extra_doc: extra,
                    memo: &crate::loader::Memo::default(),
                    tenant: &tenant.id,
                    secrets: &secrets,
                    kv: app.kv.as_ref(),
                    oci: Some(&app.oci),
                },
                digests,
            )
            .map_err(|e| match e {
                crate::loader::LoadError::Quota(m) => DeployError::Quota(m),
                e => DeployError::Invalid(e.to_string()),
            })
        })
        .await
        .map_err(|e| DeployError::Invalid(format!("the load panicked: {e}")))??;
        let conflicts: Vec<_> = snapshot
            .table
            .conflicts()
            .iter()
            .filter(|c| c.functions.iter().any(|f| f == name))
            .collect();
        if !conflicts.is_empty() {
            let mut functions: Vec<String> = conflicts.iter().flat_map(|c| c.functions.clone()).collect();
            functions.sort();
            functions.dedup();
            let routes: Vec<String> = conflicts
                .iter()
                .map(|c| format!("`{} {}`", c.method, c.route))
                .collect();
            return Err(DeployError::Conflict {
                message: format!(
                    "function `{name}` would claim {} as {} already does; change its `invoke.routes` \
                     (or the other function's) so that each route has one owner",
                    routes.join(", "),
                    functions
                        .iter()
                        .filter(|f| *f != name)
                        .map(|f| format!("`{f}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                functions,
            });
        }
        Ok(snapshot)
    }

    fn deployed(
        &self,
        tenant: &str,
        s: &Snapshot,
        name: &str,
        before: Option<&Version>,
        created: bool,
        unchanged: bool,
    ) -> Deployed {
        let f = s.functions.iter().find(|f| *f.spec.name == *name);
        let digest = if unchanged {
            before.map(|v| digest_label(&v.component)).unwrap_or_default()
        } else {
            self.desired()
                .function(tenant, name)
                .and_then(Deployment::current)
                .map(|v| digest_label(&v.component))
                .unwrap_or_default()
        };
        Deployed {
            name: name.to_string(),
            digest,
            previous_digest: before.map(|v| digest_label(&v.component)),
            routes: f
                .map(|f| f.spec.routes.iter().map(|r| r.to_string()).collect())
                .unwrap_or_default(),
            state: "ready",
            created,
            unchanged,
        }
    }

    /// Swaps `next` in as `tenant`'s snapshot and retires the versions that left.
    fn swap_in(&self, tenant: &Tenant, next: Snapshot, previous: &Snapshot) {
        let leaving = leaving(previous, &next);
        tenant.swap(next);
        self.retire(leaving);
    }

    /// What is merged into `tenant`'s document besides its functions: the
    /// host's own endpoints (`--openapi-admin`), for the tenant `default` only.
    pub(crate) fn extra_doc(&self, tenant: &Tenant) -> Option<serde_json::Value> {
        (self.config.openapi_admin && tenant.is_default()).then(crate::admin::admin_document)
    }

    /// Lets the versions that left the serving set finish what they run,
    /// and interrupts what still runs of them after the drain timeout.
    pub(crate) fn retire(&self, leaving: Vec<Arc<LoadedFunction>>) {
        if leaving.is_empty() {
            return;
        }
        let after = self.retire_after;
        tokio::spawn(async move {
            let step = Duration::from_millis(50);
            let start = tokio::time::Instant::now();
            while start.elapsed() < after {
                if leaving.iter().all(|f| f.gate.in_flight() == 0) {
                    break;
                }
                tokio::time::sleep(step.min(after)).await;
            }
            for f in leaving {
                if f.gate.in_flight() > 0 {
                    tracing::warn!(
                        function = %f.name,
                        in_flight = f.gate.in_flight(),
                        "a replaced version's requests outlived the drain; interrupting them"
                    );
                }
                f.retire.trigger();
            }
        });
    }
}

/// The functions of `previous` that `next` no longer serves (replaced or removed).
pub(crate) fn leaving(previous: &Snapshot, next: &Snapshot) -> Vec<Arc<LoadedFunction>> {
    previous
        .functions
        .iter()
        .filter(|f| !next.functions.iter().any(|g| Arc::ptr_eq(f, g)))
        .cloned()
        .collect()
}

/// A name the functions directory uses cannot be deployed or undeployed.
fn refuse_directory_name(s: &Snapshot, name: &str) -> Result<(), DeployError> {
    let from_dir = !s.deployed.contains_key(name)
        && (s.functions.iter().any(|f| *f.spec.name == *name) || s.failed.iter().any(|f| f.name == name));
    if from_dir {
        return Err(DeployError::Conflict {
            message: format!(
                "`{name}` is a function of the functions directory; deployed functions need names of their own \
                 (rename it, or remove its folder)"
            ),
            functions: vec![name.to_string()],
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_beyond_keep_versions_and_their_parts_are_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let deps = Deployments::open(dir.path(), 2).unwrap();
        let manifest = deps.dir.put_blob(b"{}").unwrap();
        let versions: Vec<Version> = (0..3)
            .map(|i| Version {
                component: deps.dir.put_blob(format!("component {i}").as_bytes()).unwrap(),
                manifest: manifest.clone(),
                openapi: None,
                deployed_at: now_rfc3339(),
                token: None,
                source: None,
            })
            .collect();
        let mut next = crate::state::empty_state();
        next.tenants.get_mut(DEFAULT_TENANT).unwrap().functions.insert(
            "f".into(),
            Deployment {
                versions: versions.clone(),
            },
        );
        deps.commit(next).unwrap();
        // The oldest version is gone, from memory, from disk and with its component.
        let desired = deps.desired();
        let kept = &desired.function(DEFAULT_TENANT, "f").unwrap().versions;
        assert_eq!(kept, &versions[1..]);
        drop(deps);
        let deps = Deployments::open(dir.path(), 2).unwrap();
        assert_eq!(
            &deps.desired().function(DEFAULT_TENANT, "f").unwrap().versions,
            &versions[1..]
        );
        assert!(!deps.dir.blob_path(&versions[0].component).exists());
        assert!(deps.dir.blob_path(&versions[2].component).exists());
        assert!(deps.dir.blob_path(&manifest).exists());
    }

    #[test]
    fn names() {
        for ok in ["a", "hello", "hello-2", "9lives", &"a".repeat(63)] {
            assert!(is_valid_name(ok), "{ok}");
        }
        for bad in ["", "Hello", "a_b", "a/b", "-a", "a.b", &"a".repeat(64), "é"] {
            assert!(!is_valid_name(bad), "{bad}");
        }
    }
}
