//! What an invocation's observer is told: how the instance was got, the
//! guest's CPU time and memory peak, and how it ended.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::{Call, on_a_worker, serial, setup};
use crate::{Exit, InstanceKind, Invocation, InvokeError, Observer};

#[derive(Default)]
struct Seen {
    ready: Mutex<Vec<InstanceKind>>,
    finished: Mutex<Vec<Invocation>>,
}

impl Observer for Seen {
    fn instance_ready(&self, kind: InstanceKind, _instantiation: Duration) {
        self.ready.lock().unwrap().push(kind);
    }

    fn finished(&self, invocation: &Invocation) {
        self.finished.lock().unwrap().push(*invocation);
    }
}

/// Waits until `seen` has `n` finished invocations (the instance is put
/// away just after the response).
async fn finished(seen: &Seen, n: usize) -> Vec<Invocation> {
    for _ in 0..200 {
        let f = seen.finished.lock().unwrap().clone();
        if f.len() >= n {
            return f;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("{} of {n} invocations reported", seen.finished.lock().unwrap().len());
}

#[test]
fn the_observer_learns_the_instance_the_cost_and_the_end() {
    let _serial = serial();
    let (tokio, runtime, component) = setup();
    on_a_worker(&tokio, async move {
        let seen = Arc::new(Seen::default());
        let pool = runtime.reuse_pool(10, Duration::from_secs(60), 4);
        for _ in 0..2 {
            let mut call = Call::new("t", "f", 2_000_000);
            call.reuse = pool.clone();
            call.observer = Some(seen.clone());
            call.run(&runtime, &component).await.unwrap();
        }
        let done = finished(&seen, 2).await;
        assert_eq!(*seen.ready.lock().unwrap(), [InstanceKind::Fresh, InstanceKind::Reused]);
        for inv in &done {
            assert_eq!(inv.exit, Exit::Ok);
            assert!(inv.cpu > Duration::ZERO, "{inv:?}");
            assert!(inv.memory_peak_bytes.is_some_and(|m| m >= 65536), "{inv:?}");
        }
        assert_eq!(
            (done[0].kind, done[1].kind),
            (InstanceKind::Fresh, InstanceKind::Reused)
        );

        // A guest that computes past its deadline.
        let timed_out = Arc::new(Seen::default());
        let mut call = Call::new("t", "f", u32::MAX);
        call.timeout = Duration::from_millis(50);
        call.observer = Some(timed_out.clone());
        assert!(matches!(
            call.run(&runtime, &component).await,
            Err(InvokeError::Timeout)
        ));
        let done = finished(&timed_out, 1).await;
        assert_eq!(done[0].exit, Exit::Timeout);
        assert!(
            done[0].cpu >= Duration::from_millis(20),
            "it computed until stopped: {:?}",
            done[0]
        );
    });
}
