//! Routing: route patterns, host rules, and the table that matches a
//! request to the one function that serves it.
//!
//! Precedence among patterns that match one path is deterministic:
//! fully static patterns first, then more static segments, then fewer
//! catch-alls, then lexical order of the pattern text. The first pattern
//! that has the path for the request's host decides: it serves the method,
//! or answers `405` with its own methods. Patterns for other hosts give way
//! to the next; `421` when the path exists only for other hosts, else `404`.

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
