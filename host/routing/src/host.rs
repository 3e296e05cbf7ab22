//! `allow_hosts` rules: which `Host` a route answers.

use std::borrow::Cow;
use std::fmt;

/// One entry of `invoke.allow_hosts`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HostRule {
    kind: HostKind,
    port: Option<u16>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum HostKind {
    /// `api.example.com`
    Exact(String),
    /// `*.example.org`: stored as `.example.org`; matches any subdomain.
    Subdomains(String),
}

/// Why an `allow_hosts` entry was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid host `{entry}` in `invoke.allow_hosts`: {reason} (expected `host`, `host:port` or `*.domain`)")]
pub struct HostRuleError {
    entry: String,
    reason: &'static str,
}

fn valid_host_chars(host: &str) -> bool {
    if let Some(inner) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        return !inner.is_empty() && inner.bytes().all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.');
    }
    !host.is_empty()
        && host.split('.').all(|label| {
            !label.is_empty() && label.len() <= 63 && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

/// Splits `host[:port]` (with `[v6]:port` support) into lowercase host and port.
pub fn split_host_port(value: &str) -> Option<(Cow<'_, str>, Option<u16>)> {
    let value = value.trim();
    let (host, port) = if value.starts_with('[') {
        let end = value.find(']')?;
        let rest = &value[end + 1..];
        match rest.strip_prefix(':') {
            Some(p) => (&value[..=end], Some(p.parse().ok()?)),
            None if rest.is_empty() => (&value[..=end], None),
            None => return None,
        }
    } else {
        match value.rsplit_once(':') {
            Some((h, p)) => (h, Some(p.parse().ok()?)),
            None => (value, None),
        }
    };
    // Host names compare case-insensitively; most clients send them lower-case already.
    let host = if host.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(host.to_ascii_lowercase())
    } else {
        Cow::Borrowed(host)
    };
    Some((host, port))
}

impl HostRule {
    /// Parses `host`, `host:port` or `*.domain[:port]`.
    pub fn parse(entry: &str) -> Result<Self, HostRuleError> {
        let err = |reason| HostRuleError {
            entry: entry.to_string(),
            reason,
        };
        let (host, port) = split_host_port(entry).ok_or_else(|| err("the port is not a number from 0 to 65535"))?;
        let kind = if let Some(domain) = host.strip_prefix("*.") {
            if !valid_host_chars(domain) {
                return Err(err("the domain after `*.` is not a valid host name"));
            }
            HostKind::Subdomains(format!(".{domain}"))
        } else {
            if host.contains('*') {
                return Err(err(
                    "`*` is only allowed as the whole first label, as in `*.example.org`",
                ));
            }
            if !valid_host_chars(&host) {
                return Err(err("not a valid host name"));
            }
            HostKind::Exact(host.into_owned())
        };
        Ok(Self { kind, port })
    }

    /// The name the rule is for: the host, or the domain of `*.domain`.
    pub fn name(&self) -> &str {
        match &self.kind {
            HostKind::Exact(h) => h,
            HostKind::Subdomains(s) => &s[1..],
        }
    }

    /// Whether the rule is `*.domain`: any subdomain of [`name`](Self::name), not the domain itself.
    pub fn is_subdomains(&self) -> bool {
        matches!(self.kind, HostKind::Subdomains(_))
    }

    /// The port the rule requires; `None` for any port.
    pub fn port(&self) -> Option<u16> {
        self.port
    }

    /// Whether a request for `host` (lowercase, no port) on `port` is allowed.
    pub fn matches(&self, host: &str, port: Option<u16>) -> bool {
        if let Some(want) = self.port
            && Some(want) != port
        {
            return false;
        }
        match &self.kind {
            HostKind::Exact(h) => h == host,
            HostKind::Subdomains(suffix) => host.len() > suffix.len() && host.ends_with(suffix.as_str()),
        }
    }

    /// Whether some request host could match both rules.
    pub fn overlaps(&self, other: &HostRule) -> bool {
        if let (Some(a), Some(b)) = (self.port, other.port)
            && a != b
        {
            return false;
        }
        match (&self.kind, &other.kind) {
            (HostKind::Exact(a), HostKind::Exact(b)) => a == b,
            (HostKind::Exact(h), HostKind::Subdomains(s)) | (HostKind::Subdomains(s), HostKind::Exact(h)) => {
                h.len() > s.len() && h.ends_with(s.as_str())
            }
            (HostKind::Subdomains(a), HostKind::Subdomains(b)) => a.ends_with(b.as_str()) || b.ends_with(a.as_str()),
        }
    }
}

/// Whether two `allow_hosts` lists can both answer one request; an empty
/// list answers every host.
pub(crate) fn host_lists_overlap(a: &[HostRule], b: &[HostRule]) -> bool {
    if a.is_empty() || b.is_empty() {
        return true;
    }
    a.iter().any(|x| b.iter().any(|y| x.overlaps(y)))
}

impl fmt::Display for HostRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            HostKind::Exact(h) => f.write_str(h)?,
            HostKind::Subdomains(s) => write!(f, "*{s}")?,
        }
        if let Some(p) = self.port {
            write!(f, ":{p}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(s: &str) -> HostRule {
        HostRule::parse(s).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn matching() {
        let cases = [
            ("api.example.com", "api.example.com", None, true),
            ("api.example.com", "api.example.com", Some(8080), true),
            ("API.Example.com", "api.example.com", None, true),
            ("api.example.com:8080", "api.example.com", Some(8080), true),
            ("api.example.com:8080", "api.example.com", Some(80), false),
            ("api.example.com:8080", "api.example.com", None, false),
            ("*.example.org", "a.example.org", None, true),
            ("*.example.org", "a.b.example.org", None, true),
            ("*.example.org", "example.org", None, false),
            ("*.example.org", "badexample.org", None, false),
            ("[::1]:3000", "[::1]", Some(3000), true),
            ("127.0.0.1", "127.0.0.1", Some(1), true),
        ];
        for (r, host, port, want) in cases {
            assert_eq!(rule(r).matches(host, port), want, "{r} vs {host}:{port:?}");
        }
    }

    #[test]
    fn parts() {
        let r = rule("*.Example.org:8443");
        assert_eq!(
            (r.name(), r.is_subdomains(), r.port()),
            ("example.org", true, Some(8443))
        );
        let r = rule("api.example.com");
        assert_eq!(
            (r.name(), r.is_subdomains(), r.port()),
            ("api.example.com", false, None)
        );
        let r = rule("[::1]:3000");
        assert_eq!((r.name(), r.is_subdomains(), r.port()), ("[::1]", false, Some(3000)));
    }

    #[test]
    fn refuses_bad_entries() {
        for bad in [
            "",
            "a..b",
            "*",
            "*.",
            "a*.b.com",
            "ex ample.com",
            "host:99999",
            "host:x",
            "*.*.com",
        ] {
            let e = HostRule::parse(bad).expect_err(bad);
            assert!(e.to_string().contains(&format!("`{bad}`")), "{e}");
        }
    }

    #[test]
    fn overlap() {
        let cases = [
            ("a.com", "a.com", true),
            ("a.com", "b.com", false),
            ("a.com:1", "a.com:2", false),
            ("a.com:1", "a.com", true),
            ("*.a.com", "x.a.com", true),
            ("*.a.com", "a.com", false),
            ("*.a.com", "*.x.a.com", true),
            ("*.a.com", "*.b.com", false),
        ];
        for (a, b, want) in cases {
            assert_eq!(rule(a).overlaps(&rule(b)), want, "{a} ~ {b}");
            assert_eq!(rule(b).overlaps(&rule(a)), want, "{b} ~ {a}");
        }
        assert!(host_lists_overlap(&[], &[rule("a.com")]));
        assert!(!host_lists_overlap(&[rule("a.com")], &[rule("b.com")]));
    }

    #[test]
    fn split() {
        assert_eq!(split_host_port("Ex.com:80"), Some(("ex.com".into(), Some(80))));
        assert_eq!(split_host_port("ex.com"), Some(("ex.com".into(), None)));
        assert_eq!(split_host_port("[::1]:8"), Some(("[::1]".into(), Some(8))));
        assert_eq!(split_host_port("ex.com:notaport"), None);
        assert_eq!(split_host_port(" [::1] "), Some(("[::1]".into(), None)));
        assert_eq!(split_host_port("[::1]x"), None);
        // Lower-case names are borrowed, others lowered into a new string.
        assert!(matches!(
            split_host_port("ex.com:1"),
            Some((Cow::Borrowed("ex.com"), Some(1)))
        ));
        assert!(matches!(split_host_port("EX.com"), Some((Cow::Owned(h), None)) if h == "ex.com"));
    }
}
