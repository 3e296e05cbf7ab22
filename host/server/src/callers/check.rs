//! The check the gateway runs on a request to a route with `auth`: made
//! once per function at load (JWT verifiers with their key caches, shared
//! by the routes whose settings are the same), run before the guest.

use std::sync::Arc;

use axum::http::{HeaderMap, HeaderName, HeaderValue};
use wasmfn_manifest::{AuthScheme, AuthSettings, KeyLocation, OutboundRule};

use super::ApiKeys;
use super::jwt::{JwksFetch, JwtVerifier};

/// `x-fn-auth-subject`: the JWT's `sub`.
pub const FN_AUTH_SUBJECT: HeaderName = HeaderName::from_static("x-fn-auth-subject");
/// `x-fn-auth-scopes`: the verified scopes, space-separated.
pub const FN_AUTH_SCOPES: HeaderName = HeaderName::from_static("x-fn-auth-scopes");
/// `x-fn-auth-key-id`: the id of the API key used.
pub const FN_AUTH_KEY_ID: HeaderName = HeaderName::from_static("x-fn-auth-key-id");

/// One route's check.
pub struct CallerCheck {
    settings: AuthSettings,
    jwt: Option<Arc<JwtVerifier>>,
}

impl std::fmt::Debug for CallerCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallerCheck").field("settings", &self.settings).finish()
    }
}

/// What a passed check established, for the guest's `x-fn-auth-*` headers.
#[derive(Debug, Default)]
pub struct Verified {
    /// The JWT's subject.
    pub subject: Option<String>,
    /// The scopes held.
    pub scopes: Vec<String>,
    /// The API key's id.
    pub key_id: Option<Arc<str>>,
}

impl Verified {
    /// Puts the facts on the guest's request (client copies of `x-fn-*` are already gone).
    pub fn set_headers(&self, h: &mut HeaderMap) {
        if let Some(v) = self.subject.as_deref().and_then(|s| HeaderValue::from_str(s).ok()) {
            h.insert(FN_AUTH_SUBJECT, v);
        }
        if let Ok(v) = HeaderValue::from_str(&self.scopes.join(" ")) {
            h.insert(FN_AUTH_SCOPES, v);
        }
        if let Some(v) = self.key_id.as_deref().and_then(|s| HeaderValue::from_str(s).ok()) {
            h.insert(FN_AUTH_KEY_ID, v);
        }
    }
}

/// Why a request was refused: 401 (no or bad credentials) or 403 (missing
/// scopes), with the `WWW-Authenticate` challenge to send.
#[derive(Debug)]
pub struct Denied {
    /// 401 or 403.
    pub status: u16,
    /// The message for the client.
    pub message: String,
    /// The `WWW-Authenticate` value.
    pub challenge: String,
    /// 503 instead: the JWT keys could not be had.
    pub unavailable: bool,
}

impl CallerCheck {
    /// The check of `settings`; `None` for `type: none`. A JWT's keys from
    /// `jwks_url` are fetched by `fetch`, only from a host the function's
    /// `allowed_outbound_hosts` allow; `dir` resolves a relative `jwks_file`.
    /// `verifiers` holds the JWT verifiers made so far for the function,
    /// shared by its routes with the same JWT settings (and key cache).
    pub fn new(
        settings: &AuthSettings,
        dir: &std::path::Path,
        outbound: &[OutboundRule],
        fetch: Arc<dyn JwksFetch>,
        verifiers: &mut Vec<(wasmfn_manifest::JwtSettings, Arc<JwtVerifier>)>,
    ) -> Result<Option<Self>, String> {
        let jwt = match &settings.scheme {
            AuthScheme::None => return Ok(None),
            AuthScheme::ApiKey(_) => None,
            AuthScheme::Jwt(j) => match verifiers.iter().find(|(s, _)| s == j) {
                Some((_, v)) => Some(v.clone()),
                None => {
                    if let Some(url) = &j.jwks_url {
                        check_outbound(url, outbound)?;
                    }
                    let v =
                        Arc::new(JwtVerifier::new(j.clone(), dir, fetch).map_err(|e| format!("field `auth`: {e}"))?);
                    verifiers.push((j.clone(), v.clone()));
                    Some(v)
                }
            },
        };
        Ok(Some(Self {
            settings: settings.clone(),
            jwt,
        }))
    }

    /// Checks the request's credentials against the tenant's `keys` or the
    /// JWT settings, then the required scopes.
    pub async fn check(
        &self,
        realm: &str,
        headers: &HeaderMap,
        query: Option<&str>,
        keys: &ApiKeys,
    ) -> Result<Verified, Denied> {
        let verified = match &self.settings.scheme {
            AuthScheme::None => return Ok(Verified::default()),
            AuthScheme::ApiKey(k) => {
                let challenge = format!(
                    "ApiKey realm=\"{realm}\", in=\"{}\", name=\"{}\"",
                    match k.location {
                        KeyLocation::Header => "header",
                        KeyLocation::Query => "query",
                    },
                    k.name
                );
                let presented = match k.location {
                    KeyLocation::Header => headers
                        .get(k.name.as_str())
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_string),
                    KeyLocation::Query => query.and_then(|q| query_value(q, &k.name)),
                };
                let Some(presented) = presented.filter(|p| !p.is_empty()) else {
                    return Err(Denied::unauthorized(
                        format!(
                            "this operation needs an API key in the {} `{}`",
                            match k.location {
                                KeyLocation::Header => "header",
                                KeyLocation::Query => "query parameter",
                            },
                            k.name
                        ),
                        challenge,
                    ));
                };
                let Some(info) = keys.find(&presented) else {
                    return Err(Denied::unauthorized(
                        "the API key is not valid (unknown or revoked)",
                        challenge,
                    ));
                };
                Verified {
                    subject: None,
                    scopes: info.scopes.to_vec(),
                    key_id: Some(info.id.clone()),
                }
            }
            AuthScheme::Jwt(_) => {
                let challenge = |error: Option<&str>| match error {
                    Some(e) => format!("Bearer realm=\"{realm}\", error=\"{e}\""),
                    None => format!("Bearer realm=\"{realm}\""),
                };
                let Some(token) = crate::auth::bearer_token(headers) else {
                    return Err(Denied::unauthorized(
                        "this operation needs a bearer token: send `Authorization: Bearer <JWT>`",
                        challenge(None),
                    ));
                };
                let verifier = self.jwt.as_ref().expect("made for every jwt check");
                match verifier.verify(token).await {
                    Ok(v) => Verified {
                        subject: v.subject,
                        scopes: v.scopes,
                        key_id: None,
                    },
                    Err(e) if e.is_unavailable() => {
                        return Err(Denied {
                            status: 503,
                            message: e.public_message(),
                            challenge: challenge(None),
                            unavailable: true,
                        });
                    }
                    Err(e) => {
                        return Err(Denied::unauthorized(
                            format!("the bearer token is not valid: {}", e.public_message()),
                            challenge(Some("invalid_token")),
                        ));
                    }
                }
            }
        };
        let missing: Vec<&str> = self
            .settings
            .required_scopes
            .iter()
            .filter(|s| !verified.scopes.contains(s))
            .map(String::as_str)
            .collect();
        if !missing.is_empty() {
            let scope = self.settings.required_scopes.join(" ");
            let challenge = match &self.settings.scheme {
                AuthScheme::Jwt(_) => {
                    format!("Bearer realm=\"{realm}\", error=\"insufficient_scope\", scope=\"{scope}\"")
                }
                _ => format!("ApiKey realm=\"{realm}\", error=\"insufficient_scope\", scope=\"{scope}\""),
            };
            return Err(Denied {
                status: 403,
                message: format!(
                    "the credentials lack the scope{} {}",
                    if missing.len() == 1 { "" } else { "s" },
                    missing.iter().map(|s| format!("`{s}`")).collect::<Vec<_>>().join(", ")
                ),
                challenge,
                unavailable: false,
            });
        }
        Ok(verified)
    }
}

impl Denied {
    fn unauthorized(message: impl Into<String>, challenge: String) -> Self {
        Self {
            status: 401,
            message: message.into(),
            challenge,
            unavailable: false,
        }
    }
}

/// The decoded value of query parameter `name`.
fn query_value(query: &str, name: &str) -> Option<String> {
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let k = k.replace('+', " ");
        let k = percent_encoding::percent_decode_str(&k).decode_utf8().ok()?;
        (k == name).then(|| {
            percent_encoding::percent_decode_str(&v.replace('+', " "))
                .decode_utf8_lossy()
                .into_owned()
        })
    })
}

/// A `jwks_url` must be a destination the function may call.
fn check_outbound(url: &str, outbound: &[OutboundRule]) -> Result<(), String> {
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| format!("field `auth.jwks_url`: `{url}` is not a URL"))?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let (host, port) = match authority.strip_prefix('[') {
        Some(v6) => {
            let (h, after) = v6.split_once(']').unwrap_or((v6, ""));
            (h.to_string(), after.strip_prefix(':').and_then(|p| p.parse().ok()))
        }
        None => match authority.rsplit_once(':') {
            Some((h, p)) => (h.to_string(), p.parse().ok()),
            None => (authority.to_string(), None),
        },
    };
    let host = host.to_ascii_lowercase();
    let port = port.unwrap_or(if scheme == "https" { 443 } else { 80 });
    if outbound.iter().any(|r| r.allows(scheme, &host, port)) {
        Ok(())
    } else {
        Err(format!(
            "field `auth.jwks_url`: the host's keys are fetched under the function's outbound rules, and \
             `{scheme}://{host}:{port}` is not in its `allowed_outbound_hosts`; add `{scheme}://{host}:{port}` there"
        ))
    }
}

/// Fetches JWK Sets with the host's HTTP client.
pub struct HttpJwksFetch(pub reqwest::Client);

impl JwksFetch for HttpJwksFetch {
    fn fetch(
        &self,
        url: &str,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<bytes::Bytes, String>> + Send + 'static>> {
        let req = self.0.get(url);
        let url = url.to_string();
        Box::pin(async move {
            let resp = req.send().await.map_err(|e| format!("GET {url}: {e}"))?;
            if !resp.status().is_success() {
                return Err(format!("GET {url}: status {}", resp.status()));
            }
            resp.bytes().await.map_err(|e| format!("GET {url}: {e}"))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_keys_and_outbound_rules() {
        assert_eq!(query_value("a=1&api_key=k%2By&b", "api_key").as_deref(), Some("k+y"));
        assert_eq!(query_value("a=1", "api_key"), None);
        let rules = [OutboundRule::parse("http://127.0.0.1:8080").unwrap()];
        assert!(check_outbound("http://127.0.0.1:8080/jwks.json", &rules).is_ok());
        let e = check_outbound("http://127.0.0.1:9090/jwks.json", &rules).unwrap_err();
        assert!(e.contains("`http://127.0.0.1:9090` there"), "{e}");
    }
}
