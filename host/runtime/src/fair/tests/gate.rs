//! The gate with plain futures, polled by hand.

use super::*;

#[test]
fn with_one_tenant_the_gate_stays_open() {
    let (s, _) = gate(1);
    let solo = s.tenant();
    let (a, b) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let mut first = hog(s.ticket(&solo, 1), a.clone());
    let mut second = hog(s.ticket(&solo, 2), b.clone());
    for _ in 0..5 {
        assert!(poll(&mut first).is_pending());
        assert!(poll(&mut second).is_pending());
    }
    assert_eq!((a.load(Ordering::Relaxed), b.load(Ordering::Relaxed)), (5, 5));
    assert_eq!(s.test.gated_polls.load(Ordering::Relaxed), 0);
    assert_eq!(s.occupancy(), (0, 0));
}

#[test]
fn a_guest_waiting_for_io_holds_no_slot() {
    let (s, kicks) = gate(1);
    let (x, y) = (s.tenant(), s.tenant());
    let done = Arc::new(AtomicBool::new(false));
    let polls = Arc::new(AtomicU64::new(0));
    let mut waiting = waits_for_io(s.ticket(&x, 1), done.clone());
    let mut busy = hog(s.ticket(&y, 2), polls.clone());
    assert!(poll(&mut waiting).is_pending());
    assert_eq!(s.test.gated_polls.load(Ordering::Relaxed), 1);
    assert_eq!(s.occupancy(), (0, 0), "pending on I/O, it gave its slot back");
    // Another tenant's guest runs meanwhile, poll after poll.
    for _ in 0..10 {
        assert!(poll(&mut busy).is_pending());
    }
    assert_eq!(polls.load(Ordering::Relaxed), 10);
    assert_eq!(s.occupancy(), (1, 0));
    // The I/O completes: the guest waits for the slot, gets it at the
    // hog's next tick (its tenant holds none, the hog's one), finishes.
    done.store(true, Ordering::Relaxed);
    assert!(poll(&mut waiting).is_pending());
    assert_eq!(s.occupancy(), (1, 1));
    assert!(poll(&mut busy).is_pending());
    assert_eq!(polls.load(Ordering::Relaxed), 11);
    assert!(poll(&mut waiting).is_ready());
    // The slot went back to the hog, which waited.
    assert_eq!(s.occupancy(), (1, 0));
    assert!(poll(&mut busy).is_pending());
    assert_eq!(polls.load(Ordering::Relaxed), 12);
    assert_eq!(kicks.load(Ordering::Relaxed), 0, "one slot more would not be fairer");
    drop((busy, waiting));
    assert_eq!(s.occupancy(), (0, 0));
    assert_eq!(s.tenants_active.load(Ordering::Relaxed), 2, "both linger as active");
}

#[test]
fn the_tenant_holding_fewer_slots_gets_one_at_once() {
    let (s, kicks) = gate(2);
    let (busy, quiet) = (s.tenant(), s.tenant());
    let count = || Arc::new(AtomicU64::new(0));
    let (a1, a2, a3, q) = (count(), count(), count(), count());
    let mut first = hog(s.ticket(&busy, 1), a1.clone());
    let mut second = hog(s.ticket(&busy, 1), a2.clone());
    let mut third = hog(s.ticket(&busy, 1), a3.clone());
    let mut quiet_guest = hog(s.ticket(&quiet, 2), q.clone());
    assert!(poll(&mut first).is_pending()); // takes a slot
    assert!(poll(&mut second).is_pending()); // takes the other
    assert!(poll(&mut third).is_pending()); // waits: its tenant holds the most
    assert_eq!((a3.load(Ordering::Relaxed), kicks.load(Ordering::Relaxed)), (0, 0));
    // The quiet tenant holds none, the busy one two: it runs at once,
    // over the count, and kicks the epoch.
    assert!(poll(&mut quiet_guest).is_pending());
    assert_eq!((q.load(Ordering::Relaxed), kicks.load(Ordering::Relaxed)), (1, 1));
    assert_eq!(s.occupancy(), (3, 1));
    // At the kick, a busy tenant's guest gives the extra slot back; the
    // quiet one keeps its own.
    assert!(poll(&mut first).is_pending());
    assert_eq!(s.occupancy(), (2, 2));
    assert!(poll(&mut quiet_guest).is_pending());
    assert_eq!(q.load(Ordering::Relaxed), 2);
    // From then on one slot each; the busy tenant's three guests take
    // turns on theirs, tick by tick.
    for _ in 0..9 {
        for g in [&mut first, &mut second, &mut third, &mut quiet_guest] {
            let _ = poll(g);
            assert_eq!(s.occupancy(), (2, 2));
        }
    }
    let (a1, a2, a3, q) = (
        a1.load(Ordering::Relaxed),
        a2.load(Ordering::Relaxed),
        a3.load(Ordering::Relaxed),
        q.load(Ordering::Relaxed),
    );
    assert_eq!(q, 11, "the quiet tenant ran at every round");
    assert!(a1.min(a2).min(a3) >= 8, "{a1} {a2} {a3}");
    drop((first, second, third, quiet_guest));
    assert_eq!(s.occupancy(), (0, 0));
}

#[test]
fn a_waiting_guest_that_goes_away_passes_its_grant_on() {
    let (s, _) = gate(1);
    let (x, y) = (s.tenant(), s.tenant());
    // Keeps the gate closed: a second tenant in flight, waiting for I/O.
    let mut idle = waits_for_io(s.ticket(&y, 9), Arc::new(AtomicBool::new(false)));
    assert!(poll(&mut idle).is_pending());
    let count = || Arc::new(AtomicU64::new(0));
    let (a, b, c) = (count(), count(), count());
    let mut holder = hog(s.ticket(&x, 1), a);
    let mut granted = hog(s.ticket(&x, 2), b.clone());
    let mut next = hog(s.ticket(&x, 3), c.clone());
    assert!(poll(&mut holder).is_pending());
    assert!(poll(&mut granted).is_pending());
    assert!(poll(&mut next).is_pending());
    assert_eq!(s.occupancy(), (1, 2));
    // The holder's tick hands the slot to `granted` (the next function in
    // turn), which goes away before it runs: the slot is not lost, the
    // next in turn gets it.
    assert!(poll(&mut holder).is_pending());
    drop(granted);
    assert_eq!(b.load(Ordering::Relaxed), 0);
    assert!(poll(&mut next).is_pending());
    assert_eq!(c.load(Ordering::Relaxed), 1);
    // A guest that leaves its queue unserved takes nothing with it.
    let mut leaver = hog(s.ticket(&x, 2), Arc::new(AtomicU64::new(0)));
    assert!(poll(&mut leaver).is_pending());
    assert_eq!(s.occupancy(), (1, 2));
    drop(leaver);
    assert_eq!(s.occupancy(), (1, 1));
    drop((holder, next, idle));
    assert_eq!(s.occupancy(), (0, 0));
    assert_eq!(s.tenants_active.load(Ordering::Relaxed), 2, "both linger as active");
}

#[test]
fn idle_tenants_stop_counting_after_a_while() {
    let clock = Arc::new(AtomicU64::new(0));
    let s = Scheduler::new(|| {}, clock.clone());
    let (x, y) = (s.tenant(), s.tenant());
    drop((s.ticket(&x, 1), s.ticket(&y, 2)));
    assert!(s.closed(), "both linger");
    clock.store(LINGER_TICKS / 2, Ordering::Relaxed);
    drop(s.ticket(&x, 1));
    assert!(s.closed(), "y went idle only half the time ago");
    clock.store(LINGER_TICKS + LINGER_TICKS / 4, Ordering::Relaxed);
    let during = s.ticket(&x, 1);
    assert!(!s.closed(), "y is forgotten; x is in flight");
    assert_eq!(s.tenants_active.load(Ordering::Relaxed), 1);
    // Back, y counts again at once.
    let back = s.ticket(&y, 2);
    assert!(s.closed());
    drop((during, back));
    clock.store(4 * LINGER_TICKS, Ordering::Relaxed);
    drop(s.ticket(&x, 1));
    assert_eq!(s.tenants_active.load(Ordering::Relaxed), 1, "only x, just now");
}

#[test]
fn a_tenant_that_gave_back_its_last_slot_finds_it_kept() {
    let (s, kicks) = gate(1);
    s.set_reserve(Duration::from_millis(20));
    let (busy, quiet) = (s.tenant(), s.tenant());
    let (a, b) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let mut hog_a = hog(s.ticket(&busy, 1), a.clone());
    let mut hog_b = hog(s.ticket(&busy, 1), b.clone());
    let done = Arc::new(AtomicBool::new(true));
    let mut first = waits_for_io(s.ticket(&quiet, 2), done.clone());
    // The quiet tenant takes the free slot and finishes while the busy
    // tenant's guests wait.
    assert!(poll(&mut first).is_ready());
    assert!(poll(&mut hog_a).is_pending());
    assert!(poll(&mut hog_b).is_pending());
    assert_eq!(
        a.load(Ordering::Relaxed) + b.load(Ordering::Relaxed),
        1,
        "one busy guest runs"
    );
    drop(first);
    // Before a busy guest gives back the slot... (it is the busy tenant's
    // own now: the quiet one left nobody waiting when it finished).
    assert_eq!(s.occupancy(), (1, 1));
    // Now the quiet tenant finishes while the busy one waits: its slot is
    // kept for it, not handed on.
    let mut second = waits_for_io(s.ticket(&quiet, 2), done.clone());
    assert!(poll(&mut second).is_pending(), "waits for the busy guest's tick");
    for g in [&mut hog_a, &mut hog_b] {
        let _ = poll(g);
    }
    assert!(poll(&mut second).is_ready());
    assert_eq!(s.occupancy(), (1, 2), "kept: both busy guests wait");
    let mut third = waits_for_io(s.ticket(&quiet, 2), done.clone());
    assert!(poll(&mut third).is_ready(), "its next request takes it at once");
    assert_eq!(kicks.load(Ordering::Relaxed), 0);
    // Not back in time: at the next tick after the reservation, the slot
    // goes to the busy tenant.
    std::thread::sleep(Duration::from_millis(25));
    assert_eq!(s.occupancy(), (1, 2));
    s.on_tick();
    assert_eq!(s.occupancy(), (1, 1));
    drop((hog_a, hog_b, second, third));
    assert_eq!(s.occupancy(), (0, 0));
}

#[test]
fn a_tenant_turns_round_its_functions() {
    let (s, _) = gate(1);
    let (busy, other) = (s.tenant(), s.tenant());
    // Keeps the gate closed: a second tenant in flight, waiting for I/O.
    let mut idle = waits_for_io(s.ticket(&other, 9), Arc::new(AtomicBool::new(false)));
    assert!(poll(&mut idle).is_pending());
    let count = || Arc::new(AtomicU64::new(0));
    // Function 1 has three guests, function 2 one.
    let counts: Vec<_> = (0..4).map(|_| count()).collect();
    let mut guests: Vec<Guest> = counts
        .iter()
        .enumerate()
        .map(|(i, c)| hog(s.ticket(&busy, if i < 3 { 1 } else { 2 }), c.clone()))
        .collect();
    for _ in 0..12 {
        for g in &mut guests {
            let _ = poll(g);
        }
    }
    let got: Vec<u64> = counts.iter().map(|c| c.load(Ordering::Relaxed)).collect();
    let function_1: u64 = got[..3].iter().sum();
    assert!(got[3].abs_diff(function_1) <= 2, "each function gets half: {got:?}");
    drop((guests, idle));
    assert_eq!(s.occupancy(), (0, 0));
}
