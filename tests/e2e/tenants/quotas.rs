//! Each quota hit exactly: functions, component size, memory, outbound
//! ceiling, request rate with its burst, concurrency; and quotas a
//! tenant's functions already exceed cannot be set.

use reqwest::Method;
use serde_json::json;

use super::*;

#[tokio::test]
async fn every_quota_is_enforced_exactly() {
    let fx = Fixture::new();
    let (h, t, _state) = hosted(fx.path(), &[("root", &[Scope::Admin], None)]).await;
    let root = t["root"].as_str();

    // max_functions: the N+1th is refused, a new version of one of the N is not.
    put_tenant(
        &h,
        root,
        "small",
        json!({"hosts": ["small.test"], "quotas": {"max_functions": 2}}),
        201,
    )
    .await;
    for name in ["a", "b"] {
        let r = deploy(&h, root, "small", name, probe_manifest(&format!("/{name}")), "probe").await;
        assert_eq!(r.status(), 201);
    }
    let r = deploy(&h, root, "small", "c", probe_manifest("/c"), "probe").await;
    let (code, body) = error_code(r, 422).await;
    assert_eq!(code, "quota_exceeded");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("quotas.max_functions"),
        "{body}"
    );
    let r = deploy(&h, root, "small", "a", json!({"invoke": {"routes": ["/a2"]}}), "probe").await;
    assert_eq!(r.status(), 200);
    // A quota below what the tenant already has is refused.
    let r = admin(
        &h,
        Method::PUT,
        "/_fn/tenants/small",
        root,
        Some(json!({"hosts": ["small.test"], "quotas": {"max_functions": 1}})),
    )
    .await;
    assert_eq!(error_code(r, 409).await.0, "tenant_conflict");

    // max_component_bytes, max_memory_bytes, the outbound ceiling.
    let quotas = json!({
        "max_component_bytes": 1000,
        "max_memory_bytes": 64 << 20,
        "allowed_outbound_hosts": ["https://*.partner.example"],
    });
    put_tenant(
        &h,
        root,
        "tight",
        json!({"hosts": ["tight.test"], "quotas": quotas}),
        201,
    )
    .await;
    let r = deploy(&h, root, "tight", "f", probe_manifest("/f"), "probe").await;
    let (code, body) = error_code(r, 422).await;
    assert_eq!(code, "quota_exceeded");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("max_component_bytes"),
        "{body}"
    );
    put_tenant(&h, root, "tight", json!({"hosts": ["tight.test"], "quotas": {"max_memory_bytes": 64 << 20, "allowed_outbound_hosts": ["https://*.partner.example"]}}), 200).await;
    let r = deploy(&h, root, "tight", "f", json!({"max_memory_bytes": 128 << 20}), "probe").await;
    let (code, body) = error_code(r, 422).await;
    assert_eq!(code, "quota_exceeded");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("`max_memory_bytes`"),
        "{body}"
    );
    let r = deploy(
        &h,
        root,
        "tight",
        "f",
        json!({"max_memory_bytes": 32 << 20, "allowed_outbound_hosts": ["https://evil.example"]}),
        "probe",
    )
    .await;
    let (code, body) = error_code(r, 422).await;
    assert_eq!(code, "quota_exceeded");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("`https://evil.example` is outside"),
        "{body}"
    );
    let ok = json!({"max_memory_bytes": 32 << 20, "allowed_outbound_hosts": ["https://api.partner.example"]});
    assert_eq!(deploy(&h, root, "tight", "f", ok, "probe").await.status(), 201);

    // requests_per_second with a burst: exactly the burst passes at once.
    put_tenant(
        &h,
        root,
        "rated",
        json!({"hosts": ["rated.test"], "quotas": {"requests_per_second": 1, "burst": 5}}),
        201,
    )
    .await;
    assert_eq!(
        deploy(&h, root, "rated", "f", probe_manifest("/f"), "probe")
            .await
            .status(),
        201
    );
    let mut statuses = Vec::new();
    let mut retry_after = None;
    for _ in 0..20 {
        let r = get_on(&h, "rated.test", "/f").await;
        if r.status() == 429 {
            retry_after = r.headers().get("retry-after").map(|v| v.to_str().unwrap().to_string());
            assert_eq!(error_code(r, 429).await.0, "rate_limited");
            statuses.push(429);
        } else {
            statuses.push(r.status().as_u16());
        }
    }
    // Twenty requests in well under a second: the five of the burst, plus
    // at most the one token that may have dripped in meanwhile.
    let passed = statuses.iter().filter(|s| **s == 200).count();
    assert!(passed == 5 || passed == 6, "{statuses:?}");
    assert_eq!(statuses[..5], [200; 5]);
    assert_eq!(retry_after.as_deref(), Some("1"));
    // Other tenants are not limited by it.
    for _ in 0..10 {
        assert_eq!(get_on(&h, "small.test", "/b").await.status(), 200);
    }

    // max_concurrency: one invocation of the tenant at a time; beyond it,
    // the function's queue rules (here: no queue) answer 429.
    put_tenant(
        &h,
        root,
        "narrow",
        json!({"hosts": ["narrow.test"], "quotas": {"max_concurrency": 1}}),
        201,
    )
    .await;
    let slow = json!({"invoke": {"routes": ["/sleep"]}, "timeout_ms": 1500, "max_queue": 0});
    assert_eq!(deploy(&h, root, "narrow", "sleep", slow, "sleep").await.status(), 201);
    let p = json!({"invoke": {"routes": ["/p"]}, "max_queue": 0});
    assert_eq!(deploy(&h, root, "narrow", "p", p, "probe").await.status(), 201);
    let first = tokio::spawn({
        let (c, url) = (h.client.clone(), h.url("/sleep"));
        async move { c.get(url).header("host", "narrow.test").send().await.unwrap().status() }
    });
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let r = get_on(&h, "narrow.test", "/p").await;
    let (code, body) = error_code(r, 429).await;
    assert_eq!(code, "too_many_requests");
    assert!(
        body["error"]["message"].as_str().unwrap().contains("tenant `narrow`"),
        "{body}"
    );
    assert_eq!(first.await.unwrap(), 504);
    assert_eq!(get_on(&h, "narrow.test", "/p").await.status(), 200);
    let _drained = h.host.stop().await.unwrap();
}
