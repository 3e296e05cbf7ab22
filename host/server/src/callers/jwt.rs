//! Verification of JWT bearer tokens for functions whose `auth` type is "jwt".
//!
//! A [`JwtVerifier`] is built once per function from its [`JwtSettings`] and then checks the
//! compact JWS of every request with [`JwtVerifier::verify`]:
//!
//! * the header `alg` must be listed in `algorithms` (`none` never is) and match the key type:
//!   RS256 ↔ `kty` RSA (≥ 2048 bits), ES256 ↔ EC P-256, EdDSA ↔ OKP Ed25519, HS256 ↔ `oct`
//!   (≥ 32 bytes, only from `jwks`/`jwks_file`). A JWK whose `alg` names another algorithm, or
//!   whose `use` is not `sig`, is never used. Header fields `jku`, `x5u`, `jwk` and `x5c` are
//!   ignored: keys come only from the settings. A header with `crit` is refused.
//! * the key is chosen by `kid`; a token without `kid` is tried against at most
//!   [`MAX_CANDIDATES`] keys of its algorithm.
//! * the signature is checked with `jsonwebtoken::crypto::verify` (ring) **before** the payload is
//!   decoded; then `exp` (required), `nbf` (if present), `iss` (a string equal to `issuer`) and
//!   `aud` (a string or array holding one of `audiences`) are checked, with `leeway_s`.
//!   jsonwebtoken's `Validation` is not used because it accepts an `iss` array, ignores an `nbf`
//!   that is not a number and parses the claims twice.
//! * keys from `jwks_url` are fetched on first need through [`JwksFetch`], cached as parsed
//!   `DecodingKey`s, refetched when a `kid` is unknown (at most once per refetch interval, one
//!   fetch shared by all waiting requests) and when older than the maximum age; a failed
//!   refetch keeps the old keys. The fast path only clones an `Arc` under a short read lock.

use std::borrow::Cow;
use std::collections::HashMap;
use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey};
use serde_json::{Map, Value};
pub use wasmfn_manifest::JwtSettings;

/// Longest token accepted, in bytes; longer ones are [`JwtError::Malformed`] before any decoding.
pub const MAX_TOKEN_LEN: usize = 16 * 1024;
/// Largest JWKS document accepted from `jwks_url` or `jwks_file`, in bytes.
pub const MAX_JWKS_LEN: usize = 512 * 1024;
/// Least time between two fetches of `jwks_url` (see [`JwtVerifier::with_refetch_interval`]).
pub const DEFAULT_REFETCH_INTERVAL: Duration = Duration::from_secs(10);
/// Age after which keys from `jwks_url` are refetched on next use (see [`JwtVerifier::with_max_key_age`]).
pub const DEFAULT_MAX_KEY_AGE: Duration = Duration::from_secs(600);
/// Longest time one fetch of `jwks_url` may take before it counts as failed.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(10);
/// Most keys whose signature check one token may cost (a token without `kid`, or duplicate kids).
pub const MAX_CANDIDATES: usize = 4;

/// Fetches a JWKS document over HTTP; the host supplies it (it applies the function's outbound rules).
pub trait JwksFetch: Send + Sync + 'static {
    /// Returns the body of a successful GET of `url`, or a message saying why it failed.
    fn fetch(&self, url: &str) -> Pin<Box<dyn Future<Output = Result<bytes::Bytes, String>> + Send + 'static>>;
}

/// A [`JwksFetch`] that always fails, for verifiers whose keys are inline or in a file.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoFetch;

impl JwksFetch for NoFetch {
    fn fetch(&self, url: &str) -> Pin<Box<dyn Future<Output = Result<bytes::Bytes, String>> + Send + 'static>> {
        let msg = format!("no JWKS fetcher configured for {url}");
        Box::pin(async move { Err(msg) })
    }
}

/// Why a token was refused. `Display` is for logs; [`JwtError::public_message`] is for clients.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwtError {
    /// Not a well-formed compact JWS (size, segments, base64url, JSON, `crit`).
    #[error("malformed token: {0}")]
    Malformed(&'static str),
    /// The header `alg` (sanitized) is not in `algorithms`, or is `none`.
    #[error("token algorithm {0:?} is not allowed")]
    AlgorithmNotAllowed(String),
    /// No key of the token's algorithm has its `kid` (sanitized; `None`: token had no `kid`).
    #[error("no signing key for kid {0:?}")]
    UnknownKey(Option<String>),
    /// No candidate key verifies the signature.
    #[error("the signature does not verify")]
    BadSignature,
    /// `exp` is past, beyond the leeway.
    #[error("the token expired")]
    Expired,
    /// `nbf` is in the future, beyond the leeway.
    #[error("the token is not valid yet (nbf)")]
    NotYetValid,
    /// `iss` is not a string equal to the configured issuer.
    #[error("the token's issuer is not the configured one")]
    WrongIssuer,
    /// `aud` holds none of the configured audiences.
    #[error("the token's audience is not a configured one")]
    WrongAudience,
    /// A required claim (`exp`, `iss`, `aud`) is absent.
    #[error("the token lacks the `{0}` claim")]
    MissingClaim(&'static str),
    /// A claim has the wrong JSON type (`exp`/`nbf` not a number, `sub` not a string).
    #[error("the token's `{0}` claim has the wrong type")]
    InvalidClaim(&'static str),
    /// No keys could be loaded from `jwks_url` (the message names the URL and the cause).
    #[error("signing keys unavailable: {0}")]
    KeysUnavailable(String),
}

impl JwtError {
    /// A message safe to send to the client in a 401 (no key material, no token echo).
    pub fn public_message(&self) -> String {
        match self {
            JwtError::Malformed(_) => "the token is malformed".into(),
            JwtError::AlgorithmNotAllowed(_) => "the token's signing algorithm is not accepted".into(),
            JwtError::UnknownKey(_) => "the token was signed with an unknown key".into(),
            JwtError::BadSignature => "the token's signature is invalid".into(),
            JwtError::Expired => "the token expired".into(),
            JwtError::NotYetValid => "the token is not valid yet".into(),
            JwtError::WrongIssuer => "the token's issuer is not accepted".into(),
            JwtError::WrongAudience => "the token is not meant for this function".into(),
            JwtError::MissingClaim(c) => format!("the token lacks the `{c}` claim"),
            JwtError::InvalidClaim(c) => format!("the token's `{c}` claim is invalid"),
            JwtError::KeysUnavailable(_) => "the signing keys could not be loaded; try again later".into(),
        }
    }

    /// True when the fault is the host's (keys unavailable): answer 503 rather than 401.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, JwtError::KeysUnavailable(_))
    }
}

/// Token-supplied text made safe for logs: at most 64 printable ASCII characters.
fn sanitize(s: &str) -> String {
    s.chars()
        .take(64)
        .map(|c| if c.is_ascii_graphic() || c == ' ' { c } else { '?' })
        .collect()
}

/// What a successful [`JwtVerifier::verify`] returns.
#[derive(Debug, Clone, PartialEq)]
pub struct VerifiedJwt {
    /// The `sub` claim.
    pub subject: Option<String>,
    /// Scopes from `scope` (space-separated) and `scp` (string or array), deduplicated, in order.
    pub scopes: Vec<String>,
    /// The `kid` of the key that verified the token.
    pub key_id: Option<String>,
    /// All claims of the payload.
    pub claims: Map<String, Value>,
}

/// The algorithm of a supported name (exact case); each goes with exactly one key type.
fn supported(name: &str) -> Option<Algorithm> {
    match name {
        "RS256" => Some(Algorithm::RS256),
        "ES256" => Some(Algorithm::ES256),
        "EdDSA" => Some(Algorithm::EdDSA),
        "HS256" => Some(Algorithm::HS256),
        _ => None,
    }
}

/// A parsed verification key, ready for use.
struct Key {
    kid: Option<String>,
    alg: Algorithm,
    decoding: DecodingKey,
}

/// Parses a JWK Set. `strict` (configuration): a broken key is an error naming `origin` and
/// its index; otherwise (fetched) it is skipped with a warning. Keys not for signing, or for an
/// algorithm outside `allowed`, are skipped in both cases. An empty result is an error.
fn parse_jwks(doc: &Value, origin: &str, allowed: &[Algorithm], strict: bool) -> Result<Vec<Key>, String> {
    let list = doc
        .get("keys")
        .and_then(Value::as_array)
        .ok_or_else(|| format!("{origin}: not a JWK Set; expected an object {{\"keys\": [...]}}"))?;
    let mut keys = Vec::new();
    for (i, jwk) in list.iter().enumerate() {
        match parse_jwk(jwk, allowed) {
            Ok(Some(key)) => keys.push(key),
            Ok(None) => tracing::debug!(
                origin,
                index = i,
                "JWK skipped: not a signing key for an allowed algorithm"
            ),
            Err(e) if strict => return Err(format!("{origin}: key #{i}: {e}")),
            Err(e) => tracing::warn!(origin, index = i, "JWK skipped: {e}"),
        }
    }
    if keys.is_empty() {
        return Err(format!(
            "{origin}: no usable signing key; keys need `use` \"sig\" (or none) and a type matching an allowed \
             algorithm (RSA for RS256, EC P-256 for ES256, OKP Ed25519 for EdDSA, oct for HS256)"
        ));
    }
    Ok(keys)
}

/// Parses one JWK: `Ok(None)` if it is not a signing key for an allowed algorithm.
fn parse_jwk(jwk: &Value, allowed: &[Algorithm]) -> Result<Option<Key>, String> {
    let obj = jwk.as_object().ok_or("not a JSON object")?;
    let text = |name: &str| -> Result<Option<&str>, String> {
        match obj.get(name) {
            None => Ok(None),
            Some(Value::String(v)) => Ok(Some(v.as_str())),
            Some(_) => Err(format!("`{name}` must be a string")),
        }
    };
    let bytes = |name: &str| -> Result<Vec<u8>, String> {
        let v = text(name)?.ok_or_else(|| format!("`{name}` is missing"))?;
        URL_SAFE_NO_PAD
            .decode(v)
            .map_err(|_| format!("`{name}` is not base64url without padding"))
    };
    if text("use")?.is_some_and(|u| u != "sig") {
        return Ok(None);
    }
    if let Some(ops) = obj.get("key_ops")
        && !ops.as_array().is_some_and(|ops| ops.iter().any(|o| o == "verify"))
    {
        return Ok(None);
    }
    let alg = match (text("kty")?.ok_or("`kty` is missing")?, text("crv")?) {
        ("RSA", _) => Algorithm::RS256,
        ("EC", Some("P-256")) => Algorithm::ES256,
        ("OKP", Some("Ed25519")) => Algorithm::EdDSA,
        ("oct", _) => Algorithm::HS256,
        _ => return Ok(None),
    };
    if text("alg")?.is_some_and(|a| supported(a) != Some(alg)) || !allowed.contains(&alg) {
        return Ok(None);
    }
    let decoding = match alg {
        Algorithm::RS256 => {
            let (n, e) = (bytes("n")?, bytes("e")?);
            let n = strip_zeros(&n);
            let e = strip_zeros(&e);
            let bits = n.first().map_or(0, |b| n.len() * 8 - b.leading_zeros() as usize);
            if !(2048..=8192).contains(&bits) {
                return Err(format!(
                    "RSA modulus `n` has {bits} bits; use a key of 2048 to 8192 bits"
                ));
            }
            if e.is_empty() {
                return Err("RSA exponent `e` is zero".into());
            }
            DecodingKey::from_rsa_raw_components(n, e)
        }
        Algorithm::ES256 => {
            if bytes("x")?.len() != 32 || bytes("y")?.len() != 32 {
                return Err("P-256 coordinates `x` and `y` must be 32 bytes each".into());
            }
            let (x, y) = (text("x")?.unwrap_or_default(), text("y")?.unwrap_or_default());
            DecodingKey::from_ec_components(x, y).map_err(|e| format!("bad EC key: {e}"))?
        }
        Algorithm::EdDSA => {
            if bytes("x")?.len() != 32 {
                return Err("Ed25519 public key `x` must be 32 bytes".into());
            }
            let x = text("x")?.unwrap_or_default();
            DecodingKey::from_ed_components(x).map_err(|e| format!("bad Ed25519 key: {e}"))?
        }
        _ => {
            let k = bytes("k")?;
            if k.len() < 32 {
                return Err(format!(
                    "HS256 secret `k` has {} bytes; use at least 32 random bytes",
                    k.len()
                ));
            }
            DecodingKey::from_secret(&k)
        }
    };
    Ok(Some(Key {
        kid: text("kid")?.map(str::to_owned),
        alg,
        decoding,
    }))
}

fn strip_zeros(b: &[u8]) -> &[u8] {
    let first = b.iter().position(|x| *x != 0).unwrap_or(b.len());
    &b[first..]
}

/// The parts of a token that survived the checks made before any key is touched.
struct Token<'t> {
    alg: Algorithm,
    kid: Option<String>,
    /// `header.payload`, the signed bytes.
    message: &'t str,
    payload: &'t str,
    signature: &'t str,
}

#[derive(serde::Deserialize)]
struct Header<'a> {
    #[serde(borrow)]
    alg: Cow<'a, str>,
    #[serde(default, borrow)]
    kid: Option<Cow<'a, str>>,
    #[serde(default)]
    crit: Option<serde::de::IgnoredAny>,
}

fn is_b64url(s: &str) -> bool {
    s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

impl<'t> Token<'t> {
    fn parse(token: &'t str, allowed: &[Algorithm]) -> Result<Token<'t>, JwtError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(JwtError::Malformed("the token is longer than 16 KiB"));
        }
        let mut parts = token.split('.');
        let (Some(header), Some(payload), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(JwtError::Malformed("a JWS has three dot-separated parts"));
        };
        let mut stack = [0u8; 768];
        let heap;
        let raw: &[u8] = if header.len() / 4 * 3 + 3 <= stack.len() {
            let n = URL_SAFE_NO_PAD.decode_slice(header, &mut stack);
            &stack[..n.map_err(|_| JwtError::Malformed("the header is not base64url"))?]
        } else {
            heap = URL_SAFE_NO_PAD
                .decode(header)
                .map_err(|_| JwtError::Malformed("the header is not base64url"))?;
            &heap
        };
        // serde would also read a struct from a JSON array: insist on an object.
        let is_object = raw.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{');
        let head: Header<'_> = serde_json::from_slice(raw)
            .ok()
            .filter(|_| is_object)
            .ok_or(JwtError::Malformed(
                "the header is not a JSON object with a string `alg`",
            ))?;
        let alg = match supported(&head.alg) {
            Some(alg) if allowed.contains(&alg) => alg,
            _ => return Err(JwtError::AlgorithmNotAllowed(sanitize(&head.alg))),
        };
        if head.crit.is_some() {
            return Err(JwtError::Malformed(
                "the header has `crit` extensions, which are not supported",
            ));
        }
        if signature.is_empty() || !is_b64url(signature) || !is_b64url(payload) {
            return Err(JwtError::Malformed("the payload or signature is not base64url"));
        }
        let message = &token[..header.len() + 1 + payload.len()];
        Ok(Token {
            alg,
            kid: head.kid.map(Cow::into_owned),
            message,
            payload,
            signature,
        })
    }
}

/// Keys fetched from `jwks_url`, as one immutable generation.
struct Snapshot {
    keys: Vec<Key>,
    fetched_at: Instant,
    generation: u64,
}

/// Bookkeeping of fetches, behind the async mutex that makes them single-flight.
#[derive(Default)]
struct FetchState {
    last_attempt: Option<Instant>,
    last_error: Option<String>,
    generation: u64,
}

/// Keys from `jwks_url`: lazily fetched, cached, refetched on demand.
struct Remote {
    url: String,
    fetch: Arc<dyn JwksFetch>,
    allowed: Vec<Algorithm>,
    current: RwLock<Option<Arc<Snapshot>>>,
    state: tokio::sync::Mutex<FetchState>,
    refetch_interval: Duration,
    max_age: Duration,
}

impl Remote {
    fn load(&self) -> Option<Arc<Snapshot>> {
        self.current.read().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// The keys to verify with: the cache if fresh; if stale, refreshed by whichever request
    /// gets there first while the others keep using the stale keys; if none, fetched.
    async fn keys(&self) -> Result<Arc<Snapshot>, JwtError> {
        if let Some(snap) = self.load() {
            if snap.fetched_at.elapsed() < self.max_age {
                return Ok(snap);
            }
            return match self.state.try_lock() {
                Ok(mut state) => self.refresh_locked(&mut state, Some(snap.generation)).await,
                Err(_) => Ok(snap),
            };
        }
        self.refresh(None).await
    }

    /// Refreshes unless another request already replaced generation `seen` or the refetch
    /// interval forbids; returns the newest keys. Concurrent callers share one fetch.
    async fn refresh(&self, seen: Option<u64>) -> Result<Arc<Snapshot>, JwtError> {
        let mut state = self.state.lock().await;
        self.refresh_locked(&mut state, seen).await
    }

    async fn refresh_locked(&self, state: &mut FetchState, seen: Option<u64>) -> Result<Arc<Snapshot>, JwtError> {
        let current = self.load();
        if let Some(snap) = &current
            && Some(snap.generation) != seen
        {
            return Ok(snap.clone());
        }
        let unavailable = |state: &FetchState| {
            let why = state.last_error.clone().unwrap_or_else(|| "not fetched yet".into());
            JwtError::KeysUnavailable(why)
        };
        if state.last_attempt.is_some_and(|t| t.elapsed() < self.refetch_interval) {
            return current.ok_or_else(|| unavailable(state));
        }
        let started = Instant::now();
        let result = self.fetch_keys().await;
        state.last_attempt = Some(started);
        match result {
            Ok(keys) => {
                state.generation += 1;
                state.last_error = None;
                let snap = Arc::new(Snapshot {
                    keys,
                    fetched_at: started,
                    generation: state.generation,
                });
                *self.current.write().unwrap_or_else(PoisonError::into_inner) = Some(snap.clone());
                tracing::debug!(url = %self.url, keys = snap.keys.len(), "JWKS fetched");
                Ok(snap)
            }
            Err(e) => {
                tracing::warn!(url = %self.url, kept_old_keys = current.is_some(), "JWKS fetch failed: {e}");
                state.last_error = Some(e);
                current.ok_or_else(|| unavailable(state))
            }
        }
    }

    async fn fetch_keys(&self) -> Result<Vec<Key>, String> {
        let url = &self.url;
        let body = match tokio::time::timeout(FETCH_TIMEOUT, self.fetch.fetch(url)).await {
            Err(_) => return Err(format!("fetching `jwks_url` {url} took longer than {FETCH_TIMEOUT:?}")),
            Ok(Err(e)) => return Err(format!("fetching `jwks_url` {url} failed: {e}")),
            Ok(Ok(body)) => body,
        };
        if body.len() > MAX_JWKS_LEN {
            return Err(format!(
                "`jwks_url` {url} returned {} bytes, more than {MAX_JWKS_LEN}",
                body.len()
            ));
        }
        let doc: Value =
            serde_json::from_slice(&body).map_err(|e| format!("`jwks_url` {url} did not return JSON: {e}"))?;
        parse_jwks(&doc, &format!("`jwks_url` {url}"), &self.allowed, false)
    }
}

enum KeySource {
    Fixed(Vec<Key>),
    Remote(Remote),
}

/// Verifies bearer tokens for one function. Cheap to share behind an `Arc`.
pub struct JwtVerifier {
    issuer: String,
    audiences: Vec<String>,
    allowed: Vec<Algorithm>,
    leeway: f64,
    keys: KeySource,
    /// Tokens verified lately, by their exact text.
    verified: Mutex<HashMap<Box<str>, Remembered>>,
}

/// How many verified tokens a verifier remembers; when full, it forgets them all.
pub const REMEMBERED_TOKENS: usize = 4096;

/// A token that passed, and what it may be taken for without verifying
/// its signature again: until its `exp` (and from its `nbf`), while the
/// key set that verified it is the current one.
struct Remembered {
    jwt: VerifiedJwt,
    exp: f64,
    nbf: Option<f64>,
    generation: u64,
}

impl std::fmt::Debug for JwtVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "JwtVerifier {{ issuer: {:?}, .. }}", self.issuer)
    }
}

impl JwtVerifier {
    /// `base_dir` resolves a relative `jwks_file`. Inline and file keys are read here (errors
    /// name the field/file); `jwks_url` is only fetched on first need.
    pub fn new(settings: JwtSettings, base_dir: &Path, fetch: Arc<dyn JwksFetch>) -> Result<Self, String> {
        settings.check()?;
        let allowed: Vec<Algorithm> = settings.algorithms.iter().filter_map(|a| supported(a)).collect();
        let keys = if let Some(doc) = &settings.jwks {
            KeySource::Fixed(parse_jwks(doc, "field `jwks`", &allowed, true)?)
        } else if let Some(file) = &settings.jwks_file {
            let path = base_dir.join(file);
            let origin = format!("file `{}` (field `jwks_file`)", path.display());
            let text = std::fs::read(&path).map_err(|e| {
                format!(
                    "{origin}: cannot read it: {e}; relative paths are resolved against `{}`",
                    base_dir.display()
                )
            })?;
            if text.len() > MAX_JWKS_LEN {
                return Err(format!(
                    "{origin}: larger than {MAX_JWKS_LEN} bytes; is it really a JWK Set?"
                ));
            }
            let doc: Value = serde_json::from_slice(&text).map_err(|e| format!("{origin}: not valid JSON: {e}"))?;
            KeySource::Fixed(parse_jwks(&doc, &origin, &allowed, true)?)
        } else if let Some(url) = settings.jwks_url {
            KeySource::Remote(Remote {
                url,
                fetch,
                allowed: allowed.clone(),
                current: RwLock::new(None),
                state: tokio::sync::Mutex::new(FetchState::default()),
                refetch_interval: DEFAULT_REFETCH_INTERVAL,
                max_age: DEFAULT_MAX_KEY_AGE,
            })
        } else {
            return Err("fields `jwks_url`, `jwks`, `jwks_file`: set exactly one of them".into());
        };
        Ok(JwtVerifier {
            issuer: settings.issuer,
            audiences: settings.audiences,
            allowed,
            leeway: settings.leeway_s as f64,
            keys,
            verified: Mutex::new(HashMap::new()),
        })
    }

    /// Sets the least time between two fetches of `jwks_url` (default 10 s); no effect on fixed keys.
    pub fn with_refetch_interval(mut self, interval: Duration) -> Self {
        if let KeySource::Remote(r) = &mut self.keys {
            r.refetch_interval = interval;
        }
        self
    }

    /// Sets the age after which `jwks_url` keys are refetched on next use (default 10 min).
    pub fn with_max_key_age(mut self, age: Duration) -> Self {
        if let KeySource::Remote(r) = &mut self.keys {
            r.max_age = age;
        }
        self
    }

    /// Verifies a compact JWS (the bearer token, without the `Bearer ` prefix). Never panics.
    ///
    /// A token verified before is taken again without checking its
    /// signature (the costly part) while its `exp`/`nbf` allow and the key
    /// set is the one that verified it; the claims were checked then and do
    /// not change with time but for those two.
    pub async fn verify(&self, text: &str) -> Result<VerifiedJwt, JwtError> {
        let remote = match &self.keys {
            KeySource::Fixed(keys) => {
                if let Some(v) = self.remembered(text, 0) {
                    return Ok(v);
                }
                let token = Token::parse(text, &self.allowed)?;
                let v = self.verify_with(&token, keys)?;
                self.remember(text, &v, 0);
                return Ok(v);
            }
            KeySource::Remote(remote) => remote,
        };
        let snap = remote.keys().await?;
        if let Some(v) = self.remembered(text, snap.generation) {
            return Ok(v);
        }
        let token = Token::parse(text, &self.allowed)?;
        let first = self.verify_with(&token, &snap.keys);
        if let Ok(v) = &first {
            self.remember(text, v, snap.generation);
        }
        // A rotation shows as an unknown kid, or, for tokens without kid, as a bad signature.
        let retry = match &first {
            Err(JwtError::UnknownKey(_)) => true,
            Err(JwtError::BadSignature) => token.kid.is_none(),
            _ => false,
        };
        if !retry {
            return first;
        }
        let newer = remote.refresh(Some(snap.generation)).await?;
        if newer.generation == snap.generation {
            return first;
        }
        let v = self.verify_with(&token, &newer.keys)?;
        self.remember(text, &v, newer.generation);
        Ok(v)
    }

    /// A token verified by key set `generation`, if it is still in time.
    fn remembered(&self, text: &str, generation: u64) -> Option<VerifiedJwt> {
        let map = self.verified.lock().unwrap_or_else(PoisonError::into_inner);
        let r = map.get(text)?;
        let now = now_secs();
        let in_time =
            now < r.exp + self.leeway && r.nbf.is_none_or(|nbf| now + self.leeway >= nbf) && r.generation == generation;
        in_time.then(|| r.jwt.clone())
    }

    fn remember(&self, text: &str, v: &VerifiedJwt, generation: u64) {
        let (Ok(Some(exp)), Ok(nbf)) = (numeric(&v.claims, "exp"), numeric(&v.claims, "nbf")) else {
            return;
        };
        let mut map = self.verified.lock().unwrap_or_else(PoisonError::into_inner);
        if map.len() >= REMEMBERED_TOKENS {
            map.clear();
        }
        map.insert(
            text.into(),
            Remembered {
                jwt: v.clone(),
                exp,
                nbf,
                generation,
            },
        );
    }

    fn verify_with(&self, token: &Token<'_>, keys: &[Key]) -> Result<VerifiedJwt, JwtError> {
        let mut candidates = keys
            .iter()
            .filter(|k| k.alg == token.alg && (token.kid.is_none() || k.kid.as_deref() == token.kid.as_deref()))
            .take(MAX_CANDIDATES)
            .peekable();
        if candidates.peek().is_none() {
            return Err(JwtError::UnknownKey(token.kid.as_deref().map(sanitize)));
        }
        // `k.alg == token.alg`, so the key's family always fits the algorithm (no HS/RS confusion).
        let message = token.message.as_bytes();
        let key = candidates
            .find(|k| jsonwebtoken::crypto::verify(token.signature, message, &k.decoding, token.alg).unwrap_or(false))
            .ok_or(JwtError::BadSignature)?;
        let payload = URL_SAFE_NO_PAD
            .decode(token.payload)
            .map_err(|_| JwtError::Malformed("the payload is not base64url"))?;
        let claims: Map<String, Value> =
            serde_json::from_slice(&payload).map_err(|_| JwtError::Malformed("the payload is not a JSON object"))?;
        self.check_claims(&claims)?;
        let subject = match claims.get("sub") {
            None => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => return Err(JwtError::InvalidClaim("sub")),
        };
        Ok(VerifiedJwt {
            subject,
            scopes: scopes(&claims),
            key_id: key.kid.clone(),
            claims,
        })
    }

    fn check_claims(&self, claims: &Map<String, Value>) -> Result<(), JwtError> {
        let now = now_secs();
        let exp = numeric(claims, "exp")?.ok_or(JwtError::MissingClaim("exp"))?;
        if now >= exp + self.leeway {
            return Err(JwtError::Expired);
        }
        if numeric(claims, "nbf")?.is_some_and(|nbf| now + self.leeway < nbf) {
            return Err(JwtError::NotYetValid);
        }
        match claims.get("iss") {
            None => return Err(JwtError::MissingClaim("iss")),
            Some(Value::String(iss)) if *iss == self.issuer => {}
            Some(_) => return Err(JwtError::WrongIssuer),
        }
        let ours = |v: &Value| v.as_str().is_some_and(|a| self.audiences.iter().any(|o| o == a));
        match claims.get("aud") {
            None => Err(JwtError::MissingClaim("aud")),
            Some(aud @ Value::String(_)) if ours(aud) => Ok(()),
            Some(Value::Array(list)) if list.iter().any(ours) => Ok(()),
            Some(_) => Err(JwtError::WrongAudience),
        }
    }
}

fn now_secs() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64()
}

/// A NumericDate claim as seconds; `name` must be a static claim name.
fn numeric(claims: &Map<String, Value>, name: &'static str) -> Result<Option<f64>, JwtError> {
    match claims.get(name) {
        None => Ok(None),
        Some(Value::Number(n)) => n.as_f64().map(Some).ok_or(JwtError::InvalidClaim(name)),
        Some(_) => Err(JwtError::InvalidClaim(name)),
    }
}

/// Scopes from `scope` (space-separated string) and `scp` (string or array of strings).
fn scopes(claims: &Map<String, Value>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut add = |s: &str| {
        for word in s.split(' ').filter(|w| !w.is_empty()) {
            if !out.iter().any(|o| o == word) {
                out.push(word.to_owned());
            }
        }
    };
    if let Some(Value::String(s)) = claims.get("scope") {
        add(s);
    }
    match claims.get("scp") {
        Some(Value::String(s)) => add(s),
        Some(Value::Array(list)) => list.iter().filter_map(Value::as_str).for_each(&mut add),
        _ => {}
    }
    out
}

#[cfg(test)]
#[path = "jwt_tests.rs"]
mod tests;
