//! `wasi:keyvalue` (store, atomics, batch; 0.2.0-draft) for guests, on the
//! stores of [`wasmfn_kv`].
//!
//! Deny by default: a guest opens only the stores its grant names
//! (`key_value_stores`); `open` of any other answers `access-denied`. The
//! stores are its tenant's. A write past the tenant's quota, or a backend
//! that fails, reaches the guest as `error::other` with the reason; the
//! host serves on.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use wasmfn_kv::{KeyValue, KvError, Limits};
use wasmtime::component::{HasSelf, Linker, Resource};

use super::state::InstanceState;

mod generated {
    wasmtime::component::bindgen!({
        path: "../../wit/deps/keyvalue.wit",
        world: "wasi:keyvalue/imports",
        imports: { default: async | trappable },
        with: {
            "wasi:keyvalue/store.bucket": wasmfn_kv::Bucket,
        },
    });
}

use generated::wasi::keyvalue::{atomics, batch, store};

/// The stores a function may open, and where they are kept.
#[derive(Clone)]
pub struct KeyValueGrant {
    /// The backend of every tenant's stores.
    pub backend: KeyValue,
    /// The tenant whose stores these are.
    pub tenant: Arc<str>,
    /// The names it may open (`key_value_stores`).
    pub stores: Arc<[String]>,
    /// The tenant's quotas.
    pub limits: Arc<Limits>,
}

impl std::fmt::Debug for KeyValueGrant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyValueGrant")
            .field("backend", &self.backend.kind())
            .field("tenant", &self.tenant)
            .field("stores", &self.stores)
            .finish_non_exhaustive()
    }
}

/// Links `wasi:keyvalue/{store,atomics,batch}` into `linker`.
pub(crate) fn add_to_linker(linker: &mut Linker<InstanceState>) -> wasmtime::Result<()> {
    store::add_to_linker::<_, HasSelf<InstanceState>>(linker, |s| s)?;
    atomics::add_to_linker::<_, HasSelf<InstanceState>>(linker, |s| s)?;
    batch::add_to_linker::<_, HasSelf<InstanceState>>(linker, |s| s)?;
    Ok(())
}

/// When a backend failure was last logged, in seconds since the epoch: at
/// most one line a second, however many guests meet it.
static LAST_WARNED: AtomicU64 = AtomicU64::new(0);

impl InstanceState {
    /// The guest's view of `e`; a quota refusal is counted for the request.
    fn kv_error(&self, e: KvError) -> store::Error {
        match &e {
            KvError::Quota(_) => {
                if let Some(o) = self.tags.observer() {
                    o.key_value_refused();
                }
            }
            KvError::Unavailable(m) => {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs());
                if LAST_WARNED.swap(now, Ordering::Relaxed) != now {
                    tracing::warn!(function = %self.tags.function(), error = %m, "key-value operation failed");
                }
            }
            KvError::Invalid(_) => {}
        }
        store::Error::Other(e.to_string())
    }

    fn bucket(&self, b: &Resource<wasmfn_kv::Bucket>) -> wasmtime::Result<wasmfn_kv::Bucket> {
        Ok(self.table.get(b)?.clone())
    }
}

type Answer<T> = wasmtime::Result<Result<T, store::Error>>;

impl store::Host for InstanceState {
    async fn open(&mut self, identifier: String) -> Answer<Resource<wasmfn_kv::Bucket>> {
        let Some(grant) = self.kv.as_ref().filter(|g| g.stores.contains(&identifier)) else {
            return Ok(Err(store::Error::AccessDenied));
        };
        let bucket = grant.backend.bucket(&grant.tenant, &identifier, grant.limits.clone());
        Ok(Ok(self.table.push(bucket)?))
    }
}

impl store::HostBucket for InstanceState {
    async fn get(&mut self, b: Resource<wasmfn_kv::Bucket>, key: String) -> Answer<Option<Vec<u8>>> {
        let bucket = self.bucket(&b)?;
        Ok(bucket.get(&key).await.map_err(|e| self.kv_error(e)))
    }

    async fn set(&mut self, b: Resource<wasmfn_kv::Bucket>, key: String, value: Vec<u8>) -> Answer<()> {
        let bucket = self.bucket(&b)?;
        Ok(bucket.set(&key, &value).await.map_err(|e| self.kv_error(e)))
    }

    async fn delete(&mut self, b: Resource<wasmfn_kv::Bucket>, key: String) -> Answer<()> {
        let bucket = self.bucket(&b)?;
        Ok(bucket.delete(&key).await.map_err(|e| self.kv_error(e)))
    }

    async fn exists(&mut self, b: Resource<wasmfn_kv::Bucket>, key: String) -> Answer<bool> {
        let bucket = self.bucket(&b)?;
        Ok(bucket.exists(&key).await.map_err(|e| self.kv_error(e)))
    }

    async fn list_keys(&mut self, b: Resource<wasmfn_kv::Bucket>, cursor: Option<u64>) -> Answer<store::KeyResponse> {
        let bucket = self.bucket(&b)?;
        Ok(bucket
            .list_keys(cursor)
            .await
            .map(|p| store::KeyResponse {
                keys: p.keys,
                cursor: p.cursor,
            })
            .map_err(|e| self.kv_error(e)))
    }

    async fn drop(&mut self, b: Resource<wasmfn_kv::Bucket>) -> wasmtime::Result<()> {
        self.table.delete(b)?;
        Ok(())
    }
}

impl atomics::Host for InstanceState {
    async fn increment(&mut self, b: Resource<wasmfn_kv::Bucket>, key: String, delta: u64) -> Answer<u64> {
        let bucket = self.bucket(&b)?;
        Ok(bucket.increment(&key, delta).await.map_err(|e| self.kv_error(e)))
    }
}

impl batch::Host for InstanceState {
    async fn get_many(
        &mut self,
        b: Resource<wasmfn_kv::Bucket>,
        keys: Vec<String>,
    ) -> Answer<Vec<Option<(String, Vec<u8>)>>> {
        let bucket = self.bucket(&b)?;
        let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
        Ok(match bucket.get_many(&refs).await {
            Ok(values) => Ok(keys.into_iter().zip(values).map(|(k, v)| v.map(|v| (k, v))).collect()),
            Err(e) => Err(self.kv_error(e)),
        })
    }

    async fn set_many(&mut self, b: Resource<wasmfn_kv::Bucket>, pairs: Vec<(String, Vec<u8>)>) -> Answer<()> {
        let bucket = self.bucket(&b)?;
        let refs: Vec<(&str, &[u8])> = pairs.iter().map(|(k, v)| (k.as_str(), v.as_slice())).collect();
        Ok(bucket.set_many(&refs).await.map_err(|e| self.kv_error(e)))
    }

    async fn delete_many(&mut self, b: Resource<wasmfn_kv::Bucket>, keys: Vec<String>) -> Answer<()> {
        let bucket = self.bucket(&b)?;
        let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
        Ok(bucket.delete_many(&refs).await.map_err(|e| self.kv_error(e)))
    }
}
