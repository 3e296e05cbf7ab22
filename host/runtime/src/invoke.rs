//! One invocation: a fresh store and instance, the guest's `handle` run
//! under the function's deadline and memory limit. A component that
//! handles requests whole (`wasmfn:function/handler`) gets the request in
//! one call and answers with a complete response; any other (and any
//! response that streams) goes through `wasi:http/incoming-handler@0.2`
//! or `wasi:http/handler@0.3`, its response streamed back while the
//! instance keeps running.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::FutureExt;
use http_body::Body;
use http_body_util::{BodyExt, Full};
use wasmtime::component::ComponentExportIndex;
use wasmtime::{Store, UpdateDeadline};
use wasmtime_wasi_http::WasiHttpView;
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;

mod body;
mod outcome;
mod p3;

pub use body::GuestBody;
use outcome::panic_message;
pub(crate) use outcome::{Report, classify, exit_of};

pub(crate) use p3::serve as serve_p3;

use super::fair;
use super::lanes::LanePool;
use super::observe::{Exit, GuestOutput, InstanceKind, Observer};
use super::reuse::{Kept, ReuseHost, ReusePool};
use super::share::{ActiveInvocation, CpuShare};
use super::state::{InstanceState, InvokeTags, TagCell};
use super::warm::WarmSlot;
use super::whole;
use super::{Capabilities, CompiledComponent, Handler, Interrupt, Runtime};

/// Why a request body stopped, as the host's body wrappers report it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RequestBodyError {
    /// The body crossed `max_body_bytes`, the limit given in bytes.
    #[error("request body exceeds `max_body_bytes` ({0} bytes)")]
    TooLarge(u64),
    /// The connection failed while the body was read; the transport's message.
    #[error("request body failed: {0}")]
    Transport(String),
}

impl From<RequestBodyError> for wasmtime_wasi_http::Error {
    fn from(e: RequestBodyError) -> Self {
        match e {
            RequestBodyError::TooLarge(n) => wasmtime_wasi_http::Error::HttpRequestBodySize(Some(n)),
            RequestBodyError::Transport(_) => wasmtime_wasi_http::Error::HttpProtocolError,
        }
    }
}

/// One request for a guest, with the limits it runs under.
pub struct InvokeRequest<B> {
    /// The request as the guest receives it.
    pub request: http::Request<B>,
    /// The function name and request id its log lines carry.
    pub tags: InvokeTags,
    /// When the guest is interrupted (`timeout_ms` after the request got its slot).
    pub deadline: Instant,
    /// Cap on all linear memories of the instance together, in bytes.
    pub max_memory_bytes: u64,
    /// What the guest may reach: outbound hosts, its configuration.
    pub capabilities: Capabilities,
    /// Dropped when the request is over (e.g. a concurrency permit).
    pub guard: Box<dyn Send>,
    /// The function's warm instance slot: taken if ready, refilled after.
    pub warm: Option<Arc<WarmSlot>>,
    /// The function version's idle instances (`instance_reuse` above 1):
    /// one is taken if any waits, and the instance goes back after a
    /// request that ended cleanly.
    pub reuse: Option<Arc<ReusePool>>,
    /// The function version's own switch, set when the version is replaced
    /// or removed and its drain runs out: it stops this invocation as the
    /// host-wide interrupt does.
    pub retire: Option<Arc<Interrupt>>,
    /// The function version's instances that serve several requests at
    /// once (`instance_concurrency` above 1, `wasi:http@0.3` components):
    /// the request takes a seat in one of them.
    pub lanes: Option<Arc<LanePool>>,
    /// Told how the instance was got, of each outbound request, and how
    /// the invocation ended.
    pub observer: Option<Arc<dyn Observer>>,
    /// Where a fresh instance's output lines go besides the log (a warm
    /// or reused one has its own from when it was made: the same function's).
    pub output: Option<Arc<dyn GuestOutput>>,
    /// Told of the outbound requests and key-value refusals of an instance
    /// that serves several requests at once (`lanes`), which no one request
    /// can be credited with: the function's, not the request's (no trace).
    /// Taken when such an instance is made.
    pub shared_observer: Option<Arc<dyn Observer>>,
}

/// Why an invocation produced no response.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum InvokeError {
    /// The deadline passed before the response head (or, taken whole, the request body) was in.
    #[error("the function did not respond within its timeout")]
    Timeout,
    /// A memory growth past `max_memory_bytes` was refused and the guest then failed; wasmtime's message.
    #[error("the function ran out of memory: {0}")]
    OutOfMemory(String),
    /// The guest overflowed its wasm stack; wasmtime's message.
    #[error("the function overflowed its stack: {0}")]
    StackOverflow(String),
    /// The guest trapped, or a host call failed it, or it panicked the host task; the message.
    #[error("the function trapped: {0}")]
    Trap(String),
    /// The guest answered with a `wasi:http` error code instead of a
    /// response; the code as `wasi:http` names it.
    #[error("the function returned an error response: {0}")]
    GuestError(String),
    /// The guest answered whole with a response that is not valid HTTP
    /// (status, header or `content-length`); the reason.
    #[error("the function returned an invalid response: {0}")]
    InvalidResponse(String),
    /// The guest returned without setting its response.
    #[error("the function returned without sending a response")]
    NoResponse,
    /// The instance pool was full, so no instance could be made; not the guest's fault.
    #[error("no instance slot is free: {0}")]
    Capacity(String),
    /// The host interrupted it: its drain ran out of time.
    #[error("the host is shutting down and interrupted the function")]
    Interrupted,
    /// The body of a request taken whole failed or crossed its limit before the guest ran.
    #[error("the request body could not be read: {0}")]
    RequestBody(String),
}

impl Runtime {
    /// Runs one request through an instance of `component`: one kept from
    /// an earlier request when the function reuses instances and one is
    /// idle, else its warm one when ready, else a fresh one.
    ///
    /// Returns once the guest has sent its response head; the body streams
    /// from the still-running instance. Dropping the returned body before it
    /// ends (a client that went away) stops the instance. Once the request is over the
    /// instance goes back to the reuse pool if it may, and otherwise is
    /// dropped and the warm slot refilled.
    pub async fn invoke<B>(
        &self,
        component: &CompiledComponent,
        req: InvokeRequest<B>,
    ) -> Result<http::Response<GuestBody>, InvokeError>
    where
        B: Body<Data = Bytes, Error = RequestBodyError> + Send + 'static,
    {
        if let (Some(pool), Handler::P3(_)) = (&req.lanes, &component.handler) {
            let pool = pool.clone();
            return self.invoke_in_lane(component, &pool, req).await;
        }
        let InvokeRequest {
            request,
            tags,
            deadline,
            max_memory_bytes,
            capabilities,
            guard,
            warm: warm_slot,
            reuse,
            lanes: _,
            retire,
            observer,
            output,
            shared_observer: _,
        } = req;
        let incoming = Incoming::read(component, request, deadline).await?;
        let (mut store, mut instance, served, kind) = match reuse.as_ref().and_then(|pool| pool.take()) {
            Some(kept) => (kept.store, Some(kept.instance), kept.served, InstanceKind::Reused),
            None => match warm_slot.as_ref().and_then(|slot| slot.take()) {
                Some(warm) => (warm.store, Some(warm.instance), 0, InstanceKind::Warm),
                None => {
                    let tags = TagCell::new(tags.function.clone(), output);
                    let state = InstanceState::new(tags, max_memory_bytes, capabilities);
                    let mut store = Store::new(component.pre.engine(), state);
                    store.limiter(|s| &mut s.limiter);
                    (store, None, 0, InstanceKind::Fresh)
                }
            },
        };
        let (active, ticket) = self.arm_deadline(&mut store, &tags, deadline, retire.clone());
        let marker = ticket.marker();
        store
            .data()
            .tags
            .set_request(Some(tags.request_id.clone()), observer.clone());
        let report = Report { observer, kind };
        let told = report.clone();
        let reuse_host = self.reuse.clone();
        // The response head: sent by the guest through `wasi:http`'s
        // response-outparam, or by the host for a response made whole.
        let (head_tx, head_rx) = tokio::sync::oneshot::channel();
        let component = component.clone();
        // The guest runs first inside the caller's task, so a request that
        // is answered at once (the usual case) costs no task switch; only
        // what remains after its response head (a body still streaming,
        // then the teardown) moves to a task of its own.
        // A panic in the host while it runs the guest fails this request
        // only; the store it leaves behind is dropped, never reused.
        let interrupt = self.interrupt.clone();
        let retired = retire.clone();
        let stopped = async move {
            match retire {
                Some(r) => tokio::select! {
                    () = interrupt.interrupted() => {}
                    () = r.interrupted() => {}
                },
                None => interrupt.interrupted().await,
            }
        };
        let interrupt = self.interrupt.clone();
        let guest: Pin<Box<dyn Future<Output = _> + Send>> = Box::pin(
            std::panic::AssertUnwindSafe(async move {
                // Each poll of the guest through the fair scheduler; a guest
                // waiting for its turn is stopped by the deadline, the
                // interrupt and its retirement as one waiting for I/O is.
                let run = ticket.run(run_guest(
                    &mut store,
                    &component,
                    &mut instance,
                    Instantiating {
                        warm_slot: warm_slot.as_deref(),
                        reuse: &reuse_host,
                        report: &told,
                    },
                    incoming,
                    head_tx,
                ));
                let outcome = tokio::select! {
                    biased;
                    ran = tokio::time::timeout_at(deadline.into(), run) => match ran {
                        Err(_) => Err(InvokeError::Timeout),
                        Ok(Ok(())) => Ok(()),
                        Ok(Err(Failed::Invoke(e))) => Err(e),
                        Ok(Err(Failed::Wasm(e))) => Err(classify(&e, store.data().limiter.denied, interrupt.is_set() || retired.as_ref().is_some_and(|r| r.is_set()))),
                    },
                    () = stopped => Err(InvokeError::Interrupted),
                };
                // Whether the instance may serve another request, as far as
                // the guest's run tells; the response head tells the rest.
                let interrupted = interrupt.is_set() || retired.as_ref().is_some_and(|r| r.is_set());
                let clean = outcome.is_ok() && !store.data().limiter.denied && !interrupted;
                let retire = Retire {
                    store,
                    instance,
                    served: served + 1,
                    clean,
                    reuse,
                    warm_slot,
                    request: Box::new((guard, active)),
                    report: told,
                };
                (outcome, retire)
            })
            .timed()
            .catch_unwind(),
        );
        answer(fair::Placed::new(guest, self.fair.clone(), marker), head_rx, report).await
    }

    /// Sets the store's deadline: each epoch tick a running guest yields to
    /// other tasks (paused when it is heavy beside lighter functions of
    /// its tenant); past `deadline` it is interrupted, even in a loop that
    /// never calls out. The ticket is the invocation's place at the fair
    /// scheduler, whose kicks (an epoch advanced between ticks) make the
    /// guest yield without counting as a tick of its computation.
    fn arm_deadline(
        &self,
        store: &mut Store<InstanceState>,
        tags: &InvokeTags,
        deadline: Instant,
        retire: Option<Arc<Interrupt>>,
    ) -> (ActiveInvocation, fair::Ticket) {
        let (tenant, function) = self.shares(&tags.tenant, &tags.function);
        let active = ActiveInvocation::start(tenant.load.clone(), function.load.clone());
        let ticket = self.arm_epochs(store, tags, retire, move |now| now >= deadline);
        (active, ticket)
    }

    /// The epoch callback of a store whose guests run for `tags`' function:
    /// each tick a running guest yields, as [`Self::arm_deadline`] says;
    /// it is interrupted once `overdue` says so, or the host or `retire`
    /// interrupts. Returns its place at the fair scheduler.
    pub(crate) fn arm_epochs(
        &self,
        store: &mut Store<InstanceState>,
        tags: &InvokeTags,
        retire: Option<Arc<Interrupt>>,
        overdue: impl Fn(Instant) -> bool + Send + Sync + 'static,
    ) -> fair::Ticket {
        store.set_epoch_deadline(1);
        let interrupt = self.interrupt.clone();
        let (tenant, function) = self.shares(&tags.tenant, &tags.function);
        let ticket = self.fair.ticket(&tenant.fair, function.id);
        let marker = ticket.marker();
        let mut share = CpuShare::new(tenant.load.clone(), function.load.clone());
        let ticks = self.epoch_ticks.clone();
        let mut seen = ticks.load(Ordering::Acquire);
        store.epoch_deadline_callback(move |_| {
            if overdue(Instant::now()) || interrupt.is_set() || retire.as_ref().is_some_and(|r| r.is_set()) {
                return Ok(UpdateDeadline::Interrupt);
            }
            let now = ticks.load(Ordering::Acquire);
            let next = if now == seen {
                // A kick: the scheduler takes the CPU back for a guest
                // with a better claim.
                UpdateDeadline::Yield(1)
            } else {
                seen = now;
                share.next_tick()
            };
            if let UpdateDeadline::Yield(_) = next {
                marker.mark();
            }
            Ok(next)
        });
        ticket
    }
}

/// Where the guest's response head arrives, or the `wasi:http` error code
/// it answered instead (as named in [`InvokeError::GuestError`]).
pub(crate) type HeadSender = tokio::sync::oneshot::Sender<Result<http::Response<HyperOutgoingBody>, String>>;
type HeadReceiver = tokio::sync::oneshot::Receiver<Result<http::Response<HyperOutgoingBody>, String>>;

/// The request as the guest will take it.
enum Incoming<B> {
    /// Read whole before an instance is taken, for `wasmfn:function/handler`.
    Whole {
        export: ComponentExportIndex,
        parts: http::request::Parts,
        body: Bytes,
    },
    /// Streamed to the guest through `wasi:http/incoming-handler`.
    Streamed(http::Request<B>),
}

impl<B> Incoming<B>
where
    B: Body<Data = Bytes, Error = RequestBodyError> + Send + 'static,
{
    /// For a component that takes requests whole, the body is read before
    /// an instance is taken (within the deadline), so a slow upload holds
    /// no instance and a request that gives up before its body ends makes
    /// none.
    async fn read(
        component: &CompiledComponent,
        request: http::Request<B>,
        deadline: Instant,
    ) -> Result<Self, InvokeError> {
        let Some(export) = component.whole else {
            return Ok(Incoming::Streamed(request));
        };
        let (parts, body) = request.into_parts();
        let body = match tokio::time::timeout_at(deadline.into(), body.collect()).await {
            Err(_) => return Err(InvokeError::Timeout),
            Ok(Err(e)) => return Err(InvokeError::RequestBody(e.to_string())),
            Ok(Ok(collected)) => collected.to_bytes(),
        };
        Ok(Incoming::Whole { export, parts, body })
    }
}

/// What making an instance inline involves besides the component.
struct Instantiating<'a> {
    /// Told when a request made its own instance.
    warm_slot: Option<&'a WarmSlot>,
    /// Asked to give up an idle instance when the instance pool is full.
    reuse: &'a ReuseHost,
    /// Told when the instance is ready.
    report: &'a Report,
}

/// Instantiates (unless the instance is given: warm or reused) and calls
/// the guest: whole when it takes requests whole and answers so, otherwise
/// through `wasi:http`, its head sent to `head`. The instance is left in
/// `instance`, for reuse.
async fn run_guest<B>(
    store: &mut Store<InstanceState>,
    component: &CompiledComponent,
    instance: &mut Option<wasmtime::component::Instance>,
    making: Instantiating<'_>,
    incoming: Incoming<B>,
    head: HeadSender,
) -> Result<(), Failed>
where
    B: Body<Data = Bytes, Error = RequestBodyError> + Send + 'static,
{
    let instance = match instance {
        Some(instance) => {
            making.report.instance_ready(Duration::ZERO);
            *instance
        }
        None => {
            let started = Instant::now();
            let made = loop {
                // Boxed: a warm or reused instance (the usual case) does
                // not carry instantiation's state in its future.
                match Box::pin(component.pre.instantiate_async(&mut *store)).await {
                    Ok(made) => break made,
                    // The instance pool is full: an instance idle for
                    // reuse gives way, and this one is made in its place.
                    Err(e)
                        if e.downcast_ref::<wasmtime::PoolConcurrencyLimitError>().is_some()
                            && making.reuse.reclaim_oldest() => {}
                    Err(e) => return Err(e.into()),
                }
            };
            if let Some(slot) = making.warm_slot {
                slot.made_inline();
            }
            making.report.instance_ready(started.elapsed());
            *instance = Some(made);
            made
        }
    };
    match incoming {
        Incoming::Whole { export, parts, body } => match whole::call(&mut *store, &instance, &export, &parts, &body)
            .await?
        {
            Some(resp) => {
                let resp = whole::into_response(resp).map_err(|m| Failed::Invoke(InvokeError::InvalidResponse(m)))?;
                // The receiver is only gone if the request was.
                let _ = head.send(Ok(resp));
                Ok(())
            }
            // Its response streams: the same request through `wasi:http`,
            // on the same instance.
            None => {
                let body =
                    Full::new(body).map_err(|never: std::convert::Infallible| -> RequestBodyError { match never {} });
                let request = http::Request::from_parts(parts, body);
                handle(store, component, &instance, request, head).await
            }
        },
        Incoming::Streamed(request) => handle(store, component, &instance, request, head).await,
    }
}

/// Calls the component's `wasi:http` handler with `request`, its response
/// head sent to `head`; returns when the guest is done with the request.
async fn handle<B>(
    store: &mut Store<InstanceState>,
    component: &CompiledComponent,
    instance: &wasmtime::component::Instance,
    request: http::Request<B>,
    head: HeadSender,
) -> Result<(), Failed>
where
    B: Body<Data = Bytes, Error = RequestBodyError> + Send + 'static,
{
    match &component.handler {
        Handler::P2(indices) => {
            let request = store.data_mut().http().new_incoming_request(Scheme::Http, request)?;
            let out = store
                .data_mut()
                .http()
                .new_response_outparam_from_callback(move |answer| {
                    // The receiver is only gone if the request was.
                    let _ = head.send(answer.map_err(|code| format!("{code:?}")));
                })?;
            let proxy = indices.load(&mut *store, instance)?;
            proxy
                .wasi_http_incoming_handler()
                .call_handle(&mut *store, request, out)
                .await?;
            Ok(())
        }
        Handler::P3(indices) => {
            let service = indices.load(&mut *store, instance)?;
            p3::handle(store, &service, request, head).await
        }
    }
}

/// Waits for whichever comes first, the response head or the guest's end,
/// and answers: a head while the guest runs leaves it running in a task of
/// its own (its body streams); a guest that ended says why there is no head.
async fn answer(
    mut guest: fair::Placed<Ran>,
    mut head: HeadReceiver,
    report: Report,
) -> Result<http::Response<GuestBody>, InvokeError> {
    let first = std::future::poll_fn(|cx| {
        if let Poll::Ready(done) = Pin::new(&mut guest).poll(cx) {
            return Poll::Ready(First::Finished(done));
        }
        match Pin::new(&mut head).poll(cx) {
            Poll::Ready(h) => Poll::Ready(First::Head(h)),
            Poll::Pending => Poll::Pending,
        }
    })
    .await;
    let (done, head) = match first {
        First::Finished(done) => (done, head.try_recv().map_err(drop)),
        First::Head(Ok(Ok(resp))) => {
            // The guest is still running (a body to stream, or work after
            // its response): it goes on in a task of its own, stopped if the
            // response body is dropped before its end.
            let task = tokio::spawn(async move {
                if let Ok(((outcome, retire), cpu)) = guest.await {
                    let exit = outcome.as_ref().map_or_else(exit_of, |()| Exit::Ok);
                    retire.finish(true, exit, cpu);
                }
            });
            return Ok(resp.map(|body| GuestBody::new(body, Some(task.abort_handle()))));
        }
        // An error response: the guest is stopped, as nothing it does now
        // can reach the client.
        First::Head(Ok(Err(code))) => {
            drop(guest);
            report.finished(Exit::Error, Duration::ZERO, None);
            return Err(InvokeError::GuestError(code));
        }
        // The response's sender dropped without a response: how the guest
        // ends tells why.
        First::Head(Err(_)) => (guest.await, Err(())),
    };
    let outcome = match done {
        Ok(((outcome, retire), cpu)) => {
            let exit = match (&outcome, &head) {
                (Err(e), _) => exit_of(e),
                (Ok(()), Ok(Ok(_))) => Exit::Ok,
                (Ok(()), _) => Exit::Error,
            };
            retire.finish(matches!(head, Ok(Ok(_))), exit, cpu);
            outcome
        }
        Err(panic) => {
            report.finished(Exit::Trap, Duration::ZERO, None);
            Err(InvokeError::Trap(panic_message(&*panic)))
        }
    };
    match head {
        Ok(Ok(resp)) => Ok(resp.map(|body| GuestBody::new(body, None))),
        Ok(Err(code)) => Err(InvokeError::GuestError(code)),
        Err(_) => Err(outcome.err().unwrap_or(InvokeError::NoResponse)),
    }
}

/// A guest's run: how it ended, what to put away, and the time spent running it.
type Ran = ((Result<(), InvokeError>, Retire), Duration);

/// Why running a guest stopped before it finished.
enum Failed {
    /// In wasmtime: a trap, an interrupt, a host call's error.
    Wasm(wasmtime::Error),
    /// Around it: the request's body, or the guest's whole response.
    Invoke(InvokeError),
}

impl From<wasmtime::Error> for Failed {
    fn from(e: wasmtime::Error) -> Self {
        Failed::Wasm(e)
    }
}

/// What ended the first part of an invocation.
enum First<D, H> {
    /// The guest returned (or panicked) before its response head was taken.
    Finished(D),
    /// The response head (or the end of its sender) came while the guest runs.
    Head(H),
}

/// A finished invocation: its instance, kept for reuse or dropped (and
/// its function's warm instance made again), and what its request held
/// (its concurrency permits), given back once the instance is put away.
struct Retire {
    store: Store<InstanceState>,
    instance: Option<wasmtime::component::Instance>,
    /// Requests the instance has served, this one included.
    served: u32,
    /// The guest ran to its end within its limits, uninterrupted.
    clean: bool,
    reuse: Option<Arc<ReusePool>>,
    warm_slot: Option<Arc<WarmSlot>>,
    request: Box<dyn Send>,
    /// Told how the invocation ended.
    report: Report,
}

impl Retire {
    /// Puts the instance away: back to its reuse pool when the request
    /// ended cleanly and `responded` (a response head went out, and a
    /// streamed body to its end), else dropped, with the warm slot
    /// refilled, in a task of its own that runs once the current task (the
    /// response) yields. The request's permits go after the instance is
    /// kept, so the request they admit next finds it.
    fn finish(self, responded: bool, exit: Exit, cpu: Duration) {
        let Retire {
            store,
            instance,
            served,
            clean,
            reuse,
            warm_slot,
            request,
            report,
        } = self;
        store.data().flush_output();
        report.finished(exit, cpu, Some(store.data().limiter.used()));
        let store = match (reuse, instance) {
            (Some(pool), Some(instance)) if clean && responded => pool
                .put(Kept {
                    store,
                    instance,
                    served,
                })
                .err()
                .map(|kept| kept.store),
            (Some(pool), _) => {
                pool.failed();
                Some(store)
            }
            (None, _) => Some(store),
        };
        drop(request);
        let Some(store) = store else { return };
        // The task holds only the store and the slot: the refill's much
        // larger state is allocated by the task itself, after the response,
        // not moved around by the request that spawns it.
        tokio::spawn(async move {
            drop(store);
            if let Some(slot) = warm_slot {
                Box::pin(slot.refill()).await;
            }
        });
    }
}

pin_project_lite::pin_project! {
    /// A future with the time spent polling it: the guest's CPU time.
    struct Timed<F> {
        #[pin]
        inner: F,
        spent: Duration,
    }
}

impl<F: Future> Future for Timed<F> {
    type Output = (F::Output, Duration);

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let started = Instant::now();
        let polled = this.inner.poll(cx);
        *this.spent += started.elapsed();
        polled.map(|out| (out, *this.spent))
    }
}

/// [`Timed`] as a method.
trait TimedExt: Future + Sized {
    fn timed(self) -> Timed<Self> {
        Timed {
            inner: self,
            spent: Duration::ZERO,
        }
    }
}

impl<F: Future> TimedExt for F {}
