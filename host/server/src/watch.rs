//! `--watch`: reload when a manifest, component or fragment changes. A
//! polling watcher: it needs no OS support and sees every kind of change,
//! at the cost of a `stat` per relevant file per interval.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use wasmfn_manifest::digest::FilesFingerprint;
use wasmfn_manifest::discovery::is_skipped_dir;

use crate::AppState;

/// A digest of the names, sizes and modification times of every file a
/// load reads (`fn.config.json`, `*.wasm`, `*.json`) below `dir`.
pub fn fingerprint(dir: &Path) -> u64 {
    let mut fp = FilesFingerprint::default();
    visit(dir, &mut fp, 0);
    fp.finish()
}

fn visit(dir: &Path, fp: &mut FilesFingerprint, depth: u32) {
    let Ok(rd) = std::fs::read_dir(dir) else { return };
    let mut entries: Vec<_> = rd.filter_map(Result::ok).collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let name = e.file_name();
        let name = name.to_string_lossy();
        let path = e.path();
        if path.is_dir() {
            if !is_skipped_dir(&name) && depth < 32 {
                visit(&path, fp, depth + 1);
            }
        } else if name.ends_with(".json") || name.ends_with(".wasm") {
            fp.add(&path);
        }
    }
}

/// Reloads `app` whenever the fingerprint of its functions directory
/// changes, checking every `interval`. Runs until the task is dropped.
pub async fn watch(app: Arc<AppState>, interval: Duration) {
    let dir = app.config.functions_dir.clone();
    let fp = |dir: std::path::PathBuf| tokio::task::spawn_blocking(move || fingerprint(&dir));
    loop {
        tokio::time::sleep(interval).await;
        let Ok(now) = fp(dir.clone()).await else { continue };
        // Compared with what the serving snapshot was loaded from, so that
        // a change made while it loaded is not missed.
        if now == app.registry.snapshot().fingerprint {
            continue;
        }
        // Let a writer finish (a build copies the component in place).
        tokio::time::sleep(interval / 2).await;
        if let Err(e) = app.reload().await {
            tracing::error!(error = %format!("{e:#}"), "reload after a change failed");
            tokio::time::sleep(interval * 4).await;
        }
    }
}
