//! Who calls a tenant's functions: API keys and JWTs checked by the host
//! before the guest runs, per function or per route (the manifest's
//! `auth`), and the facts passed to the guest once verified
//! (`x-fn-auth-subject`, `x-fn-auth-scopes`, `x-fn-auth-key-id`).

mod check;
pub mod jwt;
mod keys;

pub use check::{CallerCheck, Denied, FN_AUTH_KEY_ID, FN_AUTH_SCOPES, FN_AUTH_SUBJECT, HttpJwksFetch, Verified};
pub use keys::{ApiKeys, KeyInfo, new_api_key};

use std::sync::{Arc, OnceLock};

/// The checks of every mount of a function (by mount index; `None`: open),
/// made at load; routes with the same settings share one.
pub fn checks_for(
    spec: &wasmfn_manifest::discovery::FunctionSpec,
    mounts: &[wasmfn_openapi::Mount],
) -> Result<Vec<Option<Arc<CallerCheck>>>, String> {
    let mut made: Vec<(&wasmfn_manifest::AuthSettings, Option<Arc<CallerCheck>>)> = Vec::new();
    let mut verifiers = Vec::new();
    let mut out = Vec::with_capacity(mounts.len());
    for m in mounts {
        let Some(settings) = &m.auth else {
            out.push(None);
            continue;
        };
        if let Some((_, c)) = made.iter().find(|(s, _)| *s == settings) {
            out.push(c.clone());
            continue;
        }
        let check = CallerCheck::new(
            settings,
            &spec.dir,
            &spec.policy.allowed_outbound_hosts,
            jwks_fetch(),
            &mut verifiers,
        )?
        .map(Arc::new);
        made.push((settings, check.clone()));
        out.push(check);
    }
    Ok(out)
}

/// The one client JWK Sets are fetched with.
fn jwks_fetch() -> Arc<dyn jwt::JwksFetch> {
    static FETCH: OnceLock<Arc<HttpJwksFetch>> = OnceLock::new();
    FETCH
        .get_or_init(|| {
            let client = reqwest::Client::builder()
                .timeout(std::time::Duration::from_secs(10))
                .redirect(reqwest::redirect::Policy::none())
                .user_agent(concat!("wasmfn/", env!("CARGO_PKG_VERSION")))
                .build()
                .expect("the HTTP client builds");
            Arc::new(HttpJwksFetch(client))
        })
        .clone()
}
