//! The embedded store and a host killed with SIGKILL in the middle of a
//! stream of writes: every write a client saw acknowledged is there after
//! a restart on the same state directory.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use super::*;
use crate::config::start;

/// What the writers saw acknowledged: the keys set, and the largest value
/// `increment` answered.
#[derive(Default)]
struct Acknowledged {
    keys: Mutex<Vec<(String, String)>>,
    counter: AtomicUsize,
    count: AtomicUsize,
}

/// Writes until `stop` or until the host is gone: writer `w` sets
/// `w{w}-{n}` and, every third write, increments `counter`.
async fn writer(client: reqwest::Client, base: String, w: usize, stop: Arc<AtomicBool>, acked: Arc<Acknowledged>) {
    for n in 0.. {
        if stop.load(Ordering::Relaxed) {
            return;
        }
        let request = if n % 3 == 2 {
            client.get(format!("{base}/kv?store=default&op=increment&key=counter&delta=1"))
        } else {
            client
                .post(format!("{base}/kv?store=default&op=set&key=w{w}-{n}"))
                .body(format!("value {w} {n}"))
        };
        let Ok(resp) = request.send().await else { return };
        if resp.status() != 200 {
            return;
        }
        let Ok(body) = resp.json::<Value>().await else { return };
        if n % 3 == 2 {
            let v = body["value"].as_u64().expect("a counter") as usize;
            acked.counter.fetch_max(v, Ordering::SeqCst);
        } else {
            acked
                .keys
                .lock()
                .unwrap()
                .push((format!("w{w}-{n}"), format!("value {w} {n}")));
        }
        acked.count.fetch_add(1, Ordering::SeqCst);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_killed_during_writes_keeps_every_acknowledged_write() {
    let fx = Fixture::new();
    fx.file("kv/fn.config.json", &kv_manifest(Some(&["default"])).to_string());
    let state = tempfile::tempdir().unwrap();
    let flags = ["--state-dir", state.path().to_str().unwrap()];
    let mut h = start(fx.path(), &flags, &[]).await;

    let (stop, acked) = (Arc::new(AtomicBool::new(false)), Arc::new(Acknowledged::default()));
    let writers: Vec<_> = (0..6)
        .map(|w| tokio::spawn(writer(h.client.clone(), h.base.clone(), w, stop.clone(), acked.clone())))
        .collect();
    // Half a second of writes, and enough of them acknowledged to mean something.
    let started = Instant::now();
    eventually(Duration::from_secs(60), "100 acknowledged writes", || async {
        (acked.count.load(Ordering::SeqCst) >= 100 && started.elapsed() >= Duration::from_millis(500)).then_some(())
    })
    .await;
    signal(&h.child, "KILL");
    let status = h.child.wait().await.unwrap();
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(9),
        "{status}"
    );
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.await.unwrap();
    }
    let keys = std::mem::take(&mut *acked.keys.lock().unwrap());
    let counter = acked.counter.load(Ordering::SeqCst) as u64;
    assert!(
        !keys.is_empty() && counter > 0,
        "{} keys, counter {counter}",
        keys.len()
    );

    let h = start(fx.path(), &flags, &[]).await;
    let s = Store::new(&h, "/kv", "default");
    for chunk in keys.chunks(500) {
        let names: Vec<&str> = chunk.iter().map(|(k, _)| k.as_str()).collect();
        let got = s.get_many(&names).await;
        for ((k, v), found) in chunk.iter().zip(got) {
            assert_eq!(
                found,
                Some((k.clone(), v.as_bytes().to_vec())),
                "acknowledged `{k}` is lost"
            );
        }
    }
    let now = s.text("counter").await.expect("the counter").parse::<u64>().unwrap();
    assert!(now >= counter, "the counter is {now}, {counter} was acknowledged");
    // The store is whole and takes writes.
    s.set("after", b"restart").await;
    let (all, _) = s.all_keys().await;
    assert!(
        all.len() > keys.len(),
        "{} keys listed, {} acknowledged",
        all.len(),
        keys.len()
    );
    h.stop().await;
}
