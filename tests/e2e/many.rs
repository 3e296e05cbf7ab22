//! A thousand functions on one host (the fixture from `benches/fixture`):
//! they load, sharing one compiled component, and every one serves.

use std::process::Command;

use crate::harness::*;

#[tokio::test]
async fn a_thousand_functions_load_and_serve() {
    let dir = tempfile::tempdir().unwrap();
    let ok = Command::new("bash")
        .arg(repo().join("benches/fixture"))
        .arg("1000")
        .arg(dir.path())
        .arg(guest("hello_plain"))
        .status()
        .unwrap();
    assert!(ok.success());
    let t = TestHost::start(dir.path()).await;
    let health = t.json("/_fn/status").await;
    assert_eq!(health["functions"]["loaded"], 1000, "{health}");
    for i in [0, 1, 499, 998, 999] {
        let r = t.get(&format!("/f{i}")).await;
        assert_eq!(r.status(), 200, "/f{i}");
        assert_eq!(r.text().await.unwrap(), "plain hello\n");
    }
    let doc = t.json("/_fn/openapi.json").await;
    assert_eq!(doc["paths"].as_object().unwrap().len(), 1000);
    assert_eq!(t.get("/f1000").await.status(), 404);
}
