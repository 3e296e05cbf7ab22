//! Graceful drain of the real binary: SIGTERM or SIGINT lets requests in
//! flight finish, `/_fn/ready` turns 503 first, the listener closes after
//! the delay, what outlives the drain timeout is interrupted (503), and a
//! second signal exits at once.

use std::time::Duration;

use serde_json::json;

use crate::harness::*;

/// The catalog's `in_flight` of function `name`.
async fn in_flight(client: &reqwest::Client, base: &str, name: &str) -> u64 {
    let catalog = get_json(client, &format!("{base}/_fn/catalog")).await;
    catalog["functions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == name)
        .unwrap_or_else(|| panic!("no `{name}` in the catalog"))["stats"]["in_flight"]
        .as_u64()
        .unwrap()
}

#[tokio::test]
async fn sigterm_answers_every_request_in_flight_then_exits_0() {
    let fx = Fixture::new();
    fx.function("slow", "slow", json!({ "timeout_ms": 20_000 }));
    let served = serve(fx.path(), &["--drain-delay-ms", "1500"]).await;
    let (mut child, base) = served.print_log("drain: ");
    let client = reqwest::Client::new();
    // Long enough that all 20 are in flight together even on a busy machine.
    let requests: Vec<_> = (0..20)
        .map(|_| tokio::spawn(client.get(format!("{base}/slow?ms=8000")).send()))
        .collect();
    eventually(Duration::from_secs(7), "20 requests in flight", || async {
        (in_flight(&client, &base, "slow").await == 20).then_some(())
    })
    .await;
    assert_eq!(
        client.get(format!("{base}/_fn/ready")).send().await.unwrap().status(),
        200
    );

    signal(&child, "TERM");
    // Not ready as soon as the signal is handled, while the listener still
    // accepts (the delay of 1.5 s).
    let ready = eventually(Duration::from_secs(1), "not ready", || async {
        let r = client.get(format!("{base}/_fn/ready")).send().await.unwrap();
        (r.status() == 503).then_some(r)
    })
    .await;
    let (code, _) = error_code(ready, 503).await;
    assert_eq!(code, "shutting_down");
    // After the delay, new connections are refused.
    let addr = base.trim_start_matches("http://").to_string();
    eventually(Duration::from_secs(20), "the listener closes", || async {
        std::net::TcpStream::connect(&addr).is_err().then_some(())
    })
    .await;
    for r in requests {
        let r = r.await.unwrap().expect("every request in flight is answered");
        assert_eq!(r.status(), 200);
        assert_eq!(r.text().await.unwrap(), "done");
    }
    let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .expect("the server exits once drained")
        .unwrap();
    assert_eq!(status.code(), Some(0), "every request finished: exit 0");
}

#[tokio::test]
async fn what_outlives_the_drain_timeout_is_interrupted_with_503_and_exit_1() {
    let fx = Fixture::new();
    fx.function("spin", "spin", json!({ "timeout_ms": 60_000 })).function(
        "slow",
        "slow",
        json!({ "timeout_ms": 60_000 }),
    );
    let served = serve(fx.path(), &["--drain-timeout-ms", "500"]).await;
    let (mut child, base) = served.print_log("drain: ");
    let client = reqwest::Client::new();
    // One guest computing, one waiting on the host (a sleep): both are stopped.
    let spinning = tokio::spawn(client.get(format!("{base}/spin")).send());
    let sleeping = tokio::spawn(client.get(format!("{base}/slow?ms=50000")).send());
    eventually(Duration::from_secs(20), "both requests in flight", || async {
        (in_flight(&client, &base, "spin").await == 1 && in_flight(&client, &base, "slow").await == 1).then_some(())
    })
    .await;
    let signalled = std::time::Instant::now();
    signal(&child, "TERM");
    for r in [spinning, sleeping] {
        let r = tokio::time::timeout(Duration::from_secs(20), r)
            .await
            .expect("answered soon after the drain timeout")
            .unwrap()
            .unwrap();
        let (code, body) = error_code(r, 503).await;
        assert_eq!(code, "shutting_down", "{body}");
    }
    let status = tokio::time::timeout(Duration::from_secs(20), child.wait())
        .await
        .expect("the server exits after the cut")
        .unwrap();
    assert_eq!(status.code(), Some(1), "something was cut: exit 1");
    assert!(
        signalled.elapsed() < Duration::from_secs(20),
        "well before the guests' own timeout"
    );
}

#[tokio::test]
async fn a_second_signal_exits_at_once() {
    let fx = Fixture::new();
    fx.function("slow", "slow", json!({ "timeout_ms": 60_000 }));
    let mut served = serve(fx.path(), &[]).await;
    let client = reqwest::Client::new();
    let base = served.base.clone();
    let pending = tokio::spawn(client.get(format!("{base}/slow?ms=50000")).send());
    eventually(Duration::from_secs(20), "the request in flight", || async {
        (in_flight(&client, &base, "slow").await == 1).then_some(())
    })
    .await;
    signal(&served.child, "INT");
    served.line_with("draining").await;
    let (mut child, _) = served.print_log("drain: ");
    signal(&child, "TERM");
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .expect("the second signal ends the process at once")
        .unwrap();
    assert_eq!(status.code(), Some(1));
    assert!(
        pending.await.unwrap().is_err(),
        "the request in flight was dropped with the process"
    );
}
