//! Measurements run by hand (ignored): the scheduler's variants, its cost
//! uncontended, and why guests leave tokio's workers.

use super::*;

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
