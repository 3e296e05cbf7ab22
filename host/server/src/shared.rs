//! Replicas sharing one desired state (`--state-store redis://…`): every
//! change a host commits (deploys, rollbacks, undeploys, tenants, API keys,
//! sealed secrets) is stored in Redis with the blobs it names, by
//! compare-and-set on a version; every host hears of the new version (a
//! Redis channel, and a reconcile every [`RECONCILE`] as a safety net),
//! fetches what it lacks into its own state directory, and loads what
//! changed. A host that cannot reach the store serves its last good state
//! and reports `degraded`.

use std::collections::{BTreeSet, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::AppState;
use crate::callers::ApiKeys;
use crate::registry::{Snapshot, Tenant};
use crate::state::{DesiredState, StateDir, StateError};
use crate::tenant::DEFAULT_TENANT;

/// How often a host compares its version with the store's, beside the announcements.
pub const RECONCILE: Duration = Duration::from_secs(2);

/// Where the shared state's blobs are kept when not in the store itself
/// (`--blob-registry oci://REGISTRY/REPOSITORY`): each an artifact of the
/// repository, tagged by its digest.
#[derive(Debug)]
pub struct BlobRegistry {
    registries: wasmfn_oci::Registries,
    repository: wasmfn_oci::OciRef,
}

impl BlobRegistry {
    /// The blob registry `config` names, if it names one.
    pub(crate) fn from_config(config: &crate::HostConfig) -> anyhow::Result<Option<Self>> {
        let Some(text) = &config.blob_registry else {
            return Ok(None);
        };
        let form = "name a repository, `oci://REGISTRY/REPOSITORY` (e.g. `oci://registry.example:5000/wasmfn/blobs`)";
        let path = text.strip_prefix(wasmfn_oci::SCHEME).unwrap_or(text);
        let last = path.rsplit('/').next().unwrap_or_default();
        if path.contains('@') || (path.contains('/') && last.contains(':')) {
            anyhow::bail!("`--blob-registry` `{text}`: a tag or digest is not wanted; {form}");
        }
        let repository = wasmfn_oci::OciRef::parse(text).map_err(|e| anyhow::anyhow!("`--blob-registry`: {e}"))?;
        let registries =
            wasmfn_oci::Registries::new(&config.registries).map_err(|e| anyhow::anyhow!("`--registry-auth`: {e}"))?;
        Ok(Some(Self { registries, repository }))
    }
}

/// This host's link to the shared state.
#[derive(Debug)]
pub struct SharedStore {
    store: wasmfn_kv::SharedState,
    /// Where blobs go and come from, when not the store.
    blob_registry: Option<BlobRegistry>,
    /// The store's version the local state is.
    version: AtomicU64,
    /// Blobs known to be in the store.
    uploaded: Mutex<HashSet<String>>,
    /// Why the store cannot be reached, while it cannot.
    degraded: Mutex<Option<String>>,
}

fn shared_error(e: impl std::fmt::Display) -> StateError {
    StateError::Shared {
        message: e.to_string(),
        conflict: false,
    }
}

/// Runs `f` to completion from synchronous code: on the host's runtime
/// when there is one (from a blocking thread), else on one of its own.
fn block_on<T>(f: impl std::future::Future<Output = T>) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(h) => tokio::task::block_in_place(|| h.block_on(f)),
        Err(_) => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime")
            .block_on(f),
    }
}

/// The content digests `state` names.
fn blobs(state: &DesiredState) -> BTreeSet<String> {
    state
        .tenants
        .values()
        .flat_map(|t| t.functions.values())
        .flat_map(|d| &d.versions)
        .flat_map(|v| [Some(&v.component), Some(&v.manifest), v.openapi.as_ref()])
        .flatten()
        .cloned()
        .collect()
}

impl SharedStore {
    /// Connects to the store at `url` and brings `local` in line with it:
    /// the store's state when it has one (its blobs fetched into `dir`),
    /// else `local` stored as its first version. A store that cannot be
    /// reached leaves `local` as it is, and the host starts `degraded`.
    pub(crate) fn open(
        url: &str,
        dir: &StateDir,
        local: &mut DesiredState,
        blob_registry: Option<BlobRegistry>,
    ) -> anyhow::Result<Self> {
        let store = wasmfn_kv::SharedState::new(url).map_err(|e| anyhow::anyhow!("`--state-store`: {e}"))?;
        let shared = Self {
            store,
            blob_registry,
            version: AtomicU64::new(0),
            uploaded: Mutex::new(HashSet::new()),
            degraded: Mutex::new(None),
        };
        match block_on(shared.fetch(dir)) {
            Ok(Some((v, state))) => {
                dir.save(&state)?;
                *local = state;
                shared.version.store(v, Ordering::SeqCst);
                tracing::info!(
                    version = v,
                    server = shared.store.server(),
                    "desired state read from the state store"
                );
            }
            Ok(None) => {
                shared.publish(dir, local)?;
                tracing::info!(
                    server = shared.store.server(),
                    "the state store was empty: this host's state is its first version"
                );
            }
            Err(e) => {
                tracing::error!(error = %e, "the state store cannot be reached; serving the state directory's last state");
                shared.set_degraded(Some(e.to_string()));
            }
        }
        Ok(shared)
    }

    /// Leases held in the same Redis (schedules' runs).
    pub(crate) fn leases(&self) -> wasmfn_kv::SharedLeases {
        self.store.leases()
    }

    /// Why the store cannot be reached, if it cannot.
    pub(crate) fn degraded(&self) -> Option<String> {
        self.degraded.lock().expect("no panics while held").clone()
    }

    fn set_degraded(&self, why: Option<String>) {
        *self.degraded.lock().expect("no panics while held") = why;
    }

    /// The store's version the local state is.
    pub(crate) fn version(&self) -> u64 {
        self.version.load(Ordering::SeqCst)
    }

    /// Stores `next` (and the blobs of `dir` it names that the store lacks)
    /// as the version after this host's; refused when another host stored
    /// first. Blocks.
    pub(crate) fn publish(&self, dir: &StateDir, next: &DesiredState) -> Result<(), StateError> {
        block_on(async {
            let missing: Vec<String> = {
                let uploaded = self.uploaded.lock().expect("no panics while held");
                blobs(next).into_iter().filter(|b| !uploaded.contains(b)).collect()
            };
            for hex in missing {
                let bytes = dir.read_blob(&hex).map_err(shared_error)?;
                match &self.blob_registry {
                    Some(r) => {
                        r.registries
                            .put_blob(&r.repository, &bytes)
                            .await
                            .map_err(|e| shared_error(format!("`--blob-registry`: {e}")))?;
                    }
                    None => self.store.put_blob(&hex, &bytes).await.map_err(shared_error)?,
                }
                self.uploaded.lock().expect("no panics while held").insert(hex);
            }
            let doc = serde_json::to_vec(next).expect("the state serialises");
            match self.store.store(self.version(), &doc).await.map_err(shared_error)? {
                Ok(v) => {
                    self.version.store(v, Ordering::SeqCst);
                    self.set_degraded(None);
                    Ok(())
                }
                Err(now) => Err(StateError::Shared {
                    conflict: true,
                    message: format!(
                        "another host changed the shared state meanwhile (version {now}, this host had {}); \
                         nothing changed here: retry once this host has caught up (within seconds)",
                        self.version()
                    ),
                }),
            }
        })
    }

    /// The store's state if it is newer than this host's (`Some((0, …))`
    /// never: a store never written answers `None`), with its blobs
    /// fetched into `dir`.
    async fn fetch(&self, dir: &StateDir) -> Result<Option<(u64, DesiredState)>, StateError> {
        let Some((v, doc)) = self.store.load().await.map_err(shared_error)? else {
            return Ok(None);
        };
        let state: DesiredState = serde_json::from_slice(&doc)
            .map_err(|e| shared_error(format!("the state store's document is not a wasmfn state ({e})")))?;
        for hex in blobs(&state) {
            if dir.read_blob(&hex).is_ok() {
                self.uploaded.lock().expect("no panics while held").insert(hex);
                continue;
            }
            let bytes = self.get_blob(&hex).await?.ok_or_else(|| match &self.blob_registry {
                Some(r) => shared_error(format!(
                    "the state store names blob {hex}, which neither `--blob-registry` {} nor the store holds",
                    r.repository
                )),
                None => shared_error(format!("the state store names blob {hex} but does not hold it")),
            })?;
            let stored = dir.put_blob(&bytes)?;
            if stored != hex {
                return Err(shared_error(format!("blob {hex} arrived as {stored}")));
            }
            self.uploaded.lock().expect("no panics while held").insert(hex);
        }
        Ok(Some((v, state)))
    }

    /// The bytes of blob `hex`: from the blob registry when there is one
    /// (else, or when it lacks them, from the store: blobs stored before
    /// the registry was named stay readable).
    async fn get_blob(&self, hex: &str) -> Result<Option<Vec<u8>>, StateError> {
        if let Some(r) = &self.blob_registry {
            let digest = format!("sha256:{hex}");
            if let Some(bytes) = r
                .registries
                .get_blob(&r.repository, &digest)
                .await
                .map_err(|e| shared_error(format!("`--blob-registry`: {e}")))?
            {
                return Ok(Some(bytes));
            }
        }
        self.store.get_blob(hex).await.map_err(shared_error)
    }
}

/// Keeps this host in line with the shared state until it drains.
pub(crate) async fn run(app: Arc<AppState>) {
    let Some(shared) = app.deployments.as_ref().and_then(|d| d.shared.as_ref()) else {
        return;
    };
    let mut changes: Option<wasmfn_kv::Changes> = None;
    loop {
        if app.is_draining() {
            return;
        }
        if changes.is_none() {
            changes = shared.store.changes().await.ok();
        }
        match changes.as_mut() {
            Some(c) => {
                tokio::select! {
                    v = c.next() => {
                        if v.is_none() {
                            changes = None;
                        }
                    }
                    () = tokio::time::sleep(RECONCILE) => {}
                }
            }
            None => tokio::time::sleep(RECONCILE / 2).await,
        }
        if let Err(e) = converge(&app).await {
            if shared.degraded().is_none() {
                tracing::error!(error = %e, "the state store cannot be reached; serving the last good state");
            }
            shared.set_degraded(Some(e.to_string()));
        }
    }
}

/// Loads the store's state if it moved on: its blobs, its tenants, their
/// keys and functions.
async fn converge(app: &Arc<AppState>) -> anyhow::Result<()> {
    let deps = app.deployments.as_ref().expect("checked by the caller");
    let shared = deps.shared.as_ref().expect("checked by the caller");
    let remote = shared.store.version().await?;
    if remote == shared.version() {
        if shared.degraded().is_some() {
            tracing::info!("the state store is reachable again");
        }
        shared.set_degraded(None);
        return Ok(());
    }
    let _one_at_a_time = app.reloading.lock().await;
    let Some((v, next)) = shared.fetch(&deps.dir).await? else {
        // The store lost its state (a Redis without persistence restarted):
        // this host's becomes its first version again.
        shared.version.store(0, Ordering::SeqCst);
        shared.uploaded.lock().expect("no panics while held").clear();
        let local = deps.desired();
        app.on_disk(move |d| d.shared.as_ref().expect("checked").publish(&d.dir, &local))
            .await?;
        tracing::warn!("the state store was empty: this host's state stored again as its first version");
        return Ok(());
    };
    let previous = deps.desired();
    let adopted = next.clone();
    app.on_disk(move |d| d.adopt(adopted)).await?;
    shared.version.store(v, Ordering::SeqCst);
    shared.set_degraded(None);
    apply(app, &previous, &next).await;
    tracing::info!(version = v, "desired state changed by another host: loaded");
    Ok(())
}

/// Puts in force what changed from `previous` to `next`; the caller holds `reloading`.
async fn apply(app: &Arc<AppState>, previous: &DesiredState, next: &DesiredState) {
    let ids: BTreeSet<&String> = previous.tenants.keys().chain(next.tenants.keys()).collect();
    for id in ids {
        let (before, after) = (previous.tenants.get(id), next.tenants.get(id));
        if before == after {
            continue;
        }
        let current = app.registry.tenant(id);
        let Some(after) = after else {
            if id != DEFAULT_TENANT
                && let Some(t) = current.filter(|t| !t.from_file)
            {
                let set = app.registry.tenants().without(id);
                app.registry.set_tenants(set);
                app.retire(t.snapshot().functions.clone());
            }
            continue;
        };
        // The operator's file decides a fixed tenant's settings; its keys
        // and functions follow the store.
        let tenant: Arc<Tenant> = match &current {
            Some(t) if t.from_file || before.is_some_and(|b| b.settings == after.settings) => t.clone(),
            _ => {
                let checked = match after.settings.check(id) {
                    Ok(c) => c,
                    Err(e) => {
                        tracing::error!(tenant = %id, error = %e, "the shared state's tenant settings do not check; tenant left as it was");
                        continue;
                    }
                };
                let t = Arc::new(match &current {
                    Some(t) => t.with_settings(checked, false),
                    None => Tenant::new(id, checked, false, Arc::new(Snapshot::empty()), ApiKeys::default()),
                });
                match app.registry.tenants().with(t.clone()) {
                    Ok(set) => app.registry.set_tenants(set),
                    Err(e) => {
                        tracing::error!(tenant = %id, error = %e, "the shared state's tenant clashes here; tenant left as it was");
                        continue;
                    }
                }
                t
            }
        };
        if before.map(|b| &b.api_keys) != Some(&after.api_keys) {
            tenant.keys.store(Arc::new(ApiKeys::from_entries(&after.api_keys)));
        }
        let loads = before.is_none_or(|b| {
            b.functions != after.functions || b.secrets != after.secrets || b.settings != after.settings
        });
        if loads && let Err(e) = app.reload_tenant(&tenant).await {
            tracing::error!(tenant = %id, error = %format!("{e:#}"), "loading the shared state's functions failed");
        }
    }
}
