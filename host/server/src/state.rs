//! Durable state of a hosted runtime: what was deployed through the admin
//! API, kept in a state directory so that a restart serves exactly that.
//!
//! ```text
//! STATE_DIR/
//!   lock                   held (flock) by the one host using the directory
//!   blobs/sha256/<hex>     components, manifests and fragments, by content
//!   state.json             the desired state: tenants, their functions' versions, their API keys
//!   audit.jsonl            one JSON line per admin write
//!   tmp/                   files being written; emptied at start
//! ```
//!
//! Every file is written whole to `tmp/`, synced, renamed into place and
//! its directory synced, and blobs are written before the state that names
//! them: a crash (even `kill -9`) at any moment leaves the previous state
//! or the next, never a half of either.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::tenant::{DEFAULT_TENANT, TenantSettings};

/// The format of `state.json` this host writes (it reads format 1 too:
/// the functions of the tenant `default`, before tenants existed).
const FORMAT: u32 = 2;

/// An open state directory, locked against other hosts.
#[derive(Debug)]
pub struct StateDir {
    root: PathBuf,
    /// Held while the host runs: a second host on the same directory is refused.
    _lock: File,
}

/// Why the state directory cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StateError {
    /// A file or folder of it cannot be read or written.
    #[error("state directory `{}`: {action} `{}`: {source}", root.display(), path.display())]
    Io {
        /// The state directory.
        root: PathBuf,
        /// What was being done.
        action: &'static str,
        /// The file or folder.
        path: PathBuf,
        /// Why it failed.
        source: std::io::Error,
    },
    /// Another process holds the directory.
    #[error(
        "state directory `{}` is in use by another wasmfn host (its `lock` is held); \
         give each host its own `--state-dir`",
        root.display()
    )]
    Locked {
        /// The state directory.
        root: PathBuf,
    },
    /// The shared state store (`--state-store`) refused or failed the change.
    #[error("state store: {message}")]
    Shared {
        /// What happened, and what to do.
        message: String,
        /// Whether another host changed the state first (else the store failed).
        conflict: bool,
    },
    /// `state.json` does not parse.
    #[error(
        "state directory `{}`: `state.json` is not a wasmfn state file ({message}); \
         restore it from a backup or move it away to start empty",
        root.display()
    )]
    Corrupt {
        /// The state directory.
        root: PathBuf,
        /// What is wrong with it.
        message: String,
    },
}

/// What should serve: every tenant with its deployed functions' versions
/// (the last one serving) and its API keys. Written whole, atomically,
/// after every change.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DesiredState {
    /// The file format, [`FORMAT`].
    pub format: u32,
    /// Tenants by id; `default` is always there.
    pub tenants: BTreeMap<String, TenantState>,
}

/// One tenant's part of the desired state.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantState {
    /// Its hosts and quotas (for a tenant of `--tenants FILE`, the file's win).
    #[serde(default)]
    pub settings: TenantSettings,
    /// When it was created (RFC 3339, UTC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
    /// Deployed functions by name.
    #[serde(default)]
    pub functions: BTreeMap<String, Deployment>,
    /// API keys its functions' callers present, stored hashed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub api_keys: Vec<ApiKeyEntry>,
    /// Secrets set through the admin API, by name, sealed.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub secrets: BTreeMap<String, crate::secrets::SealedSecret>,
}

/// One API key of a tenant: its SHA-256, never the key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiKeyEntry {
    /// Names the key in listings, in `x-fn-auth-key-id` and in the log.
    pub id: String,
    /// SHA-256 (hex) of the key.
    pub sha256: String,
    /// The scopes it carries, checked against `required_scopes`.
    #[serde(default)]
    pub scopes: Vec<String>,
    /// When it was created (RFC 3339, UTC).
    pub created_at: String,
}

impl DesiredState {
    /// The deployed functions of `tenant` (none when it does not exist).
    pub fn functions(&self, tenant: &str) -> Option<&BTreeMap<String, Deployment>> {
        self.tenants.get(tenant).map(|t| &t.functions)
    }

    /// The deployed function `name` of `tenant`.
    pub fn function(&self, tenant: &str, name: &str) -> Option<&Deployment> {
        self.tenants.get(tenant)?.functions.get(name)
    }

    /// Every deployed function of every tenant.
    fn all_functions(&self) -> impl Iterator<Item = (&str, &Deployment)> {
        self.tenants
            .values()
            .flat_map(|t| t.functions.iter().map(|(n, d)| (n.as_str(), d)))
    }
}

/// `state.json` of format 1: the functions of the tenant `default`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DesiredStateV1 {
    #[allow(dead_code, reason = "read to check the format")]
    format: u32,
    functions: BTreeMap<String, Deployment>,
}

/// One deployed function: its versions, oldest first; the last one serves.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Deployment {
    /// Oldest first; never empty while the function is deployed.
    pub versions: Vec<Version>,
}

impl Deployment {
    /// The version serving now.
    pub fn current(&self) -> Option<&Version> {
        self.versions.last()
    }
}

/// One deployed version: its parts by content digest, and who deployed it when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Version {
    /// SHA-256 (hex) of the component.
    pub component: String,
    /// SHA-256 (hex) of the manifest text.
    pub manifest: String,
    /// SHA-256 (hex) of the OpenAPI fragment, when one was uploaded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub openapi: Option<String>,
    /// When it was deployed (RFC 3339, UTC).
    pub deployed_at: String,
    /// The id of the admin token that deployed it; `None` without tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// The OCI artifact it was pulled from; `None` for an upload.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<ArtifactSource>,
}

/// Where a deployed version came from, when it was pulled from an OCI registry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArtifactSource {
    /// The reference as the deploy named it (`oci://registry/repository:tag`).
    pub reference: String,
    /// The digest of the artifact's manifest it resolved to, once, at the deploy (`sha256:…`).
    pub digest: String,
}

impl Version {
    /// Whether `other` is made of the same bytes, from the same artifact
    /// (if it came from one).
    pub fn same_content(&self, other: &Version) -> bool {
        self.component == other.component
            && self.manifest == other.manifest
            && self.openapi == other.openapi
            && self.source.as_ref().map(|s| &s.digest) == other.source.as_ref().map(|s| &s.digest)
    }
}

/// One line of the audit log.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AuditEntry {
    /// When (RFC 3339, UTC).
    pub time: String,
    /// The admin token's id; `None` on a host without tokens.
    pub token: Option<String>,
    /// The tenant acted on (`None` in lines written before tenants existed: `default`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    /// `deploy`, `rollback`, `undeploy`, `reload`, `tenant_put`,
    /// `tenant_delete`, `api_key_create`, `api_key_delete`, `secret_set`
    /// or `secret_delete`.
    pub action: String,
    /// The function acted on (the key's id, the secret's name); `None` for a reload.
    pub function: Option<String>,
    /// The component digest serving before (`sha256:…`).
    pub old_digest: Option<String>,
    /// The component digest serving after (`sha256:…`).
    pub new_digest: Option<String>,
    /// `ok`, `unchanged`, or the error code answered.
    pub result: String,
    /// The HTTP status answered.
    pub status: u16,
    /// The request's id.
    pub request_id: String,
}

/// Now, as RFC 3339 UTC with milliseconds.
pub fn now_rfc3339() -> String {
    humantime::format_rfc3339_millis(SystemTime::now()).to_string()
}

/// SHA-256 of `bytes`, in lowercase hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// `bytes` in lowercase hex.
pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

impl StateDir {
    /// Opens (creating it if need be) and locks `root`, and empties its `tmp/`.
    pub fn open(root: &Path) -> Result<Self, StateError> {
        let io = |action, path: &Path| io_error(root, action, path);
        for d in [root.to_path_buf(), root.join("blobs/sha256"), root.join("tmp")] {
            std::fs::create_dir_all(&d).map_err(io("create", &d))?;
        }
        let lock_path = root.join("lock");
        let lock = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(io("open", &lock_path))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(StateError::Locked {
                    root: root.to_path_buf(),
                });
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(io("lock", &lock_path)(e)),
        }
        let tmp = root.join("tmp");
        for e in std::fs::read_dir(&tmp).map_err(io("read", &tmp))?.flatten() {
            let _ = std::fs::remove_file(e.path());
        }
        // A line torn by a crash ends here, so that the next one starts clean.
        let audit = root.join("audit.jsonl");
        if let Ok(text) = std::fs::read(&audit)
            && text.last().is_some_and(|b| *b != b'\n')
        {
            let mut f = File::options().append(true).open(&audit).map_err(io("open", &audit))?;
            f.write_all(b"\n").map_err(io("append to", &audit))?;
        }
        Ok(Self {
            root: root.to_path_buf(),
            _lock: lock,
        })
    }

    /// The directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn io(&self, action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> StateError {
        io_error(&self.root, action, path)
    }

    /// Where the blob with digest `hex` is (or would be).
    pub fn blob_path(&self, hex: &str) -> PathBuf {
        self.root.join("blobs/sha256").join(hex)
    }

    /// Stores `bytes` by content (a no-op when they are there) and gives their digest.
    pub fn put_blob(&self, bytes: &[u8]) -> Result<String, StateError> {
        let digest = sha256_hex(bytes);
        let path = self.blob_path(&digest);
        if !path.exists() {
            self.write_atomically(&path, bytes)?;
        }
        Ok(digest)
    }

    /// Reads a blob and checks it against its digest.
    pub fn read_blob(&self, hex: &str) -> Result<Vec<u8>, String> {
        let path = self.blob_path(hex);
        let bytes = std::fs::read(&path).map_err(|e| format!("cannot read `{}`: {e}", path.display()))?;
        let actual = sha256_hex(&bytes);
        if actual != hex {
            return Err(format!(
                "`{}` is damaged: its content has digest sha256:{actual}; deploy the function again",
                path.display()
            ));
        }
        Ok(bytes)
    }

    /// Writes `bytes` to `path`: to `tmp/` first, synced, renamed, the directory synced.
    fn write_atomically(&self, path: &Path, bytes: &[u8]) -> Result<(), StateError> {
        let tmp = self
            .root
            .join("tmp")
            .join(format!("{}.{}", std::process::id(), fastrand::u64(..)));
        let mut f = File::create(&tmp).map_err(self.io("create", &tmp))?;
        f.write_all(bytes).map_err(self.io("write", &tmp))?;
        f.sync_all().map_err(self.io("sync", &tmp))?;
        drop(f);
        std::fs::rename(&tmp, path).map_err(self.io("rename into", path))?;
        let dir = path.parent().unwrap_or(&self.root);
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(self.io("sync", dir))?;
        Ok(())
    }

    /// The desired state on disk; empty when nothing was ever deployed.
    pub fn load(&self) -> Result<DesiredState, StateError> {
        let path = self.root.join("state.json");
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(empty_state());
            }
            Err(e) => return Err(self.io("read", &path)(e)),
        };
        let corrupt = |message: String| StateError::Corrupt {
            root: self.root.clone(),
            message,
        };
        let value: serde_json::Value = serde_json::from_str(&text).map_err(|e| corrupt(e.to_string()))?;
        let mut state = match value.get("format").and_then(|f| f.as_u64()) {
            Some(1) => {
                let v1: DesiredStateV1 = serde_json::from_value(value).map_err(|e| corrupt(e.to_string()))?;
                let mut state = empty_state();
                state.tenants.get_mut(DEFAULT_TENANT).expect("always there").functions = v1.functions;
                state
            }
            Some(2) => serde_json::from_value(value).map_err(|e| corrupt(e.to_string()))?,
            other => {
                return Err(corrupt(format!(
                    "format {} where this host reads formats 1 and {FORMAT}",
                    other.map_or("missing".to_string(), |f| f.to_string())
                )));
            }
        };
        state.tenants.entry(DEFAULT_TENANT.to_string()).or_default();
        if let Some((name, _)) = state.all_functions().find(|(_, d)| d.versions.is_empty()) {
            return Err(corrupt(format!("function `{name}` has no version")));
        }
        Ok(state)
    }

    /// Replaces the desired state on disk, atomically.
    pub fn save(&self, state: &DesiredState) -> Result<(), StateError> {
        let text = serde_json::to_vec_pretty(state).expect("the state serialises");
        self.write_atomically(&self.root.join("state.json"), &text)
    }

    /// Deletes the blobs `state` does not name; returns how many.
    pub fn collect_garbage(&self, state: &DesiredState) -> usize {
        let live: std::collections::HashSet<&str> = state
            .all_functions()
            .flat_map(|(_, d)| &d.versions)
            .flat_map(|v| {
                [
                    Some(v.component.as_str()),
                    Some(v.manifest.as_str()),
                    v.openapi.as_deref(),
                ]
            })
            .flatten()
            .collect();
        let dir = self.root.join("blobs/sha256");
        let Ok(entries) = std::fs::read_dir(&dir) else { return 0 };
        let mut removed = 0;
        for e in entries.flatten() {
            let name = e.file_name();
            if !live.contains(name.to_string_lossy().as_ref()) && std::fs::remove_file(e.path()).is_ok() {
                removed += 1;
            }
        }
        removed
    }

    /// Appends one line to the audit log and syncs it.
    pub fn audit(&self, entry: &AuditEntry) -> Result<(), StateError> {
        let path = self.root.join("audit.jsonl");
        let mut line = serde_json::to_vec(entry).expect("audit entries serialise");
        line.push(b'\n');
        let mut f = File::options()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(self.io("open", &path))?;
        f.write_all(&line).map_err(self.io("append to", &path))?;
        f.sync_data().map_err(self.io("sync", &path))
    }

    /// The last `limit` lines of the audit log, oldest first. A line torn
    /// by a crash is skipped.
    pub fn read_audit(&self, limit: usize) -> Result<Vec<AuditEntry>, StateError> {
        self.read_audit_where(limit, |_| true)
    }

    /// The last `limit` lines of the audit log that `keep` keeps, oldest first.
    pub fn read_audit_where(
        &self,
        limit: usize,
        keep: impl Fn(&AuditEntry) -> bool,
    ) -> Result<Vec<AuditEntry>, StateError> {
        let path = self.root.join("audit.jsonl");
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(self.io("read", &path)(e)),
        };
        let mut entries: Vec<AuditEntry> = text
            .lines()
            .rev()
            .filter_map(|l| serde_json::from_str(l).ok())
            .filter(|e| keep(e))
            .take(limit)
            .collect();
        entries.reverse();
        Ok(entries)
    }
}

/// Makes the error of `action` on `path` in the state directory `root`.
fn io_error(root: &Path, action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> StateError + use<> {
    let (root, path) = (root.to_path_buf(), path.to_path_buf());
    move |source| StateError::Io {
        root,
        action,
        path,
        source,
    }
}

/// A new desired state: the tenant `default`, with nothing deployed.
pub fn empty_state() -> DesiredState {
    DesiredState {
        format: FORMAT,
        tenants: BTreeMap::from([(DEFAULT_TENANT.to_string(), TenantState::default())]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn version(component: &str) -> Version {
        Version {
            component: component.into(),
            manifest: "m".into(),
            openapi: None,
            deployed_at: now_rfc3339(),
            token: None,
            source: None,
        }
    }

    #[test]
    fn state_round_trips_and_garbage_is_collected() {
        let dir = tempfile::tempdir().unwrap();
        let s = StateDir::open(dir.path()).unwrap();
        assert_eq!(s.load().unwrap(), empty_state());
        let kept = s.put_blob(b"kept").unwrap();
        let dropped = s.put_blob(b"dropped").unwrap();
        assert_eq!(kept, sha256_hex(b"kept"));
        let mut state = empty_state();
        state.tenants.get_mut(DEFAULT_TENANT).unwrap().functions.insert(
            "hello".into(),
            Deployment {
                versions: vec![Version {
                    manifest: kept.clone(),
                    ..version(&kept)
                }],
            },
        );
        s.save(&state).unwrap();
        assert_eq!(s.load().unwrap(), state);
        assert_eq!(s.collect_garbage(&state), 1);
        assert!(s.blob_path(&kept).exists());
        assert!(!s.blob_path(&dropped).exists());
        assert_eq!(s.read_blob(&kept).unwrap(), b"kept");
    }

    #[test]
    fn a_second_host_is_refused_and_damage_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let s = StateDir::open(dir.path()).unwrap();
        let e = StateDir::open(dir.path()).unwrap_err();
        assert!(matches!(e, StateError::Locked { .. }), "{e}");
        let digest = s.put_blob(b"component").unwrap();
        std::fs::write(s.blob_path(&digest), b"tampered").unwrap();
        let e = s.read_blob(&digest).unwrap_err();
        assert!(e.contains("damaged"), "{e}");
        std::fs::write(dir.path().join("state.json"), b"{\"format\": 1, \"functions\": ").unwrap();
        let e = s.load().unwrap_err().to_string();
        assert!(e.contains("`state.json` is not a wasmfn state file"), "{e}");
    }

    #[test]
    fn audit_keeps_the_last_lines_and_skips_a_torn_one() {
        let dir = tempfile::tempdir().unwrap();
        let s = StateDir::open(dir.path()).unwrap();
        for i in 0..5 {
            s.audit(&AuditEntry {
                time: now_rfc3339(),
                token: Some("ci".into()),
                tenant: None,
                action: "deploy".into(),
                function: Some(format!("f{i}")),
                old_digest: None,
                new_digest: Some("sha256:00".into()),
                result: "ok".into(),
                status: 201,
                request_id: format!("r{i}"),
            })
            .unwrap();
        }
        let mut f = File::options()
            .append(true)
            .open(dir.path().join("audit.jsonl"))
            .unwrap();
        f.write_all(b"{\"time\": \"torn").unwrap();
        let last = s.read_audit(2).unwrap();
        assert_eq!(
            last.iter().map(|e| e.request_id.as_str()).collect::<Vec<_>>(),
            ["r3", "r4"]
        );
    }
}
