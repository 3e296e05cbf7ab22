//! `wasmfn dev`: build, serve and watch. A change to a function's source
//! rebuilds that function; the new component is then picked up by the
//! reload watcher and swapped in atomically. A failed build keeps the
//! previous version serving and shows the compiler's message in the
//! terminal, the log and `/_fn/catalog` (`build_error`).

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use crate::build::{BuildOptions, Recipe, build_all, build_one};
use crate::cli::{ServeArgs, serve_with};
use crate::discovery::discover;
use crate::manifest::Policy;
use crate::server::AppState;

/// How often sources are checked for changes.
const SOURCE_POLL: Duration = Duration::from_millis(500);

pub(crate) fn run(mut args: ServeArgs) -> anyhow::Result<ExitCode> {
    let opts = args.toolchains.options();
    let report = build_all(&args.host.dir, &opts)?;
    // What the build saw: any change from here on is rebuilt, even one made
    // before the watcher's first look.
    let seen = fingerprints(&args.host.dir)
        .into_iter()
        .map(|(r, fp)| (r.name, fp))
        .collect();
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
        Some(Box::new(move |app| {
            tokio::spawn(rebuild_on_change(app, opts, seen));
        })),
    )
}

/// Names, sizes and modification times of a function's sources.
fn source_fingerprint(recipe: &Recipe) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    for p in recipe.source_files() {
        let Ok(meta) = std::fs::metadata(&p) else { continue };
        p.hash(&mut h);
        meta.len().hash(&mut h);
        meta.modified().ok().hash(&mut h);
    }
    h.finish()
}

/// Every function with a build recipe under `dir`, with its fingerprint.
fn fingerprints(dir: &std::path::Path) -> Vec<(Recipe, u64)> {
    discover(dir, &Policy::default())
        .map(|found| {
            found
                .functions
                .iter()
                .filter_map(Recipe::of)
                .map(|r| {
                    let fp = source_fingerprint(&r);
                    (r, fp)
                })
                .collect()
        })
        .unwrap_or_default()
}

async fn rebuild_on_change(app: Arc<AppState>, opts: BuildOptions, mut seen: HashMap<String, u64>) {
    let dir = app.config.functions_dir.clone();
    let opts = Arc::new(opts);
    loop {
        let d = dir.clone();
        let sources = tokio::task::spawn_blocking(move || fingerprints(&d))
            .await
            .unwrap_or_default();
        for (recipe, fp) in sources {
            let name = recipe.name.clone();
            // A function added after start is built when first seen.
            let changed = seen.insert(name.clone(), fp) != Some(fp);
            if !changed {
                continue;
            }
            tracing::info!(function = %name, lang = recipe.lang.name(), "source changed; rebuilding");
            let o = opts.clone();
            let built = tokio::task::spawn_blocking(move || build_one(&recipe, &o)).await;
            match built {
                Ok(Ok(_)) => {
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
        tokio::time::sleep(SOURCE_POLL).await;
    }
}
