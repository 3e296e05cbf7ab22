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
use crate::{AppState, Front, HostConfig, TlsFiles};

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

/// How long [`RunningHost::stop`] waits for the stopped host's background
/// tasks (aborted watcher, scheduler, state-store loop; connection tasks
/// ending) to drop it.
pub const RELEASE_WAIT: Duration = Duration::from_secs(10);

/// Settings for a [`Host`] before it loads.
#[derive(Debug)]
#[must_use]
pub struct HostBuilder {
    config: HostConfig,
    watch: Option<Duration>,
    drain: Drain,
    admin_listener: Option<AdminListener>,
}

/// A listener of its own for the admin surface (`--admin-listen`), with
/// TLS where configured; the function listener then serves none of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminListener {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its certificate and key, and the client CA if clients must present one.
    pub tls: Option<TlsFiles>,
}

impl HostBuilder {
    /// Reloads whenever a manifest, component or fragment under the
    /// functions directory changes, checking every `interval` while the
    /// host serves.
    pub fn watch(mut self, interval: Duration) -> Self {
        self.watch = Some(interval);
        self
    }

    /// How to shut down (default: [`Drain::default`]). Its timeout is also
    /// how long a replaced or undeployed version may finish its requests.
    pub fn drain(mut self, drain: Drain) -> Self {
        self.drain = drain;
        self
    }

    /// Serves the admin surface on a listener of its own.
    pub fn admin_listener(mut self, listener: AdminListener) -> Self {
        self.admin_listener = Some(listener);
        self
    }

    /// Creates the runtime and loads every function. Blocks while
    /// components compile; see [`HostBuilder::load`] from async code.
    ///
    /// Only an unusable configuration or an unreadable functions directory
    /// is an error: a broken function is listed in the snapshot's `failed`
    /// and everything else loads.
    pub fn build(self) -> anyhow::Result<Host> {
        let admin_tls = match self.admin_listener.as_ref().and_then(|l| l.tls.as_ref()) {
            Some(files) => Some(files.server_config()?),
            None => None,
        };
        Ok(Host {
            app: AppState::load(self.config, self.drain.timeout)?,
            watch: self.watch,
            drain: self.drain,
            admin_listener: self.admin_listener,
            admin_tls,
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
    admin_listener: Option<AdminListener>,
    admin_tls: Option<Arc<rustls::ServerConfig>>,
}

impl Host {
    /// Starts configuring a host.
    pub fn builder(config: HostConfig) -> HostBuilder {
        HostBuilder {
            config,
            watch: None,
            drain: Drain::default(),
            admin_listener: None,
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

    /// Binds `listen` (port 0 for any), and the admin listener if there is
    /// one, logs what is served, and serves until `shutdown` resolves, then drains.
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
            tenants = self.app.registry.tenants().len(),
            functions = s.functions.len(),
            deployed = s.deployed.len(),
            failed = s.failed.len(),
            conflicts = s.table.conflicts().len(),
            pooling = self.app.runtime.pooling(),
            "wasmfn listening on http://{addr}"
        );
        drop(s);
        let admin = self.bind_admin().await?;
        Ok(self.serve_both(listener, admin, shutdown).await?)
    }

    /// Binds the admin listener, if the host has one.
    async fn bind_admin(&self) -> anyhow::Result<Option<TcpListener>> {
        let Some(a) = &self.admin_listener else { return Ok(None) };
        let l = TcpListener::bind(a.addr)
            .await
            .map_err(|e| anyhow::anyhow!("cannot listen on `{}` (`--admin-listen`): {e}", a.addr))?;
        let addr = l.local_addr()?;
        let scheme = if self.admin_tls.is_some() { "https" } else { "http" };
        tracing::info!(%addr, tls = self.admin_tls.is_some(), "admin surface on {scheme}://{addr}/_fn");
        Ok(Some(l))
    }

    /// Serves `listener` until `shutdown` resolves, then drains as the
    /// host's [`Drain`] says and tells how that ended.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<Drained> {
        let admin = self.bind_admin().await.map_err(std::io::Error::other)?;
        self.serve_both(listener, admin, shutdown).await
    }

    async fn serve_both(
        self,
        listener: TcpListener,
        admin: Option<TcpListener>,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<Drained> {
        let _watcher = self.watch.map(|interval| {
            let task = tokio::spawn(crate::watch(self.app.clone(), interval));
            AbortOnDrop(task)
        });
        let _scheduler = AbortOnDrop(tokio::spawn(crate::schedule::run(self.app.clone())));
        let _shared = AbortOnDrop(tokio::spawn(crate::shared::run(self.app.clone())));
        let Drain { delay, timeout } = self.drain;
        let begun = Arc::new(tokio::sync::Notify::new());
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        {
            let (app, begun) = (self.app.clone(), begun.clone());
            tokio::spawn(async move {
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
                let _ = stop_tx.send(true);
            });
        }
        let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|s| *s).await;
        };
        let limits = self.app.config.head_limits;
        let main = crate::listen::serve(
            listener,
            Front::new(self.app.clone(), admin.is_none()),
            limits,
            None,
            stopped(stop_rx.clone()),
        );
        let admin = async {
            if let Some(l) = admin {
                let router = crate::router(self.app.clone(), true);
                crate::listen::serve(l, router, limits, self.admin_tls.clone(), stopped(stop_rx.clone())).await;
            }
        };
        let server = async { tokio::join!(main, admin) };
        tokio::pin!(server);
        let out_of_time = async {
            begun.notified().await;
            tokio::time::sleep(delay + timeout).await;
        };
        tokio::select! {
            _ = &mut server => {
                tracing::info!("drained: every request finished");
                flush_telemetry(&self.app).await;
                return Ok(Drained::Complete);
            }
            () = out_of_time => {}
        }
        self.app.runtime.interrupt_all();
        if tokio::time::timeout(AFTER_INTERRUPT, &mut server).await.is_err() {
            tracing::warn!("connections still open after the interrupt; closing them");
        }
        tracing::warn!("drain cut: requests still running were interrupted");
        flush_telemetry(&self.app).await;
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

    /// Stops accepting, drains, and waits for the server to end and for
    /// its background tasks to let go of the host, so that its state
    /// directory and key-value store are free for the next host when this
    /// returns (a task that has not let go within [`RELEASE_WAIT`] is
    /// logged and left).
    pub async fn stop(mut self) -> std::io::Result<Drained> {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        let drained = (&mut self.task).await.unwrap_or(Ok(Drained::Cut));
        let app = Arc::downgrade(&self.app);
        drop(self);
        let start = tokio::time::Instant::now();
        while app.strong_count() > 0 {
            if start.elapsed() >= RELEASE_WAIT {
                tracing::warn!(
                    holders = app.strong_count(),
                    "stopped host still referenced after {RELEASE_WAIT:?}; its state directory stays locked until they end"
                );
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        drained
    }
}

/// Exports the spans still buffered, off the runtime's threads (the
/// exporter blocks until its collector answers or times out).
async fn flush_telemetry(app: &Arc<AppState>) {
    let telemetry = app.telemetry.clone();
    let _ = tokio::task::spawn_blocking(move || telemetry.shutdown()).await;
}
