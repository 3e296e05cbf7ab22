//! Concurrency gates: a fixed number of slots and a bounded FIFO queue with
//! a wait limit. A waiter that is dropped (its client went away) leaves the
//! queue at once; a permit that is dropped frees its slot at once.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Slots and queue for one function, or for the whole host.
#[derive(Debug)]
pub struct ConcurrencyGate {
    slots: Option<Arc<Semaphore>>,
    max_concurrency: u32,
    max_queue: u32,
    queue_timeout: Duration,
    waiting: AtomicU32,
    in_flight: Arc<AtomicU64>,
}

/// Why no slot was given.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum GateError {
    /// Every slot is held and the queue has no room left.
    #[error("all {slots} slots are busy and the queue of {queue} is full")]
    QueueFull {
        /// The gate's number of slots (`max_concurrency`).
        slots: u32,
        /// The queue's length (`max_queue`).
        queue: u32,
    },
    /// The request waited in the queue for the gate's whole wait limit.
    #[error("no slot became free within {waited_ms} ms")]
    QueueTimeout {
        /// How long it waited, in ms.
        waited_ms: u64,
    },
}

/// A held slot; dropping it frees the slot.
#[derive(Debug)]
pub struct GatePermit {
    _permit: Option<OwnedSemaphorePermit>,
    in_flight: Arc<AtomicU64>,
}

impl Drop for GatePermit {
    fn drop(&mut self) {
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

struct Waiting<'a>(&'a AtomicU32);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl ConcurrencyGate {
    /// `max_concurrency` 0 means no limit (and no queue).
    pub fn new(max_concurrency: u32, max_queue: u32, queue_timeout: Duration) -> Self {
        Self {
            slots: (max_concurrency > 0).then(|| Arc::new(Semaphore::new(max_concurrency as usize))),
            max_concurrency,
            max_queue,
            queue_timeout,
            waiting: AtomicU32::new(0),
            in_flight: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Requests holding a slot now.
    pub fn in_flight(&self) -> u64 {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// Requests waiting for a slot now.
    pub fn queued(&self) -> u32 {
        self.waiting.load(Ordering::Relaxed)
    }

    fn permit(&self, p: Option<OwnedSemaphorePermit>) -> GatePermit {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        GatePermit {
            _permit: p,
            in_flight: self.in_flight.clone(),
        }
    }

    /// Takes a slot, waiting in the queue if there is room in it.
    pub async fn acquire(&self) -> Result<GatePermit, GateError> {
        self.acquire_queued(self.max_queue, self.queue_timeout).await
    }

    /// Takes a slot, waiting by another's queue rules: at most `max_queue`
    /// waiting at once, each for at most `queue_timeout` (a tenant's gate,
    /// waited on by its function's rules).
    pub async fn acquire_queued(&self, max_queue: u32, queue_timeout: Duration) -> Result<GatePermit, GateError> {
        let Some(sem) = &self.slots else {
            return Ok(self.permit(None));
        };
        if let Ok(p) = sem.clone().try_acquire_owned() {
            return Ok(self.permit(Some(p)));
        }
        // Reserve a queue place, or refuse when the queue is full.
        let reserved = self.waiting.fetch_update(Ordering::AcqRel, Ordering::Acquire, |w| {
            (w < max_queue).then_some(w + 1)
        });
        if reserved.is_err() {
            return Err(GateError::QueueFull {
                slots: self.max_concurrency,
                queue: max_queue,
            });
        }
        let _place = Waiting(&self.waiting);
        match tokio::time::timeout(queue_timeout, sem.clone().acquire_owned()).await {
            Ok(Ok(p)) => Ok(self.permit(Some(p))),
            Ok(Err(_closed)) => unreachable!("gate semaphores are never closed"),
            Err(_) => Err(GateError::QueueTimeout {
                waited_ms: queue_timeout.as_millis() as u64,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn slots_queue_and_overflow() {
        let gate = Arc::new(ConcurrencyGate::new(2, 1, Duration::from_secs(5)));
        let a = gate.acquire().await.unwrap();
        let _b = gate.acquire().await.unwrap();
        assert_eq!(gate.in_flight(), 2);
        let g = gate.clone();
        let queued = tokio::spawn(async move { g.acquire().await.map(|_| ()) });
        // Wait until the third request is queued.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while gate.queued() == 0 {
            assert!(tokio::time::Instant::now() < deadline, "never queued");
            tokio::task::yield_now().await;
        }
        assert!(matches!(
            gate.acquire().await,
            Err(GateError::QueueFull { slots: 2, queue: 1 })
        ));
        drop(a);
        queued.await.unwrap().unwrap();
        assert_eq!(gate.queued(), 0);
    }

    #[tokio::test]
    async fn queue_timeout_and_cancel() {
        let gate = Arc::new(ConcurrencyGate::new(1, 1, Duration::from_millis(20)));
        let _a = gate.acquire().await.unwrap();
        assert!(matches!(
            gate.acquire().await,
            Err(GateError::QueueTimeout { waited_ms: 20 })
        ));
        assert_eq!(gate.queued(), 0);
        // A waiter that is dropped leaves the queue.
        let g = ConcurrencyGate::new(1, 1, Duration::from_secs(60));
        let _p = g.acquire().await.unwrap();
        {
            let fut = g.acquire();
            tokio::pin!(fut);
            assert!(futures::poll!(&mut fut).is_pending());
            assert_eq!(g.queued(), 1);
        }
        assert_eq!(g.queued(), 0);
    }

    #[tokio::test]
    async fn unlimited() {
        let gate = ConcurrencyGate::new(0, 0, Duration::from_millis(1));
        let permits: Vec<_> = futures::future::join_all((0..100).map(|_| gate.acquire())).await;
        assert!(permits.iter().all(Result::is_ok));
        assert_eq!(gate.in_flight(), 100);
    }
}
