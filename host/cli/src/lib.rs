//! The `wasmfn` command line: clap definitions and, for each command, a few
//! lines that call the libraries ([`wasmfn_server`] to load and serve,
//! [`wasmfn_build`] to build and scaffold). Every flag has an
//! environment-variable twin (`WASMFN_…`).
//!
//! ```no_run
//! use clap::Parser;
//!
//! let cli = wasmfn::Cli::parse_from(["wasmfn", "check", "functions"]);
//! let code = wasmfn::run(cli)?;
//! # Ok::<(), anyhow::Error>(())
//! ```

mod args;
mod client;
mod dev;

pub use args::{
    BuildArgs, Cli, ClientArgs, Command, DeployArgs, DirArg, HostArgs, NameArgs, NewArgs, OpenapiArgs, ServeArgs,
    TokenCommand, TokenCreateArgs, ToolchainArgs, default_state_dir,
};

use std::process::ExitCode;

use wasmfn_build::{Lang, NewFunction};
use wasmfn_server::{Drained, Host, RouteReport};

fn init_logging(format: &str) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("WASMFN_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    use std::io::IsTerminal;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    if format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    init_logging(&cli.log_format);
    match cli.command {
        Command::Serve(args) => serve(args),
        Command::Check(args) => check(&args),
        Command::Routes(args) => routes(&args),
        Command::Openapi(args) => openapi(&args.host),
        Command::Dev(args) => dev::run(args),
        Command::New(args) => new(&args),
        Command::Build(args) => build(&args),
        Command::Deploy(args) => client::deploy(&args),
        Command::Push(args) => client::push(&args),
        Command::Rollback(args) => client::rollback(&args),
        Command::Undeploy(args) => client::undeploy(&args),
        Command::Functions(args) => client::functions(&args),
        Command::Logs(args) => client::logs(&args),
        Command::Token(TokenCommand::Create(args)) => client::token_create(&args),
    }
}

fn exit_code(ok: bool) -> ExitCode {
    if ok { ExitCode::SUCCESS } else { ExitCode::FAILURE }
}

/// How often `--watch` and `dev` look for changes.
const WATCH_INTERVAL: std::time::Duration = std::time::Duration::from_millis(500);

fn serve(args: ServeArgs) -> anyhow::Result<ExitCode> {
    args.check_folders()?;
    if args.build {
        let report = wasmfn_build::build_all(&args.host.dir, &args.toolchains.options())?;
        if report.failed > 0 {
            tracing::warn!(
                failed = report.failed,
                "some functions failed to build; serving the rest"
            );
        }
    }
    let mut host = Host::builder(args.config(false)?).drain(args.drain());
    if let Some(l) = args.admin_listener() {
        host = host.admin_listener(l);
    }
    if args.watch {
        host = host.watch(WATCH_INTERVAL);
    }
    args.tokio()?.block_on(async move {
        let host = host.load().await?;
        let _tokens = reload_tokens_on_sighup(host.state().clone());
        let drained = host.serve_on(args.listen, shutdown_signal()).await?;
        Ok(drained_exit_code(drained))
    })
}

/// Reads the admin token file again at every SIGHUP, for as long as the
/// returned task lives (it is aborted when dropped).
pub(crate) fn reload_tokens_on_sighup(app: std::sync::Arc<wasmfn_server::AppState>) -> AbortOnDrop {
    use tokio::signal::unix::{SignalKind, signal};
    AbortOnDrop(tokio::spawn(async move {
        let Ok(mut hup) = signal(SignalKind::hangup()) else {
            tracing::warn!("cannot listen for SIGHUP; admin tokens are read at start only");
            return;
        };
        while hup.recv().await.is_some() {
            match app.reload_admin_tokens() {
                Ok(n) => tracing::info!(tokens = n, "SIGHUP: admin tokens read again"),
                Err(e) => tracing::error!(error = %format!("{e:#}"), "SIGHUP: admin tokens unchanged"),
            }
        }
    }))
}

/// Aborts its task when dropped.
pub(crate) struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// 0 when every request finished, 1 when the drain cut some.
fn drained_exit_code(drained: Drained) -> ExitCode {
    exit_code(drained == Drained::Complete)
}

/// Resolves at the first SIGTERM or SIGINT; a second one exits at once
/// (status 1), without waiting for the drain.
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) else {
        tracing::error!("cannot listen for SIGTERM and SIGINT; stop the process with SIGKILL");
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
        _ = int.recv() => tracing::info!("SIGINT: shutting down"),
    }
    tokio::spawn(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        tracing::warn!("second signal: exiting now, without waiting for requests in flight");
        std::process::exit(1);
    });
}

/// `check` and `openapi` run no function: a secret set nowhere is no error for them.
fn offline_config(args: &HostArgs) -> anyhow::Result<wasmfn_server::HostConfig> {
    let mut c = args.config()?;
    c.secrets_required = false;
    Ok(c)
}

fn check(args: &HostArgs) -> anyhow::Result<ExitCode> {
    let host = Host::builder(offline_config(args)?).build()?;
    let s = host.snapshot();
    // A schedule whose request reaches no route of its function is an
    // error of that function's manifest, though the function serves.
    let schedules = &s.schedule_problems;
    let failed = s
        .failed
        .iter()
        .map(|f| (f.name.clone(), f.error.clone()))
        .chain(schedules.iter().map(|(f, _, why)| (f.clone(), why.clone())))
        .collect();
    let report = RouteReport::new(&s.table, failed);
    print!("{report}");
    println!(
        "{} functions ready, {} failed, {} conflicts, {} schedule errors",
        s.functions.len(),
        s.failed.len(),
        s.table.conflicts().len(),
        schedules.len()
    );
    Ok(exit_code(report.is_clean()))
}

fn openapi(args: &HostArgs) -> anyhow::Result<ExitCode> {
    let host = Host::builder(offline_config(args)?).build()?;
    let s = host.snapshot();
    for f in &s.failed {
        eprintln!("error: {}: {}", f.name, f.error);
    }
    println!("{}", String::from_utf8_lossy(&s.openapi));
    Ok(exit_code(s.failed.is_empty()))
}

fn routes(args: &DirArg) -> anyhow::Result<ExitCode> {
    let (table, failed) = wasmfn_server::loader::plan_routes(&args.dir)?;
    let report = RouteReport::new(&table, failed);
    print!("{report}");
    Ok(exit_code(report.is_clean()))
}

fn new(args: &NewArgs) -> anyhow::Result<ExitCode> {
    let path = wasmfn_build::new_function(&NewFunction {
        name: args.name.clone(),
        lang: args.lang.parse::<Lang>().map_err(anyhow::Error::msg)?,
        dir: args.dir.clone(),
        sdk: args.sdk.clone(),
    })?;
    println!(
        "created {}; build it with `wasmfn build {}`",
        path.display(),
        args.dir.display()
    );
    Ok(ExitCode::SUCCESS)
}

fn build(args: &BuildArgs) -> anyhow::Result<ExitCode> {
    let mut opts = args.toolchains.options();
    if let Some(j) = args.jobs {
        opts.jobs = j.into();
    }
    opts.force = args.force;
    let report = wasmfn_build::build_all(&args.dir, &opts)?;
    Ok(exit_code(report.failed == 0))
}
