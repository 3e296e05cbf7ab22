//! The route table as text, for `wasmfn check` and `wasmfn routes`: one
//! line per active route, then every conflict and every function that
//! failed to load.

use std::fmt;

use wasmfn_routing::RouteTable;

/// A route table with the functions that failed, printable as a table.
pub struct RouteReport<'a> {
    table: &'a RouteTable,
    failed: Vec<(String, String)>,
}

impl<'a> RouteReport<'a> {
    /// The report of `table`, with `(function, error)` for each failure.
    pub fn new(table: &'a RouteTable, failed: Vec<(String, String)>) -> Self {
        Self { table, failed }
    }

    /// Whether there is neither a conflict nor a failed function.
    pub fn is_clean(&self) -> bool {
        self.table.conflicts().is_empty() && self.failed.is_empty()
    }
}

impl fmt::Display for RouteReport<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{:<36} {:<28} {:<24} FUNCTION", "ROUTE", "METHODS", "HOSTS")?;
        for (claim, methods) in self.table.serving() {
            if methods.is_empty() {
                continue;
            }
            let active: Vec<&str> = methods.iter().map(|m| m.as_str()).collect();
            let hosts: Vec<String> = claim.hosts.iter().map(|h| h.to_string()).collect();
            let hosts = if hosts.is_empty() {
                "*".to_string()
            } else {
                hosts.join(",")
            };
            writeln!(
                f,
                "{:<36} {:<28} {:<24} {}",
                claim.pattern.to_string(),
                active.join(","),
                hosts,
                claim.function_name
            )?;
        }
        for c in self.table.conflicts() {
            writeln!(
                f,
                "conflict: {} {} is claimed by {}",
                c.method,
                c.route,
                c.functions.join(", ")
            )?;
        }
        for (name, error) in &self.failed {
            writeln!(f, "error: {name}: {error}")?;
        }
        Ok(())
    }
}
