//! Callers authenticated by the host before the guest runs: a tenant's
//! API keys (valid, unknown, revoked, wrong scope, in a header or the
//! query), JWTs against a JWK Set served by a local server (valid RS256
//! and ES256, expired, wrong audience or issuer, `alg: none`, HS256 made
//! with the RSA public key, an unknown `kid` before and after the set
//! rotates), what reaches the guest, CORS, and what the document says.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::Method;
use serde_json::{Value, json};

use super::*;

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(repo().join("tests/fixtures/jwt").join(name)).unwrap()
}

fn jwk(name: &str) -> Value {
    serde_json::from_slice(&fixture(name)).unwrap()
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

fn sign(alg: Algorithm, key: &EncodingKey, kid: Option<&str>, claims: Value) -> String {
    let mut header = Header::new(alg);
    header.kid = kid.map(str::to_string);
    jsonwebtoken::encode(&header, &claims, key).unwrap()
}

fn claims(extra: Value) -> Value {
    let mut c = json!({"iss": "https://issuer.test", "aud": "acme-api", "sub": "user-7", "exp": now() + 600});
    for (k, v) in extra.as_object().unwrap() {
        c[k] = v.clone();
    }
    c
}

/// A JWK Set served over HTTP on loopback, with the number of fetches.
struct Jwks {
    url: String,
    body: Arc<Mutex<Value>>,
    hits: Arc<AtomicUsize>,
}

impl Jwks {
    async fn start(keys: Value) -> Self {
        use http_body_util::Full;
        use hyper::body::Bytes;
        let body = Arc::new(Mutex::new(keys));
        let hits = Arc::new(AtomicUsize::new(0));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (b, n) = (body.clone(), hits.clone());
        tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                let (b, n) = (b.clone(), n.clone());
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |_req| {
                        n.fetch_add(1, Ordering::SeqCst);
                        let text = b.lock().unwrap().to_string();
                        async move { Ok::<_, std::convert::Infallible>(hyper::Response::new(Full::new(Bytes::from(text)))) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(tcp), service)
                        .await;
                });
            }
        });
        Self {
            url: format!("http://{addr}/jwks.json"),
            body,
            hits,
        }
    }
}

#[tokio::test]
async fn api_keys_jwts_and_cors_are_checked_by_the_host() {
    let fx = Fixture::new();
    let (h, t, _state) = hosted(fx.path(), &[("root", &[Scope::Admin], None)]).await;
    let root = t["root"].as_str();
    put_tenant(&h, root, "acme", json!({"hosts": ["acme.test"]}), 201).await;
    let jwks = Jwks::start(json!({"keys": [jwk("rsa.jwk.json"), jwk("ec.jwk.json")]})).await;
    let origin = jwks.url.trim_end_matches("/jwks.json").to_string();

    // One function behind an API key (header), one behind a key in the
    // query, one behind JWTs with an open route and a route needing a scope.
    let keyed = json!({
        "invoke": {"routes": ["/keyed"]},
        "auth": {"type": "api_key", "in": "header", "name": "x-api-key", "required_scopes": ["items:read"]},
        "cors": {"allow_origins": ["https://app.test"], "allow_headers": ["x-api-key"], "expose_headers": ["x-request-id"], "max_age_s": 600},
    });
    assert_eq!(deploy(&h, root, "acme", "keyed", keyed, "probe").await.status(), 201);
    let query = json!({"invoke": {"routes": ["/q"]}, "auth": {"type": "api_key", "in": "query", "name": "api_key"}});
    assert_eq!(deploy(&h, root, "acme", "query", query, "probe").await.status(), 201);
    let jwt_auth = |scopes: Value| {
        json!({"type": "jwt", "issuer": "https://issuer.test", "audiences": ["acme-api"],
               "jwks_url": jwks.url, "algorithms": ["RS256", "ES256"], "required_scopes": scopes})
    };
    let me = json!({
        "invoke": {"routes": ["/me", {"path": "/open", "auth": {"type": "none"}}, {"path": "/admin", "auth": jwt_auth(json!(["admin"]))}]},
        "auth": jwt_auth(json!([])),
        "allowed_outbound_hosts": [origin],
    });
    let r = deploy(&h, root, "acme", "me", me.clone(), "probe").await;
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    // Keys fetched from a host outside the function's outbound rules: refused at deploy.
    let mut outside = me.clone();
    outside["allowed_outbound_hosts"] = json!([]);
    let r = deploy(&h, root, "acme", "me2", outside, "probe").await;
    let (code, body) = error_code(r, 422).await;
    assert_eq!(code, "invalid_function");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("allowed_outbound_hosts"),
        "{body}"
    );
    // `*` with credentials is refused with the field named.
    let bad_cors = json!({"cors": {"allow_origins": ["*"], "allow_credentials": true}});
    let r = deploy(&h, root, "acme", "web", bad_cors, "probe").await;
    let (_, body) = error_code(r, 422).await;
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("cors.allow_credentials"),
        "{body}"
    );

    // API keys: made once, listed by id, never shown again.
    let make = |id: &str, scopes: Value| {
        let (h, root) = (&h, root);
        let body = json!({"id": id, "scopes": scopes});
        async move {
            let r = admin(h, Method::POST, "/_fn/tenants/acme/api-keys", root, Some(body)).await;
            assert_eq!(r.status(), 201);
            r.json::<Value>().await.unwrap()["key"].as_str().unwrap().to_string()
        }
    };
    let reader = make("reader", json!(["items:read"])).await;
    let plain = make("plain", json!([])).await;
    let listed: Value = admin(&h, Method::GET, "/_fn/tenants/acme/api-keys", root, None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(listed["api_keys"].as_array().unwrap().len(), 2);
    assert!(!listed.to_string().contains(&reader), "keys are not listed");
    let r = admin(
        &h,
        Method::POST,
        "/_fn/tenants/acme/api-keys",
        root,
        Some(json!({"id": "reader"})),
    )
    .await;
    assert_eq!(error_code(r, 409).await.0, "tenant_conflict");

    let call = |path: &str, headers: Vec<(&str, String)>| {
        let mut r = h.client.get(h.url(path)).header("host", "acme.test");
        for (k, v) in headers {
            r = r.header(k, v);
        }
        r.send()
    };
    let r = call(
        "/keyed",
        vec![
            ("x-api-key", reader.clone()),
            ("x-fn-auth-key-id", "forged".into()),
            ("x-fn-auth-subject", "root".into()),
        ],
    )
    .await
    .unwrap();
    let seen = probe(r).await;
    assert_eq!(
        seen["auth"],
        json!({"subject": null, "scopes": "items:read", "key_id": "reader"})
    );
    let r = call("/keyed", vec![]).await.unwrap();
    assert_eq!(
        r.headers()["www-authenticate"],
        "ApiKey realm=\"acme\", in=\"header\", name=\"x-api-key\""
    );
    assert_eq!(error_code(r, 401).await.0, "unauthorized");
    let r = call("/keyed", vec![("x-api-key", "wfk_nope".into())]).await.unwrap();
    assert_eq!(error_code(r, 401).await.0, "unauthorized");
    let r = call("/keyed", vec![("x-api-key", plain.clone())]).await.unwrap();
    assert!(
        r.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("insufficient_scope")
    );
    assert_eq!(error_code(r, 403).await.0, "forbidden");
    let r = call(&format!("/q?api_key={plain}"), vec![]).await.unwrap();
    assert_eq!(probe(r).await["auth"]["key_id"], "plain");
    // Revoked: refused from the next request on.
    let r = admin(&h, Method::DELETE, "/_fn/tenants/acme/api-keys/reader", root, None).await;
    assert_eq!(r.status(), 204);
    let r = call("/keyed", vec![("x-api-key", reader.clone())]).await.unwrap();
    assert_eq!(error_code(r, 401).await.0, "unauthorized");
    let r = admin(&h, Method::DELETE, "/_fn/tenants/acme/api-keys/reader", root, None).await;
    assert_eq!(r.status(), 404);

    // CORS: the host answers the preflight itself and marks every answer.
    let pre = h
        .client
        .request(Method::OPTIONS, h.url("/keyed"))
        .header("host", "acme.test")
        .header("origin", "https://app.test")
        .header("access-control-request-method", "GET")
        .header("access-control-request-headers", "x-api-key")
        .send()
        .await
        .unwrap();
    assert_eq!(pre.status(), 204);
    assert_eq!(pre.headers()["access-control-allow-origin"], "https://app.test");
    assert_eq!(pre.headers()["access-control-max-age"], "600");
    assert!(
        pre.headers()["access-control-allow-headers"]
            .to_str()
            .unwrap()
            .contains("x-api-key")
    );
    let other = h
        .client
        .request(Method::OPTIONS, h.url("/keyed"))
        .header("host", "acme.test")
        .header("origin", "https://evil.test")
        .header("access-control-request-method", "GET")
        .send()
        .await
        .unwrap();
    assert!(other.headers().get("access-control-allow-origin").is_none());
    let r = call(
        "/keyed",
        vec![("origin", "https://app.test".into()), ("x-api-key", plain.clone())],
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(r.headers()["access-control-allow-origin"], "https://app.test");
    assert_eq!(r.headers()["access-control-expose-headers"], "x-request-id");

    // JWTs.
    let rsa = EncodingKey::from_rsa_pem(&fixture("rsa_private.pem")).unwrap();
    let rsa2 = EncodingKey::from_rsa_pem(&fixture("rsa2_private.pem")).unwrap();
    let ec = EncodingKey::from_ec_pem(&fixture("ec_private.pem")).unwrap();
    let bearer = |token: String| vec![("authorization", format!("Bearer {token}"))];
    let ok = sign(Algorithm::RS256, &rsa, Some("rsa-1"), claims(json!({"scope": "read"})));
    let r = call(
        "/me",
        [bearer(ok.clone()), vec![("x-fn-auth-subject", "forged".into())]].concat(),
    )
    .await
    .unwrap();
    assert_eq!(
        probe(r).await["auth"],
        json!({"subject": "user-7", "scopes": "read", "key_id": null})
    );
    let es = sign(Algorithm::ES256, &ec, Some("ec-1"), claims(json!({})));
    assert_eq!(call("/me", bearer(es)).await.unwrap().status(), 200);
    assert_eq!(
        jwks.hits.load(Ordering::SeqCst),
        1,
        "the key set is fetched once and cached"
    );
    assert_eq!(call("/open", vec![]).await.unwrap().status(), 200);
    let r = call("/admin", bearer(ok.clone())).await.unwrap();
    assert_eq!(error_code(r, 403).await.0, "forbidden");
    let admin_token = sign(
        Algorithm::RS256,
        &rsa,
        Some("rsa-1"),
        claims(json!({"scp": ["admin", "read"]})),
    );
    assert_eq!(
        probe(call("/admin", bearer(admin_token)).await.unwrap()).await["auth"]["scopes"],
        "admin read"
    );

    let refused = [
        ("no token", vec![]),
        (
            "expired",
            bearer(sign(
                Algorithm::RS256,
                &rsa,
                Some("rsa-1"),
                claims(json!({"exp": now() - 120})),
            )),
        ),
        (
            "wrong aud",
            bearer(sign(
                Algorithm::RS256,
                &rsa,
                Some("rsa-1"),
                claims(json!({"aud": "other-api"})),
            )),
        ),
        (
            "wrong iss",
            bearer(sign(
                Algorithm::RS256,
                &rsa,
                Some("rsa-1"),
                claims(json!({"iss": "https://evil.test"})),
            )),
        ),
        (
            "alg none",
            bearer(format!(
                "{}.{}.",
                b64(&json!({"alg": "none", "typ": "JWT"})),
                b64(&claims(json!({})))
            )),
        ),
        (
            "HS256 with the RSA public key",
            bearer(sign(
                Algorithm::HS256,
                &EncodingKey::from_secret(&fixture("rsa_public.pem")),
                Some("rsa-1"),
                claims(json!({})),
            )),
        ),
        ("garbage", bearer("a.b.c".into())),
    ];
    for (what, headers) in refused {
        let r = call("/me", headers).await.unwrap();
        let challenge = r.headers()["www-authenticate"].to_str().unwrap().to_string();
        assert!(challenge.starts_with("Bearer realm=\"acme\""), "{what}: {challenge}");
        let (code, _) = error_code(r, 401).await;
        assert_eq!(code, "unauthorized", "{what}");
    }

    // Rotation: a token of a key not yet in the set is refused (the set
    // was fetched moments ago, so it is not fetched again at once); once
    // the refetch interval has passed, the unknown `kid` fetches the new set.
    *jwks.body.lock().unwrap() = json!({"keys": [jwk("rsa2.jwk.json")]});
    let rotated = sign(Algorithm::RS256, &rsa2, Some("rsa-2"), claims(json!({})));
    assert_eq!(call("/me", bearer(rotated.clone())).await.unwrap().status(), 401);
    assert_eq!(jwks.hits.load(Ordering::SeqCst), 1);
    tokio::time::sleep(Duration::from_millis(10_500)).await;
    assert_eq!(call("/me", bearer(rotated)).await.unwrap().status(), 200);
    assert_eq!(jwks.hits.load(Ordering::SeqCst), 2);
    // The old key left the set.
    assert_eq!(call("/me", bearer(ok)).await.unwrap().status(), 401);

    // The document says how each operation is protected.
    let doc: Value = get_on(&h, "acme.test", "/_fn/openapi.json").await.json().await.unwrap();
    let schemes = doc["components"]["securitySchemes"].as_object().unwrap();
    assert!(
        schemes
            .values()
            .any(|s| s["type"] == "apiKey" && s["in"] == "header" && s["name"] == "x-api-key"),
        "{schemes:?}"
    );
    assert!(
        schemes
            .values()
            .any(|s| s["type"] == "apiKey" && s["in"] == "query" && s["name"] == "api_key")
    );
    assert!(
        schemes
            .values()
            .any(|s| s["type"] == "http" && s["scheme"] == "bearer" && s["bearerFormat"] == "JWT")
    );
    let op = |path: &str| doc["paths"][path]["get"].clone();
    assert_eq!(op("/open")["security"], json!([]));
    let me_sec = op("/me")["security"].clone();
    let (scheme, scopes) = me_sec[0].as_object().unwrap().iter().next().unwrap();
    assert!(schemes.contains_key(scheme) && scopes == &json!([]), "{me_sec}");
    assert!(op("/me")["responses"].get("401").is_some());
    assert!(op("/admin")["responses"].get("403").is_some());
    assert_eq!(op("/admin")["security"][0][scheme], json!(["admin"]));
    assert_eq!(
        op("/keyed")["security"][0]
            .as_object()
            .unwrap()
            .values()
            .next()
            .unwrap(),
        &json!(["items:read"])
    );
    assert_valid_openapi(&doc).await;
    let _drained = h.host.stop().await.unwrap();
}

fn b64(v: &Value) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
}
