//! Policy: the limits a function's manifest sets, enforced around the
//! guest: concurrency gates with bounded queues, and body size limits.
//! Timeouts and memory are enforced inside the sandbox by `runtime`.

mod body;
mod gate;

pub use body::{LimitedBody, LimitedResponse, ResponseTooLarge};
pub use gate::{ConcurrencyGate, GateError, GatePermit};
