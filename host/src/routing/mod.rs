//! Routing: route patterns, host rules, and the table that matches a
//! request to the one function that serves it.
//!
//! Precedence among patterns that match one path is deterministic:
//! fully static patterns first, then more static segments, then fewer
//! catch-alls, then lexical order of the pattern text. A claim whose method
//! or host does not fit gives way to the next pattern; only when none fits
//! does the request get `405` (some method would fit), `421` (the path
//! exists for other hosts) or `404`.

mod host;
mod pattern;
mod table;

pub(crate) use host::split_host_port;
pub use host::{HostRule, HostRuleError};
pub(crate) use pattern::valid_param_name;
pub use pattern::{PatternError, RoutePattern, Segment};
pub use table::{ClaimState, PathError, RouteClaim, RouteConflict, RouteMatch, RouteOutcome, RouteTable, split_path};

#[cfg(test)]
mod tests;
