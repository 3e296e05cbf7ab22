//! Starting a host: [`Host::builder`] takes the host-wide settings, loads
//! every function once (compiling, describing, mounting), and gives a
//! [`Host`], which serves a listener until a shutdown signal or runs in the
//! background as a [`RunningHost`]. `wasmfn serve`, `dev`, `check`,
//! `openapi` and the end-to-end tests all start the host this way.
//!
//! Shutting down is a drain ([`Drain`]): at the signal `/_fn/ready` answers
//! 503; after `delay` the listener closes (new connections are refused);
//! requests in flight, streamed responses included, finish, and keep-alive
//! connections close after their current response; what still runs after
//! `timeout` is interrupted (503 `shutting_down` where no head was sent).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::net::TcpListener;

use crate::registry::Snapshot;
use crate::{AppState, Front, HostConfig};

/// How a host shuts down once its shutdown signal resolves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Drain {
    /// How long the listener keeps accepting after the signal, while
    /// `/_fn/ready` already answers 503 (a load balancer's health-check
    /// interval, so it stops sending first).
    pub delay: Duration,
    /// How long requests in flight may take to finish after the listener
    /// closed; what still runs then is interrupted.
    pub timeout: Duration,
}

impl Default for Drain {
    /// No delay, 30 s for requests in flight.
    fn default() -> Self {
        Self {
            delay: Duration::ZERO,
            timeout: Duration::from_secs(30),
        }
    }
}

/// How a drain ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub enum Drained {
    /// Every request finished.
    Complete,
    /// The drain ran out of time and interrupted what still ran.
    Cut,
}

/// How long interrupted requests get to send their 503 before the server
/// stops waiting for them.
const AFTER_INTERRUPT: Duration = Duration::from_secs(2);

/// Settings for a [`Host`] before it loads.
#[derive(Debug)]
#[must_use]
pub struct HostBuilder {
    config: HostConfig,
    watch: Option<Duration>,
    drain: Drain,
}

impl HostBuilder {
    /// Reloads whenever a manifest, component or fragment under the
    /// functions directory changes, checking every `interval` while the
    /// host serves.
    pub fn watch(mut self, interval: Duration) -> Self {
        self.watch = Some(interval);
        self
    }

    /// How to shut down (default: [`Drain::default`]).
    pub fn drain(mut self, drain: Drain) -> Self {
        self.drain = drain;
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
            drain: self.drain,
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
    drain: Drain,
}

impl Host {
    /// Starts configuring a host.
    pub fn builder(config: HostConfig) -> HostBuilder {
        HostBuilder {
            config,
            watch: None,
            drain: Drain::default(),
        }
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
    /// until `shutdown` resolves, then drains.
    pub async fn serve_on(
        self,
        listen: SocketAddr,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<Drained> {
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
        Ok(self.serve(listener, shutdown).await?)
    }

    /// Serves `listener` until `shutdown` resolves, then drains as the
    /// host's [`Drain`] says and tells how that ended.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<Drained> {
        let _watcher = self.watch.map(|interval| {
            let task = tokio::spawn(crate::watch(self.app.clone(), interval));
            AbortOnDrop(task)
        });
        let Drain { delay, timeout } = self.drain;
        let begun = Arc::new(tokio::sync::Notify::new());
        let stop_accepting = {
            let (app, begun) = (self.app.clone(), begun.clone());
            async move {
                shutdown.await;
                app.draining.store(true, Ordering::Relaxed);
                begun.notify_one();
                tracing::info!(
                    delay_ms = delay.as_millis() as u64,
                    timeout_ms = timeout.as_millis() as u64,
                    "draining: /_fn/ready answers 503; the listener closes after the delay"
                );
                tokio::time::sleep(delay).await;
                tracing::info!("draining: no new connections; waiting for requests in flight");
            }
        };
        use axum::serve::ListenerExt;
        let listener = listener.tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
        use axum::ServiceExt;
        let server = axum::serve(listener, Front::new(self.app.clone()).into_make_service())
            .with_graceful_shutdown(stop_accepting)
            .into_future();
        tokio::pin!(server);
        let out_of_time = async {
            begun.notified().await;
            tokio::time::sleep(delay + timeout).await;
        };
        tokio::select! {
            served = &mut server => {
                served?;
                tracing::info!("drained: every request finished");
                return Ok(Drained::Complete);
            }
            () = out_of_time => {}
        }
        self.app.runtime.interrupt_all();
        match tokio::time::timeout(AFTER_INTERRUPT, &mut server).await {
            Ok(served) => served?,
            Err(_) => tracing::warn!("connections still open after the interrupt; closing them"),
        }
        tracing::warn!("drain cut: requests still running were interrupted");
        Ok(Drained::Cut)
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
    task: tokio::task::JoinHandle<std::io::Result<Drained>>,
}

impl RunningHost {
    /// Loads the functions and serves them on `listen` (use port 0 for
    /// any): [`Host::builder`], loaded and started.
    pub async fn start(config: HostConfig, listen: SocketAddr) -> anyhow::Result<Self> {
        Host::builder(config).load().await?.start(listen).await
    }

    /// Stops accepting, drains, and waits for the server to end.
    pub async fn stop(mut self) -> std::io::Result<Drained> {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        (&mut self.task).await.unwrap_or(Ok(Drained::Cut))
    }
}
