//! Secrets: values a function reads through `wasi:config/store` when its
//! manifest lists their names (`secrets`), given by the operator, never by
//! the manifest. Three providers, the first that has a secret wins:
//!
//! 1. the admin API (`PUT /_fn/secrets/{name}`, per tenant), kept in the
//!    desired state sealed with XChaCha20-Poly1305 under the key of
//!    `--secrets-key-file` (the tenant and the name are its associated
//!    data: a sealed value moved to another name does not open);
//! 2. `--secrets-dir DIR`: the file `DIR/<name>` (tenant `default`) or
//!    `DIR/<tenant>/<name>`, one trailing newline removed, as a
//!    Kubernetes Secret mounted as a folder;
//! 3. the environment: `WASMFN_SECRET_<NAME>` (tenant `default` only).
//!
//! Values never leave this module but into a function's
//! [`GuestConfig`]: not into the catalog, logs, errors, audit or traces.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use serde::{Deserialize, Serialize};

use crate::tenant::DEFAULT_TENANT;
use wasmfn_manifest::Policy;
use wasmfn_runtime::GuestConfig;

/// The largest secret value, in bytes.
pub const MAX_SECRET_BYTES: usize = 64 * 1024;

/// A secret as the desired state keeps it: sealed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SealedSecret {
    /// The XChaCha20 nonce (24 bytes), base64.
    pub nonce: String,
    /// The value sealed with its tag, base64.
    pub sealed: String,
    /// When it was set (RFC 3339, UTC).
    pub updated_at: String,
}

/// The key of `--secrets-key-file`.
#[derive(Clone)]
pub struct SecretsKey(Arc<XChaCha20Poly1305>);

impl std::fmt::Debug for SecretsKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretsKey(..)")
    }
}

impl SecretsKey {
    /// Reads the key file: 32 bytes, base64 (`head -c 32 /dev/urandom | base64`).
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("cannot read `--secrets-key-file` `{}`: {e}", path.display()))?;
        let bytes = B64.decode(text.trim()).ok().filter(|b| b.len() == 32).ok_or_else(|| {
            anyhow::anyhow!(
                "`--secrets-key-file` `{}` does not hold a key: it must be 32 random bytes in base64 \
                 (make one with `head -c 32 /dev/urandom | base64 > {}`)",
                path.display(),
                path.display()
            )
        })?;
        let cipher = XChaCha20Poly1305::new_from_slice(&bytes).expect("32 bytes");
        Ok(Self(Arc::new(cipher)))
    }

    /// Seals `value` as the secret `name` of `tenant`.
    pub fn seal(&self, tenant: &str, name: &str, value: &str) -> SealedSecret {
        let mut nonce = [0u8; 24];
        getrandom::fill(&mut nonce).expect("the system's random source");
        let aad = associated(tenant, name);
        let sealed = self
            .0
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: value.as_bytes(),
                    aad: aad.as_bytes(),
                },
            )
            .expect("sealing cannot fail for values this size");
        SealedSecret {
            nonce: B64.encode(nonce),
            sealed: B64.encode(sealed),
            updated_at: crate::state::now_rfc3339(),
        }
    }

    /// Opens the secret `name` of `tenant`; an error says why it does not open.
    pub fn open(&self, tenant: &str, name: &str, s: &SealedSecret) -> Result<String, String> {
        let wrong = || {
            format!(
                "secret `{name}` of tenant `{tenant}` does not open with this host's `--secrets-key-file`: \
                 it was set under another key (or the state file was changed); set it again with \
                 `PUT /_fn/secrets/{name}`, or start the host with the key it was set under"
            )
        };
        let nonce = B64.decode(&s.nonce).ok().filter(|n| n.len() == 24).ok_or_else(wrong)?;
        let sealed = B64.decode(&s.sealed).map_err(|_| wrong())?;
        let aad = associated(tenant, name);
        let plain = self
            .0
            .decrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: &sealed,
                    aad: aad.as_bytes(),
                },
            )
            .map_err(|_| wrong())?;
        String::from_utf8(plain).map_err(|_| wrong())
    }
}

fn associated(tenant: &str, name: &str) -> String {
    format!("wasmfn-secret:{tenant}/{name}")
}

/// Where secret values come from, as of one load: the sealed secrets of
/// the desired state, the key, the folder and the environment.
#[derive(Debug, Clone, Default)]
pub struct SecretSource {
    /// Tenant → name → sealed value.
    pub sealed: BTreeMap<String, BTreeMap<String, SealedSecret>>,
    /// The key of `--secrets-key-file`.
    pub key: Option<SecretsKey>,
    /// `--secrets-dir`.
    pub dir: Option<PathBuf>,
    /// A secret set nowhere is left out instead of failing its function
    /// (`wasmfn check` and `wasmfn openapi`, which run nothing).
    pub lenient: bool,
}

impl SecretSource {
    /// The value of secret `name` for `tenant`, from the first provider
    /// that has it; `Ok(None)` when none has it.
    pub fn get(&self, tenant: &str, name: &str) -> Result<Option<String>, String> {
        if let Some(s) = self.sealed.get(tenant).and_then(|t| t.get(name)) {
            let Some(key) = &self.key else {
                return Err(format!(
                    "secret `{name}` of tenant `{tenant}` was set through the admin API but this host has no \
                     `--secrets-key-file` to open it; start it with the key it was set under"
                ));
            };
            return key.open(tenant, name, s).map(Some);
        }
        if let Some(dir) = &self.dir {
            let path = if tenant == DEFAULT_TENANT {
                dir.join(name)
            } else {
                dir.join(tenant).join(name)
            };
            match std::fs::read(&path) {
                Ok(bytes) => {
                    let mut text = String::from_utf8(bytes)
                        .map_err(|_| format!("secret file `{}` is not UTF-8 text", path.display()))?;
                    if text.ends_with('\n') {
                        text.pop();
                        if text.ends_with('\r') {
                            text.pop();
                        }
                    }
                    return Ok(Some(text));
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(format!("cannot read secret file `{}`: {e}", path.display())),
            }
        }
        if tenant == DEFAULT_TENANT
            && let Ok(v) = std::env::var(env_name(name))
        {
            return Ok(Some(v));
        }
        Ok(None)
    }

    /// What a function of `tenant` with `policy` reads through
    /// `wasi:config/store`: its `config` and the values of its secrets,
    /// with a digest of them all (a function whose values changed is made
    /// again on reload). An error names the secret and how to set it.
    pub fn config_for(&self, tenant: &str, policy: &Policy) -> Result<(Arc<GuestConfig>, [u8; 32]), String> {
        use sha2::Digest as _;
        let mut pairs: Vec<(String, String)> = policy.config.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        for name in &policy.secrets {
            if policy.config.contains_key(name) {
                return Err(format!(
                    "`{name}` is both a `config` key and a name in `secrets`; rename one of them"
                ));
            }
            match self.get(tenant, name)? {
                Some(value) => pairs.push((name.clone(), value)),
                None if self.lenient => {}
                None => return Err(unset(tenant, name)),
            }
        }
        let mut digest = sha2::Sha256::new();
        for (k, v) in &pairs {
            digest.update((k.len() as u64).to_le_bytes());
            digest.update(k.as_bytes());
            digest.update((v.len() as u64).to_le_bytes());
            digest.update(v.as_bytes());
        }
        Ok((Arc::new(pairs.into_iter().collect()), digest.finalize().into()))
    }
}

/// `WASMFN_SECRET_<NAME>`.
pub fn env_name(name: &str) -> String {
    format!("WASMFN_SECRET_{}", name.to_ascii_uppercase())
}

/// The message of a secret no provider has.
fn unset(tenant: &str, name: &str) -> String {
    if tenant == DEFAULT_TENANT {
        format!(
            "secret `{name}` (in `secrets`) is not set: set it with `PUT /_fn/secrets/{name}`, \
             a file `{name}` in `--secrets-dir`, or `{}`",
            env_name(name)
        )
    } else {
        format!(
            "secret `{name}` (in `secrets`) is not set for tenant `{tenant}`: set it with \
             `PUT /_fn/tenants/{tenant}/secrets/{name}`, or a file `{tenant}/{name}` in `--secrets-dir`"
        )
    }
}

/// Why a secret could not be set or deleted.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// No state directory or no key: the host cannot keep secrets.
    #[error("{0}")]
    Unavailable(String),
    /// A name or value that is not allowed (the message never holds the value).
    #[error("{0}")]
    Invalid(String),
    /// No such tenant, or no such secret.
    #[error("no secret `{0}`")]
    NotFound(String),
    /// No such tenant.
    #[error("no tenant `{0}`")]
    NoTenant(String),
    /// The state directory could not be written.
    #[error(transparent)]
    State(#[from] crate::state::StateError),
}

/// A secret as listed: its name and when it was set, never its value.
#[derive(Debug, Clone, Serialize)]
pub struct ListedSecret {
    /// Its name.
    pub name: String,
    /// When it was set (RFC 3339, UTC).
    pub updated_at: String,
}

impl crate::AppState {
    fn secrets_key(&self) -> Result<(&crate::deploy::Deployments, &SecretsKey), SecretError> {
        let deps = self.deployments.as_ref().ok_or_else(|| {
            SecretError::Unavailable("this host keeps no state (no `--state-dir`), so it cannot keep secrets".into())
        })?;
        let key = self.secrets_key.as_ref().ok_or_else(|| {
            SecretError::Unavailable(
                "this host has no `--secrets-key-file` to seal secrets with; start it with one \
                 (`head -c 32 /dev/urandom | base64 > key`), or give secrets as files (`--secrets-dir`)"
                    .into(),
            )
        })?;
        Ok((deps, key))
    }

    /// Sets secret `name` of tenant `tenant` (whether it is new), and loads
    /// the tenant's functions again so that they read the new value.
    pub async fn put_secret(self: &Arc<Self>, tenant: &str, name: &str, value: String) -> Result<bool, SecretError> {
        let (deps, key) = self.secrets_key()?;
        if !wasmfn_manifest::is_secret_name(name) {
            return Err(SecretError::Invalid(format!(
                "`{name}` is not a secret name: give 1 to 64 of `a-z`, `0-9`, `_`"
            )));
        }
        if value.len() > MAX_SECRET_BYTES {
            return Err(SecretError::Invalid(format!(
                "the value of `{name}` is {} bytes; at most {MAX_SECRET_BYTES}",
                value.len()
            )));
        }
        let sealed = key.seal(tenant, name, &value);
        self.change_secrets(deps, tenant, |secrets| {
            Ok(secrets.insert(name.to_string(), sealed).is_none())
        })
        .await
    }

    /// Deletes secret `name` of tenant `tenant` set through the admin API;
    /// the tenant's functions are loaded again (one that lists it and has
    /// it from no other provider stops serving).
    pub async fn delete_secret(self: &Arc<Self>, tenant: &str, name: &str) -> Result<(), SecretError> {
        let deps = self
            .deployments
            .as_ref()
            .ok_or_else(|| SecretError::NotFound(name.to_string()))?;
        self.change_secrets(deps, tenant, |secrets| match secrets.remove(name) {
            Some(_) => Ok(()),
            None => Err(SecretError::NotFound(name.to_string())),
        })
        .await
    }

    /// Applies `edit` to the sealed secrets of `tenant` in the desired
    /// state (one change at a time), writes it, and loads the tenant's
    /// functions again; an error of `edit` changes nothing.
    async fn change_secrets<T>(
        self: &Arc<Self>,
        deps: &crate::deploy::Deployments,
        tenant: &str,
        edit: impl FnOnce(&mut BTreeMap<String, SealedSecret>) -> Result<T, SecretError>,
    ) -> Result<T, SecretError> {
        let _one_at_a_time = self.reloading.lock().await;
        let t = self
            .registry
            .tenant(tenant)
            .ok_or_else(|| SecretError::NoTenant(tenant.to_string()))?;
        let mut desired = deps.desired();
        let out = edit(&mut desired.tenants.entry(tenant.to_string()).or_default().secrets)?;
        self.on_disk(move |d| d.commit(desired)).await?;
        self.after_secret_change(&t).await;
        Ok(out)
    }

    /// The secrets of `tenant` set through the admin API.
    pub fn list_secrets(&self, tenant: &str) -> Vec<ListedSecret> {
        self.desired()
            .tenants
            .get(tenant)
            .map(|t| {
                t.secrets
                    .iter()
                    .map(|(name, s)| ListedSecret {
                        name: name.clone(),
                        updated_at: s.updated_at.clone(),
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Loads the tenant's functions again with the secrets as they are now.
    async fn after_secret_change(self: &Arc<Self>, tenant: &Arc<crate::registry::Tenant>) {
        if let Err(e) = self.reload_tenant(tenant).await {
            tracing::error!(tenant = %tenant.id, error = %format!("{e:#}"), "reload after a secret changed failed; what served keeps serving");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> SecretsKey {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("key");
        std::fs::write(&p, format!("{}\n", B64.encode([7u8; 32]))).unwrap();
        SecretsKey::load(&p).unwrap()
    }

    #[test]
    fn a_sealed_secret_opens_only_under_its_tenant_name_and_key() {
        let k = key();
        let s = k.seal("acme", "api_key", "s3cr3t");
        assert!(!s.sealed.contains("s3cr3t"));
        assert_eq!(k.open("acme", "api_key", &s).unwrap(), "s3cr3t");
        assert!(k.open("acme", "other", &s).is_err(), "moved to another name");
        assert!(k.open("globex", "api_key", &s).is_err(), "moved to another tenant");
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("k2");
        std::fs::write(&p, B64.encode([8u8; 32])).unwrap();
        let e = SecretsKey::load(&p).unwrap().open("acme", "api_key", &s).unwrap_err();
        assert!(e.contains("--secrets-key-file") && e.contains("api_key"), "{e}");
        assert!(!e.contains("s3cr3t"));
    }

    #[test]
    fn a_key_file_that_is_not_a_key_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("k");
        std::fs::write(&p, "not base64 of 32 bytes").unwrap();
        let e = SecretsKey::load(&p).unwrap_err().to_string();
        assert!(
            e.contains("32 random bytes") && e.contains(&p.display().to_string()),
            "{e}"
        );
    }

    #[test]
    fn providers_in_order_and_config_with_secrets() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("from_file"), "file value\n").unwrap();
        std::fs::write(dir.path().join("both"), "file loses\n").unwrap();
        std::fs::create_dir(dir.path().join("acme")).unwrap();
        std::fs::write(dir.path().join("acme/from_file"), "acme's\r\n").unwrap();
        let k = key();
        let mut source = SecretSource {
            key: Some(k.clone()),
            dir: Some(dir.path().to_path_buf()),
            ..Default::default()
        };
        source
            .sealed
            .entry(DEFAULT_TENANT.into())
            .or_default()
            .insert("both".into(), k.seal(DEFAULT_TENANT, "both", "api wins"));
        assert_eq!(source.get("default", "from_file").unwrap().unwrap(), "file value");
        assert_eq!(source.get("acme", "from_file").unwrap().unwrap(), "acme's");
        assert_eq!(source.get("default", "both").unwrap().unwrap(), "api wins");
        assert_eq!(source.get("default", "nowhere_at_all_x").unwrap(), None);

        let policy = Policy {
            config: [("greeting".to_string(), "hi".to_string())].into(),
            secrets: vec!["from_file".into()],
            ..Policy::default()
        };
        let (_, d1) = source.config_for("default", &policy).unwrap();
        let (_, d2) = source.config_for("acme", &policy).unwrap();
        assert_ne!(d1, d2, "another value, another digest");
        let missing = Policy {
            secrets: vec!["nowhere_at_all_x".into()],
            ..Policy::default()
        };
        let lenient = SecretSource {
            lenient: true,
            ..source.clone()
        };
        assert!(lenient.config_for("default", &missing).is_ok());
        let e = source.config_for("default", &missing).unwrap_err();
        assert!(
            e.contains("nowhere_at_all_x")
                && e.contains("--secrets-dir")
                && e.contains("WASMFN_SECRET_NOWHERE_AT_ALL_X"),
            "{e}"
        );
        let e = source.config_for("acme", &missing).unwrap_err();
        assert!(e.contains("/_fn/tenants/acme/secrets/nowhere_at_all_x"), "{e}");
        let clash = Policy {
            config: [("from_file".to_string(), "x".to_string())].into(),
            secrets: vec!["from_file".into()],
            ..Policy::default()
        };
        assert!(
            source
                .config_for("default", &clash)
                .unwrap_err()
                .contains("both a `config` key")
        );
        // Without the key, a sealed secret is an error that says so.
        source.key = None;
        assert!(
            source
                .get("default", "both")
                .unwrap_err()
                .contains("no `--secrets-key-file`")
        );
    }
}
