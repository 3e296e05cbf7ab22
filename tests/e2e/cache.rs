//! The compile cache: a second start compiles nothing; a corrupt entry is
//! compiled again, never trusted.

use serde_json::{Value, json};

use crate::harness::*;

async fn start_and_read(config: &wasmfn_server::HostConfig) -> Value {
    let t = TestHost::start_with(config.clone()).await;
    for path in ["/a", "/b", "/c"] {
        assert_eq!(t.get(path).await.status(), 200, "{path}");
    }
    let health = t.json("/_fn/status").await;
    assert_eq!(t.host.stop().await.unwrap(), wasmfn_server::Drained::Complete);
    health["compile_cache"].clone()
}

fn corrupt_every_file(dir: &std::path::Path) -> usize {
    let mut n = 0;
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let p = entry.path();
        if p.is_dir() {
            n += corrupt_every_file(&p);
        } else {
            std::fs::write(&p, b"definitely not compiled code").unwrap();
            n += 1;
        }
    }
    n
}

#[tokio::test]
async fn a_second_start_compiles_nothing_and_corrupt_entries_are_rebuilt() {
    let f = Fixture::new();
    f.function("a", "probe", json!({}))
        .function("b", "env", json!({}))
        .function("c", "hello_plain", json!({}));
    let cache = tempfile::tempdir().unwrap();
    let mut config = wasmfn_server::HostConfig::new(f.path());
    config.runtime.cache_dir = Some(cache.path().to_path_buf());

    let first = start_and_read(&config).await;
    assert_eq!(
        (first["hits"].as_u64(), first["misses"].as_u64()),
        (Some(0), Some(3)),
        "{first}"
    );

    let second = start_and_read(&config).await;
    assert_eq!(
        (second["hits"].as_u64(), second["misses"].as_u64()),
        (Some(3), Some(0)),
        "{second}"
    );

    assert!(corrupt_every_file(cache.path()) >= 3);
    let third = start_and_read(&config).await;
    assert_eq!(
        (third["hits"].as_u64(), third["misses"].as_u64()),
        (Some(0), Some(3)),
        "{third}"
    );
}
