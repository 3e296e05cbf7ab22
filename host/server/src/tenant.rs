//! Tenants: who owns a set of functions, the hosts they are served on and
//! the quotas they run under.
//!
//! Every host serves the tenant `default` (the functions directory and
//! what `/_fn/functions/…` deploys) and any number of others, defined
//! through the admin API (`/_fn/tenants/{id}`, kept in the state
//! directory) or fixed by the operator's `--tenants FILE`. A request goes
//! to the tenant whose hosts match its `Host`, then through that tenant's
//! own route table; a host no tenant claims belongs to `default`.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use serde::{Deserialize, Serialize};
use wasmfn_manifest::OutboundRule;

/// The tenant of the functions directory and of hosts no other tenant claims.
pub const DEFAULT_TENANT: &str = "default";

/// A tenant as defined (the body of `PUT /_fn/tenants/{id}`, an entry of `--tenants FILE`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantSettings {
    /// Host names served (`api.acme.example`, `*.acme.example`); the
    /// tenant `default` has none (it serves every unclaimed host).
    #[serde(default)]
    pub hosts: Vec<String>,
    /// Limits on what the tenant may deploy and run; each optional.
    #[serde(default)]
    pub quotas: Quotas,
}

/// A tenant's quotas; `None` is no limit.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Quotas {
    /// Functions it may have deployed at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_functions: Option<u32>,
    /// The largest component it may deploy, in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_component_bytes: Option<u64>,
    /// Invocations of all its functions at once; beyond it a request
    /// waits by its function's queue rules, then gets 429/503.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_concurrency: Option<u32>,
    /// Sustained requests per second (a token bucket); beyond it 429.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests_per_second: Option<u32>,
    /// Requests that may come at once above the rate (the bucket's size);
    /// defaults to `requests_per_second`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub burst: Option<u32>,
    /// The most memory any of its functions may ask for (`max_memory_bytes`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_memory_bytes: Option<u64>,
    /// A ceiling on its functions' `allowed_outbound_hosts`: each entry a
    /// function lists must be allowed by one of these.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_outbound_hosts: Option<Vec<String>>,
    /// The largest value its functions may write to a key-value store, in
    /// bytes (default 1 MiB).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kv_max_value_bytes: Option<u64>,
    /// The longest key, in bytes (default 1 KiB).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kv_max_key_bytes: Option<u64>,
    /// Keys in all its key-value stores together.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kv_max_keys: Option<u64>,
    /// Bytes of keys and values in all its key-value stores together.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kv_max_total_bytes: Option<u64>,
}

/// The largest `kv_max_value_bytes`: 256 MiB (Redis takes 512 MiB at most).
pub const KV_VALUE_CEILING: u64 = 256 << 20;
/// The largest `kv_max_key_bytes`: 64 KiB.
pub const KV_KEY_CEILING: u64 = 64 << 10;

impl Quotas {
    /// The limits its functions write their key-value stores under.
    pub fn kv_limits(&self) -> wasmfn_kv::Limits {
        wasmfn_kv::Limits {
            max_value_bytes: self.kv_max_value_bytes.unwrap_or(wasmfn_kv::DEFAULT_MAX_VALUE_BYTES),
            max_key_bytes: self.kv_max_key_bytes.unwrap_or(wasmfn_kv::DEFAULT_MAX_KEY_BYTES),
            max_keys: self.kv_max_keys,
            max_total_bytes: self.kv_max_total_bytes,
        }
    }
}

/// Whether `id` is a tenant id: 1 to 63 of `a-z`, `0-9`, `-`, not starting with `-`.
pub fn is_valid_id(id: &str) -> bool {
    crate::deploy::is_valid_name(id)
}

/// A host a tenant claims, as matched against requests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum HostClaim {
    /// `api.acme.example`
    Exact(String),
    /// `*.acme.example`, kept as `.acme.example`.
    Subdomains(String),
}

impl HostClaim {
    fn parse(entry: &str) -> Result<Self, String> {
        let e = entry.trim().to_ascii_lowercase();
        let (wild, name) = match e.strip_prefix("*.") {
            Some(rest) => (true, rest),
            None => (false, e.as_str()),
        };
        let ok = !name.is_empty()
            && name.len() <= 253
            && name.split('.').all(|l| {
                !l.is_empty()
                    && l.len() <= 63
                    && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                    && !l.starts_with('-')
            });
        if !ok {
            return Err(format!(
                "`{entry}` is not a host name: use a name such as `api.acme.example` or a wildcard such as \
                 `*.acme.example` (no scheme, port or path)"
            ));
        }
        Ok(if wild {
            HostClaim::Subdomains(format!(".{name}"))
        } else {
            HostClaim::Exact(name.to_string())
        })
    }

    fn matches(&self, host: &str) -> bool {
        match self {
            HostClaim::Exact(h) => h == host,
            HostClaim::Subdomains(s) => host.len() > s.len() && host.ends_with(s.as_str()),
        }
    }

    fn overlaps(&self, other: &HostClaim) -> bool {
        match (self, other) {
            (HostClaim::Exact(a), HostClaim::Exact(b)) => a == b,
            (HostClaim::Exact(h), s @ HostClaim::Subdomains(_))
            | (s @ HostClaim::Subdomains(_), HostClaim::Exact(h)) => s.matches(h),
            (HostClaim::Subdomains(a), HostClaim::Subdomains(b)) => a.ends_with(b.as_str()) || b.ends_with(a.as_str()),
        }
    }
}

impl std::fmt::Display for HostClaim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HostClaim::Exact(h) => f.write_str(h),
            HostClaim::Subdomains(s) => write!(f, "*{s}"),
        }
    }
}

/// A tenant's settings, checked: hosts and outbound ceiling parsed.
#[derive(Debug, Clone)]
pub struct CheckedSettings {
    /// As given.
    pub settings: TenantSettings,
    pub(crate) hosts: Vec<HostClaim>,
    /// The parsed `quotas.allowed_outbound_hosts`.
    pub outbound_ceiling: Option<Vec<OutboundRule>>,
}

impl TenantSettings {
    /// Checks the settings of tenant `id`; errors name the field and the fix.
    pub fn check(&self, id: &str) -> Result<CheckedSettings, String> {
        if !is_valid_id(id) {
            return Err(format!(
                "`{id}` is not a tenant id: use 1 to 63 lowercase letters, digits and `-`, starting with a letter or digit"
            ));
        }
        if id == DEFAULT_TENANT && !self.hosts.is_empty() {
            return Err(
                "field `hosts`: the tenant `default` serves every host no other tenant claims, so it lists none".into(),
            );
        }
        let mut hosts = Vec::with_capacity(self.hosts.len());
        for (i, h) in self.hosts.iter().enumerate() {
            let claim = HostClaim::parse(h).map_err(|e| format!("field `hosts[{i}]`: {e}"))?;
            if let Some(other) = hosts.iter().find(|c: &&HostClaim| c.overlaps(&claim)) {
                return Err(format!(
                    "field `hosts[{i}]`: `{claim}` overlaps `{other}`, listed before it"
                ));
            }
            hosts.push(claim);
        }
        let q = &self.quotas;
        let positive = |field: &str, v: Option<u64>| match v {
            Some(0) => Err(format!(
                "field `quotas.{field}`: 0 allows nothing; leave the field out for no limit"
            )),
            _ => Ok(()),
        };
        positive("max_functions", q.max_functions.map(u64::from))?;
        positive("max_component_bytes", q.max_component_bytes)?;
        positive("max_concurrency", q.max_concurrency.map(u64::from))?;
        positive("requests_per_second", q.requests_per_second.map(u64::from))?;
        positive("burst", q.burst.map(u64::from))?;
        positive("max_memory_bytes", q.max_memory_bytes)?;
        positive("kv_max_value_bytes", q.kv_max_value_bytes)?;
        positive("kv_max_key_bytes", q.kv_max_key_bytes)?;
        positive("kv_max_keys", q.kv_max_keys)?;
        positive("kv_max_total_bytes", q.kv_max_total_bytes)?;
        for (field, v, max) in [
            ("kv_max_value_bytes", q.kv_max_value_bytes, KV_VALUE_CEILING),
            ("kv_max_key_bytes", q.kv_max_key_bytes, KV_KEY_CEILING),
        ] {
            if let Some(v) = v
                && v > max
            {
                return Err(format!(
                    "field `quotas.{field}`: {v} is above the largest allowed, {max}"
                ));
            }
        }
        if q.burst.is_some() && q.requests_per_second.is_none() {
            return Err("field `quotas.burst`: a burst needs `quotas.requests_per_second` beside it".into());
        }
        let outbound_ceiling = match &q.allowed_outbound_hosts {
            None => None,
            Some(list) => Some(
                list.iter()
                    .enumerate()
                    .map(|(i, e)| {
                        OutboundRule::parse(e)
                            .map_err(|err| format!("field `quotas.allowed_outbound_hosts[{i}]`: {err}"))
                    })
                    .collect::<Result<Vec<_>, _>>()?,
            ),
        };
        Ok(CheckedSettings {
            settings: self.clone(),
            hosts,
            outbound_ceiling,
        })
    }
}

impl Quotas {
    /// Why a function of this tenant may not run under these quotas:
    /// memory above `max_memory_bytes`, or outbound hosts beyond the
    /// ceiling. `function` names it in the message.
    pub fn refuse_policy(
        &self,
        function: &str,
        policy: &wasmfn_manifest::Policy,
        ceiling: Option<&[OutboundRule]>,
    ) -> Option<String> {
        if let Some(max) = self.max_memory_bytes
            && policy.max_memory_bytes > max
        {
            return Some(format!(
                "function `{function}`: field `max_memory_bytes`: {} is above the tenant's quota of {max} bytes \
                 (`quotas.max_memory_bytes`); ask for less",
                policy.max_memory_bytes
            ));
        }
        if let Some(ceiling) = ceiling
            && let Some(rule) = policy
                .allowed_outbound_hosts
                .iter()
                .find(|r| !ceiling.iter().any(|c| c.covers(r)))
        {
            let allowed: Vec<String> = ceiling.iter().map(|c| format!("`{c}`")).collect();
            return Some(format!(
                "function `{function}`: field `allowed_outbound_hosts`: `{rule}` is outside what the tenant may \
                 call ({}; `quotas.allowed_outbound_hosts`)",
                if allowed.is_empty() {
                    "nothing".to_string()
                } else {
                    allowed.join(", ")
                }
            ));
        }
        None
    }
}

/// The tenants' hosts, for finding the tenant of a request.
#[derive(Debug, Default)]
pub(crate) struct HostIndex<T> {
    exact: HashMap<String, T>,
    wildcards: Vec<(String, T)>,
}

impl<T: Clone> HostIndex<T> {
    /// The index of `tenants` (id → hosts and value); a host claimed twice is an error naming both tenants.
    pub(crate) fn build<'a>(tenants: impl Iterator<Item = (&'a str, &'a [HostClaim], T)>) -> Result<Self, String> {
        let mut all: Vec<(&str, &HostClaim)> = Vec::new();
        let mut index = Self {
            exact: HashMap::new(),
            wildcards: Vec::new(),
        };
        for (id, claims, value) in tenants {
            for c in claims {
                if let Some((other, oc)) = all.iter().find(|(o, oc)| *o != id && oc.overlaps(c)) {
                    return Err(format!(
                        "host `{c}` is already served by tenant `{other}` (its `{oc}`); a host belongs to one tenant"
                    ));
                }
                all.push((id, c));
                match c {
                    HostClaim::Exact(h) => {
                        index.exact.insert(h.clone(), value.clone());
                    }
                    HostClaim::Subdomains(s) => index.wildcards.push((s.clone(), value.clone())),
                }
            }
        }
        // Longest suffix first (the more specific wildcard wins; overlaps are refused anyway).
        index.wildcards.sort_by_key(|w| std::cmp::Reverse(w.0.len()));
        Ok(index)
    }

    /// The value of the tenant serving `host` (lowercase, no port).
    pub(crate) fn find(&self, host: &str) -> Option<&T> {
        if let Some(v) = self.exact.get(host) {
            return Some(v);
        }
        self.wildcards
            .iter()
            .find(|(s, _)| host.len() > s.len() && host.ends_with(s.as_str()))
            .map(|(_, v)| v)
    }
}

/// The operator's tenants file: `{"acme": {"hosts": [...], "quotas": {...}}, ...}`.
pub fn load_tenants_file(path: &Path) -> anyhow::Result<BTreeMap<String, CheckedSettings>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("cannot read tenants file `{}`: {e}", path.display()))?;
    parse_tenants_file(path, &text)
}

/// Parses a tenants file's text; `path` names it in messages.
pub fn parse_tenants_file(path: &Path, text: &str) -> anyhow::Result<BTreeMap<String, CheckedSettings>> {
    let bad = |what: String| {
        anyhow::anyhow!(
            "invalid tenants file `{}`: {what} (the file is an object of tenant id → \
             {{\"hosts\": [\"api.acme.example\"], \"quotas\": {{\"max_functions\": 10}}}})",
            path.display()
        )
    };
    let raw: BTreeMap<String, serde_json::Value> = serde_json::from_str(text).map_err(|e| bad(e.to_string()))?;
    let mut out = BTreeMap::new();
    for (id, v) in raw {
        let settings: TenantSettings = serde_path_to_error::deserialize(v)
            .map_err(|e| bad(format!("tenant `{id}`: field `{}`: {}", e.path(), e.inner())))?;
        let checked = settings.check(&id).map_err(|e| bad(format!("tenant `{id}`: {e}")))?;
        out.insert(id, checked);
    }
    HostIndex::build(out.iter().map(|(id, c)| (id.as_str(), c.hosts.as_slice(), ()))).map_err(bad)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(hosts: &[&str]) -> TenantSettings {
        TenantSettings {
            hosts: hosts.iter().map(|h| h.to_string()).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn hosts_are_checked_and_indexed() {
        let a = settings(&["api.acme.example", "*.acme.test"]).check("acme").unwrap();
        let b = settings(&["globex.example"]).check("globex").unwrap();
        let index =
            HostIndex::build([("acme", a.hosts.as_slice(), 1), ("globex", b.hosts.as_slice(), 2)].into_iter()).unwrap();
        assert_eq!(index.find("api.acme.example"), Some(&1));
        assert_eq!(index.find("x.y.acme.test"), Some(&1));
        assert_eq!(index.find("acme.test"), None);
        assert_eq!(index.find("globex.example"), Some(&2));
        assert_eq!(index.find("other.example"), None);

        let c = settings(&["shop.acme.test"]).check("shop").unwrap();
        let e = HostIndex::build([("acme", a.hosts.as_slice(), 1), ("shop", c.hosts.as_slice(), 3)].into_iter())
            .unwrap_err();
        assert!(e.contains("`shop.acme.test` is already served by tenant `acme`"), "{e}");

        for bad in [
            "https://x.example",
            "x.example:80",
            "a..b",
            "*",
            "*.",
            "x/y",
            "-a.example",
        ] {
            let e = settings(&[bad]).check("t").unwrap_err();
            assert!(e.contains("field `hosts[0]`"), "{bad}: {e}");
        }
        assert!(settings(&["a.example"]).check("default").is_err());
        assert!(settings(&[]).check("Acme").is_err());
    }

    #[test]
    fn quotas_are_checked_and_refuse_policies() {
        let mut s = TenantSettings::default();
        s.quotas.burst = Some(3);
        assert!(s.check("t").unwrap_err().contains("needs `quotas.requests_per_second`"));
        s.quotas.requests_per_second = Some(0);
        assert!(s.check("t").unwrap_err().contains("0 allows nothing"));
        s.quotas.requests_per_second = Some(5);
        s.quotas.max_memory_bytes = Some(64 << 20);
        s.quotas.allowed_outbound_hosts = Some(vec!["https://*.acme.example".into()]);
        let c = s.check("t").unwrap();
        let mut policy = wasmfn_manifest::Policy::default();
        let refused = c
            .settings
            .quotas
            .refuse_policy("f", &policy, c.outbound_ceiling.as_deref())
            .unwrap();
        assert!(refused.contains("`max_memory_bytes`"), "{refused}");
        policy.max_memory_bytes = 32 << 20;
        policy.allowed_outbound_hosts = vec![OutboundRule::parse("https://api.acme.example").unwrap()];
        assert_eq!(
            c.settings
                .quotas
                .refuse_policy("f", &policy, c.outbound_ceiling.as_deref()),
            None
        );
        policy.allowed_outbound_hosts = vec![OutboundRule::parse("https://evil.example").unwrap()];
        let refused = c
            .settings
            .quotas
            .refuse_policy("f", &policy, c.outbound_ceiling.as_deref())
            .unwrap();
        assert!(refused.contains("`https://evil.example` is outside"), "{refused}");
    }

    #[test]
    fn key_value_quotas_default_and_are_checked() {
        let mut s = TenantSettings::default();
        assert_eq!(s.quotas.kv_limits(), wasmfn_kv::Limits::default());
        s.quotas.kv_max_keys = Some(0);
        assert!(
            s.check("t")
                .unwrap_err()
                .contains("field `quotas.kv_max_keys`: 0 allows nothing")
        );
        s.quotas.kv_max_keys = Some(10);
        s.quotas.kv_max_value_bytes = Some(KV_VALUE_CEILING + 1);
        let e = s.check("t").unwrap_err();
        assert!(
            e.contains("field `quotas.kv_max_value_bytes`") && e.contains("above the largest"),
            "{e}"
        );
        s.quotas.kv_max_value_bytes = Some(100);
        s.quotas.kv_max_total_bytes = Some(1000);
        let limits = s.check("t").unwrap().settings.quotas.kv_limits();
        assert_eq!(
            limits,
            wasmfn_kv::Limits {
                max_value_bytes: 100,
                max_key_bytes: wasmfn_kv::DEFAULT_MAX_KEY_BYTES,
                max_keys: Some(10),
                max_total_bytes: Some(1000),
            }
        );
        let parsed: Quotas = serde_json::from_str(r#"{"kv_max_keys": 5, "kv_max_key_bytes": 64}"#).unwrap();
        assert_eq!((parsed.kv_max_keys, parsed.kv_max_key_bytes), (Some(5), Some(64)));
    }

    #[test]
    fn a_tenants_file_names_the_tenant_and_field() {
        let p = Path::new("tenants.json");
        let e = parse_tenants_file(p, r#"{"acme": {"hosts": ["a.example"], "quota": {}}}"#)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("`tenants.json`") && e.contains("tenant `acme`") && e.contains("quota"),
            "{e}"
        );
        let e = parse_tenants_file(p, r#"{"a": {"hosts": ["x.example"]}, "b": {"hosts": ["x.example"]}}"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("already served by tenant `a`"), "{e}");
        let ok = parse_tenants_file(p, r#"{"a": {"hosts": ["x.example"], "quotas": {"max_functions": 2}}}"#).unwrap();
        assert_eq!(ok["a"].settings.quotas.max_functions, Some(2));
    }
}
