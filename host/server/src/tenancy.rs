//! Tenants at run time: the set loaded at start (the operator's file, then
//! the state directory), and the admin API's changes to it: define,
//! change and delete a tenant, create and revoke its API keys. Each change
//! is checked whole, written to the state directory, then swapped in.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::AppState;
use crate::HostConfig;
use crate::callers::{ApiKeys, new_api_key};
use crate::deploy::{DeployError, Deployments, set_of};
use crate::registry::{Snapshot, Tenant, TenantSet};
use crate::state::{ApiKeyEntry, DesiredState, empty_state, now_rfc3339};
use crate::tenant::{CheckedSettings, DEFAULT_TENANT, HostIndex, TenantSettings, load_tenants_file};
use wasmfn_runtime::Runtime;

/// Every tenant with its functions loaded: those of `--tenants FILE` (whose
/// settings win), then those of the state directory. A tenant whose stored
/// settings no longer check, or whose hosts another tenant serves, is
/// loaded without hosts (it serves nothing) and the reason logged.
pub(crate) fn load_tenants(
    config: &HostConfig,
    runtime: &Runtime,
    deployments: Option<&Deployments>,
    secrets: &crate::secrets::SecretSource,
    kv: Option<&wasmfn_kv::KeyValue>,
    oci: Option<&crate::oci::OciComponents>,
) -> anyhow::Result<TenantSet> {
    let fixed = match &config.tenants_file {
        Some(p) => load_tenants_file(p)?,
        None => BTreeMap::new(),
    };
    let desired = deployments.map(|d| d.desired()).unwrap_or_else(empty_state);
    let mut ids: Vec<&str> = fixed
        .keys()
        .map(String::as_str)
        .chain(desired.tenants.keys().map(String::as_str))
        .chain([DEFAULT_TENANT])
        .collect();
    ids.sort();
    ids.dedup();
    // The tenants of the file first, so that their hosts win.
    ids.sort_by_key(|id| !fixed.contains_key(*id));
    let mut default = None;
    let mut others: Vec<Arc<Tenant>> = Vec::new();
    // Tenants deploying the same component under the same limits share it.
    let memo = crate::loader::Memo::default();
    for id in ids {
        let stored = desired.tenants.get(id);
        let settings = match fixed.get(id) {
            Some(s) => s.clone(),
            None => {
                let s = stored.map(|t| t.settings.clone()).unwrap_or_default();
                s.check(id).unwrap_or_else(|e| {
                    tracing::error!(tenant = id, error = %e, "stored tenant settings do not check; it serves no host");
                    unhosted(id)
                })
            }
        };
        let keys = ApiKeys::from_entries(stored.map(|t| t.api_keys.as_slice()).unwrap_or_default());
        let mut tenant = Tenant::new(id, settings, fixed.contains_key(id), Arc::new(Snapshot::empty()), keys);
        if !tenant.is_default() {
            let clash = HostIndex::build(
                others
                    .iter()
                    .map(|t| (&*t.id, t.settings.hosts.as_slice(), ()))
                    .chain([(id, tenant.settings.hosts.as_slice(), ())]),
            );
            if let Err(e) = clash {
                tracing::error!(tenant = id, error = %e, "tenant not served on its hosts");
                tenant = tenant.with_settings(unhosted(id), tenant.from_file);
            }
        }
        let dir = tenant.is_default().then_some(config.functions_dir.as_path());
        let deployed = match deployments {
            Some(d) => set_of(&d.dir, &desired, id, &config.defaults),
            None => Default::default(),
        };
        let extra = (config.openapi_admin && tenant.is_default()).then(crate::admin::admin_document);
        let snapshot = crate::loader::reload(
            dir,
            crate::loader::Loading {
                defaults: &config.defaults,
                runtime,
                stats: &tenant.stats,
                quotas: Some(&tenant.settings),
                extra_doc: extra,
                memo: &memo,
                tenant: id,
                secrets,
                kv,
                oci,
            },
            None,
            deployed,
        )?;
        tenant.swap(snapshot);
        if tenant.is_default() {
            default = Some(Arc::new(tenant));
        } else {
            others.push(Arc::new(tenant));
        }
    }
    TenantSet::new(default.expect("`default` is always loaded"), others).map_err(|e| anyhow::anyhow!(e))
}

fn unhosted(id: &str) -> CheckedSettings {
    TenantSettings::default()
        .check(id)
        .expect("settings without hosts or quotas check")
}

/// Why a tenant change was refused; nothing changed.
#[derive(Debug, thiserror::Error)]
pub enum TenantError {
    /// The settings do not check (422).
    #[error("{0}")]
    Invalid(String),
    /// A host is another tenant's, the tenant is fixed by the operator's
    /// file, or its functions would exceed the new quotas (409).
    #[error("{0}")]
    Conflict(String),
    /// No such tenant (404).
    #[error("no tenant `{0}`")]
    NotFound(String),
    /// Storing failed (see [`DeployError`]).
    #[error(transparent)]
    Deploy(#[from] DeployError),
}

impl From<crate::state::StateError> for TenantError {
    fn from(e: crate::state::StateError) -> Self {
        TenantError::Deploy(DeployError::State(e))
    }
}

impl AppState {
    fn state_dir(&self) -> Result<&Deployments, TenantError> {
        self.deployments
            .as_ref()
            .ok_or(TenantError::Deploy(DeployError::Disabled))
    }

    /// Defines tenant `id` or changes its settings; gives whether it is new.
    pub async fn put_tenant(self: &Arc<Self>, id: &str, settings: TenantSettings) -> Result<bool, TenantError> {
        let deps = self.state_dir()?;
        let checked = settings.check(id).map_err(TenantError::Invalid)?;
        let _one_at_a_time = self.reloading.lock().await;
        let current = self.registry.tenant(id);
        if current.as_ref().is_some_and(|t| t.from_file) {
            return Err(TenantError::Conflict(format!(
                "tenant `{id}` is defined by the operator's tenants file (`--tenants`); change it there"
            )));
        }
        let created = current.is_none();
        let snapshot = current.as_ref().map(|t| t.snapshot());
        if let Some(s) = &snapshot {
            refuse_over_quota(id, s, &checked)?;
        }
        let next_tenant = Arc::new(match &current {
            Some(t) => t.with_settings(checked.clone(), false),
            None => Tenant::new(
                id,
                checked.clone(),
                false,
                Arc::new(Snapshot::empty()),
                ApiKeys::default(),
            ),
        });
        let next_set = self
            .registry
            .tenants()
            .with(next_tenant.clone())
            .map_err(TenantError::Conflict)?;
        let mut desired = deps.desired();
        let entry = desired.tenants.entry(id.to_string()).or_default();
        entry.settings = settings;
        entry.created_at.get_or_insert_with(now_rfc3339);
        self.commit_state(desired).await?;
        self.registry.set_tenants(next_set);
        // Each function is granted its key-value limits as it loads (they
        // are in its grant's digest): new ones need the functions loaded again.
        let kv_changed = current
            .as_ref()
            .is_some_and(|t| t.settings.settings.quotas.kv_limits() != checked.settings.quotas.kv_limits());
        if kv_changed && let Err(e) = self.reload_tenant(&next_tenant).await {
            tracing::error!(tenant = id, error = %format!("{e:#}"), "reload after the key-value quotas changed failed; the functions keep their former limits");
        }
        Ok(created)
    }

    /// Deletes tenant `id` with its functions and keys; its requests in flight finish.
    pub async fn delete_tenant(self: &Arc<Self>, id: &str) -> Result<(), TenantError> {
        let deps = self.state_dir()?;
        if id == DEFAULT_TENANT {
            return Err(TenantError::Conflict("the tenant `default` cannot be deleted".into()));
        }
        let _one_at_a_time = self.reloading.lock().await;
        let Some(current) = self.registry.tenant(id) else {
            return Err(TenantError::NotFound(id.to_string()));
        };
        if current.from_file {
            return Err(TenantError::Conflict(format!(
                "tenant `{id}` is defined by the operator's tenants file (`--tenants`); remove it there"
            )));
        }
        let mut desired = deps.desired();
        desired.tenants.remove(id);
        self.commit_state(desired).await?;
        let next = self.registry.tenants().without(id);
        self.registry.set_tenants(next);
        self.retire(current.snapshot().functions.clone());
        Ok(())
    }

    /// A new API key for tenant `id`: the key (shown once) and its entry.
    pub async fn create_api_key(
        self: &Arc<Self>,
        id: &str,
        key_id: &str,
        scopes: Vec<String>,
    ) -> Result<(String, ApiKeyEntry), TenantError> {
        let deps = self.state_dir()?;
        if !crate::deploy::is_valid_name(key_id) {
            return Err(TenantError::Invalid(format!(
                "field `id`: `{key_id}` is not a key id: use 1 to 63 lowercase letters, digits and `-`"
            )));
        }
        if let Some(s) = scopes
            .iter()
            .find(|s| s.is_empty() || s.chars().any(char::is_whitespace))
        {
            return Err(TenantError::Invalid(format!(
                "field `scopes`: `{s}` is not a scope: scopes are non-empty words without spaces"
            )));
        }
        let _one_at_a_time = self.reloading.lock().await;
        let tenant = self
            .registry
            .tenant(id)
            .ok_or_else(|| TenantError::NotFound(id.to_string()))?;
        let mut desired = deps.desired();
        let entry_list = &mut desired.tenants.entry(id.to_string()).or_default().api_keys;
        if entry_list.iter().any(|k| k.id == key_id) {
            return Err(TenantError::Conflict(format!(
                "tenant `{id}` already has an API key `{key_id}`; revoke it first or choose another id"
            )));
        }
        let (key, entry) = new_api_key(key_id, scopes).map_err(|e| TenantError::Invalid(e.to_string()))?;
        entry_list.push(entry.clone());
        let keys = ApiKeys::from_entries(entry_list);
        self.commit_state(desired).await?;
        tenant.keys.store(Arc::new(keys));
        Ok((key, entry))
    }

    /// Revokes API key `key_id` of tenant `id`; it is refused from the next request on.
    pub async fn delete_api_key(self: &Arc<Self>, id: &str, key_id: &str) -> Result<(), TenantError> {
        let deps = self.state_dir()?;
        let _one_at_a_time = self.reloading.lock().await;
        let tenant = self
            .registry
            .tenant(id)
            .ok_or_else(|| TenantError::NotFound(id.to_string()))?;
        let mut desired = deps.desired();
        let Some(t) = desired.tenants.get_mut(id) else {
            return Err(TenantError::NotFound(format!("{id}/api-keys/{key_id}")));
        };
        let before = t.api_keys.len();
        t.api_keys.retain(|k| k.id != key_id);
        if t.api_keys.len() == before {
            return Err(TenantError::NotFound(format!("{id}/api-keys/{key_id}")));
        }
        let keys = ApiKeys::from_entries(&t.api_keys);
        self.commit_state(desired).await?;
        tenant.keys.store(Arc::new(keys));
        Ok(())
    }

    /// The API keys of tenant `id` as stored (digests, never keys).
    pub(crate) fn api_keys(&self, id: &str) -> Vec<ApiKeyEntry> {
        self.desired()
            .tenants
            .get(id)
            .map(|t| t.api_keys.clone())
            .unwrap_or_default()
    }

    async fn commit_state(self: &Arc<Self>, next: DesiredState) -> Result<(), TenantError> {
        self.on_disk(move |d| d.commit(next)).await?;
        Ok(())
    }
}

/// New quotas may not leave the tenant's serving functions beyond them.
fn refuse_over_quota(id: &str, s: &Snapshot, next: &CheckedSettings) -> Result<(), TenantError> {
    let q = &next.settings.quotas;
    if let Some(max) = q.max_functions
        && s.deployed.len() > max as usize
    {
        return Err(TenantError::Conflict(format!(
            "tenant `{id}` has {} functions deployed, more than the new `quotas.max_functions` of {max}; \
             undeploy some first",
            s.deployed.len()
        )));
    }
    for f in &s.functions {
        if let Some(why) = q.refuse_policy(&f.spec.name, &f.spec.policy, next.outbound_ceiling.as_deref()) {
            return Err(TenantError::Conflict(format!(
                "the new quotas of tenant `{id}` would refuse a function it serves: {why}"
            )));
        }
    }
    Ok(())
}
