//! Fair sharing of the CPU between a tenant's functions: how many
//! invocations run and how many of them are heavy ([`Load`]), and the
//! pause a heavy guest takes per epoch tick beside lighter neighbours.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use wasmtime::UpdateDeadline;

/// How many invocations are running (of a tenant, or of one of its
/// functions), and how many of them have computed without pause for
/// longer than `HEAVY_AFTER_TICKS` epoch ticks.
#[derive(Debug, Default)]
pub struct Load {
    active: AtomicUsize,
    heavy: AtomicUsize,
}

/// Ticks of continuous computation after which an invocation counts as heavy.
const HEAVY_AFTER_TICKS: u32 = 3;
/// How long a heavy invocation pauses per tick while lighter ones are running.
const HEAVY_PAUSE: Duration = Duration::from_millis(29);

impl Load {
    /// Running invocations that are not heavy.
    fn light(&self) -> usize {
        let active = self.active.load(Ordering::Relaxed);
        active.saturating_sub(self.heavy.load(Ordering::Relaxed))
    }
}

/// One running invocation, counted host-wide and for its function.
pub(crate) struct ActiveInvocation {
    all: Arc<Load>,
    function: Arc<Load>,
}

impl ActiveInvocation {
    pub(crate) fn start(all: Arc<Load>, function: Arc<Load>) -> Self {
        all.active.fetch_add(1, Ordering::Relaxed);
        function.active.fetch_add(1, Ordering::Relaxed);
        Self { all, function }
    }
}

impl Drop for ActiveInvocation {
    fn drop(&mut self) {
        self.all.active.fetch_sub(1, Ordering::Relaxed);
        self.function.active.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Fair sharing of the CPU between a tenant's functions (between tenants,
/// the fair scheduler shares it, `fair.rs`): every tick a running guest
/// yields; once it has computed for [`HEAVY_AFTER_TICKS`] ticks it is
/// heavy, and while lighter invocations of other functions of its tenant
/// exist it pauses [`HEAVY_PAUSE`] per tick (holding no run slot), so a
/// guest spinning towards its timeout cannot starve its neighbours.
/// Invocations of one function are never paused for
/// each other: that would only reorder its own requests, the oldest last
/// (an interpreter's requests of a few milliseconds each got tails of
/// 100 ms and more under load). A heavy guest alone runs at full speed.
pub(crate) struct CpuShare {
    all: Arc<Load>,
    function: Arc<Load>,
    ticks: u32,
    heavy: bool,
}

impl CpuShare {
    pub(crate) fn new(all: Arc<Load>, function: Arc<Load>) -> Self {
        Self {
            all,
            function,
            ticks: 0,
            heavy: false,
        }
    }

    pub(crate) fn next_tick(&mut self) -> UpdateDeadline {
        self.ticks = self.ticks.saturating_add(1);
        if !self.heavy && self.ticks > HEAVY_AFTER_TICKS {
            self.heavy = true;
            self.all.heavy.fetch_add(1, Ordering::Relaxed);
            self.function.heavy.fetch_add(1, Ordering::Relaxed);
        }
        let lighter_elsewhere = self.all.light() > self.function.light();
        if self.heavy && lighter_elsewhere {
            UpdateDeadline::YieldCustom(1, Box::pin(tokio::time::sleep(HEAVY_PAUSE)))
        } else {
            UpdateDeadline::Yield(1)
        }
    }
}

impl Drop for CpuShare {
    fn drop(&mut self) {
        if self.heavy {
            self.all.heavy.fetch_sub(1, Ordering::Relaxed);
            self.function.heavy.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pauses(u: &UpdateDeadline) -> bool {
        matches!(u, UpdateDeadline::YieldCustom(..))
    }

    #[tokio::test]
    async fn heavy_guests_pause_only_beside_lighter_ones_of_other_functions() {
        let all = Arc::new(Load::default());
        let (a, b) = (Arc::new(Load::default()), Arc::new(Load::default()));
        let _me = ActiveInvocation::start(all.clone(), a.clone());
        let mut share = CpuShare::new(all.clone(), a.clone());
        for _ in 0..HEAVY_AFTER_TICKS {
            assert!(!pauses(&share.next_tick()), "light guests never pause");
        }
        // Heavy now, but alone: full speed.
        assert!(!pauses(&share.next_tick()));
        assert_eq!(
            (all.heavy.load(Ordering::Relaxed), a.heavy.load(Ordering::Relaxed)),
            (1, 1)
        );
        // A lighter invocation of the same function: no pause, its
        // requests are not reordered against each other.
        let sibling = ActiveInvocation::start(all.clone(), a.clone());
        assert!(!pauses(&share.next_tick()));
        // A lighter neighbour of another function arrives: the heavy one
        // pauses each tick.
        let neighbour = ActiveInvocation::start(all.clone(), b.clone());
        assert!(pauses(&share.next_tick()));
        drop(sibling);
        assert!(pauses(&share.next_tick()));
        drop(neighbour);
        assert!(!pauses(&share.next_tick()));
        // A heavy neighbour of another function is no reason to pause.
        let other = ActiveInvocation::start(all.clone(), b.clone());
        let mut other_share = CpuShare::new(all.clone(), b.clone());
        for _ in 0..=HEAVY_AFTER_TICKS {
            other_share.next_tick();
        }
        assert!(!pauses(&share.next_tick()));
        assert!(!pauses(&other_share.next_tick()));
        drop((other_share, other, share));
        assert_eq!(
            (all.heavy.load(Ordering::Relaxed), a.heavy.load(Ordering::Relaxed)),
            (0, 0)
        );
    }
}
