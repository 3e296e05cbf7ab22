//! Policy: the limits a function's manifest sets, enforced around the
//! guest: concurrency gates with bounded queues, tenants' request rates,
//! and body size limits.
//! Timeouts and memory are enforced inside the sandbox by `runtime`.

mod body;
mod gate;
mod rate;

pub use body::{LimitedBody, LimitedResponse, ResponseTooLarge};
pub use gate::{ConcurrencyGate, GateError, GatePermit};
pub use rate::RateLimit;
