//! The manifest's `auth`: how the host authenticates a function's callers
//! before the guest runs. An API key of the tenant (`api_key`, in a header
//! or the query), a JWT (`jwt`: issuer, audiences, keys), or `none` (to
//! open one route of a protected function); `required_scopes` for either.
//! Set per function, per route (`invoke.routes` objects) or in an overlay.

use serde::{Deserialize, Deserializer, Serialize};

/// The most clock skew `leeway_s` may allow, in seconds.
pub const MAX_LEEWAY_S: u64 = 600;

/// One `auth` object.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuthSettings {
    /// How callers prove who they are.
    #[serde(flatten)]
    pub scheme: AuthScheme,
    /// Scopes the caller must hold (all of them): JWT `scope`/`scp`, or the API key's scopes.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub required_scopes: Vec<String>,
}

/// The kinds of `auth`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum AuthScheme {
    /// Anyone may call.
    None,
    /// One of the tenant's API keys.
    ApiKey(ApiKeySettings),
    /// A JWT signed by a key of the issuer.
    Jwt(JwtSettings),
}

impl AuthSettings {
    /// Whether callers must authenticate.
    pub fn is_required(&self) -> bool {
        !matches!(self.scheme, AuthScheme::None)
    }
}

/// Where an API key is presented.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiKeySettings {
    /// `header` or `query`.
    #[serde(rename = "in")]
    pub location: KeyLocation,
    /// The header's or query parameter's name, e.g. `x-api-key`.
    pub name: String,
}

/// `in` of an API key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyLocation {
    /// A request header.
    Header,
    /// A query parameter.
    Query,
}

const EXAMPLE: &str = "e.g. {\"type\": \"api_key\", \"in\": \"header\", \"name\": \"x-api-key\"}, \
     {\"type\": \"jwt\", \"issuer\": \"https://issuer.example\", \"audiences\": [\"my-api\"], \"jwks_url\": \"https://issuer.example/.well-known/jwks.json\"} \
     or {\"type\": \"none\"}";

impl<'de> Deserialize<'de> for AuthSettings {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let mut v = serde_json::Map::deserialize(d)?;
        let kind = match v.remove("type") {
            Some(serde_json::Value::String(t)) => t,
            _ => return Err(D::Error::custom(format!("`type` is missing: {EXAMPLE}"))),
        };
        let required_scopes: Vec<String> = match v.remove("required_scopes") {
            None => Vec::new(),
            Some(s) => serde_json::from_value(s)
                .map_err(|e| D::Error::custom(format!("`required_scopes`: {e} (a list of scope names)")))?,
        };
        if let Some(s) = required_scopes
            .iter()
            .find(|s| s.is_empty() || s.contains(char::is_whitespace))
        {
            return Err(D::Error::custom(format!(
                "`required_scopes`: `{s}` is not a scope (non-empty, no spaces)"
            )));
        }
        let rest = serde_json::Value::Object(v);
        let scheme = match kind.as_str() {
            "none" => {
                if rest.as_object().is_some_and(|o| !o.is_empty()) {
                    return Err(D::Error::custom("`type: none` takes no other field"));
                }
                if !required_scopes.is_empty() {
                    return Err(D::Error::custom("`type: none` cannot require scopes"));
                }
                AuthScheme::None
            }
            "api_key" => {
                let s: ApiKeySettings =
                    serde_json::from_value(rest).map_err(|e| D::Error::custom(format!("{e} ({EXAMPLE})")))?;
                if s.name.trim().is_empty()
                    || (s.location == KeyLocation::Header && http::HeaderName::from_bytes(s.name.as_bytes()).is_err())
                {
                    return Err(D::Error::custom(format!(
                        "`name`: `{}` is not a header or parameter name",
                        s.name
                    )));
                }
                AuthScheme::ApiKey(s)
            }
            "jwt" => {
                let s: JwtSettings =
                    serde_json::from_value(rest).map_err(|e| D::Error::custom(format!("{e} ({EXAMPLE})")))?;
                s.check().map_err(D::Error::custom)?;
                AuthScheme::Jwt(s)
            }
            other => {
                return Err(D::Error::custom(format!(
                    "`type`: `{other}` is not an auth type: {EXAMPLE}"
                )));
            }
        };
        Ok(AuthSettings {
            scheme,
            required_scopes,
        })
    }
}

const ALG_HINT: &str = "use RS256, ES256, EdDSA or HS256";

fn default_algorithms() -> Vec<String> {
    vec!["RS256".into(), "ES256".into(), "EdDSA".into()]
}

fn default_leeway() -> u64 {
    60
}

/// The `auth` settings of a function of type "jwt", as the manifest gives them.
#[derive(Debug, Clone, PartialEq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct JwtSettings {
    /// The exact `iss` tokens must carry.
    pub issuer: String,
    /// Accepted audiences; a token's `aud` (string or array) must contain one of them.
    pub audiences: Vec<String>,
    /// URL of the issuer's JWK Set, fetched through the host's [`JwksFetch`].
    #[serde(default)]
    pub jwks_url: Option<String>,
    /// An inline JWK Set, `{"keys": [...]}`.
    #[serde(default)]
    pub jwks: Option<serde_json::Value>,
    /// A file holding a JWK Set; a relative path is resolved against the function's directory.
    #[serde(default)]
    pub jwks_file: Option<std::path::PathBuf>,
    /// Accepted `alg` values: any of RS256, ES256, EdDSA, HS256. Default: RS256, ES256, EdDSA.
    #[serde(default = "default_algorithms")]
    pub algorithms: Vec<String>,
    /// Clock skew tolerated on `exp` and `nbf`, in seconds. Default 60.
    #[serde(default = "default_leeway")]
    pub leeway_s: u64,
}

impl JwtSettings {
    /// Checks the settings alone; the error names the field and the fix.
    pub fn check(&self) -> Result<(), String> {
        if self.issuer.trim().is_empty() {
            return Err("field `issuer`: must not be empty; give the exact `iss` value of your tokens".into());
        }
        if self.audiences.is_empty() || self.audiences.iter().any(|a| a.is_empty()) {
            return Err(
                "field `audiences`: give at least one audience, none empty; tokens must carry one of them in `aud`"
                    .into(),
            );
        }
        let sources = [self.jwks_url.is_some(), self.jwks.is_some(), self.jwks_file.is_some()];
        if sources.iter().filter(|s| **s).count() != 1 {
            return Err("fields `jwks_url`, `jwks`, `jwks_file`: set exactly one of them, to say where the signing keys come from".into());
        }
        if let Some(url) = &self.jwks_url {
            check_url(url)?;
        }
        if let Some(jwks) = &self.jwks
            && !jwks.get("keys").is_some_and(serde_json::Value::is_array)
        {
            return Err("field `jwks`: must be a JWK Set, an object {\"keys\": [...]}".into());
        }
        if self.jwks_file.as_ref().is_some_and(|f| f.as_os_str().is_empty()) {
            return Err("field `jwks_file`: must not be empty; give the path of a JWK Set file".into());
        }
        if self.algorithms.is_empty() {
            return Err(format!("field `algorithms`: must not be empty; {ALG_HINT}"));
        }
        for alg in &self.algorithms {
            if alg.eq_ignore_ascii_case("none") {
                return Err(format!("field `algorithms`: `{alg}` is not allowed; {ALG_HINT}"));
            }
            if !matches!(alg.as_str(), "RS256" | "ES256" | "EdDSA" | "HS256") {
                return Err(format!(
                    "field `algorithms`: `{alg}` is not supported; {ALG_HINT} (names are case-sensitive)"
                ));
            }
        }
        if self.jwks_url.is_some() && self.algorithms.iter().any(|a| a == "HS256") {
            return Err("field `algorithms`: HS256 needs a shared secret, which must not come from `jwks_url`; give it as a kty \"oct\" key in `jwks` or `jwks_file`, or remove HS256".into());
        }
        if self.leeway_s > MAX_LEEWAY_S {
            return Err(format!(
                "field `leeway_s`: {} is too large; use at most {MAX_LEEWAY_S} seconds",
                self.leeway_s
            ));
        }
        Ok(())
    }
}

/// Accepts `https://` URLs, and `http://` only for loopback hosts; no user info.
fn check_url(url: &str) -> Result<(), String> {
    let (https, rest) = match (url.strip_prefix("https://"), url.strip_prefix("http://")) {
        (Some(rest), _) => (true, rest),
        (None, Some(rest)) => (false, rest),
        _ => {
            return Err(format!(
                "field `jwks_url`: `{url}` is not an https:// URL; give the full URL of the JWK Set"
            ));
        }
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if authority.is_empty() || authority.contains('@') {
        return Err(format!(
            "field `jwks_url`: `{url}` needs a host and no user info; give a plain https://host/path URL"
        ));
    }
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => authority.split(':').next().unwrap_or_default(),
    };
    if !https && !matches!(host, "localhost" | "127.0.0.1" | "::1") {
        return Err(format!(
            "field `jwks_url`: `{url}` uses plain http; use https:// (http:// is only for localhost)"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(v: serde_json::Value) -> Result<AuthSettings, String> {
        serde_json::from_value(v).map_err(|e| e.to_string())
    }

    #[test]
    fn each_type_parses_and_mistakes_are_named() {
        let a = parse(
            serde_json::json!({"type": "api_key", "in": "header", "name": "x-api-key", "required_scopes": ["read"]}),
        )
        .unwrap();
        assert!(
            matches!(&a.scheme, AuthScheme::ApiKey(k) if k.location == KeyLocation::Header && k.name == "x-api-key")
        );
        assert_eq!(a.required_scopes, ["read"]);
        let j = parse(serde_json::json!({"type": "jwt", "issuer": "https://i.example", "audiences": ["api"], "jwks_url": "https://i.example/jwks"})).unwrap();
        assert!(matches!(&j.scheme, AuthScheme::Jwt(s) if s.leeway_s == 60));
        assert!(!parse(serde_json::json!({"type": "none"})).unwrap().is_required());
        for (bad, says) in [
            (serde_json::json!({"in": "header", "name": "k"}), "`type` is missing"),
            (serde_json::json!({"type": "basic"}), "`basic` is not an auth type"),
            (
                serde_json::json!({"type": "api_key", "in": "cookie", "name": "k"}),
                "cookie",
            ),
            (
                serde_json::json!({"type": "api_key", "in": "header", "name": "bad name"}),
                "not a header",
            ),
            (
                serde_json::json!({"type": "jwt", "issuer": "i", "audiences": ["a"]}),
                "set exactly one",
            ),
            (
                serde_json::json!({"type": "jwt", "issuer": "i", "audiences": ["a"], "jwks_url": "https://x/j", "algorithms": ["none"]}),
                "`none` is not allowed",
            ),
            (
                serde_json::json!({"type": "jwt", "issuer": "i", "audiences": ["a"], "jwks_url": "http://x.example/j"}),
                "plain http",
            ),
            (
                serde_json::json!({"type": "none", "required_scopes": ["a"]}),
                "cannot require",
            ),
            (
                serde_json::json!({"type": "api_key", "in": "header", "name": "k", "extra": 1}),
                "unknown field",
            ),
        ] {
            let e = parse(bad.clone()).unwrap_err();
            assert!(e.contains(says), "{bad}: {e}");
        }
    }
}
