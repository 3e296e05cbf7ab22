//! What the runtime tells the host about its guests, besides their
//! responses: how each invocation got its instance, what it cost in CPU
//! and memory and how it ended ([`Observer`], one per request), each
//! outbound request (through the same observer, which may add headers
//! such as a trace context), and each line a function's instances write
//! ([`GuestOutput`], one per function). The runtime names no metrics or
//! tracing library; the host implements these traits.

use std::time::Duration;

/// How an invocation got its instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum InstanceKind {
    /// Made ahead of the request (the function's warm slot).
    Warm,
    /// Made for this request.
    Fresh,
    /// Kept from an earlier request of the same function version (`instance_reuse`).
    Reused,
}

impl InstanceKind {
    /// `warm`, `fresh` or `reused`.
    pub fn as_str(self) -> &'static str {
        match self {
            InstanceKind::Warm => "warm",
            InstanceKind::Fresh => "fresh",
            InstanceKind::Reused => "reused",
        }
    }
}

/// How the guest's run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// It answered and ended within its limits.
    Ok,
    /// It trapped, failed a host call, or answered with an invalid response.
    Trap,
    /// Its deadline passed.
    Timeout,
    /// It failed after a memory growth past `max_memory_bytes` was refused.
    OutOfMemory,
    /// It answered with a `wasi:http` error code, or without a response.
    Error,
    /// The host stopped it: its drain ran out of time.
    Interrupted,
}

impl Exit {
    /// `ok`, `trap`, `timeout`, `oom`, `error` or `interrupted`.
    pub fn as_str(self) -> &'static str {
        match self {
            Exit::Ok => "ok",
            Exit::Trap => "trap",
            Exit::Timeout => "timeout",
            Exit::OutOfMemory => "oom",
            Exit::Error => "error",
            Exit::Interrupted => "interrupted",
        }
    }
}

/// One finished invocation.
#[derive(Debug, Clone, Copy)]
pub struct Invocation {
    /// How it got its instance.
    pub kind: InstanceKind,
    /// Time spent running the guest (its instantiation included when it
    /// made its own instance): the sum of the host's polls of it, which is
    /// CPU time but for what the OS takes from the thread meanwhile.
    pub cpu: Duration,
    /// The instance's linear memories together at their largest, in
    /// bytes; for a reused instance, over every request it served so far.
    /// `None` when the instance was stopped before it could be read.
    pub memory_peak_bytes: Option<u64>,
    /// How the guest's run ended.
    pub exit: Exit,
}

/// How an outbound request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutboundOutcome {
    /// A response came (any status).
    Ok,
    /// Refused by `allowed_outbound_hosts` or the internal-address rule.
    Denied,
    /// The connection, the lookup or the exchange failed.
    Error,
}

impl OutboundOutcome {
    /// `ok`, `denied` or `error`.
    pub fn as_str(self) -> &'static str {
        match self {
            OutboundOutcome::Ok => "ok",
            OutboundOutcome::Denied => "denied",
            OutboundOutcome::Error => "error",
        }
    }
}

/// Told when an outbound request ends: its outcome and, when a response
/// came, its status.
pub type OutboundDone = Box<dyn FnOnce(OutboundOutcome, Option<u16>) + Send>;

/// Receives what one request's invocation does. Every method has a
/// default that does nothing; each is called at most once per invocation
/// except [`Observer::outbound`], called for each outbound request, and
/// [`Observer::key_value_refused`].
pub trait Observer: Send + Sync {
    /// The instance is ready and the guest is about to be called;
    /// `instantiation` is how long making it took (zero for one that waited).
    fn instance_ready(&self, _kind: InstanceKind, _instantiation: Duration) {}

    /// An outbound request of the guest is about to leave for `host`
    /// (denied ones included). `headers` are the request's: the observer
    /// may add to them (a `traceparent`). What it returns is told the end.
    fn outbound(
        &self,
        _method: &http::Method,
        _uri: &http::Uri,
        _host: &str,
        _headers: &mut http::HeaderMap,
    ) -> Option<OutboundDone> {
        None
    }

    /// A key-value write of the guest was refused by its tenant's quota
    /// (called for each).
    fn key_value_refused(&self) {}

    /// The invocation is over: the guest returned (after its response
    /// body, if it streamed), failed, or was stopped.
    fn finished(&self, _invocation: &Invocation) {}
}

/// Which output stream a guest's line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// The guest's stdout.
    Stdout,
    /// The guest's stderr.
    Stderr,
}

impl Stream {
    /// `stdout` or `stderr`.
    pub fn as_str(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

/// Receives every line a function's instances write, besides the host's
/// log; one per function, given to its instances when they are made.
pub trait GuestOutput: Send + Sync {
    /// One line (without its newline) for the request `request_id` (`-`
    /// when the instance serves none).
    fn line(&self, request_id: &str, stream: Stream, text: &str);
}
