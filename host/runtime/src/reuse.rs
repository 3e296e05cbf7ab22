//! Instances kept for reuse: a function with `instance_reuse` above 1 has
//! its instances serve up to that many requests in sequence, one at a
//! time, instead of one each.
//!
//! What an instance keeps between its requests is its own state (globals,
//! its heap: what a worker process of a web framework keeps between
//! requests); nothing of a request is kept. An instance goes back to its
//! pool only after a request that ended cleanly: a response sent whole or
//! streamed to its end, within the deadline, with no trap, no refused
//! memory growth, no interrupt, and with every resource of the request
//! (the request, its body and headers, the response, any outbound call)
//! dropped by the guest. Anything else drops it.
//!
//! Each function version has its own pool, so a new version never serves
//! from an old version's instance. Idle instances are dropped after
//! `instance_idle_ms`, and host-wide they give way (oldest first) when the
//! instance pool is full and another instance must be made.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use serde::Serialize;
use wasmtime::Store;
use wasmtime::component::{Instance, ResourceTable};
use wasmtime_wasi_http::p2::body::{HostFutureTrailers, HostIncomingBody, HostOutgoingBody};
use wasmtime_wasi_http::p2::types::{
    HostFutureIncomingResponse, HostIncomingRequest, HostIncomingResponse, HostOutgoingRequest, HostOutgoingResponse,
    HostResponseOutparam,
};
use wasmtime_wasi_http::{FieldMap, RequestOptions};

use super::state::InstanceState;

/// An instance between two of its requests.
pub(crate) struct Kept {
    pub(crate) store: Store<InstanceState>,
    pub(crate) instance: Instance,
    /// Requests it has served so far.
    pub(crate) served: u32,
}

struct Idle {
    kept: Kept,
    since: Instant,
}

/// Host-wide: every function's pool, so that idle instances give way when
/// the instance pool is full, and the counters of `/_fn/health`.
#[derive(Debug, Default)]
pub struct ReuseHost {
    pools: Mutex<Vec<Weak<ReusePool>>>,
    idle: AtomicUsize,
    reused: AtomicU64,
    expired: AtomicU64,
    reclaimed: AtomicU64,
    used_up: AtomicU64,
    failed: AtomicU64,
    held_request: AtomicU64,
}

/// Counters of instance reuse, host-wide, for `/_fn/health`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ReuseStats {
    /// Instances idle in pools now, waiting for their function's next request.
    pub idle: usize,
    /// Requests served by an instance kept from an earlier request.
    pub reused: u64,
    /// Idle instances dropped after `instance_idle_ms` without a request.
    pub expired: u64,
    /// Idle instances dropped because the instance pool was full.
    pub reclaimed: u64,
    /// Instances dropped after serving `instance_reuse` requests.
    pub used_up: u64,
    /// Instances dropped because their request failed (trap, timeout,
    /// memory, guest error, interrupted or cut response).
    pub failed: u64,
    /// Instances dropped because the guest kept a resource of its request.
    pub held_request: u64,
}

impl ReuseHost {
    /// The counters as of now.
    pub fn stats(&self) -> ReuseStats {
        ReuseStats {
            idle: self.idle.load(Ordering::Relaxed),
            reused: self.reused.load(Ordering::Relaxed),
            expired: self.expired.load(Ordering::Relaxed),
            reclaimed: self.reclaimed.load(Ordering::Relaxed),
            used_up: self.used_up.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            held_request: self.held_request.load(Ordering::Relaxed),
        }
    }

    /// Drops the idle instance that has waited longest, of any function,
    /// to free its place in the instance pool. `false`: none was idle.
    pub(crate) fn reclaim_oldest(&self) -> bool {
        let pools: Vec<Arc<ReusePool>> = {
            let mut pools = self.pools.lock().expect("reuse pools");
            pools.retain(|p| p.strong_count() > 0);
            pools.iter().filter_map(Weak::upgrade).collect()
        };
        let oldest = pools
            .iter()
            .filter_map(|p| p.oldest_since().map(|since| (since, p)))
            .min_by_key(|(since, _)| *since);
        let Some((_, pool)) = oldest else { return false };
        let taken = {
            let mut idle = pool.idle.lock().expect("reuse pool");
            if idle.is_empty() { None } else { Some(idle.remove(0)) }
        };
        match taken {
            Some(idle) => {
                self.idle.fetch_sub(1, Ordering::AcqRel);
                self.reclaimed.fetch_add(1, Ordering::Relaxed);
                drop(idle);
                true
            }
            // Taken by a request in between: something else may be idle.
            None => self.idle.load(Ordering::Acquire) > 0,
        }
    }
}

/// One function version's idle instances, most recently used first.
pub struct ReusePool {
    host: Arc<ReuseHost>,
    /// Requests one instance may serve (`instance_reuse`, at least 2).
    max_uses: u32,
    /// How long an instance may wait idle (`instance_idle_ms`).
    idle_for: Duration,
    /// Idle instances it keeps at most.
    cap: usize,
    /// Oldest first: instances are taken from the end (the most recently
    /// used, whose memory is warmest) and expire from the front.
    idle: Mutex<Vec<Idle>>,
    /// A task drops expired instances while any are idle.
    sweeping: AtomicBool,
}

impl std::fmt::Debug for ReusePool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReusePool")
            .field("max_uses", &self.max_uses)
            .field("idle_for", &self.idle_for)
            .field("cap", &self.cap)
            .field("idle", &self.idle_count())
            .finish()
    }
}

impl ReusePool {
    /// A pool for a function whose instances serve up to `max_uses`
    /// requests, keeping at most `cap` idle for `idle_for` each.
    pub(crate) fn new(host: Arc<ReuseHost>, max_uses: u32, idle_for: Duration, cap: usize) -> Arc<Self> {
        let pool = Arc::new(Self {
            host: host.clone(),
            max_uses: max_uses.max(1),
            idle_for,
            cap: cap.max(1),
            idle: Mutex::new(Vec::new()),
            sweeping: AtomicBool::new(false),
        });
        let mut pools = host.pools.lock().expect("reuse pools");
        pools.retain(|p| p.strong_count() > 0);
        pools.push(Arc::downgrade(&pool));
        pool
    }

    /// Instances idle in this pool now.
    pub fn idle_count(&self) -> usize {
        self.idle.lock().expect("reuse pool").len()
    }

    fn oldest_since(&self) -> Option<Instant> {
        self.idle.lock().expect("reuse pool").first().map(|i| i.since)
    }

    /// The most recently used idle instance that has not expired.
    pub(crate) fn take(&self) -> Option<Kept> {
        let now = Instant::now();
        let mut expired = Vec::new();
        let taken = {
            let mut idle = self.idle.lock().expect("reuse pool");
            let fresh_from = idle.partition_point(|i| now.duration_since(i.since) >= self.idle_for);
            expired.extend(idle.drain(..fresh_from));
            idle.pop()
        };
        let gone = expired.len() + usize::from(taken.is_some());
        if gone > 0 {
            self.host.idle.fetch_sub(gone, Ordering::AcqRel);
            self.host.expired.fetch_add(expired.len() as u64, Ordering::Relaxed);
        }
        drop(expired);
        let kept = taken?.kept;
        self.host.reused.fetch_add(1, Ordering::Relaxed);
        Some(kept)
    }

    /// After a request that ended cleanly: keeps the instance for the next
    /// request, unless it has served its share, the guest still holds a
    /// resource of the request, or the pool is full (each counted).
    /// Returns the instance when it is not kept.
    pub(crate) fn put(self: &Arc<Self>, mut kept: Kept) -> Result<(), Kept> {
        if kept.served >= self.max_uses {
            self.host.used_up.fetch_add(1, Ordering::Relaxed);
            return Err(kept);
        }
        if holds_request_resources(&mut kept.store.data_mut().table) {
            self.host.held_request.fetch_add(1, Ordering::Relaxed);
            return Err(kept);
        }
        kept.store.data().tags.set_request(None, None);
        // The last request's deadline and CPU accounting go with it.
        kept.store
            .epoch_deadline_callback(|_| Ok(wasmtime::UpdateDeadline::Interrupt));
        {
            let mut idle = self.idle.lock().expect("reuse pool");
            if idle.len() >= self.cap {
                return Err(kept);
            }
            idle.push(Idle {
                kept,
                since: Instant::now(),
            });
        }
        self.host.idle.fetch_add(1, Ordering::AcqRel);
        self.sweep_later();
        Ok(())
    }

    /// Counts an instance dropped because its request failed.
    pub(crate) fn failed(&self) {
        self.host.failed.fetch_add(1, Ordering::Relaxed);
    }

    /// Starts the task that drops expired instances, unless it runs.
    fn sweep_later(self: &Arc<Self>) {
        if self.sweeping.swap(true, Ordering::AcqRel) {
            return;
        }
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            // No runtime to sweep from: `take` drops expired instances.
            self.sweeping.store(false, Ordering::Release);
            return;
        };
        let pool = Arc::downgrade(self);
        handle.spawn(async move {
            loop {
                let wake = {
                    let Some(pool) = pool.upgrade() else { return };
                    match pool.sweep(Instant::now()) {
                        Some(next) => next,
                        None => {
                            pool.sweeping.store(false, Ordering::Release);
                            // Put back in between: sweep on.
                            if pool.idle_count() == 0 || pool.sweeping.swap(true, Ordering::AcqRel) {
                                return;
                            }
                            continue;
                        }
                    }
                };
                tokio::time::sleep_until(wake.into()).await;
            }
        });
    }

    /// Drops the instances idle for `idle_for` as of `now`; when the next
    /// one expires (`None`: none is idle).
    fn sweep(&self, now: Instant) -> Option<Instant> {
        let (expired, next) = {
            let mut idle = self.idle.lock().expect("reuse pool");
            let fresh_from = idle.partition_point(|i| now.duration_since(i.since) >= self.idle_for);
            let expired: Vec<Idle> = idle.drain(..fresh_from).collect();
            (expired, idle.first().map(|i| i.since + self.idle_for))
        };
        if !expired.is_empty() {
            self.host.idle.fetch_sub(expired.len(), Ordering::AcqRel);
            self.host.expired.fetch_add(expired.len() as u64, Ordering::Relaxed);
        }
        next
    }
}

impl Drop for ReusePool {
    fn drop(&mut self) {
        let n = self.idle.get_mut().map(|i| i.len()).unwrap_or(0);
        if n > 0 {
            self.host.idle.fetch_sub(n, Ordering::AcqRel);
        }
    }
}

/// Whether the table still holds a resource of a request: the request,
/// its headers and body, the response, an outbound request or response.
/// (Streams and pollables are children of these: a guest cannot drop the
/// parent and keep them. A `wasi:http@0.3` body stream is a component
/// model stream, not an entry of the table, and is not checked: see
/// `docs/limits.md`.) What a guest keeps for its whole life, such as its
/// stdout stream, is not a request's.
fn holds_request_resources(table: &mut ResourceTable) -> bool {
    table.iter_mut().any(|entry| {
        let e: &dyn std::any::Any = entry;
        e.is::<HostIncomingRequest>()
            || e.is::<HostIncomingBody>()
            || e.is::<HostFutureTrailers>()
            || e.is::<FieldMap>()
            || e.is::<HostResponseOutparam>()
            || e.is::<HostOutgoingResponse>()
            || e.is::<HostOutgoingBody>()
            || e.is::<HostOutgoingRequest>()
            || e.is::<RequestOptions>()
            || e.is::<HostFutureIncomingResponse>()
            || e.is::<HostIncomingResponse>()
            || e.is::<wasmtime_wasi_http::p3::Request>()
            || e.is::<wasmtime_wasi_http::p3::Response>()
            || e.is::<wasmtime_wasi_http::p3::MaybeMutable<RequestOptions>>()
    })
}
