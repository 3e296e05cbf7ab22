//! Outgoing HTTP: denied by default, allowed exactly for listed hosts,
//! loopback only when named.

use serde_json::json;

use crate::harness::*;

#[tokio::test]
async fn outbound_is_deny_by_default_and_exact() {
    let fixture = FixtureServer::start().await;
    let other = FixtureServer::start().await;
    let f = Fixture::new();
    f.function("none", "outbound", json!({}))
        .function("listed", "outbound", json!({"allowed_outbound_hosts": [fixture.url()]}))
        .function("wildcard", "outbound", json!({"allowed_outbound_hosts": ["*://*:*"]}))
        .function(
            "named_port_any",
            "outbound",
            json!({"allowed_outbound_hosts": ["http://127.0.0.1:*"]}),
        )
        .function(
            "named_localhost",
            "outbound",
            json!({"allowed_outbound_hosts": ["http://localhost:*"]}),
        );
    let t = TestHost::start(f.path()).await;
    let call = |func: &str, target: &str| {
        let path = format!("/{func}?url={target}/ping");
        let t = &t;
        async move { t.get(&path).await }
    };

    let r = call("none", &fixture.url()).await;
    assert_eq!(r.status(), 502);
    assert!(r.text().await.unwrap().contains("HttpRequestDenied"));

    let r = call("listed", &fixture.url()).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "upstream 200: pong");

    // Another port on the same host is not listed.
    let r = call("listed", &other.url()).await;
    assert_eq!(r.status(), 502);
    assert!(r.text().await.unwrap().contains("HttpRequestDenied"));

    // A wildcard does not open the host's own network.
    let r = call("wildcard", &fixture.url()).await;
    assert_eq!(r.status(), 502);
    assert!(r.text().await.unwrap().contains("HttpRequestDenied"));
    let r = call("wildcard", &format!("http://localhost:{}", fixture.addr.port())).await;
    assert_eq!(r.status(), 502, "a name that resolves to loopback is refused too");

    // Naming the loopback host exactly (any port) allows it.
    let r = call("named_port_any", &other.url()).await;
    assert_eq!(r.text().await.unwrap(), "upstream 200: pong");

    // The upstream sees the request line in origin form and the guest's
    // authority in `Host`, by address and by name (a name named exactly is
    // resolved by the host and connected to at the address it resolved to).
    let r = t.get(&format!("/named_port_any?url={}/host", fixture.url())).await;
    assert_eq!(
        r.text().await.unwrap(),
        format!("upstream 200: host {}, target /host", fixture.addr)
    );
    let port = fixture.addr.port();
    let r = t
        .get(&format!("/named_localhost?url=http://localhost:{port}/host"))
        .await;
    assert_eq!(
        r.text().await.unwrap(),
        format!("upstream 200: host localhost:{port}, target /host")
    );

    let hits = fixture.hits.lock().unwrap().get("ping").copied();
    assert_eq!(hits, Some(1), "only the listed call reached the fixture");
}
