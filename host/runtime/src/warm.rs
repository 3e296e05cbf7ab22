//! Warm instances: a function that has served a request keeps one instance
//! made ahead, in a store of its own, for its next request.
//!
//! Isolation is unchanged: every request still runs in an instance no other
//! request has touched, and every instance serves one request. What moves
//! is *when* the instance is made: after the previous response went out,
//! instead of while the next client waits. A host-wide budget bounds how
//! many wait at once (each holds a pool slot); when it is spent, the one
//! that has waited longest is dropped to make room.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use wasmtime::component::{Instance, InstancePre};
use wasmtime::{Engine, Store, UpdateDeadline};

use super::observe::GuestOutput;
use super::state::{InstanceState, TagCell};
use super::{Capabilities, CompiledComponent};

/// The host-wide budget of warm instances, and what became of them.
#[derive(Debug, Default)]
pub struct WarmBudget {
    limit: usize,
    /// Units in use: warm instances ready, plus ones being made.
    held: AtomicUsize,
    /// Warm instances ready.
    ready: AtomicUsize,
    /// Slots as they were filled, oldest first, with the fill's number; an
    /// entry whose slot has been emptied or refilled since is stale.
    order: Mutex<VecDeque<(Weak<WarmSlot>, u64)>>,
    fills: AtomicU64,
    hits: AtomicU64,
    misses: AtomicU64,
    evicted: AtomicU64,
    failed: AtomicU64,
}

/// Counters for `/_fn/health`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct WarmStats {
    /// Warm instances that may wait at once (`--warm-instances`).
    pub budget: usize,
    /// Warm instances ready or being made now.
    pub held: usize,
    /// Warm instances ready now.
    pub ready: usize,
    /// Requests that found a warm instance.
    pub hits: u64,
    /// Requests that made their instance themselves.
    pub misses: u64,
    /// Warm instances dropped to make room for another function's.
    pub evicted: u64,
    /// Warm instances that could not be made (the next request makes its own).
    pub failed: u64,
}

impl WarmBudget {
    /// A budget of `limit` warm instances host-wide; 0 makes none.
    pub fn new(limit: usize) -> Arc<Self> {
        Arc::new(Self {
            limit,
            ..Self::default()
        })
    }

    /// The budget and its counters, as of now.
    pub fn stats(&self) -> WarmStats {
        WarmStats {
            budget: self.limit,
            held: self.held.load(Ordering::Relaxed),
            ready: self.ready.load(Ordering::Relaxed),
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            evicted: self.evicted.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
        }
    }

    /// Takes one unit, dropping the longest-waiting warm instance of
    /// another slot if the budget is spent. `None`: nothing to give.
    fn reserve(self: &Arc<Self>, asking: &WarmSlot) -> Option<Unit> {
        if self.limit == 0 {
            return None;
        }
        if self.held.fetch_add(1, Ordering::AcqRel) < self.limit {
            return Some(Unit(self.clone()));
        }
        // Spent: the unit just taken stays ours only if another slot's
        // warm instance gives its unit back.
        loop {
            let oldest = self.order.lock().expect("warm order").pop_front();
            let Some((oldest, fill)) = oldest else {
                self.held.fetch_sub(1, Ordering::AcqRel);
                return None;
            };
            let Some(slot) = oldest.upgrade() else { continue };
            if std::ptr::eq(Arc::as_ptr(&slot), asking) {
                continue;
            }
            let evicted = {
                let mut ready = slot.ready.lock().expect("warm slot");
                // Only the fill this entry recorded; a later one has its own.
                if ready.as_ref().is_some_and(|w| w.fill == fill) {
                    ready.take()
                } else {
                    None
                }
            };
            if let Some(warm) = evicted {
                // Its unit is given back with it; the one we took stays.
                self.ready.fetch_sub(1, Ordering::AcqRel);
                self.held.fetch_sub(1, Ordering::AcqRel);
                self.evicted.fetch_add(1, Ordering::Relaxed);
                drop(warm);
                return Some(Unit(self.clone()));
            }
        }
    }

    fn remember(&self, slot: Weak<WarmSlot>, fill: u64) {
        let mut order = self.order.lock().expect("warm order");
        order.push_back((slot, fill));
        // Entries of slots emptied by requests pile up; keep the list short.
        if order.len() > self.limit.saturating_mul(4).max(64) {
            order.retain(|(w, fill)| w.upgrade().is_some_and(|s| s.ready_fill() == Some(*fill)));
        }
    }
}

/// One unit of the budget; given back when dropped unless kept by a warm
/// instance that is ready.
struct Unit(Arc<WarmBudget>);

impl Unit {
    /// The unit now belongs to a ready warm instance; given back when that
    /// instance is taken, evicted or dropped with its slot.
    fn keep(self) {
        std::mem::forget(self);
    }
}

impl Drop for Unit {
    fn drop(&mut self) {
        self.0.held.fetch_sub(1, Ordering::AcqRel);
    }
}

/// An instance made ahead, with its store.
pub(crate) struct Warm {
    pub(crate) store: Store<InstanceState>,
    pub(crate) instance: Instance,
    /// Which fill of the budget made it.
    fill: u64,
}

/// What a function's instances are made with.
struct WarmSpec {
    engine: Engine,
    pre: InstancePre<InstanceState>,
    function: Arc<str>,
    output: Option<Arc<dyn GuestOutput>>,
    max_memory_bytes: u64,
    capabilities: Capabilities,
    timeout: Duration,
}

/// One function's warm instance, if it has one.
pub struct WarmSlot {
    ready: Mutex<Option<Warm>>,
    spec: WarmSpec,
    budget: Arc<WarmBudget>,
    /// Making an instance ahead failed; cleared when a request makes one.
    failing: AtomicBool,
    /// An instance is being made for this slot.
    filling: AtomicBool,
}

impl WarmSlot {
    pub(crate) fn new(
        engine: Engine,
        budget: Arc<WarmBudget>,
        component: &CompiledComponent,
        (function, output): (Arc<str>, Option<Arc<dyn GuestOutput>>),
        max_memory_bytes: u64,
        capabilities: Capabilities,
        timeout: Duration,
    ) -> Arc<Self> {
        Arc::new(Self {
            ready: Mutex::new(None),
            spec: WarmSpec {
                engine,
                pre: component.pre.clone(),
                function,
                output,
                max_memory_bytes,
                capabilities,
                timeout,
            },
            budget,
            failing: AtomicBool::new(false),
            filling: AtomicBool::new(false),
        })
    }

    /// Whether a warm instance waits in this slot now.
    pub fn is_ready(&self) -> bool {
        self.ready.lock().expect("warm slot").is_some()
    }

    fn ready_fill(&self) -> Option<u64> {
        self.ready.lock().expect("warm slot").as_ref().map(|w| w.fill)
    }

    /// The warm instance, if one is ready; counted as a hit or a miss.
    pub(crate) fn take(&self) -> Option<Warm> {
        let warm = self.ready.lock().expect("warm slot").take();
        if warm.is_some() {
            self.budget.ready.fetch_sub(1, Ordering::AcqRel);
            self.budget.held.fetch_sub(1, Ordering::AcqRel);
            self.budget.hits.fetch_add(1, Ordering::Relaxed);
        } else {
            self.budget.misses.fetch_add(1, Ordering::Relaxed);
        }
        warm
    }

    /// A request made its own instance: making one ahead may work again.
    pub(crate) fn made_inline(&self) {
        self.failing.store(false, Ordering::Relaxed);
    }

    /// Makes the next warm instance, unless one is ready or being made, the
    /// last attempt failed, or the budget has nothing to give. Guest code
    /// that runs while instantiating (start functions) runs under the
    /// function's timeout and memory limit, as it would for a request.
    pub(crate) async fn refill(self: Arc<Self>) {
        if self.failing.load(Ordering::Relaxed) || self.filling.swap(true, Ordering::AcqRel) {
            return;
        }
        let _filling = ClearOnDrop(&self.filling);
        if self.is_ready() {
            return;
        }
        let Some(unit) = self.budget.reserve(&self) else { return };
        let spec = &self.spec;
        let tags = TagCell::new(spec.function.clone(), spec.output.clone());
        let mut store = Store::new(
            &spec.engine,
            InstanceState::new(tags, spec.max_memory_bytes, spec.capabilities.clone()),
        );
        store.limiter(|s| &mut s.limiter);
        store.set_epoch_deadline(1);
        let deadline = Instant::now() + spec.timeout;
        store.epoch_deadline_callback(move |_| {
            Ok(if Instant::now() >= deadline {
                UpdateDeadline::Interrupt
            } else {
                UpdateDeadline::Yield(1)
            })
        });
        match spec.pre.instantiate_async(&mut store).await {
            Ok(instance) => {
                let fill = self.budget.fills.fetch_add(1, Ordering::Relaxed);
                *self.ready.lock().expect("warm slot") = Some(Warm { store, instance, fill });
                self.budget.ready.fetch_add(1, Ordering::AcqRel);
                unit.keep();
                self.budget.remember(Arc::downgrade(&self), fill);
            }
            Err(e) => {
                self.failing.store(true, Ordering::Relaxed);
                self.budget.failed.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(function = %spec.function, error = %format!("{e:#}"), "warm instance not made");
            }
        }
    }
}

impl Drop for WarmSlot {
    fn drop(&mut self) {
        if self.ready.get_mut().map(|w| w.take().is_some()).unwrap_or(false) {
            self.budget.ready.fetch_sub(1, Ordering::AcqRel);
            self.budget.held.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

struct ClearOnDrop<'a>(&'a AtomicBool);

impl Drop for ClearOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}
