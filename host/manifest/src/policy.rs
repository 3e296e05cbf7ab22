//! Per-function limits: the fields a manifest may set, the host-wide
//! defaults, and the cascade that resolves them.

use std::collections::BTreeMap;

use serde::Serialize;

use super::outbound::OutboundRule;
use crate::auth::AuthSettings;
use crate::cors::CorsSettings;

/// Limits as written in one `fn.config.json` (function or overlay): every
/// field optional, already range-checked.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PolicyOverlay {
    /// Wall-clock budget of one invocation, in ms.
    pub timeout_ms: Option<u64>,
    /// Invocations of the function at once; 0 means no per-function limit.
    pub max_concurrency: Option<u32>,
    /// Requests that may wait for a slot.
    pub max_queue: Option<u32>,
    /// How long a queued request may wait for a slot, in ms.
    pub queue_timeout_ms: Option<u64>,
    /// The status (429 or 503) answered when the queue is full or the wait runs out.
    pub overflow_status: Option<u16>,
    /// Largest request body accepted, in bytes.
    pub max_body_bytes: Option<u64>,
    /// Largest response body sent, in bytes.
    pub max_response_bytes: Option<u64>,
    /// Cap on all linear memories of one instance together, in bytes.
    pub max_memory_bytes: Option<u64>,
    /// Requests one instance may serve in sequence.
    pub instance_reuse: Option<u32>,
    /// How long a reused instance may wait idle, in ms.
    pub instance_idle_ms: Option<u64>,
    /// Requests one `wasi:http@0.3` instance may serve at once.
    pub instance_concurrency: Option<u32>,
    /// Destinations the guest may call; a set list replaces the one below it.
    pub allowed_outbound_hosts: Option<Vec<OutboundRule>>,
    /// How callers authenticate; replaces the one below it.
    pub auth: Option<AuthSettings>,
    /// Cross-origin rules; replace the ones below them.
    pub cors: Option<CorsSettings>,
    /// `wasi:config` values; merged key by key with the ones below.
    pub config: Option<BTreeMap<String, String>>,
    /// Secrets the guest may read; a set list replaces the one below it.
    pub secrets: Option<Vec<String>>,
    /// Key-value stores the guest may open; a set list replaces the one below it.
    pub key_value_stores: Option<Vec<String>>,
}

impl PolicyOverlay {
    /// `self` with every field that `upper` sets replaced by `upper`'s value.
    pub fn overlaid_by(&self, upper: &PolicyOverlay) -> PolicyOverlay {
        PolicyOverlay {
            timeout_ms: upper.timeout_ms.or(self.timeout_ms),
            max_concurrency: upper.max_concurrency.or(self.max_concurrency),
            max_queue: upper.max_queue.or(self.max_queue),
            queue_timeout_ms: upper.queue_timeout_ms.or(self.queue_timeout_ms),
            overflow_status: upper.overflow_status.or(self.overflow_status),
            max_body_bytes: upper.max_body_bytes.or(self.max_body_bytes),
            max_response_bytes: upper.max_response_bytes.or(self.max_response_bytes),
            max_memory_bytes: upper.max_memory_bytes.or(self.max_memory_bytes),
            instance_reuse: upper.instance_reuse.or(self.instance_reuse),
            instance_idle_ms: upper.instance_idle_ms.or(self.instance_idle_ms),
            instance_concurrency: upper.instance_concurrency.or(self.instance_concurrency),
            allowed_outbound_hosts: upper
                .allowed_outbound_hosts
                .clone()
                .or_else(|| self.allowed_outbound_hosts.clone()),
            auth: upper.auth.clone().or_else(|| self.auth.clone()),
            cors: upper.cors.clone().or_else(|| self.cors.clone()),
            config: merged(self.config.as_ref(), upper.config.as_ref()),
            secrets: upper.secrets.clone().or_else(|| self.secrets.clone()),
            key_value_stores: upper.key_value_stores.clone().or_else(|| self.key_value_stores.clone()),
        }
    }
}

/// The effective limits of one function.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Policy {
    /// Wall-clock budget of one invocation in ms, response streaming included.
    pub timeout_ms: u64,
    /// Invocations of the function at once.
    /// 0 means no per-function limit (the host-wide limit still applies).
    pub max_concurrency: u32,
    /// Requests that may wait in the FIFO queue for a slot.
    pub max_queue: u32,
    /// How long a queued request may wait for a slot, in ms.
    pub queue_timeout_ms: u64,
    /// The status (429 or 503, with `Retry-After`) answered when the queue is full or the wait runs out.
    pub overflow_status: u16,
    /// Largest request body accepted, in bytes; more is answered `413`.
    pub max_body_bytes: u64,
    /// Largest response body sent, in bytes.
    pub max_response_bytes: u64,
    /// Cap on all linear memories of one instance together, in bytes:
    /// across all the requests it serves, when it serves several.
    pub max_memory_bytes: u64,
    /// Requests one instance may serve in sequence before it is dropped;
    /// 1 (the default) gives every request an instance of its own.
    pub instance_reuse: u32,
    /// How long an instance kept for reuse may wait for its next request, in ms.
    pub instance_idle_ms: u64,
    /// Requests one instance of a `wasi:http@0.3` component may serve at
    /// once; 1 (the default) serves them one at a time. At most
    /// `instance_reuse`.
    pub instance_concurrency: u32,
    /// Destinations the guest may send HTTP requests to; empty denies every one.
    #[serde(serialize_with = "serialize_rules")]
    pub allowed_outbound_hosts: Vec<OutboundRule>,
    /// How callers authenticate (`None`: anyone may call).
    pub auth: Option<AuthSettings>,
    /// Cross-origin rules (`None`: the host adds no CORS headers).
    pub cors: Option<CorsSettings>,
    /// Values the guest reads through `wasi:config/store`.
    pub config: BTreeMap<String, String>,
    /// Names of the secrets the guest may read through `wasi:config/store`.
    pub secrets: Vec<String>,
    /// Names of the key-value stores the guest may open through `wasi:keyvalue`.
    pub key_value_stores: Vec<String>,
}

/// `lower`'s keys with `upper`'s added or replacing them.
fn merged(
    lower: Option<&BTreeMap<String, String>>,
    upper: Option<&BTreeMap<String, String>>,
) -> Option<BTreeMap<String, String>> {
    match (lower, upper) {
        (None, None) => None,
        (l, u) => {
            let mut m = l.cloned().unwrap_or_default();
            m.extend(u.into_iter().flatten().map(|(k, v)| (k.clone(), v.clone())));
            Some(m)
        }
    }
}

fn serialize_rules<S: serde::Serializer>(rules: &[OutboundRule], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(rules.iter().map(|r| r.to_string()))
}

impl Default for Policy {
    /// The documented defaults (see `docs/manifest.md`).
    fn default() -> Self {
        Policy {
            timeout_ms: 30_000,
            max_concurrency: 0,
            max_queue: 64,
            queue_timeout_ms: 10_000,
            overflow_status: 429,
            max_body_bytes: 10 * 1024 * 1024,
            max_response_bytes: 100 * 1024 * 1024,
            max_memory_bytes: 128 * 1024 * 1024,
            instance_reuse: 1,
            instance_idle_ms: 60_000,
            instance_concurrency: 1,
            allowed_outbound_hosts: Vec::new(),
            auth: None,
            cors: None,
            config: BTreeMap::new(),
            secrets: Vec::new(),
            key_value_stores: Vec::new(),
        }
    }
}

impl Policy {
    /// These limits with an overlay applied.
    pub fn with(&self, o: &PolicyOverlay) -> Policy {
        Policy {
            timeout_ms: o.timeout_ms.unwrap_or(self.timeout_ms),
            max_concurrency: o.max_concurrency.unwrap_or(self.max_concurrency),
            max_queue: o.max_queue.unwrap_or(self.max_queue),
            queue_timeout_ms: o.queue_timeout_ms.unwrap_or(self.queue_timeout_ms),
            overflow_status: o.overflow_status.unwrap_or(self.overflow_status),
            max_body_bytes: o.max_body_bytes.unwrap_or(self.max_body_bytes),
            max_response_bytes: o.max_response_bytes.unwrap_or(self.max_response_bytes),
            max_memory_bytes: o.max_memory_bytes.unwrap_or(self.max_memory_bytes),
            instance_reuse: o.instance_reuse.unwrap_or(self.instance_reuse),
            instance_idle_ms: o.instance_idle_ms.unwrap_or(self.instance_idle_ms),
            instance_concurrency: o.instance_concurrency.unwrap_or(self.instance_concurrency),
            allowed_outbound_hosts: o
                .allowed_outbound_hosts
                .clone()
                .unwrap_or_else(|| self.allowed_outbound_hosts.clone()),
            auth: o.auth.clone().or_else(|| self.auth.clone()),
            cors: o.cors.clone().or_else(|| self.cors.clone()),
            config: merged(Some(&self.config), o.config.as_ref()).unwrap_or_default(),
            secrets: o.secrets.clone().unwrap_or_else(|| self.secrets.clone()),
            key_value_stores: o
                .key_value_stores
                .clone()
                .unwrap_or_else(|| self.key_value_stores.clone()),
        }
    }
}

/// Allowed ranges, shared by manifest parsing, CLI flags and the docs.
pub mod limits {
    /// Inclusive range of `timeout_ms`, in ms (up to one hour).
    pub const TIMEOUT_MS: (u64, u64) = (1, 3_600_000);
    /// Inclusive range of `max_concurrency`; 0 means no per-function limit.
    pub const MAX_CONCURRENCY: (u64, u64) = (0, 100_000);
    /// Inclusive range of `max_queue`, in waiting requests.
    pub const MAX_QUEUE: (u64, u64) = (0, 100_000);
    /// Inclusive range of `queue_timeout_ms`, in ms (up to one hour).
    pub const QUEUE_TIMEOUT_MS: (u64, u64) = (1, 3_600_000);
    /// Inclusive range of `max_body_bytes`, in bytes (up to 1 TiB).
    pub const MAX_BODY_BYTES: (u64, u64) = (0, 1 << 40);
    /// Inclusive range of `max_response_bytes`, in bytes (up to 1 TiB).
    pub const MAX_RESPONSE_BYTES: (u64, u64) = (1, 1 << 40);
    /// Inclusive range of `max_memory_bytes`, in bytes: one wasm page to 4 GiB.
    pub const MAX_MEMORY_BYTES: (u64, u64) = (65_536, 1 << 32);
    /// Inclusive range of `instance_reuse`, in requests per instance.
    pub const INSTANCE_REUSE: (u64, u64) = (1, 1_000_000);
    /// Inclusive range of `instance_idle_ms`, in ms (up to one hour).
    pub const INSTANCE_IDLE_MS: (u64, u64) = (1, 3_600_000);
    /// Inclusive range of `instance_concurrency`, in requests at once.
    pub const INSTANCE_CONCURRENCY: (u64, u64) = (1, 1_000);
    /// The statuses `overflow_status` may be.
    pub const OVERFLOW_STATUS: [u16; 2] = [429, 503];
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cascade_upper_wins_field_by_field() {
        let root = PolicyOverlay {
            timeout_ms: Some(100),
            max_queue: Some(3),
            ..Default::default()
        };
        let leaf = PolicyOverlay {
            timeout_ms: Some(200),
            allowed_outbound_hosts: Some(vec![OutboundRule::parse("https://a.com").unwrap()]),
            ..Default::default()
        };
        let merged = root.overlaid_by(&leaf);
        assert_eq!(merged.timeout_ms, Some(200));
        assert_eq!(merged.max_queue, Some(3));
        let p = Policy::default().with(&merged);
        assert_eq!(p.timeout_ms, 200);
        assert_eq!(p.max_queue, 3);
        assert_eq!(p.max_body_bytes, Policy::default().max_body_bytes);
        assert_eq!(p.allowed_outbound_hosts.len(), 1);
        // `config` merges key by key, the upper's keys winning; `secrets`
        // and `key_value_stores` replace.
        let root = PolicyOverlay {
            config: Some([("a".to_string(), "1".to_string()), ("b".into(), "2".into())].into()),
            secrets: Some(vec!["x".into()]),
            key_value_stores: Some(vec!["default".into(), "cache".into()]),
            ..Default::default()
        };
        let leaf = PolicyOverlay {
            config: Some([("b".to_string(), "3".to_string())].into()),
            secrets: Some(vec!["y".into()]),
            ..Default::default()
        };
        let p = Policy::default().with(&root.overlaid_by(&leaf));
        assert_eq!(
            p.config,
            [("a".to_string(), "1".to_string()), ("b".into(), "3".into())].into()
        );
        assert_eq!(p.secrets, ["y"]);
        assert_eq!(p.key_value_stores, ["default", "cache"], "kept from below");
        let own = PolicyOverlay {
            key_value_stores: Some(vec!["sessions".into()]),
            ..Default::default()
        };
        let p = Policy::default().with(&root.overlaid_by(&leaf).overlaid_by(&own));
        assert_eq!(p.key_value_stores, ["sessions"]);
        // An unset field keeps what is below it.
        assert_eq!(Policy::default().with(&PolicyOverlay::default()), Policy::default());
    }
}
