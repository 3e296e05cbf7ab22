//! The host-wide interrupt: when a draining host runs out of time, every
//! invocation still running is stopped at once. A guest computing is
//! interrupted at its next epoch tick; a guest waiting on the host (a
//! sleep, an outbound call) is stopped by its invocation's wait on
//! [`Interrupt::interrupted`]. Both end as [`InvokeError::Interrupted`](crate::InvokeError::Interrupted).

use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::Notify;

/// A switch that is off until the host interrupts everything; it never
/// goes back on.
#[derive(Debug, Default)]
pub struct Interrupt {
    set: AtomicBool,
    notify: Notify,
}

impl Interrupt {
    /// Stops every invocation that is running or starts from now on.
    pub fn trigger(&self) {
        self.set.store(true, Ordering::SeqCst);
        self.notify.notify_waiters();
    }

    /// Whether [`Interrupt::trigger`] was called.
    pub fn is_set(&self) -> bool {
        self.set.load(Ordering::Relaxed)
    }

    /// Resolves once the switch is set (at once if it already is).
    pub async fn interrupted(&self) {
        let notified = self.notify.notified();
        tokio::pin!(notified);
        // Registered before the check: a trigger in between still wakes it.
        notified.as_mut().enable();
        if self.set.load(Ordering::SeqCst) {
            return;
        }
        notified.await;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn waiters_wake_on_trigger_and_later_ones_at_once() {
        let i = Arc::new(Interrupt::default());
        assert!(!i.is_set());
        let waiting = tokio::spawn({
            let i = i.clone();
            async move { i.interrupted().await }
        });
        // Not woken by anything else.
        assert!(
            tokio::time::timeout(Duration::from_millis(50), i.interrupted())
                .await
                .is_err()
        );
        i.trigger();
        tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .unwrap()
            .unwrap();
        assert!(i.is_set());
        tokio::time::timeout(Duration::from_secs(5), i.interrupted())
            .await
            .unwrap();
    }
}
