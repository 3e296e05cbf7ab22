//! Route patterns: `/users/{id}/files/{...path}`.

use std::fmt;

/// One segment of a route pattern.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Segment {
    /// Matches exactly this (percent-decoded) text.
    Static(String),
    /// `{name}`: matches one non-empty segment.
    Param(String),
    /// `{...name}`: matches one or more segments; always last.
    CatchAll(String),
}

/// A parsed route pattern such as `/users/{id}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RoutePattern {
    segments: Vec<Segment>,
}

/// Why a route pattern was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PatternError {
    /// The route does not start with `/`.
    #[error("route `{route}` must start with `/`")]
    NoLeadingSlash {
        /// The route as written.
        route: String,
    },
    /// The route has `//`: a segment with no text.
    #[error("route `{route}` has an empty segment (`//`)")]
    EmptySegment {
        /// The route as written.
        route: String,
    },
    /// A segment is `.` or `..`, which no request path reaches.
    #[error("route `{route}`: segment `{segment}` is a dot segment, which is not allowed")]
    DotSegment {
        /// The route as written.
        route: String,
        /// The offending segment.
        segment: String,
    },
    /// A segment has an unclosed brace, or mixes text and a `{param}`.
    #[error("route `{route}`: segment `{segment}` is not closed or mixes text and braces")]
    BadBraces {
        /// The route as written.
        route: String,
        /// The offending segment.
        segment: String,
    },
    /// A parameter name is empty, longer than 64 bytes or not of `A-Z a-z 0-9 _ -`.
    #[error("route `{route}`: parameter name `{name}` must be 1-64 characters of `A-Z a-z 0-9 _ -`")]
    BadParamName {
        /// The route as written.
        route: String,
        /// The refused name, without braces.
        name: String,
    },
    /// Two parameters (or catch-alls) of the route share a name.
    #[error("route `{route}`: parameter `{name}` appears twice")]
    DuplicateParam {
        /// The route as written.
        route: String,
        /// The repeated name.
        name: String,
    },
    /// A `{...name}` catch-all is followed by more segments.
    #[error("route `{route}`: catch-all `{{...{name}}}` must be the last segment")]
    CatchAllNotLast {
        /// The route as written.
        route: String,
        /// The catch-all's name.
        name: String,
    },
    /// The route is under `/_fn`, where the host serves its own endpoints.
    #[error("route `{route}`: reserved prefix `/_fn` belongs to the host")]
    Reserved {
        /// The route as written.
        route: String,
    },
    /// A static segment has a control character, so no request could ever match it.
    #[error(
        "route `{}`: segment `{}` has a control character, which no request path may have",
        route.escape_debug(),
        segment.escape_debug()
    )]
    ControlCharacter {
        /// The route as written.
        route: String,
        /// The offending segment.
        segment: String,
    },
}

/// Whether `name` may name a parameter: 1-64 bytes of ASCII letters, digits, `_` and `-`.
pub fn valid_param_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

impl RoutePattern {
    /// Parses a pattern written with `{param}` and `{...rest}` segments.
    ///
    /// A single trailing slash is insignificant (`/hello/` is `/hello`).
    pub fn parse(route: &str) -> Result<Self, PatternError> {
        let err_route = || route.to_string();
        let Some(rest) = route.strip_prefix('/') else {
            return Err(PatternError::NoLeadingSlash { route: err_route() });
        };
        if rest.starts_with('/') {
            return Err(PatternError::EmptySegment { route: err_route() });
        }
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        let mut segments = Vec::new();
        if !rest.is_empty() {
            for raw in rest.split('/') {
                segments.push(Self::parse_segment(route, raw)?);
            }
        }
        Self::from_segments(route, segments)
    }

    fn parse_segment(route: &str, raw: &str) -> Result<Segment, PatternError> {
        if raw.is_empty() {
            return Err(PatternError::EmptySegment {
                route: route.to_string(),
            });
        }
        if raw == "." || raw == ".." {
            return Err(PatternError::DotSegment {
                route: route.to_string(),
                segment: raw.to_string(),
            });
        }
        let bad = || PatternError::BadBraces {
            route: route.to_string(),
            segment: raw.to_string(),
        };
        if let Some(inner) = raw.strip_prefix('{') {
            let inner = inner.strip_suffix('}').ok_or_else(bad)?;
            if inner.contains(['{', '}']) {
                return Err(bad());
            }
            let (catch_all, name) = match inner.strip_prefix("...") {
                Some(name) => (true, name),
                None => (false, inner),
            };
            if !valid_param_name(name) {
                return Err(PatternError::BadParamName {
                    route: route.to_string(),
                    name: name.to_string(),
                });
            }
            return Ok(if catch_all {
                Segment::CatchAll(name.to_string())
            } else {
                Segment::Param(name.to_string())
            });
        }
        if raw.contains(['{', '}']) {
            return Err(bad());
        }
        Ok(Segment::Static(raw.to_string()))
    }

    /// Builds a pattern from segments, checking the same rules as [`parse`](Self::parse).
    pub fn from_segments(route: &str, segments: Vec<Segment>) -> Result<Self, PatternError> {
        let mut seen: Vec<&str> = Vec::new();
        for (i, seg) in segments.iter().enumerate() {
            match seg {
                // No request can name it: paths with control characters are refused.
                Segment::Static(text) if text.bytes().any(|b| b.is_ascii_control()) => {
                    return Err(PatternError::ControlCharacter {
                        route: route.to_string(),
                        segment: text.clone(),
                    });
                }
                Segment::Static(_) => {}
                Segment::Param(name) | Segment::CatchAll(name) => {
                    if seen.contains(&name.as_str()) {
                        return Err(PatternError::DuplicateParam {
                            route: route.to_string(),
                            name: name.clone(),
                        });
                    }
                    seen.push(name);
                    if matches!(seg, Segment::CatchAll(_)) && i + 1 != segments.len() {
                        return Err(PatternError::CatchAllNotLast {
                            route: route.to_string(),
                            name: name.clone(),
                        });
                    }
                }
            }
        }
        if matches!(segments.first(), Some(Segment::Static(s)) if s == "_fn") {
            return Err(PatternError::Reserved {
                route: route.to_string(),
            });
        }
        Ok(Self { segments })
    }

    /// The segments, in order.
    pub fn segments(&self) -> &[Segment] {
        &self.segments
    }

    /// How many segments are static text.
    pub fn static_count(&self) -> usize {
        self.segments.iter().filter(|s| matches!(s, Segment::Static(_))).count()
    }

    /// Whether the pattern ends in a catch-all.
    pub fn has_catch_all(&self) -> bool {
        matches!(self.segments.last(), Some(Segment::CatchAll(_)))
    }

    /// Whether every segment is static.
    pub fn is_static(&self) -> bool {
        self.static_count() == self.segments.len()
    }

    /// The pattern with parameter names erased: two patterns with the same
    /// shape match exactly the same paths and so claim the same route.
    pub fn shape(&self) -> String {
        let mut out = String::new();
        for seg in &self.segments {
            out.push('/');
            match seg {
                Segment::Static(s) => out.push_str(s),
                Segment::Param(_) => out.push_str("{}"),
                Segment::CatchAll(_) => out.push_str("{...}"),
            }
        }
        if out.is_empty() {
            out.push('/');
        }
        out
    }

    /// Names of the parameters, in order.
    pub fn param_names(&self) -> impl Iterator<Item = &str> {
        self.segments.iter().filter_map(|s| match s {
            Segment::Param(n) | Segment::CatchAll(n) => Some(n.as_str()),
            Segment::Static(_) => None,
        })
    }

    /// This pattern with `prefix` in front of it.
    pub fn join(prefix: &RoutePattern, suffix: &RoutePattern) -> Result<Self, PatternError> {
        let mut segments = prefix.segments.clone();
        segments.extend(suffix.segments.iter().cloned());
        let text = format!("{prefix}{suffix}");
        Self::from_segments(&text, segments)
    }
}

impl fmt::Display for RoutePattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.segments.is_empty() {
            return f.write_str("/");
        }
        for seg in &self.segments {
            match seg {
                Segment::Static(s) => write!(f, "/{s}")?,
                Segment::Param(n) => write!(f, "/{{{n}}}")?,
                Segment::CatchAll(n) => write!(f, "/{{...{n}}}")?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_good_patterns() {
        let cases = [
            ("/", "/", 0),
            ("/hello", "/hello", 1),
            ("/hello/", "/hello", 1),
            ("/users/{id}", "/users/{id}", 1),
            ("/files/{...path}", "/files/{...path}", 1),
            ("/a/{b}/c/{...d}", "/a/{b}/c/{...d}", 2),
            ("/café/{nom}", "/café/{nom}", 1),
            ("/v1/{user_id}/x-y", "/v1/{user_id}/x-y", 2),
        ];
        for (input, shown, statics) in cases {
            let p = RoutePattern::parse(input).unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(p.to_string(), shown, "{input}");
            assert_eq!(p.static_count(), statics, "{input}");
        }
    }

    #[test]
    fn refuses_bad_patterns() {
        type Check = fn(&PatternError) -> bool;
        let cases: &[(&str, Check)] = &[
            ("hello", |e| matches!(e, PatternError::NoLeadingSlash { .. })),
            ("", |e| matches!(e, PatternError::NoLeadingSlash { .. })),
            ("/a//b", |e| matches!(e, PatternError::EmptySegment { .. })),
            ("//", |e| matches!(e, PatternError::EmptySegment { .. })),
            ("/a/../b", |e| matches!(e, PatternError::DotSegment { .. })),
            ("/a/./b", |e| matches!(e, PatternError::DotSegment { .. })),
            ("/users/{id", |e| matches!(e, PatternError::BadBraces { .. })),
            ("/users/id}", |e| matches!(e, PatternError::BadBraces { .. })),
            ("/users/x{id}", |e| matches!(e, PatternError::BadBraces { .. })),
            ("/users/{{id}}", |e| matches!(e, PatternError::BadBraces { .. })),
            ("/users/{}", |e| matches!(e, PatternError::BadParamName { .. })),
            ("/users/{a b}", |e| matches!(e, PatternError::BadParamName { .. })),
            ("/users/{...}", |e| matches!(e, PatternError::BadParamName { .. })),
            ("/{id}/{id}", |e| matches!(e, PatternError::DuplicateParam { .. })),
            ("/{...p}/x", |e| matches!(e, PatternError::CatchAllNotLast { .. })),
            ("/_fn/health", |e| matches!(e, PatternError::Reserved { .. })),
        ];
        for (input, check) in cases {
            let err = RoutePattern::parse(input).expect_err(input);
            assert!(check(&err), "{input}: unexpected {err:?}");
            assert!(err.to_string().contains(&format!("`{input}`")), "{err}");
        }
    }

    #[test]
    fn refuses_control_characters_no_request_can_have() {
        // Found by the property test: such a route parsed, and could never be served.
        let err = RoutePattern::parse("/ex\t:s").unwrap_err();
        assert!(matches!(err, PatternError::ControlCharacter { .. }), "{err:?}");
        assert_eq!(
            err.to_string(),
            "route `/ex\\t:s`: segment `ex\\t:s` has a control character, which no request path may have"
        );
        let folder = RoutePattern::from_segments("a\u{7f}", vec![Segment::Static("a\u{7f}".into())]);
        assert!(matches!(folder, Err(PatternError::ControlCharacter { .. })));
    }

    #[test]
    fn shape_ignores_param_names() {
        let a = RoutePattern::parse("/users/{id}").unwrap();
        let b = RoutePattern::parse("/users/{user}").unwrap();
        let c = RoutePattern::parse("/users/{...rest}").unwrap();
        assert_eq!(a.shape(), b.shape());
        assert_ne!(a.shape(), c.shape());
        assert_eq!(RoutePattern::parse("/").unwrap().shape(), "/");
    }

    #[test]
    fn join_checks_the_result() {
        let users = RoutePattern::parse("/users").unwrap();
        let id = RoutePattern::parse("/{id}").unwrap();
        assert_eq!(RoutePattern::join(&users, &id).unwrap().to_string(), "/users/{id}");
        let root = RoutePattern::parse("/").unwrap();
        assert_eq!(RoutePattern::join(&users, &root).unwrap().to_string(), "/users");
        let dup = RoutePattern::parse("/x/{id}").unwrap();
        assert!(RoutePattern::join(&dup, &id).is_err());
    }
}
