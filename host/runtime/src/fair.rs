//! Fair sharing of the CPU between tenants: a tenant with fifty busy
//! functions does not starve a tenant with one.
//!
//! Tokio runs ready tasks first come, first served, and a computing guest
//! yields at every epoch tick (1 ms), so on its own the CPU goes to
//! *requests*: a tenant with 100 in flight gets 100 times the CPU of a
//! tenant with one. Here every poll of a running guest's future passes a
//! gate with N run slots (N: the cores). A poll takes a slot and gives it
//! back when it returns, so a guest that waits for I/O (a body, an
//! outbound call, a sleep) holds none; only a guest whose poll ended at an
//! epoch tick (it wants the CPU back at once) keeps its slot, and at that
//! tick it hands the slot over instead to a waiting guest with a better
//! claim:
//!
//! - one of a tenant that holds fewer slots than the guest's own (max–min
//!   fairness: with T tenants wanting the CPU each gets N/T slots; with
//!   more tenants than slots they take turns, tick by tick);
//! - otherwise one of its own tenant: within a tenant the slots go round
//!   the functions that have guests waiting, and round the guests of each
//!   function, one tick each (as tokio did for all guests before).
//!
//! A freed slot goes to the waiting tenant holding the fewest (round robin
//! among equals). Three things keep a quiet tenant's requests from waiting
//! on a busy one:
//!
//! - a guest whose tenant holds two slots or more fewer than another does
//!   not wait: it takes a slot over the count and *kicks* the epoch (one
//!   extra increment, see [`Scheduler::new`]), so the running guests reach
//!   their epoch check within microseconds and one of the most loaded
//!   tenant gives a slot back there. A kick is not a tick of a guest's
//!   computation (`invoke.rs` tells them apart), so the per-function
//!   heavy/light scheme (`CpuShare`, now scoped to a tenant's functions)
//!   still counts real ticks only;
//! - a tenant that gives back its last slot while others wait finds it
//!   kept for its next request for half a millisecond (until the next
//!   tick after): a client that sends one request at a time comes back
//!   within that, and then finds a core free for its connection's task
//!   and its guest, instead of every core computing for the busy tenant
//!   (waking a thread on a busy core takes the OS a time slice). A tenant
//!   that does not come back in time is kept a slot again only now and
//!   then;
//! - the busy tenant's guests do not run on tokio's workers (see below).
//!
//! The gate is closed only while two tenants or more are *active*: with
//! an invocation in flight, or one that ended less than a second ago (a
//! client that sends one request at a time is not in flight between two
//! of them, and the gate must not open each time). With one tenant there
//! is no one to be fair to: a poll costs an atomic load, an invocation a
//! few atomic operations at its start and end, and nothing else changes.
//! Closed, a poll takes an uncontended lock to take a slot and one to give
//! it back (none at a tick where it keeps its slot and nobody waits).
//!
//! While the gate is closed, a guest that is not a quiet tenant's short
//! one (see [`TickMarker::belongs_in_pool`]) is polled on threads of its
//! own ([`pool`]) instead of tokio's workers: tokio looks at its I/O
//! driver and timers between polls, and with every worker computing 1 ms
//! at a time a quiet tenant's next request waited 10–20 ms to be read.
//!
//! Why a gate around polls and not the epoch callback alone
//! (`UpdateDeadline::YieldCustom` with a future that waits for the
//! tenant's turn): the callback only runs while a guest computes, so it
//! cannot see a guest stop to wait for I/O, and a slot taken there would
//! be held through every await; nor could it bound how many guests compute
//! at once. The callback's part is to say that a poll ended at a tick
//! ([`Ticket::marker`]) and to make the kick take effect.
//!
//! A guest waiting for its turn is a pending future like any other: the
//! deadline (`timeout_at` around the run), the host's interrupt and a
//! version's retirement stop it as they stop a guest waiting for I/O, and
//! dropping it gives back its place, or the slot it was just granted.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};

use futures::task::AtomicWaker;

/// The host-wide gate: run slots, and the guests waiting for one.
pub(crate) struct Scheduler {
    /// Tenants active: with an invocation in flight, or one that ended
    /// less than [`LINGER_TICKS`] ago; the gate closes at two.
    tenants_active: AtomicUsize,
    /// Milliseconds (epoch ticks) since start.
    clock: Arc<AtomicU64>,
    /// Tenants that went idle and still count as active, to forget once
    /// they have been idle for [`LINGER_TICKS`].
    lingering: Mutex<Vec<Arc<Tenant>>>,
    /// When `lingering` was last looked at.
    swept: AtomicU64,
    /// Guests waiting for a slot, read without the lock at each tick.
    waiting: AtomicUsize,
    /// Slots held over the count (taken early by a claim), read without
    /// the lock at each tick.
    over: AtomicUsize,
    /// The run slots, once known (0 before), read without the lock.
    slots: AtomicUsize,
    /// Slots kept for a tenant's next request, read without the lock at
    /// each tick.
    reserved: AtomicUsize,
    ids: AtomicU64,
    state: Mutex<State>,
    /// Makes every running guest reach its epoch check now.
    kick: Box<dyn Fn() + Send + Sync>,
    /// Where guests are polled while the gate is closed.
    pool: pool::Pool,
    #[cfg(test)]
    pub(crate) test: TestHooks,
}

/// Switches and counters for tests.
#[cfg(test)]
#[derive(Default)]
pub(crate) struct TestHooks {
    /// Never close the gate: the runtime as it was before this module.
    pub(crate) off: AtomicBool,
    /// Never move a guest to the pool: gated polls run on the workers.
    pub(crate) inline: AtomicBool,
    /// Move every guest to the pool while the gate is closed.
    pub(crate) all_pooled: AtomicBool,
    /// Polls that went through the gate.
    pub(crate) gated_polls: AtomicU64,
    /// Slots taken over the count on a claim (each kicks the epoch,
    /// unless a kick is already on its way).
    pub(crate) claims: AtomicU64,
    /// Kicks of the epoch.
    pub(crate) kicks: AtomicU64,
}

/// A tenant as the gate knows it.
pub(crate) struct Tenant {
    id: u64,
    /// Invocations in flight (the low bits), and [`COUNTED`]: the tenant
    /// counts in `tenants_active`.
    in_flight: AtomicU64,
    /// The clock when its last invocation ended.
    idle_since: AtomicU64,
    /// Its guests waiting for a slot (kept under the scheduler's lock).
    waiting: AtomicUsize,
    /// Releases since a slot kept for it went unused (0: it came back).
    late: AtomicU32,
}

/// Slots and queues, behind the scheduler's lock.
#[derive(Default)]
struct State {
    /// Run slots (the cores); 0 until first needed.
    slots: usize,
    /// Slots held, or granted to a guest that has not run yet.
    running: usize,
    /// Tenants holding a slot or waiting for one.
    tenants: HashMap<u64, Queue>,
    /// Tenants with guests waiting, in round-robin order.
    turn: VecDeque<u64>,
    /// A kick was sent and no guest has reached the gate since.
    kicked: bool,
    /// Slots kept for a tenant that gave back its last one while others
    /// waited (counted in `running` and in its queue's), until when.
    reserved: Vec<(Arc<Tenant>, std::time::Instant)>,
    /// How long (0: never).
    reserve: std::time::Duration,
}

/// One tenant's slots and waiting guests.
#[derive(Default)]
struct Queue {
    running: usize,
    /// Functions with guests waiting, in round-robin order, each with its
    /// guests in the order they came.
    functions: VecDeque<(u64, VecDeque<Arc<Seat>>)>,
}

/// What a guest and the gate share.
pub(crate) struct Seat {
    owner: Arc<Tenant>,
    function: u64,
    /// Set (under the lock) when a slot was handed to this waiting guest.
    granted: AtomicBool,
    /// Set by the epoch callback when the guest yields at a tick.
    yielded: AtomicBool,
    /// Ticks the guest has computed through (up to a few).
    ticks: AtomicU32,
    waker: AtomicWaker,
}

/// How long a tenant counts as active after its last invocation ended:
/// a tenant whose client sends one request at a time is not in flight
/// between two of them, yet keeps the gate closed (ms).
const LINGER_TICKS: u64 = 1000;

/// How long a slot is kept for a tenant that gave back its last one
/// while others waited (then until the next epoch tick).
const RESERVE: std::time::Duration = std::time::Duration::from_micros(500);

/// One release in this many keeps a slot for a tenant that did not come
/// back in time before.
const RESERVE_RETRY: u32 = 8;

/// The bit of [`Tenant::in_flight`] that says it counts as active.
const COUNTED: u64 = 1 << 63;

/// Ticks of computation after which a guest leaves the workers.
const MIGRATE_AFTER_TICKS: u32 = 3;

/// Where a guest stands with the gate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Standing {
    /// Holds no slot and waits for none (between polls, or the gate is open).
    Free,
    /// In a queue, or granted a slot it has not used yet.
    Waiting,
    /// Holds a slot.
    Holding,
}

impl Scheduler {
    /// A gate whose kick calls `kick`, which should advance the epoch of
    /// every engine (each store's deadline is one epoch ahead, so every
    /// computing guest calls its epoch callback at its next check), and
    /// whose `clock` counts milliseconds (the epoch ticks).
    pub(crate) fn new(kick: impl Fn() + Send + Sync + 'static, clock: Arc<AtomicU64>) -> Arc<Self> {
        Arc::new(Self {
            tenants_active: AtomicUsize::new(0),
            clock,
            lingering: Mutex::new(Vec::new()),
            swept: AtomicU64::new(0),
            waiting: AtomicUsize::new(0),
            over: AtomicUsize::new(0),
            slots: AtomicUsize::new(0),
            reserved: AtomicUsize::new(0),
            ids: AtomicU64::new(1),
            state: Mutex::new(State {
                reserve: RESERVE,
                ..State::default()
            }),
            kick: Box::new(kick),
            pool: pool::Pool::new(),
            #[cfg(test)]
            test: TestHooks::default(),
        })
    }

    /// A new tenant.
    pub(crate) fn tenant(&self) -> Arc<Tenant> {
        Arc::new(Tenant {
            id: self.id(),
            in_flight: AtomicU64::new(0),
            idle_since: AtomicU64::new(0),
            waiting: AtomicUsize::new(0),
            late: AtomicU32::new(0),
        })
    }

    /// A new id for a function (functions of one tenant take turns).
    pub(crate) fn id(&self) -> u64 {
        self.ids.fetch_add(1, Ordering::Relaxed)
    }

    /// One invocation of `function` (an id from [`Scheduler::id`]) of
    /// `tenant`, in flight until the ticket is dropped.
    pub(crate) fn ticket(self: &Arc<Self>, tenant: &Arc<Tenant>, function: u64) -> Ticket {
        // In flight, and counted as active unless it still is.
        let before = tenant
            .in_flight
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| Some((n + 1) | COUNTED))
            .expect("always updated");
        if before & COUNTED == 0 {
            self.tenants_active.fetch_add(1, Ordering::AcqRel);
        }
        let now = self.clock.load(Ordering::Relaxed);
        if now.wrapping_sub(self.swept.load(Ordering::Relaxed)) >= LINGER_TICKS / 8 {
            self.sweep(now);
        }
        Ticket {
            scheduler: self.clone(),
            seat: Arc::new(Seat {
                owner: tenant.clone(),
                function,
                granted: AtomicBool::new(false),
                yielded: AtomicBool::new(false),
                ticks: AtomicU32::new(0),
                waker: AtomicWaker::new(),
            }),
            standing: Standing::Free,
        }
    }

    /// Keeps the counts read without the lock as `s` says.
    fn publish(&self, s: &State) {
        self.over.store(s.running.saturating_sub(s.slots), Ordering::SeqCst);
        self.reserved.store(s.reserved.len(), Ordering::SeqCst);
    }

    /// Whether polls go through the gate now.
    fn closed(&self) -> bool {
        #[cfg(test)]
        if self.test.off.load(Ordering::Relaxed) {
            return false;
        }
        self.tenants_active.load(Ordering::Relaxed) >= 2
    }

    /// Stops counting the tenants idle for [`LINGER_TICKS`].
    fn sweep(&self, now: u64) {
        self.swept.store(now, Ordering::Relaxed);
        let mut lingering = self.lingering.lock().unwrap_or_else(|p| p.into_inner());
        lingering.retain(|tenant| {
            if now.wrapping_sub(tenant.idle_since.load(Ordering::Acquire)) < LINGER_TICKS {
                return true;
            }
            // Idle long enough: no longer counted, unless an invocation
            // started meanwhile (then it is not idle; it is listed again
            // when it is).
            let forgotten = tenant
                .in_flight
                .compare_exchange(COUNTED, 0, Ordering::AcqRel, Ordering::Acquire)
                .is_ok();
            if forgotten {
                self.tenants_active.fetch_sub(1, Ordering::AcqRel);
            }
            false
        });
    }

    /// `tenant`'s last invocation in flight ended: it lingers as active.
    fn went_idle(&self, tenant: &Arc<Tenant>) {
        tenant
            .idle_since
            .store(self.clock.load(Ordering::Relaxed), Ordering::Release);
        let mut lingering = self.lingering.lock().unwrap_or_else(|p| p.into_inner());
        if !lingering.iter().any(|t| Arc::ptr_eq(t, tenant)) {
            lingering.push(tenant.clone());
        }
    }

    /// Whether the guest `marker` marks goes to the pool's threads: the
    /// gate is closed and it belongs there.
    fn pooled(&self, marker: &TickMarker) -> bool {
        #[cfg(test)]
        if self.test.inline.load(Ordering::Relaxed) {
            return false;
        }
        if !self.closed() {
            return false;
        }
        #[cfg(test)]
        if self.test.all_pooled.load(Ordering::Relaxed) {
            return true;
        }
        let slots = match self.slots.load(Ordering::Relaxed) {
            0 => self.lock().slots,
            n => n,
        };
        marker.belongs_in_pool(slots)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // The lock is never held across anything that can panic midway
        // through an update, but a poisoned lock must not stop the host.
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if state.slots == 0 {
            state.slots = std::thread::available_parallelism().map_or(1, |n| n.get());
            self.slots.store(state.slots, Ordering::Relaxed);
        }
        state
    }

    /// Sets how long a slot is kept for a tenant's next request (tests).
    #[cfg(test)]
    pub(crate) fn set_reserve(&self, reserve: std::time::Duration) {
        self.lock().reserve = reserve;
    }

    /// Sets the number of run slots (tests).
    #[cfg(test)]
    pub(crate) fn set_slots(&self, n: usize) {
        self.lock().slots = n.max(1);
        self.slots.store(n.max(1), Ordering::Relaxed);
    }

    /// Slots held and guests waiting, as of now (tests).
    #[cfg(test)]
    pub(crate) fn occupancy(&self) -> (usize, usize) {
        let s = self.lock();
        (s.running, self.waiting.load(Ordering::SeqCst))
    }

    /// A slot now (`true`: a free one, or one over the count on a claim,
    /// then kicking the epoch), or a place in the queue.
    fn acquire(&self, seat: &Arc<Seat>) -> bool {
        let mut s = self.lock();
        #[cfg(test)]
        self.test.gated_polls.fetch_add(1, Ordering::Relaxed);
        if let Some(at) = s.reserved.iter().position(|(t, _)| t.id == seat.owner.id) {
            // Its slot, kept since its last guest gave it back.
            s.reserved.swap_remove(at);
            seat.owner.late.store(0, Ordering::Relaxed);
            self.publish(&s);
            return true;
        }
        let mine = s.tenants.get(&seat.owner.id).map_or(0, |q| q.running);
        // A claim: another tenant holds at least two slots more than this
        // one. The guest takes one now, over the count (its tenant still
        // holds fewer), and the kick makes the most loaded tenant give one
        // back within microseconds: a quiet tenant's short request does
        // not wait for the tick.
        let claim = s.running >= s.slots && s.tenants.values().any(|q| q.running > mine + 1);
        if s.running < s.slots || claim {
            s.running += 1;
            s.tenants.entry(seat.owner.id).or_default().running += 1;
            self.publish(&s);
            let kick = claim && !s.kicked;
            s.kicked |= kick;
            drop(s);
            #[cfg(test)]
            if claim {
                self.test.claims.fetch_add(1, Ordering::Relaxed);
            }
            if kick {
                #[cfg(test)]
                self.test.kicks.fetch_add(1, Ordering::Relaxed);
                (self.kick)();
            }
            return true;
        }
        s.enqueue(seat.clone());
        self.waiting.fetch_add(1, Ordering::SeqCst);
        false
    }

    /// Gives back the slot `seat` holds: to the waiting tenant with the
    /// fewest slots, or free.
    ///
    /// `finished`: the guest's request is over (its slot may be kept for
    /// the tenant's next, see [`State::release`]).
    fn release(&self, seat: &Seat, finished: bool) {
        let mut s = self.lock();
        let next = s.release(&seat.owner, finished);
        if next.is_some() {
            self.waiting.fetch_sub(1, Ordering::SeqCst);
        }
        self.publish(&s);
        drop(s);
        if let Some(next) = next {
            next.waker.wake();
        }
    }

    /// At each epoch tick (the ticker's thread): slots kept for tenants
    /// that did not come back in time go to the others.
    pub(crate) fn on_tick(&self) {
        if self.reserved.load(Ordering::SeqCst) == 0 {
            return;
        }
        let now = std::time::Instant::now();
        let mut s = self.lock();
        let mut woken = Vec::new();
        while let Some(at) = s.reserved.iter().position(|(_, until)| *until <= now) {
            let (tenant, _) = s.reserved.swap_remove(at);
            tenant.late.fetch_add(1, Ordering::Relaxed);
            if let Some(next) = s.release(&tenant, false) {
                self.waiting.fetch_sub(1, Ordering::SeqCst);
                woken.push(next);
            }
        }
        self.publish(&s);
        drop(s);
        for seat in woken {
            seat.waker.wake();
        }
    }

    /// At a tick, the guest holding a slot for `seat` wants the CPU again:
    /// `true` if it gave its slot back (the slots are over the count and
    /// its tenant is the most loaded) or handed it to a guest with a
    /// better claim, and is now in the queue itself.
    fn at_tick(&self, seat: &Arc<Seat>) -> bool {
        if self.waiting.load(Ordering::SeqCst) == 0 && self.over.load(Ordering::SeqCst) == 0 {
            return false;
        }
        let mut s = self.lock();
        s.kicked = false;
        let mine = s.tenants.get(&seat.owner.id).map_or(0, |q| q.running);
        let (least, most) = s
            .tenants
            .values()
            .fold((usize::MAX, 0), |(l, m), q| (l.min(q.running), m.max(q.running)));
        if s.running > s.slots && mine == most && mine > least {
            // Over the count (a claim took a slot early), and this
            // guest's tenant is the most loaded: it gives one back.
            if let Some(q) = s.tenants.get_mut(&seat.owner.id) {
                q.running -= 1;
            }
            s.running -= 1;
            self.publish(&s);
            s.enqueue(seat.clone());
            self.waiting.fetch_add(1, Ordering::SeqCst);
            return true;
        }
        let to = match s.neediest(Some(seat.owner.id)) {
            Some((tenant, running)) if running < mine => tenant,
            _ if s.tenants.get(&seat.owner.id).is_some_and(|q| !q.functions.is_empty()) => seat.owner.id,
            _ => return false,
        };
        if let Some(q) = s.tenants.get_mut(&seat.owner.id) {
            q.running -= 1;
        }
        // In the queue first: its function then waits behind the others
        // of its tenant, not ahead of them.
        s.enqueue(seat.clone());
        let next = s.grant(to);
        drop(s);
        next.waker.wake();
        true
    }

    /// A waiting guest went away: its place is given up, or the slot it
    /// was just granted passed on.
    fn leave(&self, seat: &Arc<Seat>) {
        let mut s = self.lock();
        if seat.granted.swap(false, Ordering::AcqRel) {
            let next = s.release(&seat.owner, false);
            if next.is_some() {
                self.waiting.fetch_sub(1, Ordering::SeqCst);
            }
            self.publish(&s);
            drop(s);
            if let Some(next) = next {
                next.waker.wake();
            }
            return;
        }
        if let Some(q) = s.tenants.get_mut(&seat.owner.id) {
            let mut found = false;
            q.functions.retain_mut(|(_, guests)| {
                if let Some(at) = guests.iter().position(|g| Arc::ptr_eq(g, seat)) {
                    guests.remove(at);
                    seat.owner.waiting.fetch_sub(1, Ordering::Relaxed);
                    found = true;
                }
                !guests.is_empty()
            });
            if found {
                self.waiting.fetch_sub(1, Ordering::SeqCst);
            }
            if q.functions.is_empty() {
                s.turn.retain(|t| *t != seat.owner.id);
            }
            s.forget_if_idle(seat.owner.id);
        }
    }
}

impl State {
    /// Puts `seat` at the back of its function's queue.
    fn enqueue(&mut self, seat: Arc<Seat>) {
        seat.owner.waiting.fetch_add(1, Ordering::Relaxed);
        let tenant = seat.owner.id;
        let q = self.tenants.entry(tenant).or_default();
        let was_waiting = !q.functions.is_empty();
        match q.functions.iter_mut().find(|(f, _)| *f == seat.function) {
            Some((_, guests)) => guests.push_back(seat),
            None => q.functions.push_back((seat.function, VecDeque::from([seat]))),
        }
        if !was_waiting {
            self.turn.push_back(tenant);
        }
    }

    /// The waiting tenant (other than `except`) holding the fewest slots,
    /// the first in turn among equals, and how many it holds.
    fn neediest(&self, except: Option<u64>) -> Option<(u64, usize)> {
        let mut best: Option<(u64, usize)> = None;
        for &tenant in &self.turn {
            if Some(tenant) == except {
                continue;
            }
            let running = self.tenants.get(&tenant).map_or(0, |q| q.running);
            if best.is_none_or(|(_, b)| running < b) {
                best = Some((tenant, running));
            }
        }
        best
    }

    /// Hands a slot (already counted in `running`) to the next waiting
    /// guest of `tenant`, which must have one: the next function in turn,
    /// its longest-waiting guest. The caller wakes it.
    fn grant(&mut self, tenant: u64) -> Arc<Seat> {
        let q = self.tenants.get_mut(&tenant).expect("a waiting tenant has a queue");
        let (function, mut guests) = q.functions.pop_front().expect("a waiting tenant has guests");
        let seat = guests.pop_front().expect("function queues are never empty");
        seat.owner.waiting.fetch_sub(1, Ordering::Relaxed);
        if !guests.is_empty() {
            q.functions.push_back((function, guests));
        }
        q.running += 1;
        let still_waiting = !q.functions.is_empty();
        if let Some(at) = self.turn.iter().position(|t| *t == tenant) {
            self.turn.remove(at);
        }
        if still_waiting {
            self.turn.push_back(tenant);
        }
        seat.granted.store(true, Ordering::Release);
        seat
    }

    /// `tenant` gives back a slot: to the neediest waiting tenant
    /// (returned, to be woken), or free. Its last slot, given back by a
    /// guest that finished (`keep`) while guests of other tenants wait, is
    /// kept for it for [`RESERVE`] instead: its next request (a client's
    /// next, one at a time) then finds a core free, for itself and for the
    /// threads that carry the request to it, not every core computing for
    /// the others.
    ///
    /// A tenant that did not come back in time is not kept a slot again,
    /// but for one try in every [`RESERVE_RETRY`] (it wasted a slot's time).
    fn release(&mut self, owner: &Arc<Tenant>, keep: bool) -> Option<Arc<Seat>> {
        self.kicked = false;
        let tenant = owner.id;
        if keep
            && !self.reserve.is_zero()
            && self.running <= self.slots
            && self
                .tenants
                .get(&tenant)
                .is_some_and(|q| q.running == 1 && q.functions.is_empty())
            && self.turn.iter().any(|t| *t != tenant)
        {
            let late = owner.late.load(Ordering::Relaxed);
            if late.is_multiple_of(RESERVE_RETRY) {
                self.reserved
                    .push((owner.clone(), std::time::Instant::now() + self.reserve));
                return None;
            }
            owner.late.store(late.saturating_add(1), Ordering::Relaxed);
        }
        if let Some(q) = self.tenants.get_mut(&tenant) {
            q.running -= 1;
        }
        // Over the count, the slot is not handed on.
        let next = match self.neediest(None) {
            Some((to, _)) if self.running <= self.slots => Some(self.grant(to)),
            _ => {
                self.running -= 1;
                None
            }
        };
        self.forget_if_idle(tenant);
        next
    }

    fn forget_if_idle(&mut self, tenant: u64) {
        if self
            .tenants
            .get(&tenant)
            .is_some_and(|q| q.running == 0 && q.functions.is_empty())
        {
            self.tenants.remove(&tenant);
        }
    }
}

/// One invocation's place at the gate.
pub(crate) struct Ticket {
    scheduler: Arc<Scheduler>,
    seat: Arc<Seat>,
    standing: Standing,
}

/// Given to the guest's epoch callback: marks a poll that ends at a tick.
pub(crate) struct TickMarker(Arc<Seat>);

impl TickMarker {
    /// The guest yields at this tick and wants the CPU back at once.
    pub(crate) fn mark(&self) {
        self.0.yielded.store(true, Ordering::Relaxed);
        // One store at a time runs the callback: no read-modify-write.
        let ticks = self.0.ticks.load(Ordering::Relaxed);
        if ticks < MIGRATE_AFTER_TICKS {
            self.0.ticks.store(ticks + 1, Ordering::Relaxed);
        }
    }

    /// Whether the guest should be polled on the pool's threads (the gate
    /// being closed): it has computed for a few ticks, or its tenant has
    /// guests waiting for a slot (it wants more CPU than it gets), or as
    /// many in flight as there are `slots` (it could take every worker).
    /// A quiet tenant's short guests stay in their task: no thread to wake.
    pub(crate) fn belongs_in_pool(&self, slots: usize) -> bool {
        let owner = &self.0.owner;
        self.0.ticks.load(Ordering::Relaxed) >= MIGRATE_AFTER_TICKS
            || owner.waiting.load(Ordering::Relaxed) > 0
            || (owner.in_flight.load(Ordering::Relaxed) & !COUNTED) as usize >= slots
    }
}

impl Ticket {
    /// What the epoch callback marks ticks with.
    pub(crate) fn marker(&self) -> TickMarker {
        TickMarker(self.seat.clone())
    }

    /// Runs `guest`, each poll through the gate.
    pub(crate) async fn run<F: Future>(mut self, guest: F) -> F::Output {
        let mut guest = std::pin::pin!(guest);
        std::future::poll_fn(|cx| self.poll(guest.as_mut(), cx)).await
    }

    fn poll<F: Future>(&mut self, guest: Pin<&mut F>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let scheduler = &*self.scheduler;
        let seat = &self.seat;
        match self.standing {
            Standing::Free => {
                if !scheduler.closed() {
                    return guest.poll(cx);
                }
                if !scheduler.acquire(seat) {
                    self.standing = Standing::Waiting;
                    seat.waker.register(cx.waker());
                    if !seat.granted.swap(false, Ordering::AcqRel) {
                        return Poll::Pending;
                    }
                }
            }
            Standing::Waiting => {
                seat.waker.register(cx.waker());
                if !seat.granted.swap(false, Ordering::AcqRel) {
                    return Poll::Pending;
                }
            }
            Standing::Holding => {}
        }
        self.standing = Standing::Holding;
        seat.yielded.store(false, Ordering::Relaxed);
        let polled = guest.poll(cx);
        if polled.is_pending() && seat.yielded.load(Ordering::Relaxed) {
            // Ended at a tick: the guest wants the CPU again at once (its
            // task is already woken). It keeps its slot unless someone
            // with a better claim waits.
            seat.waker.register(cx.waker());
            if scheduler.at_tick(seat) {
                self.standing = Standing::Waiting;
            }
        } else {
            // Finished, or waiting for something other than the CPU.
            self.standing = Standing::Free;
            scheduler.release(seat, polled.is_ready());
        }
        polled
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        match self.standing {
            Standing::Free => {}
            Standing::Waiting => self.scheduler.leave(&self.seat),
            Standing::Holding => self.scheduler.release(&self.seat, false),
        }
        let owner = &self.seat.owner;
        if owner.in_flight.fetch_sub(1, Ordering::AcqRel) & !COUNTED == 1 {
            self.scheduler.went_idle(owner);
        }
    }
}

mod pool;
#[cfg(test)]
mod tests;

pub(crate) use pool::Placed;
