//! Who may use the admin surface: bearer tokens with scopes, from the
//! operator's token file (`--admin-tokens`), checked on every admin
//! request; without tokens, loopback clients only, read-only unless the
//! host opens writes to them (`wasmfn dev`).
//!
//! The file holds SHA-256 digests, never tokens. A presented token is
//! hashed and compared with every entry in constant time; tokens are never
//! logged, only the id of the entry they match.

use std::net::SocketAddr;
use std::path::Path;

use axum::http::{HeaderMap, HeaderValue, Method, header};
use axum::response::Response;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::error::ApiError;

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// Read the catalog, the host status, the deployed functions and the audit log.
    Read,
    /// Deploy, roll back, undeploy and reload.
    Deploy,
    /// Everything.
    Admin,
}

impl Scope {
    /// The name used in the token file and in messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Read => "read",
            Scope::Deploy => "deploy",
            Scope::Admin => "admin",
        }
    }

    /// The scope an admin request needs: reads need `read`, writes `deploy`.
    pub fn for_method(method: &Method) -> Scope {
        if method == Method::GET || method == Method::HEAD {
            Scope::Read
        } else {
            Scope::Deploy
        }
    }
}

impl std::str::FromStr for Scope {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "read" => Ok(Scope::Read),
            "deploy" => Ok(Scope::Deploy),
            "admin" => Ok(Scope::Admin),
            other => Err(format!("`{other}` is not a scope: expected read, deploy or admin")),
        }
    }
}

/// One entry of the token file.
#[derive(Debug, Clone)]
pub struct TokenEntry {
    /// Names the token in the audit log and in `deployed by`.
    pub id: String,
    sha256: [u8; 32],
    /// What it may do.
    pub scopes: Vec<Scope>,
    /// The tenant it is bound to: it sees and changes that tenant's objects
    /// only (`None`: every tenant, and the host).
    pub tenant: Option<String>,
}

impl TokenEntry {
    /// Whether the entry grants `scope` (`admin` grants every scope).
    pub fn allows(&self, scope: Scope) -> bool {
        self.scopes.iter().any(|s| *s == scope || *s == Scope::Admin)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEntry {
    id: String,
    sha256: String,
    scopes: Vec<String>,
    #[serde(default)]
    tenant: Option<String>,
}

/// The operator's admin tokens.
#[derive(Debug, Clone, Default)]
pub struct AdminTokens {
    entries: Vec<TokenEntry>,
}

impl AdminTokens {
    /// Reads a token file: a JSON list of `{"id", "sha256", "scopes"}`.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("cannot read admin token file `{}`: {e}", path.display()))?;
        Self::parse(path, &text)
    }

    /// Parses token-file text; `path` names the file in messages.
    pub fn parse(path: &Path, text: &str) -> anyhow::Result<Self> {
        let bad = |what: String| {
            anyhow::anyhow!(
                "invalid admin token file `{}`: {what} (each entry is \
                 {{\"id\": \"ci\", \"sha256\": \"<64 hex digits>\", \"scopes\": [\"read\", \"deploy\"]}}, \
                 optionally with \"tenant\": \"acme\"; \
                 `wasmfn token create` prints one)",
                path.display()
            )
        };
        let raw: Vec<RawEntry> = serde_json::from_str(text).map_err(|e| bad(e.to_string()))?;
        let mut entries: Vec<TokenEntry> = Vec::with_capacity(raw.len());
        for (i, r) in raw.into_iter().enumerate() {
            if r.id.trim().is_empty() {
                return Err(bad(format!("entry {i}: field `id` is empty")));
            }
            if entries.iter().any(|e| e.id == r.id) {
                return Err(bad(format!("entry {i}: id `{}` is used twice", r.id)));
            }
            let sha256 = decode_hex32(&r.sha256).ok_or_else(|| {
                bad(format!(
                    "entry {i} (`{}`): field `sha256` must be 64 hex digits, the SHA-256 of the token",
                    r.id
                ))
            })?;
            if r.scopes.is_empty() {
                return Err(bad(format!("entry {i} (`{}`): field `scopes` is empty", r.id)));
            }
            let scopes = r
                .scopes
                .iter()
                .map(|s| s.parse::<Scope>())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| bad(format!("entry {i} (`{}`): field `scopes`: {e}", r.id)))?;
            if let Some(t) = &r.tenant
                && !crate::tenant::is_valid_id(t)
            {
                return Err(bad(format!(
                    "entry {i} (`{}`): field `tenant`: `{t}` is not a tenant id (1 to 63 of `a-z`, `0-9`, `-`)",
                    r.id
                )));
            }
            entries.push(TokenEntry {
                id: r.id,
                sha256,
                scopes,
                tenant: r.tenant,
            });
        }
        if entries.is_empty() {
            return Err(bad("it lists no token".into()));
        }
        Ok(Self { entries })
    }

    /// How many tokens there are.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there is none.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The entry `token` belongs to. Every entry is compared, in constant time.
    pub fn find(&self, token: &str) -> Option<&TokenEntry> {
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let mut found = None;
        for e in &self.entries {
            if bool::from(e.sha256.ct_eq(&digest)) {
                found = Some(e);
            }
        }
        found
    }
}

/// The token of an `Authorization: Bearer <token>` header.
pub(crate) fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.trim().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// 64 hex digits as 32 bytes.
pub(crate) fn decode_hex32(s: &str) -> Option<[u8; 32]> {
    let s = s.trim();
    if s.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in s.as_bytes().chunks(2).enumerate() {
        let hi = (pair[0] as char).to_digit(16)?;
        let lo = (pair[1] as char).to_digit(16)?;
        out[i] = (hi * 16 + lo) as u8;
    }
    Some(out)
}

/// A new random token (256 bits from the operating system) and the entry
/// for the token file.
pub fn new_token(id: &str, scopes: &[Scope], tenant: Option<&str>) -> anyhow::Result<(String, serde_json::Value)> {
    anyhow::ensure!(!id.trim().is_empty(), "the token's `--id` must not be empty");
    anyhow::ensure!(!scopes.is_empty(), "give the token at least one `--scope`");
    if let Some(t) = tenant {
        anyhow::ensure!(
            crate::tenant::is_valid_id(t),
            "`{t}` is not a tenant id: use 1 to 63 lowercase letters, digits and `-`"
        );
    }
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("no randomness from the operating system: {e}"))?;
    let token = format!("wfn_{}", crate::state::hex(&bytes));
    let mut entry = serde_json::json!({
        "id": id,
        "sha256": crate::state::sha256_hex(token.as_bytes()),
        "scopes": scopes.iter().map(|s| s.as_str()).collect::<Vec<_>>(),
    });
    if let Some(t) = tenant {
        entry["tenant"] = serde_json::json!(t);
    }
    Ok((token, entry))
}

/// Who may use the admin surface of a host.
#[derive(Debug, Clone, Default)]
pub struct AdminAccess {
    /// The operator's tokens; `None`: loopback clients only, without a token.
    pub tokens: Option<AdminTokens>,
    /// The file the tokens came from, read again by
    /// [`AppState::reload_admin_tokens`](crate::AppState::reload_admin_tokens) (SIGHUP).
    pub tokens_file: Option<std::path::PathBuf>,
    /// Without tokens, whether loopback clients may write too (`wasmfn dev`);
    /// `serve` keeps them read-only.
    pub loopback_writes: bool,
}

/// Who an admin request came from, once let in; handlers read it for the
/// audit log and to keep a tenant's token to its tenant.
#[derive(Debug, Clone, Default)]
pub struct Caller {
    /// The id of the token used; `None` on a host without tokens.
    pub token: Option<String>,
    /// The tenant the token is bound to; `None`: host-wide.
    pub tenant: Option<String>,
    /// The token's scopes (every scope on a host without tokens, within its rules).
    pub scopes: Vec<Scope>,
}

impl Caller {
    /// Whether the caller may see tenant `id`'s objects (another tenant's answer 404).
    pub fn may_see(&self, id: &str) -> bool {
        self.tenant.as_deref().is_none_or(|t| t == id)
    }

    /// Whether the caller acts for the whole host (not bound to a tenant).
    pub fn host_wide(&self) -> bool {
        self.tenant.is_none()
    }

    /// Whether the caller has `scope` (`admin` has every scope).
    pub fn allows(&self, scope: Scope) -> bool {
        self.scopes.iter().any(|s| *s == scope || *s == Scope::Admin)
    }
}

/// How an admin request was refused.
#[derive(Debug)]
pub(crate) enum Refusal {
    /// 401: no token, or an unknown one.
    Unauthenticated { message: String, invalid: bool },
    /// 403: a known token without the scope, or a rule of the tokenless mode.
    Forbidden { message: String, scope: Option<Scope> },
}

impl AdminAccess {
    /// Lets a request in or says why not.
    pub(crate) fn check(&self, scope: Scope, headers: &HeaderMap, peer: Option<SocketAddr>) -> Result<Caller, Refusal> {
        let Some(tokens) = &self.tokens else {
            if !peer.is_some_and(|p| p.ip().to_canonical().is_loopback()) {
                return Err(Refusal::Forbidden {
                    message: "this host has no admin tokens, so its admin surface answers loopback clients only; \
                              configure tokens with `--admin-tokens FILE` (`wasmfn token create` makes one)"
                        .into(),
                    scope: None,
                });
            }
            if scope != Scope::Read && !self.loopback_writes {
                return Err(Refusal::Forbidden {
                    message: "this host has no admin tokens, so its admin surface is read-only; to deploy, \
                              start it with `--admin-tokens FILE` and a token with scope `deploy` \
                              (`wasmfn token create --id ci --scope deploy` makes one)"
                        .into(),
                    scope: None,
                });
            }
            return Ok(Caller {
                token: None,
                tenant: None,
                scopes: if self.loopback_writes {
                    vec![Scope::Admin]
                } else {
                    vec![Scope::Read]
                },
            });
        };
        let Some(presented) = bearer_token(headers) else {
            return Err(Refusal::Unauthenticated {
                message: format!(
                    "this endpoint needs an admin token with scope `{}`: send `Authorization: Bearer <token>`",
                    scope.as_str()
                ),
                invalid: false,
            });
        };
        let Some(entry) = tokens.find(presented) else {
            return Err(Refusal::Unauthenticated {
                message: "the bearer token is not one of this host's admin tokens".into(),
                invalid: true,
            });
        };
        if !entry.allows(scope) {
            return Err(Refusal::Forbidden {
                message: format!(
                    "token `{}` lacks scope `{}` (it has: {})",
                    entry.id,
                    scope.as_str(),
                    entry.scopes.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
                ),
                scope: Some(scope),
            });
        }
        Ok(Caller {
            token: Some(entry.id.clone()),
            tenant: entry.tenant.clone(),
            scopes: entry.scopes.clone(),
        })
    }
}

impl Refusal {
    /// The 401 or 403 response, with `WWW-Authenticate` as RFC 6750 says.
    pub(crate) fn into_response(self, request_id: &str) -> Response {
        let (err, challenge) = match self {
            Refusal::Unauthenticated { message, invalid } => (
                ApiError::Unauthorized { message },
                Some(if invalid {
                    "Bearer realm=\"wasmfn\", error=\"invalid_token\"".to_string()
                } else {
                    "Bearer realm=\"wasmfn\"".to_string()
                }),
            ),
            Refusal::Forbidden { message, scope } => (
                ApiError::Forbidden { message },
                scope.map(|s| {
                    format!(
                        "Bearer realm=\"wasmfn\", error=\"insufficient_scope\", scope=\"{}\"",
                        s.as_str()
                    )
                }),
            ),
        };
        let mut resp = err.into_response_with(request_id);
        if let Some(c) = challenge.and_then(|c| HeaderValue::from_str(&c).ok()) {
            resp.headers_mut().insert(header::WWW_AUTHENTICATE, c);
        }
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(entries: serde_json::Value) -> anyhow::Result<AdminTokens> {
        AdminTokens::parse(Path::new("tokens.json"), &entries.to_string())
    }

    fn bearer(token: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, format!("Bearer {token}").parse().unwrap());
        h
    }

    #[test]
    fn tokens_match_by_digest_and_scopes_decide() {
        let (ci, entry) = new_token("ci", &[Scope::Deploy], None).unwrap();
        let (ops, ops_entry) = new_token("ops", &[Scope::Admin], None).unwrap();
        assert!(ci.starts_with("wfn_") && ci.len() == 68, "{ci}");
        let tokens = file(serde_json::json!([entry, ops_entry])).unwrap();
        let access = AdminAccess {
            tokens: Some(tokens),
            ..AdminAccess::default()
        };
        let remote: Option<SocketAddr> = Some("192.0.2.1:5000".parse().unwrap());
        let caller = access.check(Scope::Deploy, &bearer(&ci), remote).unwrap();
        assert_eq!(caller.token.as_deref(), Some("ci"));
        assert!(matches!(
            access.check(Scope::Read, &bearer(&ci), remote),
            Err(Refusal::Forbidden {
                scope: Some(Scope::Read),
                ..
            })
        ));
        assert!(access.check(Scope::Read, &bearer(&ops), remote).is_ok());
        assert!(matches!(
            access.check(Scope::Read, &bearer("wfn_nope"), remote),
            Err(Refusal::Unauthenticated { invalid: true, .. })
        ));
        assert!(matches!(
            access.check(Scope::Read, &HeaderMap::new(), remote),
            Err(Refusal::Unauthenticated { invalid: false, .. })
        ));
    }

    #[test]
    fn without_tokens_only_loopback_reads_unless_writes_are_open() {
        let mut access = AdminAccess::default();
        let local: Option<SocketAddr> = Some("127.0.0.1:5000".parse().unwrap());
        let mapped: Option<SocketAddr> = Some("[::ffff:127.0.0.1]:5000".parse().unwrap());
        let remote: Option<SocketAddr> = Some("10.0.0.2:5000".parse().unwrap());
        assert!(access.check(Scope::Read, &HeaderMap::new(), local).is_ok());
        assert!(access.check(Scope::Read, &HeaderMap::new(), mapped).is_ok());
        assert!(access.check(Scope::Read, &HeaderMap::new(), remote).is_err());
        assert!(access.check(Scope::Deploy, &HeaderMap::new(), local).is_err());
        access.loopback_writes = true;
        assert!(access.check(Scope::Deploy, &HeaderMap::new(), local).is_ok());
        assert!(access.check(Scope::Deploy, &HeaderMap::new(), remote).is_err());
    }

    #[test]
    fn a_bad_token_file_is_named_with_its_entry_and_field() {
        let e = file(serde_json::json!([{"id": "ci", "sha256": "abc", "scopes": ["read"]}]))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("`tokens.json`") && e.contains("entry 0 (`ci`): field `sha256`"),
            "{e}"
        );
        let e = file(serde_json::json!([{"id": "ci", "sha256": "00".repeat(32), "scopes": ["write"]}]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("`write` is not a scope"), "{e}");
        let e = file(serde_json::json!([{"id": "ci", "sha": "00"}]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown field `sha`"), "{e}");
        let e = file(serde_json::json!([])).unwrap_err().to_string();
        assert!(e.contains("lists no token"), "{e}");
    }
}
