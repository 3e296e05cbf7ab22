//! `wasmfn dev`: build, serve and watch. A change to a function's source
//! rebuilds that function; the new component is then picked up by the
//! reload watcher and swapped in atomically. A failed build keeps the
//! previous version serving and shows the compiler's message in the
//! terminal, the log and `/_fn/catalog` (`build_error`).

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use crate::cli::{ServeArgs, serve_with};
use crate::discovery::discover;
use crate::manifest::Policy;
use crate::server::AppState;
use crate::toolchain::{build_all, build_rust};

/// How often sources are checked for changes.
const SOURCE_POLL: Duration = Duration::from_millis(500);

pub(crate) fn run(mut args: ServeArgs) -> anyhow::Result<ExitCode> {
    let report = build_all(&args.host.dir)?;
    if report.failed > 0 {
        tracing::warn!(
            failed = report.failed,
            "some functions failed to build; serving the rest"
        );
    }
    args.build = false;
    args.watch = true;
    serve_with(
        args,
        Some(Box::new(|app| {
            tokio::spawn(rebuild_on_change(app));
        })),
    )
}

/// A digest of every file below `dir/src` and of `dir/Cargo.toml`.
fn source_fingerprint(dir: &Path) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    fn visit(p: &Path, h: &mut impl Hasher) {
        let Ok(meta) = std::fs::metadata(p) else { return };
        if meta.is_dir() {
            let Ok(rd) = std::fs::read_dir(p) else { return };
            let mut entries: Vec<PathBuf> = rd.filter_map(Result::ok).map(|e| e.path()).collect();
            entries.sort();
            entries.iter().for_each(|e| visit(e, h));
        } else {
            p.hash(h);
            meta.len().hash(h);
            meta.modified().ok().hash(h);
        }
    }
    visit(&dir.join("Cargo.toml"), &mut h);
    visit(&dir.join("src"), &mut h);
    h.finish()
}

async fn rebuild_on_change(app: Arc<AppState>) {
    let dir = app.config.functions_dir.clone();
    let mut seen: HashMap<String, u64> = HashMap::new();
    let mut first = true;
    loop {
        let d = dir.clone();
        let sources = tokio::task::spawn_blocking(move || {
            discover(&d, &Policy::default())
                .map(|found| {
                    found
                        .functions
                        .into_iter()
                        .filter(|f| f.dir.join("Cargo.toml").is_file())
                        .map(|f| {
                            let fp = source_fingerprint(&f.dir);
                            (f.name, f.dir, f.component_path, fp)
                        })
                        .collect::<Vec<_>>()
                })
                .unwrap_or_default()
        })
        .await
        .unwrap_or_default();
        for (name, fdir, component, fp) in sources {
            let changed = seen.insert(name.clone(), fp).is_some_and(|old| old != fp);
            if first || !changed {
                continue;
            }
            tracing::info!(function = %name, "source changed; rebuilding");
            let cargo_toml = fdir.join("Cargo.toml");
            let built = tokio::task::spawn_blocking(move || build_rust(&cargo_toml, &component)).await;
            match built {
                Ok(Ok(())) => {
                    app.build_errors.remove(&name);
                    tracing::info!(function = %name, "rebuilt");
                }
                Ok(Err(e)) => {
                    let message = format!("{e:#}");
                    tracing::error!(function = %name, error = %message, "build failed; the previous version keeps serving");
                    app.build_errors.insert(name, message);
                }
                Err(e) => tracing::error!(function = %name, error = %e, "build task failed"),
            }
        }
        first = false;
        tokio::time::sleep(SOURCE_POLL).await;
    }
}
