//! Routing for wasmfn: route patterns, host rules, and the table that
//! matches a request to the one function that serves it. No HTTP framework
//! and no engine: pure data, tested as tables.
//!
//! ```
//! use http::Method;
//! use wasmfn_routing::{RouteClaim, RouteOutcome, RoutePattern, RouteTable, split_path};
//!
//! let claim = RouteClaim {
//!     function: 0,
//!     function_name: "users".into(),
//!     pattern: RoutePattern::parse("/users/{id}")?,
//!     methods: vec![Method::GET],
//!     hosts: vec![],
//!     force_url: false,
//!     tag: 0,
//! };
//! let table = RouteTable::build(vec![claim]);
//! let segments = split_path("/users/42")?;
//! let RouteOutcome::Matched(m) = table.route(&Method::GET, "localhost", None, &segments) else {
//!     panic!("no match");
//! };
//! assert_eq!(m.params[0].1, "42");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! - `pattern`: [`RoutePattern`], `/users/{id}`, `/files/{...path}`,
//!   `/docs/{...path?}`; parsed, joined and ranked.
//! - `host`: [`HostRule`], exact names and `*.domain` wildcards, with ports.
//! - `table`: [`RouteTable`], a segment trie of claims; conflicts are found
//!   when it is built ([`RouteConflict`]), never at request time.
//!
//! Precedence among patterns that match one path is deterministic:
//! fully static patterns first, then more static segments, then fewer
//! catch-alls, then lexical order of the pattern text. The first pattern
//! that has the path for the request's host decides: it serves the method,
//! or answers `405` with its own methods. Patterns for other hosts give way
//! to the next. When the path exists only for other hosts, the method is
//! checked before the host: `405` (with the methods of every host) when no
//! claim on the path serves it, else `421`; `404` when no route has the path.

mod host;
mod pattern;
mod table;

pub use host::split_host_port;
pub use host::{HostRule, HostRuleError};
pub use pattern::valid_param_name;
pub use pattern::{PatternError, RoutePattern, Segment};
pub use table::{ClaimState, PathError, RouteClaim, RouteConflict, RouteMatch, RouteOutcome, RouteTable, split_path};

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;
