//! The gate with plain futures, polled by hand; then real guests through
//! [`Runtime::invoke`]: fairness between tenants, one tenant as before,
//! I/O waits, timeouts and interrupts while waiting for a turn.

use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::task::noop_waker_ref;
use http_body_util::{BodyExt, Full};

use super::{LINGER_TICKS, Scheduler, Ticket};
use crate::{
    CompiledComponent, Interrupt, InvokeError, InvokeRequest, InvokeTags, RequestBodyError, Runtime, RuntimeConfig,
};

// ---------------------------------------------------------------- the gate

fn gate(slots: usize) -> (Arc<Scheduler>, Arc<AtomicU64>) {
    let kicks = Arc::new(AtomicU64::new(0));
    let scheduler = Scheduler::new(
        {
            let kicks = kicks.clone();
            move || {
                kicks.fetch_add(1, Ordering::Relaxed);
            }
        },
        Arc::new(AtomicU64::new(0)),
    );
    scheduler.set_slots(slots);
    scheduler.set_reserve(Duration::ZERO);
    (scheduler, kicks)
}

type Guest = std::pin::Pin<Box<dyn Future<Output = ()> + Send>>;

/// A guest that computes without end: every poll ends at a tick.
fn hog(ticket: Ticket, polls: Arc<AtomicU64>) -> Guest {
    let marker = ticket.marker();
    Box::pin(ticket.run(std::future::poll_fn(move |_| {
        polls.fetch_add(1, Ordering::Relaxed);
        marker.mark();
        Poll::<()>::Pending
    })))
}

/// A guest that waits for I/O until `done` is set, then finishes.
fn waits_for_io(ticket: Ticket, done: Arc<AtomicBool>) -> Guest {
    Box::pin(ticket.run(std::future::poll_fn(move |_| {
        if done.load(Ordering::Relaxed) {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    })))
}

fn poll(guest: &mut Guest) -> Poll<()> {
    guest.as_mut().poll(&mut Context::from_waker(noop_waker_ref()))
}

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

// ----------------------------------------------------------- real guests

/// A component that takes requests whole: its body is `[u32 iterations]
/// [u64 nanoseconds]`, and it sleeps that long (`wasi:clocks`, a wait on
/// the host) then spins that many iterations of a loop, and answers 200.
const GUEST_WAT: &str = r#"(component $C
  (import "wasi:io/poll@0.2.0" (instance $poll
    (export "pollable" (type $p (sub resource)))
    (export "[method]pollable.block" (func (param "self" (borrow $p))))))
  (alias export $poll "pollable" (type $pollable))
  (import "wasi:clocks/monotonic-clock@0.2.0" (instance $clock
    (alias outer $C $pollable (type $p0))
    (export "pollable" (type $p (eq $p0)))
    (export "subscribe-duration" (func (param "when" u64) (result (own $p))))))
  (import "wasi:http/types@0.2.0" (instance $types
    (export "incoming-request" (type (sub resource)))
    (export "response-outparam" (type (sub resource)))))
  (alias export $types "incoming-request" (type $incoming-request))
  (alias export $types "response-outparam" (type $response-outparam))
  (core func $subscribe (canon lower (func $clock "subscribe-duration")))
  (core func $block (canon lower (func $poll "[method]pollable.block")))
  (core func $drop (canon resource.drop $pollable))
  (core instance $host
    (export "subscribe" (func $subscribe))
    (export "block" (func $block))
    (export "drop" (func $drop)))
  (core module $m
    (import "host" "subscribe" (func $subscribe (param i64) (result i32)))
    (import "host" "block" (func $block (param i32)))
    (import "host" "drop" (func $drop (param i32)))
    (memory (export "memory") 1)
    (global $next (mut i32) (i32.const 4096))
    (global $acc (mut i32) (i32.const 0))
    (func (export "realloc") (param i32 i32 i32 i32) (result i32)
      (local $p i32)
      (local.set $p
        (i32.and
          (i32.add (global.get $next) (i32.sub (local.get 2) (i32.const 1)))
          (i32.sub (i32.const 0) (local.get 2))))
      (global.set $next (i32.add (local.get $p) (local.get 3)))
      (local.get $p))
    (func (export "handle") (param i32 i32 i32 i32 i32 i32 i32 i32) (result i32)
      (local $n i32) (local $pollable i32)
      (if (i32.ge_u (local.get 7) (i32.const 12))
        (then
          (if (i64.ne (i64.load offset=4 (local.get 6)) (i64.const 0))
            (then
              (local.set $pollable (call $subscribe (i64.load offset=4 (local.get 6))))
              (call $block (local.get $pollable))
              (call $drop (local.get $pollable))))
          (local.set $n (i32.load (local.get 6)))
          (block $done
            (loop $spin
              (br_if $done (i32.eqz (local.get $n)))
              (global.set $acc (i32.add (global.get $acc) (local.get $n)))
              (local.set $n (i32.sub (local.get $n) (i32.const 1)))
              (br $spin)))))
      ;; some(response { status: 200, headers: [], body: [] })
      (i32.store (i32.const 16) (i32.const 1))
      (i32.store (i32.const 20) (i32.const 200))
      (i64.store (i32.const 24) (i64.const 0))
      (i64.store (i32.const 32) (i64.const 0))
      (i32.const 16))
    (func (export "wasi-handle") (param i32 i32) unreachable))
  (core instance $i (instantiate $m (with "host" (instance $host))))
  (type $response (record
    (field "status" u16)
    (field "headers" (list (tuple string (list u8))))
    (field "body" (list u8))))
  (func $handle
    (param "method" string) (param "path-with-query" string)
    (param "headers" (list (tuple string (list u8)))) (param "body" (list u8))
    (result (option $response))
    (canon lift (core func $i "handle") (memory (core memory $i "memory")) (realloc (core func $i "realloc"))))
  (component $handler
    (type $r (record
      (field "status" u16)
      (field "headers" (list (tuple string (list u8))))
      (field "body" (list u8))))
    (import "import-type-response" (type $ir (eq $r)))
    (import "import-func-handle" (func $f
      (param "method" string) (param "path-with-query" string)
      (param "headers" (list (tuple string (list u8)))) (param "body" (list u8))
      (result (option $ir))))
    (export $er "response" (type $ir))
    (export "handle" (func $f)
      (func (param "method" string) (param "path-with-query" string)
        (param "headers" (list (tuple string (list u8)))) (param "body" (list u8))
        (result (option $er)))))
  (instance $h (instantiate $handler
    (with "import-type-response" (type $response))
    (with "import-func-handle" (func $handle))))
  (export "wasmfn:function/handler@0.1.0" (instance $h))
  (func $wasi-handle
    (param "request" (own $incoming-request)) (param "response-out" (own $response-outparam))
    (canon lift (core func $i "wasi-handle")))
  (instance $ih (export "handle" (func $wasi-handle)))
  (export "wasi:http/incoming-handler@0.2.0" (instance $ih)))"#;

/// The tests that measure time run one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

/// A tokio runtime with one worker per core (as the host's, by default),
/// and a wasmfn runtime with the guest.
fn setup() -> (tokio::runtime::Runtime, Arc<Runtime>, CompiledComponent) {
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get()).max(2);
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
        .unwrap();
    let runtime = Runtime::new(RuntimeConfig {
        max_instances: 256,
        memory_ceiling: 16 << 20,
        warm_instances: 0,
        ..RuntimeConfig::default()
    })
    .unwrap();
    let component = runtime
        .compile("guest.wat", &wat::parse_str(GUEST_WAT).unwrap())
        .unwrap();
    (tokio, Arc::new(runtime), component)
}

/// Runs `test` in a task of `tokio`, on its workers as the host's
/// requests run (not on the thread that waits for it).
fn on_a_worker<F>(tokio: &tokio::runtime::Runtime, test: F)
where
    F: Future<Output = ()> + Send + 'static,
{
    if let Err(e) = tokio.block_on(tokio.spawn(test)) {
        std::panic::resume_unwind(e.into_panic());
    }
}

struct Call {
    tenant: &'static str,
    function: String,
    iterations: u32,
    sleep: Duration,
    timeout: Duration,
    retire: Option<Arc<Interrupt>>,
}

impl Call {
    fn new(tenant: &'static str, function: impl Into<String>, iterations: u32) -> Self {
        Self {
            tenant,
            function: function.into(),
            iterations,
            sleep: Duration::ZERO,
            timeout: Duration::from_secs(60),
            retire: None,
        }
    }

    async fn run(self, runtime: &Runtime, component: &CompiledComponent) -> Result<(), InvokeError> {
        let mut body = self.iterations.to_le_bytes().to_vec();
        body.extend((self.sleep.as_nanos() as u64).to_le_bytes());
        let body = Full::new(Bytes::from(body)).map_err(|never: Infallible| -> RequestBodyError { match never {} });
        let request = http::Request::builder().uri("/").body(body).unwrap();
        let response = runtime
            .invoke(
                component,
                InvokeRequest {
                    request,
                    tags: InvokeTags {
                        tenant: self.tenant.into(),
                        function: self.function.into(),
                        request_id: "test".into(),
                    },
                    deadline: Instant::now() + self.timeout,
                    max_memory_bytes: 16 << 20,
                    outbound: Arc::from([]),
                    guard: Box::new(()),
                    warm: None,
                    retire: self.retire,
                },
            )
            .await?;
        assert_eq!(response.status(), 200);
        response.into_body().collect().await.expect("the body");
        Ok(())
    }
}

/// Loop iterations of the guest per millisecond, alone on the host.
async fn calibrate(runtime: &Runtime, component: &CompiledComponent, tenant: &'static str) -> f64 {
    const N: u32 = 20_000_000;
    let mut best = f64::MAX;
    for _ in 0..3 {
        let start = Instant::now();
        Call::new(tenant, "c", N).run(runtime, component).await.unwrap();
        let spin = start.elapsed();
        let start = Instant::now();
        Call::new(tenant, "c", 0).run(runtime, component).await.unwrap();
        let empty = start.elapsed();
        best = best.min(spin.saturating_sub(empty).as_secs_f64() * 1e3);
    }
    f64::from(N) / best
}

/// How the quiet tenant's client sends its next request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Client {
    /// Over a socket: a client thread (outside the runtime) sends a byte
    /// per request and waits for the answer; a task reads it through
    /// tokio's I/O driver, as a connection's would, invokes the guest and
    /// answers.
    Socket,
    /// The same, but the client thinks 5 ms before each request.
    Paced,
    /// From a task: each request in a task of its own, awaited.
    Task,
}

/// Requests the quiet tenant completes in `window`, one at a time.
async fn quiet_window(
    runtime: &Arc<Runtime>,
    component: &CompiledComponent,
    iterations: u32,
    window: Duration,
    client: Client,
) -> u64 {
    use std::io::{Read, Write};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let call = move |runtime: Arc<Runtime>, component: CompiledComponent| async move {
        if let Err(e) = Call::new("quiet", "q", iterations).run(&runtime, &component).await {
            panic!("quiet: {e}: occupancy {:?}", runtime.fair.occupancy());
        }
    };
    if client == Client::Task {
        let end = Instant::now() + window;
        let mut done = 0;
        while Instant::now() < end {
            // A loop that never yields would starve the tasks it spawns.
            tokio::spawn(call(runtime.clone(), component.clone())).await.unwrap();
            done += 1;
        }
        return done;
    }
    let (ours, mut theirs) = std::os::unix::net::UnixStream::pair().unwrap();
    ours.set_nonblocking(true).unwrap();
    let mut ours = tokio::net::UnixStream::from_std(ours).unwrap();
    let client = tokio::task::spawn_blocking(move || {
        let end = Instant::now() + window;
        let (mut done, mut answer) = (0u64, [0u8]);
        while Instant::now() < end {
            if client == Client::Paced {
                std::thread::sleep(Duration::from_millis(5));
            }
            theirs.write_all(&[1]).unwrap();
            theirs.read_exact(&mut answer).unwrap();
            done += 1;
        }
        theirs.write_all(&[0]).unwrap();
        done
    });
    let (runtime, component) = (runtime.clone(), component.clone());
    let server = tokio::spawn(async move {
        let mut request = [0u8];
        loop {
            ours.read_exact(&mut request).await.unwrap();
            if request[0] == 0 {
                return;
            }
            call(runtime.clone(), component.clone()).await;
            ours.write_all(&[1]).await.unwrap();
        }
    });
    server.await.unwrap();
    client.await.unwrap()
}

/// The busy tenant: `n` closed loops over eight functions, most of
/// requests of 1–5 ms, one loop in eight of requests of 300 ms.
fn start_busy(
    runtime: &Arc<Runtime>,
    component: &CompiledComponent,
    per_ms: f64,
    n: usize,
    done: &Arc<AtomicU64>,
) -> Vec<tokio::task::JoinHandle<()>> {
    (0..n)
        .map(|i| {
            let (runtime, component, done) = (runtime.clone(), component.clone(), done.clone());
            let ms = if i % 8 == 7 { 300.0 } else { 1.0 + (i % 5) as f64 };
            let iterations = (ms * per_ms) as u32;
            tokio::spawn(async move {
                loop {
                    if let Err(e) = Call::new("busy", format!("b{}", i % 8), iterations)
                        .run(&runtime, &component)
                        .await
                    {
                        panic!("busy: {e}: occupancy {:?}", runtime.fair.occupancy());
                    }
                    done.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect()
}

async fn stop(tasks: Vec<tokio::task::JoinHandle<()>>) {
    for t in &tasks {
        t.abort();
    }
    for t in tasks {
        let _ = t.await;
    }
}

/// How the runtime runs, for comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Setting {
    /// As it ships.
    Fair,
    /// Guests never move to the pool: gated polls run on the workers.
    FairInline,
    /// Every guest moves to the pool while the gate is closed.
    FairAllPooled,
    /// No scheduler: as before it.
    Off,
}

/// What [`alone_and_beside`] measured, in requests per second.
struct Measured {
    alone: f64,
    beside: f64,
    busy: f64,
    /// Each round's ratio.
    rounds: Vec<f64>,
    /// The least share of the machine's CPU this process got while the
    /// busy tenant ran (it asks for all of it; `None` off Linux).
    cpu_share: Option<f64>,
}

/// CPU time this process has used, all threads (Linux).
fn process_cpu() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // After the command's name, in parentheses: fields from the third on;
    // utime and stime are the 14th and 15th, in clock ticks of 1/100 s.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(Duration::from_millis(ticks * 10))
}

impl Measured {
    fn ratio(&self) -> f64 {
        self.beside / self.alone
    }
}

impl std::fmt::Display for Measured {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "alone {:.0}/s, beside busy {:.0}/s, ratio {:.2} (rounds {:.2?}; busy completed {:.0}/s",
            self.alone,
            self.beside,
            self.ratio(),
            self.rounds,
            self.busy
        )?;
        match self.cpu_share {
            Some(share) => write!(f, "; this process got {:.0}% of the CPU beside busy)", share * 100.0),
            None => write!(f, ")"),
        }
    }
}

/// The quiet tenant alone, then beside the busy one, `rounds` times.
async fn alone_and_beside(
    runtime: &Arc<Runtime>,
    component: &CompiledComponent,
    per_ms: f64,
    quiet_ms: f64,
    rounds: u32,
    setting: Setting,
    client: Client,
) -> Measured {
    let window = Duration::from_millis(1000);
    runtime.fair.test.off.store(setting == Setting::Off, Ordering::Relaxed);
    runtime
        .fair
        .test
        .inline
        .store(setting == Setting::FairInline, Ordering::Relaxed);
    runtime
        .fair
        .test
        .all_pooled
        .store(setting == Setting::FairAllPooled, Ordering::Relaxed);
    let iterations = (quiet_ms * per_ms) as u32;
    let (mut alone, mut beside, mut busy_done, mut each) = (0, 0, 0, Vec::new());
    let mut cpu_share = None;
    for _ in 0..rounds {
        let a = quiet_window(runtime, component, iterations, window, client).await;
        let done = Arc::new(AtomicU64::new(0));
        let busy = start_busy(runtime, component, per_ms, 32, &done);
        tokio::time::sleep(Duration::from_millis(300)).await;
        let before = done.load(Ordering::Relaxed);
        let (cpu, start) = (process_cpu(), Instant::now());
        let b = quiet_window(runtime, component, iterations, window, client).await;
        busy_done += done.load(Ordering::Relaxed) - before;
        if let (Some(from), Some(to)) = (cpu, process_cpu()) {
            let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
            let share = (to - from).as_secs_f64() / (start.elapsed().as_secs_f64() * cores);
            cpu_share = Some(cpu_share.map_or(share, |s: f64| s.min(share)));
        }
        stop(busy).await;
        // Alone again once the busy tenant no longer counts as active.
        tokio::time::sleep(Duration::from_millis(LINGER_TICKS * 13 / 10)).await;
        each.push(b as f64 / a as f64);
        (alone, beside) = (alone + a, beside + b);
    }
    runtime.fair.test.off.store(false, Ordering::Relaxed);
    runtime.fair.test.inline.store(false, Ordering::Relaxed);
    runtime.fair.test.all_pooled.store(false, Ordering::Relaxed);
    let per_s = |n: u64| n as f64 / (window.as_secs_f64() * f64::from(rounds));
    Measured {
        alone: per_s(alone),
        beside: per_s(beside),
        busy: per_s(busy_done),
        rounds: each,
        cpu_share,
    }
}

/// The quiet tenant's throughput (one request at a time, over a socket)
/// alone and beside a busy tenant (32 concurrent CPU-bound requests of
/// eight functions, 1–5 ms and 300 ms), alternated so a drift in the
/// machine's speed lands on both. The goal end to end is 0.8; the margin
/// is for a machine shared with other work, where a measurement can also
/// fall short by chance: up to three tries. When other processes took a
/// fifth of the CPU or more from this one while the busy tenant ran, the
/// OS, not this scheduler, shared it out: the bound is then 0.3, still
/// three times what sharing by requests gives (0.01–0.12).
#[test]
fn a_quiet_tenant_keeps_its_throughput_beside_a_busy_one() {
    let _serial = serial();
    let (tokio, runtime, component) = setup();
    on_a_worker(&tokio, async move {
        let per_ms = calibrate(&runtime, &component, "quiet").await;
        let mut report = vec![format!("guest loop: {per_ms:.0} iterations/ms")];
        let mut best = Vec::new();
        for (what, quiet_ms) in [("1 ms", 1.0), ("trivial", 0.0)] {
            let (mut ratio, mut share) = (0.0f64, 0.0f64);
            for attempt in 1..=3 {
                let m =
                    alone_and_beside(&runtime, &component, per_ms, quiet_ms, 2, Setting::Fair, Client::Socket).await;
                report.push(format!("quiet {what} (try {attempt}): {m}"));
                ratio = ratio.max(m.ratio());
                share = share.max(m.cpu_share.unwrap_or(1.0));
                if ratio >= 0.7 {
                    break;
                }
            }
            best.push((what, ratio, share));
        }
        let report = report.join("\n");
        println!("{report}");
        for (what, ratio, share) in best {
            let floor = if share < 0.8 { 0.3 } else { 0.7 };
            assert!(
                ratio >= floor,
                "quiet {what}: kept {ratio:.2} of its throughput (this process got {:.0}% of the CPU)\n{report}",
                share * 100.0
            );
        }
    });
}

/// The same with the scheduler's variants side by side, and clients of
/// each kind (figures only).
///
/// `cargo test -p wasmfn-runtime -- --ignored --nocapture variants`
/// (`WASMFN_TEST_SETTINGS=fair|pooled|inline|off`,
/// `WASMFN_TEST_CLIENT=socket|paced|task` to run one).
#[test]
#[ignore = "a benchmark"]
fn quiet_beside_busy_variants() {
    let _serial = serial();
    let (tokio, runtime, component) = setup();
    on_a_worker(&tokio, async move {
        let per_ms = calibrate(&runtime, &component, "quiet").await;
        let settings = match std::env::var("WASMFN_TEST_SETTINGS").as_deref() {
            Ok("fair") => vec![Setting::Fair],
            Ok("inline") => vec![Setting::FairInline],
            Ok("off") => vec![Setting::Off],
            Ok("pooled") => vec![Setting::FairAllPooled],
            Ok("pool") => vec![Setting::Fair, Setting::FairAllPooled],
            _ => vec![Setting::Fair, Setting::FairAllPooled, Setting::FairInline, Setting::Off],
        };
        let clients = match std::env::var("WASMFN_TEST_CLIENT").as_deref() {
            Ok("socket") => vec![Client::Socket],
            Ok("task") => vec![Client::Task],
            Ok("paced") => vec![Client::Paced],
            _ => vec![Client::Socket, Client::Paced, Client::Task],
        };
        for client in clients {
            for quiet_ms in [1.0, 0.0] {
                for &setting in &settings {
                    let m = alone_and_beside(&runtime, &component, per_ms, quiet_ms, 3, setting, client).await;
                    println!("quiet {quiet_ms} ms, {client:?}, {setting:?}: {m}");
                    let t = &runtime.fair.test;
                    println!(
                        "  claims {}, kicks {}",
                        t.claims.swap(0, Ordering::Relaxed),
                        t.kicks.swap(0, Ordering::Relaxed)
                    );
                }
            }
        }
    });
}

/// Within one tenant the gate stays open and nothing changes: a light
/// function beside heavy ones of the same tenant (the per-function scheme
/// pauses those) does as well with the scheduler as without it,
/// alternated, and no poll goes through the gate.
#[test]
fn within_one_tenant_the_behaviour_is_as_before() {
    let _serial = serial();
    let (tokio, runtime, component) = setup();
    on_a_worker(&tokio, async move {
        let per_ms = calibrate(&runtime, &component, "solo").await;
        let window = Duration::from_millis(1000);
        let (heavy, light) = ((300.0 * per_ms) as u32, per_ms as u32);
        let light_window = || async {
            let end = Instant::now() + window;
            let mut done = 0u64;
            while Instant::now() < end {
                let (runtime, component) = (runtime.clone(), component.clone());
                tokio::spawn(async move { Call::new("solo", "light", light).run(&runtime, &component).await })
                    .await
                    .unwrap()
                    .unwrap();
                done += 1;
            }
            done
        };
        let (gated_before, kicks_before) = (
            runtime.fair.test.gated_polls.load(Ordering::Relaxed),
            runtime.fair.test.kicks.load(Ordering::Relaxed),
        );
        let mut ratios = [Vec::new(), Vec::new()];
        for _ in 0..2 {
            for (off, index) in [(false, 0), (true, 1)] {
                runtime.fair.test.off.store(off, Ordering::Relaxed);
                let alone = light_window().await;
                let spinners: Vec<_> = (0..8)
                    .map(|i| {
                        let (runtime, component) = (runtime.clone(), component.clone());
                        tokio::spawn(async move {
                            loop {
                                Call::new("solo", format!("heavy{}", i % 4), heavy)
                                    .run(&runtime, &component)
                                    .await
                                    .unwrap();
                            }
                        })
                    })
                    .collect();
                tokio::time::sleep(Duration::from_millis(100)).await;
                let beside = light_window().await;
                stop(spinners).await;
                ratios[index].push(beside as f64 / alone as f64);
            }
        }
        runtime.fair.test.off.store(false, Ordering::Relaxed);
        let gated = runtime.fair.test.gated_polls.load(Ordering::Relaxed) - gated_before;
        let kicks = runtime.fair.test.kicks.load(Ordering::Relaxed) - kicks_before;
        let mean = |r: &Vec<f64>| r.iter().sum::<f64>() / r.len() as f64;
        let (with, without) = (mean(&ratios[0]), mean(&ratios[1]));
        println!(
            "one tenant, a light function beside 8 heavy ones, of its throughput alone: {with:.2} with the scheduler \
             ({:.2?}), {without:.2} without ({:.2?}); polls through the gate {gated}, kicks {kicks}",
            ratios[0], ratios[1]
        );
        assert_eq!((gated, kicks), (0, 0), "one tenant: the gate never closed");
        assert!(with >= 0.7 * without, "{with:.2} against {without:.2}");
    });
}

/// A guest sleeping in a host call holds no run slot: with one slot, a
/// guest of another tenant computes meanwhile.
#[test]
fn a_guest_sleeping_in_the_host_holds_no_slot() {
    let _serial = serial();
    let (tokio, runtime, component) = setup();
    on_a_worker(&tokio, async move {
        let per_ms = calibrate(&runtime, &component, "worker").await;
        runtime.fair.set_slots(1);
        let sleeper = tokio::spawn({
            let (runtime, component) = (runtime.clone(), component.clone());
            async move {
                let start = Instant::now();
                Call {
                    sleep: Duration::from_millis(400),
                    ..Call::new("sleepy", "s", 0)
                }
                .run(&runtime, &component)
                .await
                .unwrap();
                start.elapsed()
            }
        });
        tokio::time::sleep(Duration::from_millis(30)).await;
        let start = Instant::now();
        let worker = tokio::spawn({
            let (runtime, component) = (runtime.clone(), component.clone());
            async move {
                Call::new("worker", "w", (100.0 * per_ms) as u32)
                    .run(&runtime, &component)
                    .await
                    .unwrap()
            }
        });
        tokio::time::sleep(Duration::from_millis(30)).await;
        // Two tenants in flight: the gate is closed, yet nobody waits.
        assert_eq!(runtime.fair.occupancy(), (1, 0));
        worker.await.unwrap();
        let worked = start.elapsed();
        assert!(!sleeper.is_finished(), "the worker ran while the other guest slept");
        let slept = sleeper.await.unwrap();
        println!("worker (100 ms of CPU) done in {worked:?} beside a guest sleeping {slept:?}");
        assert!(worked < Duration::from_millis(330), "{worked:?}");
        // (A slot kept for a tenant's next request lasts until a tick.)
        tokio::time::sleep(Duration::from_millis(5)).await;
        assert_eq!(runtime.fair.occupancy(), (0, 0));
    });
}

/// A guest that waits for its turn past its deadline fails as a timeout;
/// one that waits when its version retires, or the host interrupts
/// everything, is interrupted.
#[test]
fn a_guest_waiting_for_its_turn_still_times_out_and_is_interrupted() {
    let _serial = serial();
    let (tokio, runtime, component) = setup();
    on_a_worker(&tokio, async move {
        runtime.fair.set_slots(1);
        // Two other tenants in flight: one takes the only slot and does not
        // give it back for 400 ms (a guest that never reaches its epoch
        // check), one only keeps the gate closed.
        let fair = runtime.fair.clone();
        let (hogging, idle) = (fair.tenant(), fair.tenant());
        let _idle = fair.ticket(&idle, 1);
        let hog = |fair: &Arc<Scheduler>| {
            let ticket = fair.ticket(&hogging, 2);
            tokio::spawn(ticket.run(async { std::thread::sleep(Duration::from_millis(400)) }))
        };

        let blocking = hog(&fair);
        tokio::time::sleep(Duration::from_millis(30)).await;
        assert_eq!(fair.occupancy(), (1, 0));
        let start = Instant::now();
        let waited = Call {
            timeout: Duration::from_millis(60),
            ..Call::new("late", "l", 0)
        }
        .run(&runtime, &component)
        .await;
        let took = start.elapsed();
        assert!(matches!(waited, Err(InvokeError::Timeout)), "{waited:?}");
        assert!(took < Duration::from_millis(250), "{took:?}");
        assert_eq!(fair.occupancy(), (1, 0), "it left the queue");
        blocking.await.unwrap();

        let blocking = hog(&fair);
        tokio::time::sleep(Duration::from_millis(30)).await;
        let retire = Arc::new(Interrupt::default());
        let waiting = tokio::spawn({
            let (runtime, component, retire) = (runtime.clone(), component.clone(), retire.clone());
            async move {
                Call {
                    retire: Some(retire),
                    ..Call::new("late", "l", 0)
                }
                .run(&runtime, &component)
                .await
            }
        });
        tokio::time::sleep(Duration::from_millis(30)).await;
        assert_eq!(fair.occupancy(), (1, 1));
        retire.trigger();
        let retired = waiting.await.unwrap();
        assert!(matches!(retired, Err(InvokeError::Interrupted)), "{retired:?}");
        assert!(!blocking.is_finished());

        let waiting = tokio::spawn({
            let (runtime, component) = (runtime.clone(), component.clone());
            async move { Call::new("late", "l", 0).run(&runtime, &component).await }
        });
        tokio::time::sleep(Duration::from_millis(30)).await;
        assert_eq!(fair.occupancy(), (1, 1));
        runtime.interrupt_all();
        let interrupted = waiting.await.unwrap();
        assert!(matches!(interrupted, Err(InvokeError::Interrupted)), "{interrupted:?}");
        assert!(!blocking.is_finished());
        blocking.await.unwrap();
        assert_eq!(fair.occupancy(), (0, 0));
    });
}

/// What the scheduler costs a request when nothing contends, in one run:
/// the ticket and the gate around a future that is ready at once (one
/// tenant: the gate open; two tenants: closed, a free slot), then
/// invocations per second of the empty guest with the scheduler and with
/// it switched off, alternated: one tenant, and two tenants with one
/// caller each (the gate closed, nobody waits).
///
/// `cargo test -p wasmfn-runtime -- --ignored --nocapture overhead` (add
/// `--config 'profile.dev.package.wasmfn-runtime.opt-level=2'` for this
/// crate optimised as its dependencies are).
#[test]
#[ignore = "a benchmark"]
fn overhead_of_the_scheduler_uncontended() {
    let _serial = serial();
    // The gate alone.
    const N: u32 = 1_000_000;
    let s = Scheduler::new(|| {}, Arc::new(AtomicU64::new(0)));
    let (a, b) = (s.tenant(), s.tenant());
    let per_call = |s: &Arc<Scheduler>| {
        let start = Instant::now();
        for _ in 0..N {
            let mut guest = std::pin::pin!(s.ticket(&a, 1).run(std::future::ready(())));
            assert!(
                guest
                    .as_mut()
                    .poll(&mut Context::from_waker(noop_waker_ref()))
                    .is_ready()
            );
        }
        start.elapsed() / N
    };
    let open = per_call(&s);
    let _other = s.ticket(&b, 2);
    let closed = per_call(&s);
    println!("ticket and gate around a ready future: {open:?} (one tenant), {closed:?} (two tenants, a free slot)");

    let (tokio, runtime, component) = setup();
    on_a_worker(&tokio, async move {
        let window = Duration::from_millis(1000);
        let rate = |tenants: &'static [&'static str], off: bool| {
            let (runtime, component) = (runtime.clone(), component.clone());
            async move {
                runtime.fair.test.off.store(off, Ordering::Relaxed);
                let end = Instant::now() + window;
                let loops: Vec<_> = tenants
                    .iter()
                    .map(|&tenant| {
                        let (runtime, component) = (runtime.clone(), component.clone());
                        tokio::spawn(async move {
                            let mut n = 0u64;
                            while Instant::now() < end {
                                tokio::task::yield_now().await;
                                Call::new(tenant, "f", 0).run(&runtime, &component).await.unwrap();
                                n += 1;
                            }
                            n
                        })
                    })
                    .collect();
                let mut n = 0;
                for l in loops {
                    n += l.await.unwrap();
                }
                runtime.fair.test.off.store(false, Ordering::Relaxed);
                n as f64 / window.as_secs_f64()
            }
        };
        // Warm up.
        rate(&["a"], false).await;
        for (what, tenants) in [("one tenant", &["a"][..]), ("two tenants", &["a", "b"][..])] {
            let (mut on, mut off) = (Vec::new(), Vec::new());
            for _ in 0..5 {
                on.push(rate(tenants, false).await);
                off.push(rate(tenants, true).await);
            }
            on.sort_by(f64::total_cmp);
            off.sort_by(f64::total_cmp);
            let (on_m, off_m) = (on[2], off[2]);
            println!(
                "{what}: {on_m:.0} invocations/s with the scheduler, {off_m:.0} without ({:+.1}%); runs {on:.0?} and {off:.0?}",
                (on_m / off_m - 1.0) * 100.0
            );
        }
    });
}

/// Why guests leave tokio's workers while tenants share the CPU: socket
/// round trips through tokio's I/O driver beside tasks that compute 1 ms
/// per poll (as a guest does between epoch ticks), with as many workers
/// as such tasks and with more. (531/s on two workers beside two, 28,000/s
/// on three, when this was written.)
#[test]
#[ignore = "an experiment"]
fn tokio_io_beside_polls_that_compute() {
    use std::io::{Read, Write};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    for workers in [2usize, 3, 4] {
        for hogs in [0usize, 2] {
            let tokio = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(workers)
                .enable_all()
                .build()
                .unwrap();
            let r = tokio.block_on(tokio.spawn(async move {
                let stop = Arc::new(AtomicBool::new(false));
                let hog_tasks: Vec<_> = (0..hogs)
                    .map(|_| {
                        let stop = stop.clone();
                        tokio::spawn(std::future::poll_fn(move |cx| {
                            if stop.load(Ordering::Relaxed) {
                                return Poll::Ready(());
                            }
                            let t = Instant::now();
                            while t.elapsed() < Duration::from_millis(1) {}
                            cx.waker().wake_by_ref();
                            Poll::Pending
                        }))
                    })
                    .collect();
                let (ours, mut theirs) = std::os::unix::net::UnixStream::pair().unwrap();
                ours.set_nonblocking(true).unwrap();
                let mut ours = tokio::net::UnixStream::from_std(ours).unwrap();
                let client = tokio::task::spawn_blocking(move || {
                    let end = Instant::now() + Duration::from_millis(1000);
                    let (mut done, mut answer) = (0u64, [0u8]);
                    while Instant::now() < end {
                        theirs.write_all(&[1]).unwrap();
                        theirs.read_exact(&mut answer).unwrap();
                        done += 1;
                    }
                    theirs.write_all(&[0]).unwrap();
                    done
                });
                let mut b = [0u8];
                loop {
                    ours.read_exact(&mut b).await.unwrap();
                    if b[0] == 0 {
                        break;
                    }
                    ours.write_all(&[1]).await.unwrap();
                }
                stop.store(true, Ordering::Relaxed);
                for h in hog_tasks {
                    h.await.unwrap();
                }
                client.await.unwrap()
            }));
            println!("workers {workers}, hogs {hogs}: {} round trips/s", r.unwrap());
        }
    }
}
