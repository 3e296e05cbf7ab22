//! A hundred tenants of ten functions each, on one host: every function
//! answers on its tenant's host, and all of them load again at a restart.

use std::time::Instant;

use reqwest::Method;
use serde_json::json;

use super::*;

const TENANTS: usize = 100;
const FUNCTIONS: usize = 10;

#[tokio::test]
async fn a_hundred_tenants_of_ten_functions_route_correctly() {
    let fx = Fixture::new();
    let state = tempfile::tempdir().unwrap();
    let (config, t) = hosted_config(fx.path(), state.path(), &[("root", &[Scope::Admin], None)]);
    let h = TestHost::start_with(config.clone()).await;
    let root = t["root"].as_str();
    let started = Instant::now();
    for i in 0..TENANTS {
        put_tenant(
            &h,
            root,
            &format!("t{i}"),
            json!({"hosts": [format!("t{i}.test")]}),
            201,
        )
        .await;
        for j in 0..FUNCTIONS {
            let r = deploy(
                &h,
                root,
                &format!("t{i}"),
                &format!("f{j}"),
                probe_manifest(&format!("/f{j}")),
                "probe",
            )
            .await;
            assert_eq!(r.status(), 201, "t{i}/f{j}: {}", r.text().await.unwrap());
        }
    }
    eprintln!(
        "{TENANTS} tenants × {FUNCTIONS} functions deployed in {:?}",
        started.elapsed()
    );
    let check = |h: &TestHost| {
        let (client, base) = (h.client.clone(), h.base.clone());
        async move {
            let mut tasks = Vec::new();
            for i in 0..TENANTS {
                let (client, base) = (client.clone(), base.clone());
                tasks.push(tokio::spawn(async move {
                    for j in 0..FUNCTIONS {
                        let r = client
                            .get(format!("{base}/f{j}"))
                            .header("host", format!("t{i}.test"))
                            .send()
                            .await
                            .unwrap();
                        assert_eq!(r.status(), 200, "t{i}.test/f{j}");
                        let v: serde_json::Value = r.json().await.unwrap();
                        assert_eq!(v["function"], format!("f{j}"));
                        assert_eq!(v["route"], format!("/f{j}"));
                    }
                    // A route of no function of this tenant.
                    let r = client
                        .get(format!("{base}/f{FUNCTIONS}"))
                        .header("host", format!("t{i}.test"))
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(r.status(), 404);
                }));
            }
            for task in tasks {
                task.await.unwrap();
            }
        }
    };
    check(&h).await;
    let list: serde_json::Value = admin(&h, Method::GET, "/_fn/tenants", root, None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(list["tenants"].as_array().unwrap().len(), TENANTS + 1);
    let _drained = h.host.stop().await.unwrap();

    let started = Instant::now();
    let h = TestHost::start_with(config).await;
    eprintln!(
        "restart with {} functions: {:?}",
        TENANTS * FUNCTIONS,
        started.elapsed()
    );
    check(&h).await;
    let _drained = h.host.stop().await.unwrap();
}
