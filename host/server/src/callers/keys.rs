//! A tenant's API keys: made by the host (256 random bits), shown once,
//! kept as SHA-256 digests, found by the digest of the presented key.

use std::collections::HashMap;
use std::sync::Arc;

use sha2::{Digest, Sha256};

use crate::state::{ApiKeyEntry, hex, now_rfc3339, sha256_hex};

/// What a verified key stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyInfo {
    /// The key's id.
    pub id: Arc<str>,
    /// Its scopes.
    pub scopes: Arc<[String]>,
}

/// The keys of one tenant, by digest.
#[derive(Debug, Clone, Default)]
pub struct ApiKeys {
    by_digest: HashMap<[u8; 32], KeyInfo>,
}

impl ApiKeys {
    /// The keys of the stored entries (an entry whose digest does not decode is skipped, logged).
    pub fn from_entries(entries: &[ApiKeyEntry]) -> Self {
        let mut by_digest = HashMap::with_capacity(entries.len());
        for e in entries {
            match crate::auth::decode_hex32(&e.sha256) {
                Some(d) => {
                    by_digest.insert(
                        d,
                        KeyInfo {
                            id: e.id.as_str().into(),
                            scopes: e.scopes.clone().into(),
                        },
                    );
                }
                None => tracing::error!(key = %e.id, "stored API key has a damaged digest; it is not accepted"),
            }
        }
        Self { by_digest }
    }

    /// The key `presented` stands for. The lookup is by the SHA-256 of the
    /// presented key, so its time says nothing about stored keys.
    pub fn find(&self, presented: &str) -> Option<&KeyInfo> {
        let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        self.by_digest.get(&digest)
    }

    /// How many keys there are.
    pub fn len(&self) -> usize {
        self.by_digest.len()
    }

    /// Whether there is none.
    pub fn is_empty(&self) -> bool {
        self.by_digest.is_empty()
    }
}

/// A new key for `tenant` (`wfk_` and 64 hex digits) and its stored entry.
pub fn new_api_key(id: &str, scopes: Vec<String>) -> anyhow::Result<(String, ApiKeyEntry)> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("no randomness from the operating system: {e}"))?;
    let key = format!("wfk_{}", hex(&bytes));
    let entry = ApiKeyEntry {
        id: id.to_string(),
        sha256: sha256_hex(key.as_bytes()),
        scopes,
        created_at: now_rfc3339(),
    };
    Ok((key, entry))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_found_by_digest_only() {
        let (key, entry) = new_api_key("mobile", vec!["read".into()]).unwrap();
        assert!(key.starts_with("wfk_") && key.len() == 68);
        assert_ne!(entry.sha256, key);
        let keys = ApiKeys::from_entries(&[entry]);
        let info = keys.find(&key).unwrap();
        assert_eq!(&*info.id, "mobile");
        assert_eq!(&*info.scopes, ["read".to_string()]);
        assert!(keys.find("wfk_0").is_none());
        assert!(keys.find(&key[..67]).is_none());
    }
}
