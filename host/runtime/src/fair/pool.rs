//! Threads of their own for computing guests while tenants share the CPU.
//!
//! A tokio worker that polls a computing guest is gone for up to a tick;
//! with every worker doing so, tokio looks at its I/O driver, timers and
//! global queue only every 61 polls: a quiet tenant's next request, read
//! from its connection, waited 10–20 ms to be noticed (measured: socket
//! round trips beside two tasks that spin 1 ms per poll, on two workers:
//! 531/s; on three workers, 29,000/s). So while the gate is closed, the
//! guests of busy tenants and the long ones
//! ([`TickMarker::belongs_in_pool`]) are polled here, on one thread per
//! core and one more, and the workers stay free for connections and a
//! quiet tenant's short guests; the gate still decides which guests
//! compute.
//!
//! A job is a future with a waker that queues it here; the threads take
//! jobs first come, first served (only guests with a slot, or with a wake
//! to look at, are ever queued). The threads enter the tokio runtime that
//! first placed a guest here, so the guests' timers, I/O and tasks work as
//! they do on a worker.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::task::{Context, Poll, Wake, Waker};

use super::{Scheduler, TickMarker};

type Boxed = Pin<Box<dyn Future<Output = ()> + Send>>;

/// The threads and their queue.
pub(crate) struct Pool {
    shared: Arc<Shared>,
    /// Whether its threads started (`false`: none could be).
    started: OnceLock<bool>,
}

struct Shared {
    queue: Mutex<VecDeque<Arc<Job>>>,
    ready: Condvar,
    stop: AtomicBool,
}

/// Not queued, not running (waiting for a wake).
const IDLE: u8 = 0;
/// In the queue.
const QUEUED: u8 = 1;
/// Being polled.
const RUNNING: u8 = 2;
/// Being polled, and woken meanwhile: queued again after.
const NOTIFIED: u8 = 3;
/// Finished or aborted; wakes are ignored.
const DONE: u8 = 4;

struct Job {
    state: AtomicU8,
    aborted: AtomicBool,
    future: Mutex<Option<Boxed>>,
    shared: Arc<Shared>,
}

impl Pool {
    pub(crate) fn new() -> Self {
        Self {
            shared: Arc::new(Shared {
                queue: Mutex::new(VecDeque::new()),
                ready: Condvar::new(),
                stop: AtomicBool::new(false),
            }),
            started: OnceLock::new(),
        }
    }

    /// Whether the pool has threads, starting them (one per core and one
    /// more, in the current tokio runtime) the first time.
    fn ready(&self) -> bool {
        *self.started.get_or_init(|| {
            let Ok(handle) = tokio::runtime::Handle::try_current() else {
                return false;
            };
            // One per run slot, and one more: a guest that arrives while
            // every slot computes is polled at once, to take its place in
            // the queue, without waiting for a tick.
            let threads = std::thread::available_parallelism().map_or(1, |n| n.get()) + 1;
            let mut started = 0;
            for i in 0..threads {
                let (shared, handle) = (self.shared.clone(), handle.clone());
                let spawned = std::thread::Builder::new()
                    .name(format!("wasmfn-guest-{i}"))
                    .spawn(move || {
                        let _runtime = handle.enter();
                        shared.run();
                    });
                match spawned {
                    Ok(_) => started += 1,
                    Err(e) => tracing::warn!(error = %e, "cannot start a guest thread"),
                }
            }
            started > 0
        })
    }

    /// Runs `future` on the pool's threads, which must be [`Pool::ready`];
    /// dropping the handle stops it.
    fn spawn(&self, future: impl Future<Output = ()> + Send + 'static) -> JobHandle {
        let job = Arc::new(Job {
            state: AtomicU8::new(QUEUED),
            aborted: AtomicBool::new(false),
            future: Mutex::new(Some(Box::pin(future))),
            shared: self.shared.clone(),
        });
        self.shared.push(job.clone());
        JobHandle(job)
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        let queued = std::mem::take(&mut *self.shared.queue.lock().unwrap_or_else(|p| p.into_inner()));
        self.shared.ready.notify_all();
        drop(queued);
    }
}

impl Shared {
    fn push(&self, job: Arc<Job>) {
        if self.stop.load(Ordering::SeqCst) {
            // No thread will take it: dropped here, which ends its guest.
            job.state.store(DONE, Ordering::Release);
            let future = job.future.lock().unwrap_or_else(|p| p.into_inner()).take();
            drop(future);
            return;
        }
        self.queue.lock().unwrap_or_else(|p| p.into_inner()).push_back(job);
        self.ready.notify_one();
    }

    /// One thread's loop: take a job, poll it, until the pool stops.
    fn run(&self) {
        loop {
            let job = {
                let mut queue = self.queue.lock().unwrap_or_else(|p| p.into_inner());
                loop {
                    if self.stop.load(Ordering::SeqCst) {
                        return;
                    }
                    if let Some(job) = queue.pop_front() {
                        break job;
                    }
                    queue = self.ready.wait(queue).unwrap_or_else(|p| p.into_inner());
                }
            };
            job.state.store(RUNNING, Ordering::Release);
            if job.poll() {
                job.state.store(DONE, Ordering::Release);
            } else if job
                .state
                .compare_exchange(RUNNING, IDLE, Ordering::AcqRel, Ordering::Acquire)
                .is_err()
            {
                // Woken while it ran.
                job.state.store(QUEUED, Ordering::Release);
                self.push(job);
            }
        }
    }
}

impl Job {
    /// Polls the future once; `true` when it is finished (or aborted, or
    /// it panicked) and has been dropped.
    fn poll(self: &Arc<Self>) -> bool {
        let mut slot = self.future.lock().unwrap_or_else(|p| p.into_inner());
        let Some(future) = slot.as_mut() else { return true };
        let done = self.aborted.load(Ordering::Acquire) || {
            let waker = Waker::from(self.clone());
            // A guest's future catches its own panics; this keeps the
            // thread alive if anything else panics.
            let polled = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                future.as_mut().poll(&mut Context::from_waker(&waker))
            }));
            !matches!(polled, Ok(Poll::Pending))
        };
        if done {
            *slot = None;
        }
        done
    }
}

impl Wake for Job {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        let mut state = self.state.load(Ordering::Acquire);
        loop {
            let next = match state {
                IDLE => QUEUED,
                RUNNING => NOTIFIED,
                _ => return,
            };
            match self
                .state
                .compare_exchange_weak(state, next, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => {
                    if next == QUEUED {
                        self.shared.push(self.clone());
                    }
                    return;
                }
                Err(now) => state = now,
            }
        }
    }
}

/// Stops its job when dropped: the job's future is dropped on a pool
/// thread at its next turn.
struct JobHandle(Arc<Job>);

impl Drop for JobHandle {
    fn drop(&mut self) {
        self.0.aborted.store(true, Ordering::Release);
        self.0.wake_by_ref();
    }
}

/// A guest's future, polled in the task that awaits it (no task switch),
/// until it finds the gate closed and belongs in the pool
/// ([`TickMarker::belongs_in_pool`]): from then on, on the pool's threads.
/// A quiet tenant's short guest never moves; a busy tenant's leave the
/// workers at once.
pub(crate) struct Placed<T> {
    at: At<T>,
    scheduler: Arc<Scheduler>,
    guest: TickMarker,
}

enum At<T> {
    Here(Pin<Box<dyn Future<Output = std::thread::Result<T>> + Send>>),
    Pool {
        done: tokio::sync::oneshot::Receiver<std::thread::Result<T>>,
        /// Stops the guest if this is dropped first.
        _job: JobHandle,
    },
    Moving,
}

impl<T: Send + 'static> Placed<T> {
    /// `future` runs the guest whose ticks `guest` marks.
    pub(crate) fn new(
        future: Pin<Box<dyn Future<Output = std::thread::Result<T>> + Send>>,
        scheduler: Arc<Scheduler>,
        guest: TickMarker,
    ) -> Self {
        Self {
            at: At::Here(future),
            scheduler,
            guest,
        }
    }
}

impl<T: Send + 'static> Future for Placed<T> {
    type Output = std::thread::Result<T>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        loop {
            match &mut this.at {
                At::Here(guest) => {
                    // Without threads (none could start), guests stay.
                    if !(this.scheduler.pooled(&this.guest) && this.scheduler.pool.ready()) {
                        return guest.as_mut().poll(cx);
                    }
                    let At::Here(guest) = std::mem::replace(&mut this.at, At::Moving) else {
                        unreachable!("matched above")
                    };
                    let (tx, rx) = tokio::sync::oneshot::channel();
                    let job = this.scheduler.pool.spawn(async move {
                        // The receiver is gone only if the request is.
                        let _ = tx.send(guest.await);
                    });
                    this.at = At::Pool { done: rx, _job: job };
                }
                At::Pool { done, .. } => {
                    return Pin::new(done).poll(cx).map(|done| {
                        done.unwrap_or_else(|_| Err(Box::new("the guest's thread stopped before it finished")))
                    });
                }
                At::Moving => unreachable!("never left moving"),
            }
        }
    }
}
