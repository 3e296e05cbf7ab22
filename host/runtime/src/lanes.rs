//! Instances that serve several requests at once: a `wasi:http@0.3`
//! function with `instance_concurrency` above 1. Each such instance (a
//! lane) lives in a task of its own whose store runs one event loop for
//! all its requests: up to `instance_concurrency` at a time and
//! `instance_reuse` in all; a lane left without a request for
//! `instance_idle_ms` ends. A request takes a seat in the first lane with
//! one free, else a new lane is made.
//!
//! What holds per request and what per instance:
//! - timeout: each request is answered `504` at its own deadline. A guest
//!   task cannot be stopped alone, so a lane with a request past its
//!   deadline takes no new request and is interrupted (every request still
//!   on it failing) once the latest deadline of its requests has passed.
//! - memory: `max_memory_bytes` caps the instance, its requests together.
//! - a trap, a refused memory growth or an interrupt ends the instance and
//!   every request on it.
//! - CPU: each request is charged an equal part of the instance's running
//!   time while it was in flight.
//! - the guest's output lines and outbound requests carry no request id
//!   (and are in no request's trace): several requests run at once.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use http_body::Body;
use http_body_util::BodyExt;
use http_body_util::combinators::UnsyncBoxBody;
use serde::Serialize;
use wasmtime::Store;
use wasmtime::component::Accessor;
use wasmtime_wasi_http::p3::bindings::Service;

use super::invoke::{self, GuestBody, HeadSender, InvokeError, InvokeRequest, Report, RequestBodyError};
use super::observe::{Exit, InstanceKind};
use super::share::ActiveInvocation;
use super::state::{InstanceState, TagCell};
use super::{Capabilities, CompiledComponent, Handler, Interrupt, Runtime};

/// A function version's lanes.
pub struct LanePool {
    /// Requests one instance serves at once (`instance_concurrency`).
    per_instance: u32,
    /// Requests one instance serves in all (`instance_reuse`).
    max_uses: u32,
    /// How long a lane may wait without a request (`instance_idle_ms`).
    idle_for: Duration,
    lanes: Mutex<Vec<Arc<Lane>>>,
    made: AtomicU64,
}

/// How a function's lanes are used, for the catalog.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct LaneStats {
    /// Instances serving requests or waiting for them now.
    pub instances: usize,
    /// Requests in flight on them now.
    pub in_flight: u32,
    /// Instances made since the function version was loaded.
    pub made: u64,
}

/// One instance serving requests at once, seen from outside its task.
struct Lane {
    jobs: tokio::sync::mpsc::UnboundedSender<Job>,
    /// Requests on it now; changed under the pool's lock when a seat is
    /// taken, and by the lane when a request ends.
    in_flight: AtomicU32,
    /// Requests it was given in all.
    admitted: AtomicU32,
    /// It takes no new request.
    closed: AtomicBool,
    /// Wakes its task when it is closed, so an idle lane ends at once.
    closing: tokio::sync::Notify,
    /// The latest deadline of the requests it was given.
    latest_deadline: Mutex<Option<Instant>>,
    /// The instance's running time per request in flight, summed over its
    /// life, in nanoseconds: a request is charged what it grew by while
    /// the request was in flight.
    share_ns: AtomicU64,
}

impl Lane {
    fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.closing.notify_one();
    }

    fn closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Closed, and past the deadline of every request it was given.
    fn overdue(&self, now: Instant) -> bool {
        self.closed()
            && self
                .latest_deadline
                .lock()
                .expect("lane deadline")
                .is_some_and(|d| now >= d)
    }
}

/// One request for a lane.
struct Job {
    request: http::Request<UnsyncBoxBody<Bytes, RequestBodyError>>,
    deadline: Instant,
    head: HeadSender,
    tail: Tail,
}

/// What a request holds until it ends, and who is told how it ended.
struct Tail {
    done: tokio::sync::oneshot::Sender<Result<(), InvokeError>>,
    report: Report,
    /// The request's permits and its place in its tenant's load.
    _held: (Box<dyn Send>, ActiveInvocation),
    share_at_start: u64,
}

impl LanePool {
    pub(crate) fn new(per_instance: u32, max_uses: u32, idle_for: Duration) -> Arc<Self> {
        Arc::new(Self {
            per_instance,
            max_uses: max_uses.max(per_instance),
            idle_for,
            lanes: Mutex::new(Vec::new()),
            made: AtomicU64::new(0),
        })
    }

    /// Its lanes now.
    pub fn stats(&self) -> LaneStats {
        let lanes = self.lanes.lock().expect("lanes");
        LaneStats {
            instances: lanes.len(),
            in_flight: lanes.iter().map(|l| l.in_flight.load(Ordering::Relaxed)).sum(),
            made: self.made.load(Ordering::Relaxed),
        }
    }

    /// A seat in the first lane with one free (and whether it is new),
    /// else in a lane made by `make`.
    fn seat(&self, deadline: Instant, make: impl FnOnce() -> Arc<Lane>) -> (Arc<Lane>, bool) {
        let mut lanes = self.lanes.lock().expect("lanes");
        lanes.retain(|l| !l.closed());
        let free = lanes
            .iter()
            .find(|l| l.in_flight.load(Ordering::Relaxed) < self.per_instance)
            .cloned();
        let (lane, made) = match free {
            Some(lane) => (lane, false),
            None => {
                let lane = make();
                self.made.fetch_add(1, Ordering::Relaxed);
                lanes.push(lane.clone());
                (lane, true)
            }
        };
        lane.in_flight.fetch_add(1, Ordering::Relaxed);
        {
            let mut latest = lane.latest_deadline.lock().expect("lane deadline");
            *latest = Some(latest.map_or(deadline, |d| d.max(deadline)));
        }
        if lane.admitted.fetch_add(1, Ordering::Relaxed) + 1 >= self.max_uses {
            lane.close();
        }
        (lane, made)
    }
}

impl Drop for LanePool {
    fn drop(&mut self) {
        // A replaced or removed version: its lanes finish what they have.
        for lane in self.lanes.get_mut().map(std::mem::take).unwrap_or_default() {
            lane.close();
        }
    }
}

impl Runtime {
    /// Runs one request on a lane of `pool`: a seat in one that serves
    /// requests already, or a new one.
    pub(crate) async fn invoke_in_lane<B>(
        &self,
        component: &CompiledComponent,
        pool: &LanePool,
        req: InvokeRequest<B>,
    ) -> Result<http::Response<GuestBody>, InvokeError>
    where
        B: Body<Data = Bytes, Error = RequestBodyError> + Send + 'static,
    {
        // A lane's instance is neither a warm one nor kept for reuse.
        let InvokeRequest {
            request,
            tags,
            deadline,
            max_memory_bytes,
            capabilities,
            guard,
            retire,
            observer,
            output,
            shared_observer,
            ..
        } = req;
        let (tenant, function) = self.shares(&tags.tenant, &tags.function);
        let active = ActiveInvocation::start(tenant.load.clone(), function.load.clone());
        let (head_tx, head_rx) = tokio::sync::oneshot::channel();
        let (done_tx, done_rx) = tokio::sync::oneshot::channel();
        let mut job = Job {
            request: request.map(|b| b.boxed_unsync()),
            deadline,
            head: head_tx,
            tail: Tail {
                done: done_tx,
                report: Report {
                    observer,
                    kind: InstanceKind::Reused,
                },
                _held: (guard, active),
                share_at_start: 0,
            },
        };
        let lane = loop {
            let (lane, made) = pool.seat(deadline, || {
                self.start_lane(
                    component,
                    pool,
                    &tags,
                    max_memory_bytes,
                    capabilities.clone(),
                    retire.clone(),
                    output.clone(),
                    shared_observer.clone(),
                )
            });
            job.tail.report.kind = if made {
                InstanceKind::Fresh
            } else {
                InstanceKind::Reused
            };
            match lane.jobs.send(job) {
                Ok(()) => break lane,
                // The lane ended meanwhile (idle, or failed): another one.
                Err(tokio::sync::mpsc::error::SendError(back)) => {
                    lane.close();
                    lane.in_flight.fetch_sub(1, Ordering::Relaxed);
                    job = back;
                }
            }
        };
        let head = match tokio::time::timeout_at(deadline.into(), head_rx).await {
            Ok(head) => head,
            Err(_) => {
                // The lane may be stuck in this request's guest task: it
                // takes no more, and is interrupted once every request it
                // holds is past its deadline.
                lane.close();
                return Err(InvokeError::Timeout);
            }
        };
        match head {
            Ok(Ok(response)) => Ok(response.map(GuestBody::from_lane)),
            Ok(Err(code)) => Err(InvokeError::GuestError(code)),
            Err(_) => Err(match done_rx.await {
                Ok(Err(e)) => e,
                Ok(Ok(())) => InvokeError::NoResponse,
                Err(_) => InvokeError::Trap("the instance serving the request stopped".into()),
            }),
        }
    }

    /// Makes a lane: a store with the function's limits, and the task
    /// that instantiates the component and serves the lane's requests.
    #[allow(clippy::too_many_arguments)]
    fn start_lane(
        &self,
        component: &CompiledComponent,
        pool: &LanePool,
        tags: &super::InvokeTags,
        max_memory_bytes: u64,
        capabilities: Capabilities,
        retire: Option<Arc<Interrupt>>,
        output: Option<Arc<dyn super::GuestOutput>>,
        shared_observer: Option<Arc<dyn super::Observer>>,
    ) -> Arc<Lane> {
        let (jobs, rx) = tokio::sync::mpsc::unbounded_channel();
        let lane = Arc::new(Lane {
            jobs,
            in_flight: AtomicU32::new(0),
            admitted: AtomicU32::new(0),
            closed: AtomicBool::new(false),
            closing: tokio::sync::Notify::new(),
            latest_deadline: Mutex::new(None),
            share_ns: AtomicU64::new(0),
        });
        let state = InstanceState::new(
            TagCell::shared(tags.function.clone(), output, shared_observer),
            max_memory_bytes,
            capabilities,
        );
        let mut store = Store::new(component.pre.engine(), state);
        store.limiter(|s| &mut s.limiter);
        let overdue = {
            let lane = lane.clone();
            move |now| lane.overdue(now)
        };
        let ticket = self.arm_epochs(&mut store, tags, retire.clone(), overdue);
        let interrupt = self.interrupt.clone();
        let run = LaneRun {
            lane: lane.clone(),
            component: component.clone(),
            idle_for: pool.idle_for,
            interrupt,
            retire,
        };
        let timed = Shared {
            inner: Box::pin(ticket.run(run.run(store, rx))),
            lane: lane.clone(),
        };
        tokio::spawn(timed);
        lane
    }
}

/// A lane's task: what it needs besides its store.
struct LaneRun {
    lane: Arc<Lane>,
    component: CompiledComponent,
    idle_for: Duration,
    interrupt: Arc<Interrupt>,
    retire: Option<Arc<Interrupt>>,
}

impl LaneRun {
    fn interrupted(&self) -> bool {
        self.interrupt.is_set() || self.retire.as_ref().is_some_and(|r| r.is_set())
    }

    async fn stopped(&self) {
        match &self.retire {
            Some(r) => tokio::select! {
                () = self.interrupt.interrupted() => {}
                () = r.interrupted() => {}
            },
            None => self.interrupt.interrupted().await,
        }
    }

    /// Instantiates, serves requests until the lane is closed and empty,
    /// and fails every request left when the instance fails.
    async fn run(self, mut store: Store<InstanceState>, mut rx: tokio::sync::mpsc::UnboundedReceiver<Job>) {
        let tails: Mutex<HashMap<u64, Tail>> = Mutex::new(HashMap::new());
        let started = Instant::now();
        let made = async {
            let Handler::P3(indices) = &self.component.handler else {
                return Err(wasmtime::Error::msg(
                    "`instance_concurrency` needs a `wasi:http@0.3` component",
                ));
            };
            let instance = self.component.pre.instantiate_async(&mut store).await?;
            indices.load(&mut store, &instance)
        }
        .await;
        let instantiation = started.elapsed();
        let service = match made {
            Ok(service) => service,
            Err(e) => {
                let e = invoke::classify(&e, store.data().limiter.denied, self.interrupted());
                self.lane.close();
                rx.close();
                while let Ok(job) = rx.try_recv() {
                    self.end(job.tail, Err(e.clone()), None);
                }
                return;
            }
        };
        let ran = store
            .run_concurrent(async |accessor| self.serve(accessor, &service, &mut rx, &tails, instantiation).await)
            .await;
        let failure = match ran {
            Ok(Ok(())) => None,
            Ok(Err(e)) => Some(e),
            Err(e) => Some(invoke::classify(&e, store.data().limiter.denied, self.interrupted())),
        };
        self.lane.close();
        rx.close();
        let memory = Some(store.data().limiter.used());
        store.data().flush_output();
        let left: Vec<Tail> = tails.lock().expect("lane tails").drain().map(|(_, t)| t).collect();
        let failure = failure.unwrap_or(InvokeError::Trap("the instance serving the request stopped".into()));
        for tail in left {
            self.end(tail, Err(failure.clone()), memory);
        }
        while let Ok(job) = rx.try_recv() {
            self.end(job.tail, Err(failure.clone()), memory);
        }
    }

    /// The event loop's part: takes requests and runs them at once, until
    /// the lane is closed and has none left, or the instance is stopped.
    async fn serve(
        &self,
        accessor: &Accessor<InstanceState>,
        service: &Service,
        rx: &mut tokio::sync::mpsc::UnboundedReceiver<Job>,
        tails: &Mutex<HashMap<u64, Tail>>,
        instantiation: Duration,
    ) -> Result<(), InvokeError> {
        let mut running = FuturesUnordered::new();
        let mut next_id = 0u64;
        let mut first = true;
        let mut receiving = true;
        let stopped = self.stopped();
        let mut stopped = std::pin::pin!(stopped);
        loop {
            if self.lane.closed() && running.is_empty() {
                // No new job can come once the channel is closed; those
                // sent before are still served.
                rx.close();
                if rx.is_empty() {
                    return Ok(());
                }
            }
            let idle = tokio::time::sleep(self.idle_for);
            tokio::select! {
                biased;
                () = &mut stopped => return Err(InvokeError::Interrupted),
                Some(ended) = running.next(), if !running.is_empty() => {
                    let (id, ended): (u64, Result<(), InvokeError>) = ended;
                    if let Err(e) = &ended
                        && !matches!(e, InvokeError::Timeout)
                    {
                        // A trap in one request is the instance's.
                        return Err(e.clone());
                    }
                    let memory = accessor.with(|mut store| store.get().limiter.used());
                    if let Some(tail) = tails.lock().expect("lane tails").remove(&id) {
                        self.end(tail, ended, Some(memory));
                    }
                }
                job = rx.recv(), if receiving => {
                    let Some(Job { request, deadline, head, mut tail }) = job else {
                        receiving = false;
                        continue;
                    };
                    tail.report.instance_ready(if first { instantiation } else { Duration::ZERO });
                    first = false;
                    tail.share_at_start = self.lane.share_ns.load(Ordering::Relaxed);
                    let id = next_id;
                    next_id += 1;
                    tails.lock().expect("lane tails").insert(id, tail);
                    let lane = &self.lane;
                    running.push(async move {
                        let served = tokio::time::timeout_at(
                            deadline.into(),
                            super::invoke::serve_p3(accessor, service, request, head),
                        )
                        .await;
                        let ended = match served {
                            Err(_) => {
                                lane.close();
                                Err(InvokeError::Timeout)
                            }
                            Ok(Ok(())) => Ok(()),
                            Ok(Err(e)) => Err(invoke::classify(
                                &e,
                                accessor.with(|mut s| s.get().limiter.denied),
                                false,
                            )),
                        };
                        (id, ended)
                    });
                }
                () = idle, if running.is_empty() => self.lane.close(),
                // Closed from outside (its version replaced): checked above.
                () = self.lane.closing.notified() => {}
            }
        }
    }

    /// Tells a request's caller and observer how it ended, and frees its seat.
    fn end(&self, tail: Tail, ended: Result<(), InvokeError>, memory: Option<u64>) {
        self.lane.in_flight.fetch_sub(1, Ordering::Relaxed);
        let cpu = Duration::from_nanos(
            self.lane
                .share_ns
                .load(Ordering::Relaxed)
                .saturating_sub(tail.share_at_start),
        );
        let exit = ended.as_ref().map_or_else(invoke::exit_of, |()| Exit::Ok);
        tail.report.finished(exit, cpu, memory);
        // The caller is gone only if its request is.
        let _ = tail.done.send(ended);
    }
}

pin_project_lite::pin_project! {
    /// A lane's task, its running time shared among its requests in flight.
    struct Shared<F> {
        #[pin]
        inner: F,
        lane: Arc<Lane>,
    }
}

impl<F: Future<Output = ()>> Future for Shared<F> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.project();
        let started = Instant::now();
        let polled = this.inner.poll(cx);
        let spent = started.elapsed().as_nanos() as u64;
        let n = u64::from(this.lane.in_flight.load(Ordering::Relaxed).max(1));
        this.lane.share_ns.fetch_add(spent / n, Ordering::Relaxed);
        polled
    }
}
