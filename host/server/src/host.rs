//! Starting a host: [`Host::builder`] takes the host-wide settings, loads
//! every function once (compiling, describing, mounting), and gives a
//! [`Host`], which serves a listener until a shutdown signal or runs in the
//! background as a [`RunningHost`]. `wasmfn serve`, `dev`, `check`,
//! `openapi` and the end-to-end tests all start the host this way.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;

use crate::registry::Snapshot;
use crate::{AppState, Front, HostConfig};

/// Settings for a [`Host`] before it loads.
#[derive(Debug)]
#[must_use]
pub struct HostBuilder {
    config: HostConfig,
    watch: Option<Duration>,
}

impl HostBuilder {
    /// Reloads whenever a manifest, component or fragment under the
    /// functions directory changes, checking every `interval` while the
    /// host serves.
    pub fn watch(mut self, interval: Duration) -> Self {
        self.watch = Some(interval);
        self
    }

    /// Creates the runtime and loads every function. Blocks while
    /// components compile; see [`HostBuilder::load`] from async code.
    ///
    /// Only an unusable configuration or an unreadable functions directory
    /// is an error: a broken function is listed in the snapshot's `failed`
    /// and everything else loads.
    pub fn build(self) -> anyhow::Result<Host> {
        Ok(Host {
            app: AppState::load(self.config)?,
            watch: self.watch,
        })
    }

    /// [`HostBuilder::build`] on a blocking thread.
    pub async fn load(self) -> anyhow::Result<Host> {
        tokio::task::spawn_blocking(move || self.build()).await?
    }
}

/// A loaded host, ready to serve.
pub struct Host {
    app: Arc<AppState>,
    watch: Option<Duration>,
}

impl Host {
    /// Starts configuring a host.
    pub fn builder(config: HostConfig) -> HostBuilder {
        HostBuilder { config, watch: None }
    }

    /// The shared state every request and reload works on.
    pub fn state(&self) -> &Arc<AppState> {
        &self.app
    }

    /// What is loaded now.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.app.registry.snapshot()
    }

    /// Binds `listen` (port 0 for any), logs what is served, and serves
    /// until `shutdown` resolves.
    pub async fn serve_on(
        self,
        listen: SocketAddr,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let listener = TcpListener::bind(listen)
            .await
            .map_err(|e| anyhow::anyhow!("cannot listen on `{listen}`: {e}"))?;
        let addr = listener.local_addr()?;
        let s = self.snapshot();
        tracing::info!(
            %addr,
            functions = s.functions.len(),
            failed = s.failed.len(),
            conflicts = s.table.conflicts().len(),
            pooling = self.app.runtime.pooling(),
            "wasmfn listening on http://{addr}"
        );
        drop(s);
        self.serve(listener, shutdown).await?;
        Ok(())
    }

    /// Serves `listener` until `shutdown` resolves, then stops accepting
    /// and lets the connections finish their requests.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let _watcher = self.watch.map(|interval| {
            let task = tokio::spawn(crate::watch(self.app.clone(), interval));
            AbortOnDrop(task)
        });
        use axum::serve::ListenerExt;
        let listener = listener.tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
        use axum::ServiceExt;
        axum::serve(listener, Front::new(self.app).into_make_service())
            .with_graceful_shutdown(shutdown)
            .await
    }

    /// Serves on `listen` (port 0 for any) in the background.
    pub async fn start(self, listen: SocketAddr) -> anyhow::Result<RunningHost> {
        let listener = TcpListener::bind(listen).await?;
        let addr = listener.local_addr()?;
        let app = self.app.clone();
        let (stop, rx) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(self.serve(listener, async move {
            let _ = rx.await;
        }));
        Ok(RunningHost {
            addr,
            app,
            stop: Some(stop),
            task,
        })
    }
}

/// Stops the watcher with the server.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A host serving in the background, for tests and embedding.
pub struct RunningHost {
    /// The address it listens on.
    pub addr: SocketAddr,
    /// Its shared state.
    pub app: Arc<AppState>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl RunningHost {
    /// Loads the functions and serves them on `listen` (use port 0 for
    /// any): [`Host::builder`], loaded and started.
    pub async fn start(config: HostConfig, listen: SocketAddr) -> anyhow::Result<Self> {
        Host::builder(config).load().await?.start(listen).await
    }

    /// Stops accepting, drains, and waits for the server to end.
    pub async fn stop(mut self) -> std::io::Result<()> {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        (&mut self.task).await.unwrap_or(Ok(()))
    }
}
