//! `allowed_outbound_hosts` entries: `scheme://host[:port]`.

use std::fmt;
use std::net::IpAddr;

/// One allowed destination for outgoing HTTP requests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboundRule {
    scheme: Option<String>,
    host: OutboundHost,
    port: Option<u16>,
    text: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum OutboundHost {
    Any,
    Exact(String),
    Subdomains(String),
}

/// Why an `allowed_outbound_hosts` entry was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid entry `{entry}` in `allowed_outbound_hosts`: {reason} (expected `scheme://host[:port]` with scheme `http`, `https` or `*`, host a name, an IP, `*.domain` or `*`, port a number or `*`)"
)]
pub struct OutboundRuleError {
    entry: String,
    reason: &'static str,
}

impl OutboundRule {
    /// Parses one entry.
    pub fn parse(entry: &str) -> Result<Self, OutboundRuleError> {
        let err = |reason| OutboundRuleError {
            entry: entry.to_string(),
            reason,
        };
        let lower = entry.trim().to_ascii_lowercase();
        let (scheme, rest) = lower.split_once("://").ok_or_else(|| err("the scheme is missing"))?;
        let scheme = match scheme {
            "http" | "https" => Some(scheme.to_string()),
            "*" => None,
            _ => return Err(err("unsupported scheme")),
        };
        if rest.contains('/') || rest.is_empty() {
            return Err(err("only scheme, host and port are allowed"));
        }
        let (host, port) = if rest.starts_with('[') {
            let end = rest.find(']').ok_or_else(|| err("`[` is not closed"))?;
            (&rest[..=end], rest[end + 1..].strip_prefix(':'))
        } else {
            match rest.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (rest, None),
            }
        };
        let port = match port {
            None => match scheme.as_deref() {
                Some("http") => Some(80),
                Some("https") => Some(443),
                _ => return Err(err("a port is required when the scheme is `*`")),
            },
            Some("*") => None,
            Some(p) => Some(
                p.parse()
                    .map_err(|_| err("the port is not a number from 0 to 65535 or `*`"))?,
            ),
        };
        let host = if host == "*" {
            OutboundHost::Any
        } else if let Some(d) = host.strip_prefix("*.") {
            if d.is_empty() || d.contains('*') {
                return Err(err("bad wildcard host"));
            }
            OutboundHost::Subdomains(format!(".{d}"))
        } else if host.is_empty() || host.contains('*') {
            return Err(err("bad host"));
        } else {
            OutboundHost::Exact(host.trim_start_matches('[').trim_end_matches(']').to_string())
        };
        Ok(Self {
            scheme,
            host,
            port,
            text: entry.trim().to_string(),
        })
    }

    /// Whether a request to `scheme://host:port` is allowed by this rule.
    /// `host` is lowercase, without brackets.
    pub fn allows(&self, scheme: &str, host: &str, port: u16) -> bool {
        if self.scheme.as_deref().is_some_and(|s| s != scheme) || self.port.is_some_and(|p| p != port) {
            return false;
        }
        match &self.host {
            OutboundHost::Any => true,
            OutboundHost::Exact(h) => h == host,
            OutboundHost::Subdomains(s) => host.len() > s.len() && host.ends_with(s.as_str()),
        }
    }

    /// Whether everything `other` allows, this rule allows too (a tenant's
    /// ceiling covering a function's entry).
    pub fn covers(&self, other: &OutboundRule) -> bool {
        let scheme = self.scheme.is_none() || self.scheme == other.scheme;
        let port = self.port.is_none() || self.port == other.port;
        let host = match (&self.host, &other.host) {
            (OutboundHost::Any, _) => true,
            (OutboundHost::Exact(a), OutboundHost::Exact(b)) => a == b,
            (OutboundHost::Subdomains(s), OutboundHost::Exact(h)) => h.len() > s.len() && h.ends_with(s.as_str()),
            (OutboundHost::Subdomains(s), OutboundHost::Subdomains(t)) => t.ends_with(s.as_str()),
            _ => false,
        };
        scheme && port && host
    }

    /// Whether this rule names `host` exactly (not through a wildcard):
    /// needed before a loopback, link-local or private address is allowed.
    pub fn names_exactly(&self, host: &str) -> bool {
        matches!(&self.host, OutboundHost::Exact(h) if h == host)
    }
}

impl fmt::Display for OutboundRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// Loopback, link-local, private, unspecified and similar addresses that an
/// outbound request may reach only when an entry names them exactly.
pub fn is_internal_address(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.octets()[0] == 0
                || (v4.octets()[0] == 100 && (v4.octets()[1] & 0xc0) == 64) // 100.64/10 shared
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_internal_address(IpAddr::V4(v4));
            }
            let seg = v6.segments();
            // NAT64's well-known prefix (64:ff9b::/96) reaches the IPv4
            // address in its last 32 bits.
            if seg[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
                let [a, b] = [seg[6], seg[7]];
                let v4 = std::net::Ipv4Addr::new((a >> 8) as u8, a as u8, (b >> 8) as u8, b as u8);
                return is_internal_address(IpAddr::V4(v4));
            }
            let seg0 = seg[0];
            v6.is_loopback()
                || v6.is_unspecified()
                || (seg0 & 0xfe00) == 0xfc00 // unique local
                || (seg0 & 0xffc0) == 0xfe80 // link-local
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn covers() {
        let r = |s: &str| OutboundRule::parse(s).unwrap();
        assert!(r("https://*.acme.example").covers(&r("https://api.acme.example")));
        assert!(r("https://*.acme.example").covers(&r("https://*.eu.acme.example")));
        assert!(!r("https://*.acme.example").covers(&r("https://acme.example")));
        assert!(!r("https://*.acme.example").covers(&r("http://api.acme.example")));
        assert!(r("*://*:*").covers(&r("http://x.example:8080")));
        assert!(!r("https://x.example").covers(&r("https://*:443")));
        assert!(!r("https://x.example:443").covers(&r("https://x.example:*")));
    }

    #[test]
    fn parse_and_allow() {
        let cases = [
            ("https://api.example.com", "https", "api.example.com", 443, true),
            ("https://api.example.com", "http", "api.example.com", 80, false),
            ("https://api.example.com", "https", "api.example.com", 8443, false),
            ("http://127.0.0.1:8080", "http", "127.0.0.1", 8080, true),
            ("http://127.0.0.1:*", "http", "127.0.0.1", 1, true),
            ("*://*.example.com:*", "https", "a.example.com", 1, true),
            ("*://*.example.com:*", "https", "example.com", 1, false),
            ("*://*:*", "http", "anything", 9, true),
            ("http://[::1]:80", "http", "::1", 80, true),
            ("HTTPS://API.Example.com", "https", "api.example.com", 443, true),
        ];
        for (rule, scheme, host, port, want) in cases {
            let r = OutboundRule::parse(rule).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(r.allows(scheme, host, port), want, "{rule} vs {scheme}://{host}:{port}");
        }
    }

    #[test]
    fn refuses_bad_entries() {
        for bad in [
            "example.com",
            "ftp://x.com",
            "http://",
            "http://x.com/path",
            "*://x.com",
            "http://x:99999",
            "http://a*b.com",
            "http://*.",
        ] {
            let e = OutboundRule::parse(bad).expect_err(bad);
            assert!(e.to_string().contains(&format!("`{bad}`")), "{e}");
        }
    }

    #[test]
    fn internal_ranges() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.1.1",
            "0.0.0.0",
            "::1",
            "fe80::1",
            "fd00::1",
            "::ffff:127.0.0.1",
            "100.64.0.1",
            "64:ff9b::7f00:1",
            "64:ff9b::a00:1",
        ] {
            assert!(is_internal_address(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["8.8.8.8", "2001:db8::1", "172.32.0.1", "64:ff9b::808:808"] {
            assert!(!is_internal_address(ip.parse().unwrap()), "{ip}");
        }
    }
}
