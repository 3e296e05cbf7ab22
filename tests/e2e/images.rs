//! Memory images: small ones mapped copy-on-write, large ones (an
//! interpreter's initialised heap) copied into each instance; either way
//! every instance starts from the image as built.

use serde_json::{Value, json};
use wasmfn_server::HostConfig;
use wasmfn_server::runtime::{DEFAULT_COW_MAX_IMAGE_BYTES, pagemap_scan_supported};

use crate::harness::*;

/// `n` requests to the `image` guest, half of them at once: each must find
/// the image untouched by the others, and its own writes in place.
async fn all_pristine(h: &TestHost, path: &str, n: usize) {
    for i in 0..n / 2 {
        let body: Value = h.get(path).await.json().await.unwrap();
        assert_eq!(body, json!({"pristine": true, "written": true}), "request {i}");
    }
    let mut tasks = Vec::new();
    for _ in 0..n / 2 {
        let (client, url) = (h.client.clone(), h.url(path));
        tasks.push(tokio::spawn(async move {
            client.get(url).send().await.unwrap().json::<Value>().await.unwrap()
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), json!({"pristine": true, "written": true}));
    }
}

fn image_of(f: &Value) -> (u64, String) {
    let m = &f["memory_image"];
    (m["bytes"].as_u64().unwrap(), m["init"].as_str().unwrap().to_string())
}

#[tokio::test]
async fn large_images_are_copied_small_ones_mapped_and_instances_start_pristine() {
    let f = Fixture::new();
    f.function("image", "image", json!({}));
    f.function("counter", "counter", json!({}));
    let h = TestHost::start(f.path()).await;
    let split = pagemap_scan_supported();
    let health = h.json("/_fn/status").await;
    assert_eq!(health["memory_cow"], true);
    let limit = if split {
        json!(DEFAULT_COW_MAX_IMAGE_BYTES)
    } else {
        Value::Null
    };
    assert_eq!(health["cow_max_image_bytes"], limit);

    let (bytes, init) = image_of(&h.function("image").await);
    assert!(
        bytes >= 3 << 19,
        "the 1.5 MiB static is an active data segment: {bytes}"
    );
    assert_eq!(init, if split { "copied" } else { "copy-on-write" });
    let (bytes, init) = image_of(&h.function("counter").await);
    assert!(bytes > 0 && bytes < DEFAULT_COW_MAX_IMAGE_BYTES, "{bytes}");
    assert_eq!(init, "copy-on-write");

    all_pristine(&h, "/image", 40).await;
    let body = h.get("/counter").await.json::<Value>().await.unwrap();
    assert_eq!(body["served"], 1, "a fresh instance beside the copied one: {body}");
}

#[tokio::test]
async fn a_large_image_mapped_copy_on_write_starts_pristine_too() {
    let f = Fixture::new();
    f.function("image", "image", json!({}));
    let mut config = HostConfig::new(f.path());
    config.runtime.cow_max_image_bytes = u64::MAX;
    let h = TestHost::start_with(config).await;
    assert_eq!(image_of(&h.function("image").await).1, "copy-on-write");
    // Its writes dirty more separate runs of pages than the pool resets in
    // place: the rest goes back to the kernel and must come back as built.
    all_pristine(&h, "/image", 40).await;
}

#[tokio::test]
async fn without_copy_on_write_every_image_is_copied() {
    let f = Fixture::new();
    f.function("image", "image", json!({}));
    f.function("counter", "counter", json!({}));
    let mut config = HostConfig::new(f.path());
    config.runtime.memory_cow = false;
    let h = TestHost::start_with(config).await;
    let health = h.json("/_fn/status").await;
    assert_eq!(
        (health["memory_cow"].clone(), health["cow_max_image_bytes"].clone()),
        (json!(false), Value::Null)
    );
    assert_eq!(image_of(&h.function("image").await).1, "copied");
    assert_eq!(image_of(&h.function("counter").await).1, "copied");
    all_pristine(&h, "/image", 20).await;
    assert_eq!(h.get("/counter").await.json::<Value>().await.unwrap()["served"], 1);
}
