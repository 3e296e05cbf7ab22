//! `wasmfn dev`: build, serve and watch. A change to a function's source
//! rebuilds that function; the new component is then picked up by the
//! reload watcher and swapped in atomically. A failed build keeps the
//! previous version serving and shows the compiler's message in the
//! terminal, the log and `/_fn/catalog` (`build_error`).

use std::collections::HashMap;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use wasmfn_build::{BuildOptions, Recipe, build_all, build_one};
use wasmfn_server::manifest::Policy;
use wasmfn_server::manifest::digest::FilesFingerprint;
use wasmfn_server::manifest::discovery::discover;
use wasmfn_server::{AppState, Host};

use crate::{ServeArgs, WATCH_INTERVAL, drained_exit_code, shutdown_signal};

/// How often sources are checked for changes.
const SOURCE_POLL: Duration = Duration::from_millis(500);

/// Builds every function, then serves with the reload watcher on and a
/// task that rebuilds a function when its sources change.
pub(crate) fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    args.check_folders()?;
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
    let mut host = Host::builder(args.config(true)?)
        .watch(WATCH_INTERVAL)
        .drain(args.drain());
    if let Some(l) = args.admin_listener() {
        host = host.admin_listener(l);
    }
    args.tokio()?.block_on(async move {
        let host = host.load().await?;
        let _tokens = crate::reload_tokens_on_sighup(host.state().clone());
        let rebuilder = tokio::spawn(rebuild_on_change(host.state().clone(), opts, seen));
        let drained = host.serve_on(args.listen, shutdown_signal()).await;
        rebuilder.abort();
        Ok(drained_exit_code(drained?))
    })
}

/// Names, sizes and modification times of a function's sources.
fn source_fingerprint(recipe: &Recipe) -> u64 {
    let mut fp = FilesFingerprint::default();
    for p in recipe.source_files() {
        fp.add(&p);
    }
    fp.finish()
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
