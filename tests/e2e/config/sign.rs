//! The `sign` example: HMAC-SHA256 under the operator's secret
//! `signing_key`, which the answers, the catalog and the document never
//! show.

use serde_json::{Value, json};

use crate::harness::*;

/// HMAC-SHA256 of `message` under `key`, in lowercase hexadecimal.
fn hmac_hex(key: &str, message: &str) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key.as_bytes());
    ring::hmac::sign(&key, message.as_bytes())
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[tokio::test]
async fn the_sign_example_signs_with_the_operators_secret() {
    let t = TestHost::examples().await;
    let post = |path: &str, body: Value| t.client.post(t.url(path)).json(&body).send();
    let message = "order 1234: 3 lamps";
    let r = post("/sign", json!({"message": message})).await.unwrap();
    assert_eq!(r.status(), 200);
    let want = hmac_hex(EXAMPLES_SIGNING_KEY, message);
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"algorithm": "HMAC-SHA256", "signature": want})
    );

    let verdict = |message: &str, signature: &str| {
        let body = json!({"message": message, "signature": signature});
        let r = post("/sign/verify", body);
        async move {
            let r = r.await.unwrap();
            assert_eq!(r.status(), 200);
            r.json::<Value>().await.unwrap()["valid"].clone()
        }
    };
    assert_eq!(verdict(message, &want).await, json!(true));
    assert_eq!(verdict("order 1234: 4 lamps", &want).await, json!(false));
    let other_key = hmac_hex("another key", message);
    assert_eq!(verdict(message, &other_key).await, json!(false));
    // Not a signature at all: refused before the function runs.
    let r = post("/sign/verify", json!({"message": message, "signature": "zz"}))
        .await
        .unwrap();
    assert_eq!(r.status(), 422);

    // The key is nowhere the host shows.
    for path in ["/_fn/catalog", "/_fn/openapi.json", "/_fn/functions/sign"] {
        let text = t.get(path).await.text().await.unwrap();
        assert!(!text.contains(EXAMPLES_SIGNING_KEY), "{path} shows the key: {text}");
    }
}
