//! The scheduler's tests: the gate with plain futures, polled by hand
//! (`gate`); real guests through [`Runtime::invoke`] (`guests`): fairness
//! between tenants, one tenant as before, I/O waits, timeouts and
//! interrupts while waiting for a turn; and measurements run by hand
//! (`measure`, ignored). This module holds what they share.

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

mod gate;
mod guests;
mod measure;
mod observed;

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
    reuse: Option<Arc<crate::ReusePool>>,
    observer: Option<Arc<dyn crate::Observer>>,
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
            reuse: None,
            observer: None,
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
                    capabilities: crate::Capabilities::default(),
                    guard: Box::new(()),
                    warm: None,
                    lanes: None,
                    reuse: self.reuse,
                    retire: self.retire,
                    observer: self.observer,
                    output: None,
                    shared_observer: None,
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
