//! A tenant's request rate: a token bucket of `burst` tokens refilled at
//! `requests_per_second`, kept as one atomic (the generic cell rate
//! algorithm: the theoretical arrival time of the next request), so that
//! admitting a request takes no lock.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// `requests_per_second` with a bucket of `burst`.
#[derive(Debug)]
pub struct RateLimit {
    start: Instant,
    /// Nanoseconds between two tokens.
    interval: u64,
    /// Nanoseconds of credit the bucket holds when full: `burst × interval`.
    capacity: u64,
    /// The theoretical arrival time (ns since `start`) once every admitted request is paid for.
    tat: AtomicU64,
    per_second: u32,
    burst: u32,
}

impl RateLimit {
    /// A full bucket of `burst` tokens, refilled at `per_second` (both at least 1).
    pub fn new(per_second: u32, burst: u32) -> Self {
        let per_second = per_second.max(1);
        let burst = burst.max(1);
        let interval = 1_000_000_000 / u64::from(per_second);
        Self {
            start: Instant::now(),
            interval,
            capacity: interval * u64::from(burst),
            tat: AtomicU64::new(0),
            per_second,
            burst,
        }
    }

    /// The settings, for messages: `(requests_per_second, burst)`.
    pub fn settings(&self) -> (u32, u32) {
        (self.per_second, self.burst)
    }

    /// Takes a token, or says how long until one is there.
    pub fn check(&self) -> Result<(), Duration> {
        self.check_at(self.start.elapsed().as_nanos() as u64)
    }

    fn check_at(&self, now: u64) -> Result<(), Duration> {
        let mut tat = self.tat.load(Ordering::Acquire);
        loop {
            let base = tat.max(now);
            let next = base + self.interval;
            // Admitted while the debt after this request fits in the bucket.
            if next - now > self.capacity {
                return Err(Duration::from_nanos(next - now - self.capacity));
            }
            match self
                .tat
                .compare_exchange_weak(tat, next, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return Ok(()),
                Err(actual) => tat = actual,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    #[test]
    fn a_burst_then_the_rate() {
        let r = RateLimit::new(2, 5);
        // Five at once, the sixth waits for half a second.
        for _ in 0..5 {
            assert!(r.check_at(0).is_ok());
        }
        assert_eq!(r.check_at(0), Err(Duration::from_millis(500)));
        // One token per half second after that.
        assert!(r.check_at(S / 2).is_ok());
        assert!(r.check_at(S / 2).is_err());
        assert!(r.check_at(S).is_ok());
        // Idle for long: the bucket is full again, not fuller.
        let later = 100 * S;
        for _ in 0..5 {
            assert!(r.check_at(later).is_ok());
        }
        assert!(r.check_at(later).is_err());
    }

    #[test]
    fn concurrent_takers_get_exactly_the_burst() {
        let r = std::sync::Arc::new(RateLimit::new(1, 50));
        let ok = std::sync::Arc::new(AtomicU64::new(0));
        std::thread::scope(|s| {
            for _ in 0..4 {
                let (r, ok) = (r.clone(), ok.clone());
                s.spawn(move || {
                    for _ in 0..100 {
                        if r.check_at(0).is_ok() {
                            ok.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                });
            }
        });
        assert_eq!(ok.load(Ordering::Relaxed), 50);
    }
}
