//! The route table: claims by many functions, resolved once, matched per request.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};

use http::Method;

use super::host::{HostRule, host_lists_overlap};
use super::pattern::{RoutePattern, Segment};

/// What one function claims: a pattern, its methods and hosts.
#[derive(Debug, Clone)]
pub struct RouteClaim {
    /// Index of the function in the snapshot that owns this claim.
    pub function: usize,
    /// Display name of the function, for conflicts.
    pub function_name: String,
    /// The route pattern claimed.
    pub pattern: RoutePattern,
    /// Methods claimed; `GET` implies `HEAD`.
    pub methods: Vec<Method>,
    /// Hosts the claim serves; empty means any host.
    pub hosts: Vec<HostRule>,
    /// Takes each method from overlapping claims that do not set it.
    pub force_url: bool,
    /// An index the table's owner chooses (wasmfn: which mount this is).
    pub tag: usize,
}

impl RouteClaim {
    /// Methods this claim answers, with `HEAD` implied by `GET`.
    fn effective_methods(&self) -> Vec<Method> {
        let mut m = self.methods.clone();
        if m.contains(&Method::GET) && !m.contains(&Method::HEAD) {
            m.push(Method::HEAD);
        }
        m.sort_by(|a, b| a.as_str().cmp(b.as_str()));
        m
    }
}

/// The state of one claim for one method after resolution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClaimState {
    /// Serves requests.
    Active,
    /// Another claim with `force_url` took this method and host.
    Overridden,
    /// Claimed by two or more functions that nothing resolves: answers 409.
    Conflicted,
}

#[derive(Debug)]
struct ResolvedClaim {
    claim: RouteClaim,
    methods: Vec<(Method, ClaimState)>,
}

#[derive(Debug)]
struct PatternEntry {
    claims: Vec<ResolvedClaim>,
    rank: u32,
}

/// One unresolved conflict: a route and method claimed by several functions.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RouteConflict {
    /// The route pattern, as written by the first claim of its shape.
    pub route: String,
    /// The method in conflict, e.g. `GET`.
    pub method: String,
    /// Display names of the functions that claim it, sorted.
    pub functions: Vec<String>,
}

#[derive(Debug, Default)]
struct Node {
    statics: HashMap<Box<str>, Node>,
    param: Option<Box<Node>>,
    end: Option<u32>,
    catch_all: Option<u32>,
}

/// Routes of every loaded function, with conflicts resolved or recorded.
#[derive(Debug, Default)]
pub struct RouteTable {
    patterns: Vec<PatternEntry>,
    root: Node,
    conflicts: Vec<RouteConflict>,
}

/// A request path that cannot name any route.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PathError {
    /// A segment is `.` or `..` once percent-decoded.
    #[error("path `{0}` contains a `.` or `..` segment")]
    DotSegment(String),
    /// A segment does not percent-decode to UTF-8.
    #[error("path `{0}` is not valid percent-encoded UTF-8")]
    BadEncoding(String),
    /// A decoded segment has an ASCII control character (parameters could not travel in headers).
    #[error("path `{0}` contains a control character")]
    ControlCharacter(String),
    /// The path does not start with `/`.
    #[error("path `{0}` must start with `/`")]
    NotAbsolute(String),
}

/// Splits and percent-decodes a request path. A single trailing slash is
/// insignificant; empty segments are kept (they match no parameter).
pub fn split_path(path: &str) -> Result<Vec<Cow<'_, str>>, PathError> {
    let Some(rest) = path.strip_prefix('/') else {
        return Err(PathError::NotAbsolute(path.to_string()));
    };
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    if rest.is_empty() {
        return Ok(Vec::new());
    }
    rest.split('/')
        .map(|raw| {
            let seg = percent_encoding::percent_decode_str(raw)
                .decode_utf8()
                .map_err(|_| PathError::BadEncoding(path.to_string()))?;
            if seg == "." || seg == ".." {
                return Err(PathError::DotSegment(path.to_string()));
            }
            // Parameters travel in headers, which cannot carry these.
            if seg.bytes().any(|b| b.is_ascii_control()) {
                return Err(PathError::ControlCharacter(path.to_string()));
            }
            Ok(seg)
        })
        .collect()
}

/// A matched route.
#[derive(Debug)]
pub struct RouteMatch<'t> {
    /// The claim that serves the request.
    pub claim: &'t RouteClaim,
    /// Parameter names and their decoded values, in pattern order.
    pub params: Vec<(&'t str, String)>,
}

/// The answer of the route table for one request.
#[derive(Debug)]
pub enum RouteOutcome<'t> {
    /// One claim serves this method, host and path.
    Matched(RouteMatch<'t>),
    /// No route has this path.
    NotFound,
    /// Routes have this path, for other methods: for this host, or, when
    /// no route has it for this host, for any host.
    MethodNotAllowed {
        /// The methods the route answers, sorted: the `Allow` header. Those
        /// for this host; when the path is served only for other hosts, those
        /// of every host (each then answers `421` here).
        allow: Vec<Method>,
    },
    /// The route exists and serves this method, but not for this host.
    MisdirectedHost,
    /// The route and method are claimed by several functions.
    Conflict {
        /// The route pattern of the claim that matched.
        route: String,
        /// Display names of the functions in conflict for this method.
        functions: Vec<String>,
    },
}

fn rank_key(p: &RoutePattern) -> (bool, std::cmp::Reverse<usize>, bool, String) {
    (
        !p.is_static(),
        std::cmp::Reverse(p.static_count()),
        p.has_catch_all(),
        p.to_string(),
    )
}

impl RouteTable {
    /// Builds the table, resolving `force_url` and recording conflicts.
    pub fn build(claims: Vec<RouteClaim>) -> Self {
        let mut by_shape: BTreeMap<String, Vec<RouteClaim>> = BTreeMap::new();
        for claim in claims {
            by_shape.entry(claim.pattern.shape()).or_default().push(claim);
        }
        // Deterministic precedence: static first, more static segments,
        // fewer catch-alls, then lexical order of the pattern.
        let mut groups: Vec<Vec<RouteClaim>> = by_shape.into_values().collect();
        groups.sort_by_cached_key(|g| rank_key(&g[0].pattern));

        let mut table = RouteTable::default();
        for (rank, group) in groups.into_iter().enumerate() {
            let pattern = group[0].pattern.clone();
            let (resolved, conflicts) = resolve(group);
            table.conflicts.extend(conflicts);
            let id = table.patterns.len() as u32;
            table.patterns.push(PatternEntry {
                claims: resolved,
                rank: rank as u32,
            });
            table.insert(&pattern, id);
        }
        table
    }

    fn insert(&mut self, pattern: &RoutePattern, id: u32) {
        let mut node = &mut self.root;
        for seg in pattern.segments() {
            match seg {
                Segment::Static(s) => node = node.statics.entry(s.as_str().into()).or_default(),
                Segment::Param(_) => node = node.param.get_or_insert_with(Default::default),
                Segment::CatchAll(_) => {
                    node.catch_all = Some(id);
                    return;
                }
            }
        }
        node.end = Some(id);
    }

    /// Every unresolved conflict, sorted by route.
    pub fn conflicts(&self) -> &[RouteConflict] {
        &self.conflicts
    }

    /// Every claim with its per-method state, in precedence order.
    pub fn claims(&self) -> impl Iterator<Item = (&RouteClaim, &[(Method, ClaimState)])> {
        self.patterns
            .iter()
            .flat_map(|p| p.claims.iter().map(|c| (&c.claim, c.methods.as_slice())))
    }

    /// Every claim with the methods it serves (those not lost to a
    /// conflict or another claim), in precedence order; empty when it
    /// serves none.
    pub fn serving(&self) -> impl Iterator<Item = (&RouteClaim, Vec<&Method>)> {
        self.claims().map(|(claim, states)| {
            let active = states
                .iter()
                .filter(|(_, s)| *s == ClaimState::Active)
                .map(|(m, _)| m)
                .collect();
            (claim, active)
        })
    }

    fn collect(node: &Node, segs: &[Cow<'_, str>], i: usize, out: &mut Vec<u32>) {
        if i == segs.len() {
            if let Some(id) = node.end {
                out.push(id);
            }
            return;
        }
        if let Some(id) = node.catch_all
            && segs[i..].iter().all(|s| !s.is_empty())
        {
            out.push(id);
        }
        let seg = &segs[i];
        if seg.is_empty() {
            return;
        }
        if let Some(next) = node.statics.get(seg.as_ref()) {
            Self::collect(next, segs, i + 1, out);
        }
        if let Some(next) = &node.param {
            Self::collect(next, segs, i + 1, out);
        }
    }

    /// Finds the route for a request. `host` is lowercase without port.
    pub fn route(&self, method: &Method, host: &str, port: Option<u16>, segs: &[Cow<'_, str>]) -> RouteOutcome<'_> {
        let mut candidates = Vec::new();
        Self::collect(&self.root, segs, 0, &mut candidates);
        candidates.sort_unstable_by_key(|id| self.patterns[*id as usize].rank);

        // The most specific pattern that has this path for this host decides:
        // it serves the method, or answers 405 with its own methods.
        let mut misdirected = false;
        // What the claims for other hosts serve: a method none of them
        // serves is refused as a method (405), whatever the host.
        let mut elsewhere: Vec<Method> = Vec::new();
        for id in candidates {
            let entry = &self.patterns[id as usize];
            let mut allow: Vec<Method> = Vec::new();
            let mut any_host = false;
            for rc in &entry.claims {
                let c = &rc.claim;
                if !c.hosts.is_empty() && !c.hosts.iter().any(|h| h.matches(host, port)) {
                    for (m, state) in &rc.methods {
                        if *state != ClaimState::Overridden && !elsewhere.contains(m) {
                            elsewhere.push(m.clone());
                        }
                    }
                    continue;
                }
                any_host = true;
                for (m, state) in &rc.methods {
                    if *state == ClaimState::Overridden {
                        continue;
                    }
                    if m == method {
                        return match state {
                            ClaimState::Conflicted => RouteOutcome::Conflict {
                                route: c.pattern.to_string(),
                                functions: entry
                                    .claims
                                    .iter()
                                    .filter(|o| {
                                        o.methods
                                            .iter()
                                            .any(|(om, s)| om == method && *s == ClaimState::Conflicted)
                                    })
                                    .map(|o| o.claim.function_name.clone())
                                    .collect(),
                            },
                            _ => RouteOutcome::Matched(RouteMatch {
                                claim: c,
                                params: extract_params(&c.pattern, segs),
                            }),
                        };
                    }
                    if !allow.contains(m) {
                        allow.push(m.clone());
                    }
                }
            }
            if any_host {
                allow.sort_by(|a, b| a.as_str().cmp(b.as_str()));
                return RouteOutcome::MethodNotAllowed { allow };
            }
            misdirected = true;
        }
        if !misdirected {
            RouteOutcome::NotFound
        } else if elsewhere.contains(method) {
            RouteOutcome::MisdirectedHost
        } else {
            elsewhere.sort_by(|a, b| a.as_str().cmp(b.as_str()));
            RouteOutcome::MethodNotAllowed { allow: elsewhere }
        }
    }
}

fn extract_params<'t>(pattern: &'t RoutePattern, segs: &[Cow<'_, str>]) -> Vec<(&'t str, String)> {
    let mut out = Vec::new();
    for (i, seg) in pattern.segments().iter().enumerate() {
        match seg {
            Segment::Static(_) => {}
            Segment::Param(n) => out.push((n.as_str(), segs[i].to_string())),
            Segment::CatchAll(n) => out.push((n.as_str(), segs[i..].join("/"))),
        }
    }
    out
}

/// Resolves claims that share one path shape. Per method: a claim with
/// `force_url` takes the method from every claim without it whose hosts
/// overlap; two remaining claims on overlapping hosts conflict.
fn resolve(group: Vec<RouteClaim>) -> (Vec<ResolvedClaim>, Vec<RouteConflict>) {
    let mut resolved: Vec<ResolvedClaim> = group
        .into_iter()
        .map(|claim| {
            let methods = claim
                .effective_methods()
                .into_iter()
                .map(|m| (m, ClaimState::Active))
                .collect();
            ResolvedClaim { claim, methods }
        })
        .collect();
    let overlap = |a: &ResolvedClaim, b: &ResolvedClaim, m: &Method| {
        a.claim.function != b.claim.function
            && host_lists_overlap(&a.claim.hosts, &b.claim.hosts)
            && a.methods.iter().any(|(x, _)| x == m)
            && b.methods.iter().any(|(x, _)| x == m)
    };
    // Pass 1: forced claims take methods from unforced overlapping ones.
    for i in 0..resolved.len() {
        if resolved[i].claim.force_url {
            continue;
        }
        for k in 0..resolved[i].methods.len() {
            let m = resolved[i].methods[k].0.clone();
            let taken = (0..resolved.len())
                .any(|j| j != i && resolved[j].claim.force_url && overlap(&resolved[i], &resolved[j], &m));
            if taken {
                resolved[i].methods[k].1 = ClaimState::Overridden;
            }
        }
    }
    // Pass 2: what is still active and overlaps conflicts.
    let route_name = resolved
        .first()
        .map(|r| r.claim.pattern.to_string())
        .unwrap_or_default();
    let mut conflicts: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    for i in 0..resolved.len() {
        for k in 0..resolved[i].methods.len() {
            let (m, state) = resolved[i].methods[k].clone();
            if state == ClaimState::Overridden {
                continue;
            }
            for j in 0..resolved.len() {
                let other_active = resolved[j]
                    .methods
                    .iter()
                    .any(|(x, s)| *x == m && *s != ClaimState::Overridden);
                if j == i || !other_active || !overlap(&resolved[i], &resolved[j], &m) {
                    continue;
                }
                resolved[i].methods[k].1 = ClaimState::Conflicted;
                let entry = conflicts.entry((route_name.clone(), m.to_string())).or_default();
                for name in [&resolved[i].claim.function_name, &resolved[j].claim.function_name] {
                    if !entry.contains(name) {
                        entry.push(name.clone());
                    }
                }
            }
        }
    }
    let conflicts = conflicts
        .into_iter()
        .map(|((route, method), mut functions)| {
            functions.sort();
            RouteConflict {
                route,
                method,
                functions,
            }
        })
        .collect();
    (resolved, conflicts)
}
