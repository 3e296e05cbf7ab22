//! The encrypted store: what the API sets is nowhere in the state
//! directory in the clear, serves again after a restart with the same key,
//! and is never served (nor lost) when the host starts with another key
//! or none: then the host starts and the function that needs it is failed.

use serde_json::json;

use super::secrets::assert_hidden_in_files;
use super::*;

#[tokio::test]
async fn stored_secrets_are_encrypted_survive_a_restart_and_need_their_key() {
    let fx = Fixture::new();
    let secret = unique("at-rest-value");
    fx.file(
        "reader/fn.config.json",
        &config_manifest(json!({"config": {"k": "v"}, "secrets": ["api_key"]})).to_string(),
    )
    .file("other/fn.config.json", &config_manifest(json!({})).to_string());
    let keys = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let (right, wrong) = (key_file(keys.path(), "right.key"), key_file(keys.path(), "wrong.key"));
    let right_text = std::fs::read_to_string(&right).unwrap().trim().to_string();
    let (tokens_path, t) = token_file(keys.path(), &[("root", &[Scope::Admin], None)]);
    let flags = |key: Option<&Path>| {
        let mut f = vec![
            "--admin-tokens".to_string(),
            tokens_path.to_str().unwrap().to_string(),
            "--state-dir".to_string(),
            state.path().to_str().unwrap().to_string(),
        ];
        if let Some(k) = key {
            f.extend(["--secrets-key-file".to_string(), k.to_str().unwrap().to_string()]);
        }
        f
    };
    let root = t["root"].as_str();

    // Set through the API; the state directory holds it encrypted only.
    let with_right = flags(Some(&right));
    let h = start(fx.path(), &strs(&with_right), &[]).await;
    assert_eq!(h.function(root, "reader").await["state"], "failed");
    let r = h.put_secret("/_fn", "api_key", &secret, root).await;
    assert_eq!(r.status(), 200);
    h.eventually_reads(None, "/reader", "api_key", json!(secret)).await;
    let log = h.stop().await;
    assert_hidden(&log, &[&secret, &right_text], "the host's log");
    assert!(
        !files(state.path()).is_empty(),
        "nothing was written under the state directory"
    );
    assert_hidden_in_files(state.path(), &[&secret, &right_text]);

    // The same key after a restart: it serves as before.
    let h = start(fx.path(), &strs(&with_right), &[]).await;
    h.eventually_reads(None, "/reader", "api_key", json!(secret)).await;
    assert_eq!(
        h.get_on(None, "/reader").await,
        (200, json!({"all": {"k": "v", "api_key": secret}}))
    );
    assert_hidden(&h.stop().await, &[&secret], "the host's log");

    // Another key, or none: the host starts, and the function that needs
    // the secret is failed with a message naming it and the flag; never
    // the value (the sealed value does not open under another key).
    for (what, f, needle) in [
        (
            "another key",
            flags(Some(&wrong)),
            "does not open with this host's `--secrets-key-file`",
        ),
        ("no key", flags(None), "no `--secrets-key-file`"),
    ] {
        let h = match try_start(fx.path(), &strs(&f), &[]).await {
            Ok(h) => h,
            Err((status, log)) => panic!("{what}: the host did not start ({status}):\n{log}"),
        };
        let f = h.function(root, "reader").await;
        assert_eq!(f["state"], "failed", "{what}: {f:#}");
        let error = f["error"].as_str().unwrap();
        assert!(
            error.contains("secret `api_key`") && error.contains(needle),
            "{what}: {error}"
        );
        let (status, body) = h.read_key(None, "/reader", "api_key").await;
        assert_eq!(status, 404, "{what}: {body}");
        assert_eq!(h.get_on(None, "/other").await, (200, json!({"all": {}})), "{what}");
        let (catalog, _) = h.admin_text("/_fn/catalog", root).await;
        assert_hidden(&catalog, &[&secret], "the catalog");
        let log = h.stop().await;
        assert_hidden(&log, &[&secret, &right_text], "the host's log");
    }
    // Neither start lost or rewrote what was stored: the right key reads it again.
    let h = start(fx.path(), &strs(&with_right), &[]).await;
    h.eventually_reads(None, "/reader", "api_key", json!(secret)).await;
    h.stop().await;
    assert_hidden_in_files(state.path(), &[&secret, &right_text]);
}

/// Every file below `dir`.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let p = entry.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out
}
