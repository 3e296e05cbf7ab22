//! Tests of the JWT verifier with real keys (fixtures/, made by fixtures/gen.sh) and real crypto.

use super::*;
use bytes::Bytes;
use jsonwebtoken::{EncodingKey, Header as JwsHeader};
use serde_json::json;
use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

const ISS: &str = "https://issuer.example";
const AUD: &str = "wasmfn-api";
const URL: &str = "https://issuer.example/.well-known/jwks.json";

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/jwt")
}
fn fixture(name: &str) -> String {
    std::fs::read_to_string(fixture_dir().join(name)).unwrap()
}
fn jwk(name: &str) -> Value {
    serde_json::from_str(&fixture(name)).unwrap()
}
fn rsa_key() -> EncodingKey {
    EncodingKey::from_rsa_pem(fixture("rsa_private.pem").as_bytes()).unwrap()
}
fn rsa2_key() -> EncodingKey {
    EncodingKey::from_rsa_pem(fixture("rsa2_private.pem").as_bytes()).unwrap()
}
fn ec_key() -> EncodingKey {
    EncodingKey::from_ec_pem(fixture("ec_private.pem").as_bytes()).unwrap()
}
fn ed_key() -> EncodingKey {
    EncodingKey::from_ed_pem(fixture("ed25519_private.pem").as_bytes()).unwrap()
}
fn oct_key() -> EncodingKey {
    let k = jwk("oct.jwk.json")["k"].as_str().unwrap().to_owned();
    EncodingKey::from_secret(&URL_SAFE_NO_PAD.decode(k).unwrap())
}

fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64
}
fn claims() -> Value {
    json!({"iss": ISS, "aud": AUD, "sub": "user-1", "iat": now(), "exp": now() + 600})
}
fn with(mut claims: Value, key: &str, value: Value) -> Value {
    claims[key] = value;
    claims
}
fn without(mut claims: Value, key: &str) -> Value {
    claims.as_object_mut().unwrap().remove(key);
    claims
}

/// Signs `claims` as a compact JWS with jsonwebtoken's `encode` (header: `alg`, `typ: JWT`, `kid`).
fn sign(alg: Algorithm, key: &EncodingKey, claims: &Value, kid: Option<&str>) -> String {
    let mut header = JwsHeader::new(alg);
    header.kid = kid.map(str::to_owned);
    jsonwebtoken::encode(&header, claims, key).unwrap()
}
fn b64(json: &Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(json).unwrap())
}

fn settings() -> JwtSettings {
    JwtSettings {
        issuer: ISS.into(),
        audiences: vec![AUD.into(), "other-api".into()],
        jwks_url: None,
        jwks: Some(json!({"keys": [jwk("rsa.jwk.json"), jwk("ec.jwk.json"), jwk("ed25519.jwk.json")]})),
        jwks_file: None,
        algorithms: vec!["RS256".into(), "ES256".into(), "EdDSA".into()],
        leeway_s: 60,
    }
}
fn verifier(s: JwtSettings) -> JwtVerifier {
    JwtVerifier::new(s, Path::new("."), Arc::new(NoFetch)).unwrap()
}
fn fixed() -> JwtVerifier {
    verifier(settings())
}
fn block<T>(f: impl Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

#[test]
fn valid_rs256_es256_eddsa() {
    let v = fixed();
    for (alg, key, kid) in [
        (Algorithm::RS256, rsa_key(), "rsa-1"),
        (Algorithm::ES256, ec_key(), "ec-1"),
        (Algorithm::EdDSA, ed_key(), "ed-1"),
    ] {
        let ok = block(v.verify(&sign(alg, &key, &claims(), Some(kid)))).unwrap();
        assert_eq!(ok.subject.as_deref(), Some("user-1"));
        assert_eq!(ok.key_id.as_deref(), Some(kid));
        assert_eq!(ok.claims["iss"], ISS);
        // Without kid: the keys of the token's type are tried.
        let ok = block(v.verify(&sign(alg, &key, &claims(), None))).unwrap();
        assert_eq!(ok.key_id.as_deref(), Some(kid));
    }
}

#[test]
fn time_claims_and_leeway() {
    let v = fixed();
    let check =
        |v: &JwtVerifier, c: Value| block(v.verify(&sign(Algorithm::ES256, &ec_key(), &c, Some("ec-1")))).map(|_| ());
    assert_eq!(
        check(&v, with(claims(), "exp", json!(now() - 120))),
        Err(JwtError::Expired)
    );
    assert_eq!(
        check(&v, with(claims(), "nbf", json!(now() + 3600))),
        Err(JwtError::NotYetValid)
    );
    // Inside the leeway of 60 s.
    assert_eq!(check(&v, with(claims(), "exp", json!(now() - 30))), Ok(()));
    assert_eq!(check(&v, with(claims(), "nbf", json!(now() + 30))), Ok(()));
    assert_eq!(
        check(&v, with(claims(), "exp", json!((now() + 100) as f64 + 0.5))),
        Ok(())
    );
    let strict = verifier(JwtSettings {
        leeway_s: 0,
        ..settings()
    });
    assert_eq!(
        check(&strict, with(claims(), "exp", json!(now() - 30))),
        Err(JwtError::Expired)
    );
    assert_eq!(
        check(&strict, with(claims(), "exp", json!(now()))),
        Err(JwtError::Expired)
    );
    assert_eq!(
        check(&strict, with(claims(), "nbf", json!(now() + 30))),
        Err(JwtError::NotYetValid)
    );
    assert_eq!(check(&v, without(claims(), "exp")), Err(JwtError::MissingClaim("exp")));
    assert_eq!(
        check(&v, with(claims(), "exp", json!("9999999999"))),
        Err(JwtError::InvalidClaim("exp"))
    );
    assert_eq!(
        check(&v, with(claims(), "nbf", json!("9999999999"))),
        Err(JwtError::InvalidClaim("nbf"))
    );
}

#[test]
fn issuer_and_audience() {
    let v = fixed();
    let check = |c: Value| block(v.verify(&sign(Algorithm::RS256, &rsa_key(), &c, Some("rsa-1")))).map(|_| ());
    assert_eq!(
        check(with(claims(), "iss", json!("https://evil.example"))),
        Err(JwtError::WrongIssuer)
    );
    assert_eq!(check(with(claims(), "iss", json!([ISS]))), Err(JwtError::WrongIssuer));
    assert_eq!(check(without(claims(), "iss")), Err(JwtError::MissingClaim("iss")));
    assert_eq!(
        check(with(claims(), "aud", json!("someone-else"))),
        Err(JwtError::WrongAudience)
    );
    assert_eq!(
        check(with(claims(), "aud", json!(["x", "y"]))),
        Err(JwtError::WrongAudience)
    );
    assert_eq!(check(with(claims(), "aud", json!([]))), Err(JwtError::WrongAudience));
    assert_eq!(check(with(claims(), "aud", json!(42))), Err(JwtError::WrongAudience));
    assert_eq!(check(without(claims(), "aud")), Err(JwtError::MissingClaim("aud")));
    assert_eq!(check(with(claims(), "aud", json!(["x", AUD]))), Ok(()));
    assert_eq!(check(with(claims(), "aud", json!("other-api"))), Ok(()));
    assert_eq!(
        check(with(claims(), "sub", json!(7))),
        Err(JwtError::InvalidClaim("sub"))
    );
}

#[test]
fn alg_none_is_refused() {
    let v = fixed();
    for alg in ["none", "None", "NONE"] {
        let token = format!("{}.{}.", b64(&json!({"alg": alg, "typ": "JWT"})), b64(&claims()));
        assert_eq!(
            block(v.verify(&token)).unwrap_err(),
            JwtError::AlgorithmNotAllowed(alg.into())
        );
        // Even with a signature part, and even when the settings are hand-edited.
        let token = format!("{token}c2ln");
        assert!(matches!(block(v.verify(&token)), Err(JwtError::AlgorithmNotAllowed(_))));
    }
    let mut s = settings();
    s.algorithms = vec!["RS256".into(), "none".into()];
    assert!(s.check().unwrap_err().contains("`none` is not allowed"));
}

#[test]
fn hs256_with_rsa_public_key_as_secret_is_refused() {
    let forged_key = EncodingKey::from_secret(fixture("rsa_public.pem").as_bytes());
    let forged = sign(Algorithm::HS256, &forged_key, &claims(), Some("rsa-1"));
    let forged_no_kid = sign(Algorithm::HS256, &forged_key, &claims(), None);
    // HS256 not in `algorithms` (the default).
    let v = fixed();
    assert_eq!(
        block(v.verify(&forged)).unwrap_err(),
        JwtError::AlgorithmNotAllowed("HS256".into())
    );
    // HS256 allowed: still only `oct` keys are used for it.
    let mut s = settings();
    s.algorithms = vec!["RS256".into(), "HS256".into()];
    s.jwks = Some(json!({"keys": [jwk("rsa.jwk.json"), jwk("oct.jwk.json")]}));
    let v = verifier(s.clone());
    assert_eq!(
        block(v.verify(&forged)).unwrap_err(),
        JwtError::UnknownKey(Some("rsa-1".into()))
    );
    assert_eq!(block(v.verify(&forged_no_kid)).unwrap_err(), JwtError::BadSignature);
    // With only the RSA key there is no HS256 key at all.
    s.jwks = Some(json!({"keys": [jwk("rsa.jwk.json")]}));
    let v = verifier(s);
    assert_eq!(block(v.verify(&forged_no_kid)).unwrap_err(), JwtError::UnknownKey(None));
}

#[test]
fn hs256_with_oct_key_when_allowed() {
    let mut s = settings();
    s.algorithms = vec!["HS256".into()];
    s.jwks = Some(json!({"keys": [jwk("oct.jwk.json")]}));
    let v = verifier(s);
    let ok = block(v.verify(&sign(Algorithm::HS256, &oct_key(), &claims(), Some("hs-1")))).unwrap();
    assert_eq!(ok.key_id.as_deref(), Some("hs-1"));
    let bad = sign(
        Algorithm::HS256,
        &EncodingKey::from_secret(&[7; 32]),
        &claims(),
        Some("hs-1"),
    );
    assert_eq!(block(v.verify(&bad)).unwrap_err(), JwtError::BadSignature);
    // RS256 is not in this verifier's `algorithms`.
    let rs = sign(Algorithm::RS256, &rsa_key(), &claims(), Some("rsa-1"));
    assert_eq!(
        block(v.verify(&rs)).unwrap_err(),
        JwtError::AlgorithmNotAllowed("RS256".into())
    );
}

#[test]
fn alg_must_be_allowed_and_match_the_key() {
    let mut s = settings();
    s.algorithms = vec!["RS256".into()];
    let v = verifier(s);
    let es = sign(Algorithm::ES256, &ec_key(), &claims(), Some("ec-1"));
    assert_eq!(
        block(v.verify(&es)).unwrap_err(),
        JwtError::AlgorithmNotAllowed("ES256".into())
    );
    let rs512 = sign(Algorithm::RS512, &rsa_key(), &claims(), Some("rsa-1"));
    assert_eq!(
        block(fixed().verify(&rs512)).unwrap_err(),
        JwtError::AlgorithmNotAllowed("RS512".into())
    );
    // An ES256 token naming the RSA key's kid finds no ES256 key of that kid.
    let es_on_rsa_kid = sign(Algorithm::ES256, &ec_key(), &claims(), Some("rsa-1"));
    assert!(matches!(
        block(fixed().verify(&es_on_rsa_kid)),
        Err(JwtError::UnknownKey(_))
    ));
    // A JWK bound to another `alg`, or with `use` "enc", is never used.
    let mut s = settings();
    s.jwks = Some(json!({"keys": [with(jwk("rsa.jwk.json"), "use", json!("enc")), jwk("ec.jwk.json")]}));
    let rs = sign(Algorithm::RS256, &rsa_key(), &claims(), Some("rsa-1"));
    assert!(matches!(block(verifier(s).verify(&rs)), Err(JwtError::UnknownKey(_))));
    let mut s = settings();
    s.jwks = Some(json!({"keys": [with(jwk("rsa.jwk.json"), "alg", json!("PS256"))]}));
    let err = JwtVerifier::new(s, Path::new("."), Arc::new(NoFetch)).unwrap_err();
    assert!(err.contains("field `jwks`: no usable signing key"), "{err}");
}

#[test]
fn scopes_from_scope_and_scp() {
    let v = fixed();
    let c = with(
        with(claims(), "scope", json!("read  write")),
        "scp",
        json!(["admin", "read", 5]),
    );
    let ok = block(v.verify(&sign(Algorithm::EdDSA, &ed_key(), &c, Some("ed-1")))).unwrap();
    assert_eq!(ok.scopes, ["read", "write", "admin"]);
    let c = with(claims(), "scp", json!("a b"));
    let ok = block(v.verify(&sign(Algorithm::EdDSA, &ed_key(), &c, Some("ed-1")))).unwrap();
    assert_eq!(ok.scopes, ["a", "b"]);
    let ok = block(v.verify(&sign(Algorithm::EdDSA, &ed_key(), &claims(), Some("ed-1")))).unwrap();
    assert!(ok.scopes.is_empty());
}

#[test]
fn malformed_inputs() {
    let v = fixed();
    let good = sign(Algorithm::RS256, &rsa_key(), &claims(), Some("rsa-1"));
    let parts: Vec<&str> = good.split('.').collect();
    let payload = b64(&claims());
    let huge = format!("{good}{}", "A".repeat(MAX_TOKEN_LEN));
    let cases = [
        String::new(),
        ".".into(),
        "..".into(),
        "...".into(),
        "a.b.c".into(),
        format!("{good}.x.y"),
        format!("{}.{}", parts[0], parts[1]),
        format!("{good}="),
        format!(" {good}"),
        format!("{}.{}.{}", parts[0], payload, "é"),
        format!("{}.{payload}.{}", b64(&json!({"alg": 5})), parts[2]),
        format!("{}.{payload}.{}", b64(&json!(["RS256"])), parts[2]),
        format!("{}.{payload}.{}", b64(&json!({"alg": "RS256", "kid": 7})), parts[2]),
        format!(
            "{}.{payload}.{}",
            b64(&json!({"alg": "RS256", "crit": ["b64"]})),
            parts[2]
        ),
        format!(
            "{}.{payload}.{}",
            URL_SAFE_NO_PAD.encode(r#"{"alg":"RS256","alg":"none"}"#),
            parts[2]
        ),
        huge,
    ];
    for case in &cases {
        let err = block(v.verify(case)).unwrap_err();
        assert!(matches!(err, JwtError::Malformed(_)), "{case:.80}: {err:?}");
        assert_eq!(err.public_message(), "the token is malformed");
    }
    // A signature over a payload that is not a JSON object.
    let mut s = settings();
    s.algorithms = vec!["HS256".into()];
    s.jwks = Some(json!({"keys": [jwk("oct.jwk.json")]}));
    let hs = sign(Algorithm::HS256, &oct_key(), &json!([1, 2]), Some("hs-1"));
    assert_eq!(
        block(verifier(s).verify(&hs)).unwrap_err(),
        JwtError::Malformed("the payload is not a JSON object")
    );
    // Token-supplied text never reaches the public message, and is sanitized for logs.
    let token = format!("{}.{payload}.c2ln", b64(&json!({"alg": "<script>\n"})));
    let err = block(v.verify(&token)).unwrap_err();
    assert_eq!(err, JwtError::AlgorithmNotAllowed("<script>?".into()));
    assert!(!err.public_message().contains("script"));
}

#[test]
fn long_header_uses_heap_path() {
    let mut header = JwsHeader::new(Algorithm::ES256);
    header.kid = Some("ec-1".into());
    header.x5c = Some(vec!["A".repeat(2000)]);
    let token = jsonwebtoken::encode(&header, &claims(), &ec_key()).unwrap();
    assert!(block(fixed().verify(&token)).is_ok());
}

#[test]
fn mutated_tokens_never_panic_nor_verify() {
    let v = fixed();
    let tokens = [
        sign(Algorithm::RS256, &rsa_key(), &claims(), Some("rsa-1")),
        sign(Algorithm::ES256, &ec_key(), &claims(), Some("ec-1")),
        sign(Algorithm::EdDSA, &ed_key(), &claims(), None),
    ];
    let alphabet = b"ABCXYZabcxyz0189-_.=+/ \x00";
    let mut seed = 0x9E37_79B9_7F4A_7C15u64;
    let mut rand = |n: usize| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed % n as u64) as usize
    };
    block(async {
        for i in 0..3000 {
            let original = &tokens[i % tokens.len()];
            let mut bytes = original.clone().into_bytes();
            for _ in 0..1 + rand(3) {
                if bytes.is_empty() {
                    break;
                }
                let at = rand(bytes.len());
                match rand(5) {
                    0 => bytes[at] = alphabet[rand(alphabet.len())],
                    1 => bytes[at] ^= 1 << rand(8),
                    2 => drop(bytes.remove(at)),
                    3 => bytes.insert(at, alphabet[rand(alphabet.len())]),
                    _ => bytes.truncate(at),
                }
            }
            let mutated = String::from_utf8_lossy(&bytes);
            if mutated != original.as_str() {
                assert!(v.verify(&mutated).await.is_err(), "mutation verified: {mutated}");
            }
        }
    });
}

#[test]
fn settings_parse_and_check() {
    let s: JwtSettings = serde_json::from_value(json!({"issuer": ISS, "audiences": [AUD], "jwks_url": URL})).unwrap();
    assert_eq!(s.algorithms, ["RS256", "ES256", "EdDSA"]);
    assert_eq!(s.leeway_s, 60);
    assert_eq!(s.check(), Ok(()));
    let unknown = serde_json::from_value::<JwtSettings>(json!({"issuer": ISS, "audiences": [AUD], "audience": AUD}));
    assert!(unknown.unwrap_err().to_string().contains("unknown field `audience`"));
    let err = |f: &dyn Fn(&mut JwtSettings)| {
        let mut s = settings();
        f(&mut s);
        s.check().unwrap_err()
    };
    assert!(err(&|s| s.issuer.clear()).starts_with("field `issuer`"));
    assert!(err(&|s| s.audiences.clear()).starts_with("field `audiences`"));
    assert!(err(&|s| s.jwks = None).contains("set exactly one"));
    assert!(err(&|s| s.jwks_url = Some(URL.into())).contains("set exactly one"));
    assert!(err(&|s| s.jwks = Some(json!([]))).starts_with("field `jwks`"));
    assert!(err(&|s| s.algorithms.clear()).starts_with("field `algorithms`: must not be empty"));
    assert!(err(&|s| s.algorithms = vec!["rs256".into()]).contains("`rs256` is not supported"));
    assert_eq!(
        err(&|s| s.algorithms.push("none".into())),
        "field `algorithms`: `none` is not allowed; use RS256, ES256, EdDSA or HS256"
    );
    assert!(err(&|s| s.leeway_s = 100_000).starts_with("field `leeway_s`"));
    let url = |u: &str| {
        JwtSettings {
            jwks: None,
            jwks_url: Some(u.into()),
            ..settings()
        }
        .check()
    };
    assert!(url("http://idp.example/jwks").unwrap_err().contains("plain http"));
    assert!(
        url("http://localhost:80@evil.example/")
            .unwrap_err()
            .contains("user info")
    );
    assert!(url("ftp://idp.example/jwks").is_err());
    assert!(url("http://127.0.0.1:8080/jwks").is_ok());
    assert!(url("http://[::1]:8080/jwks").is_ok());
    let mut s = JwtSettings {
        jwks: None,
        jwks_url: Some(URL.into()),
        ..settings()
    };
    s.algorithms.push("HS256".into());
    assert!(s.check().unwrap_err().contains("HS256 needs a shared secret"));
}

#[test]
fn keys_from_file_and_bad_inline_keys() {
    let s = JwtSettings {
        jwks: None,
        jwks_file: Some("jwks.json".into()),
        ..settings()
    };
    let v = JwtVerifier::new(s.clone(), &fixture_dir(), Arc::new(NoFetch)).unwrap();
    assert!(block(v.verify(&sign(Algorithm::ES256, &ec_key(), &claims(), Some("ec-1")))).is_ok());
    let err = JwtVerifier::new(s, Path::new("/nonexistent"), Arc::new(NoFetch)).unwrap_err();
    assert!(
        err.starts_with("file `/nonexistent/jwks.json` (field `jwks_file`): cannot read it"),
        "{err}"
    );
    let bad = |key: Value| {
        let s = JwtSettings {
            jwks: Some(json!({"keys": [key]})),
            ..settings()
        };
        JwtVerifier::new(s, Path::new("."), Arc::new(NoFetch)).unwrap_err()
    };
    let small = json!({"kty": "RSA", "n": URL_SAFE_NO_PAD.encode([0xff; 128]), "e": "AQAB"});
    assert!(bad(small).contains("field `jwks`: key #0: RSA modulus `n` has 1024 bits"));
    assert!(bad(json!({"kty": "RSA", "n": "", "e": "AQAB"})).contains("`n` has 0 bits"));
    assert!(bad(json!({"kty": "RSA", "n": "AAAA", "e": "AQAB"})).contains("`n` has 0 bits"));
    assert!(bad(with(jwk("rsa.jwk.json"), "e", json!("AA"))).contains("`e` is zero"));
    assert!(bad(with(jwk("ec.jwk.json"), "x", json!("AAAA"))).contains("32 bytes"));
    assert!(bad(with(jwk("ec.jwk.json"), "x", json!("not base64!"))).contains("`x` is not base64url"));
    assert!(bad(json!({"n": "AQAB"})).contains("`kty` is missing"));
    let mut s = settings();
    s.algorithms.push("HS256".into());
    s.jwks = Some(json!({"keys": [{"kty": "oct", "k": URL_SAFE_NO_PAD.encode([1; 16])}]}));
    let err = JwtVerifier::new(s, Path::new("."), Arc::new(NoFetch)).unwrap_err();
    assert!(err.contains("has 16 bytes; use at least 32"), "{err}");
}

/// A fake JWKS endpoint: counts calls, serves `body`, after `delay`.
struct FakeFetch {
    calls: AtomicUsize,
    body: Mutex<Result<Value, String>>,
    delay: Duration,
}

impl FakeFetch {
    fn new(keys: &[&str], delay_ms: u64) -> Arc<FakeFetch> {
        let fake = FakeFetch {
            calls: AtomicUsize::new(0),
            body: Mutex::new(Err(String::new())),
            delay: Duration::from_millis(delay_ms),
        };
        fake.serve(keys);
        Arc::new(fake)
    }
    fn serve(&self, keys: &[&str]) {
        let keys: Vec<Value> = keys.iter().map(|k| jwk(k)).collect();
        *self.body.lock().unwrap() = Ok(json!({ "keys": keys }));
    }
    fn fail(&self) {
        *self.body.lock().unwrap() = Err("connection refused".into());
    }
    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

impl JwksFetch for FakeFetch {
    fn fetch(&self, url: &str) -> Pin<Box<dyn Future<Output = Result<Bytes, String>> + Send + 'static>> {
        assert_eq!(url, URL);
        self.calls.fetch_add(1, Ordering::SeqCst);
        let body = self
            .body
            .lock()
            .unwrap()
            .clone()
            .map(|v| Bytes::from(serde_json::to_vec(&v).unwrap()));
        let delay = self.delay;
        Box::pin(async move {
            tokio::time::sleep(delay).await;
            body
        })
    }
}

fn remote(fake: &Arc<FakeFetch>) -> JwtVerifier {
    let s = JwtSettings {
        jwks: None,
        jwks_url: Some(URL.into()),
        ..settings()
    };
    JwtVerifier::new(s, Path::new("."), fake.clone()).unwrap()
}
fn rs(kid: &str) -> String {
    let key = if kid == "rsa-2" { rsa2_key() } else { rsa_key() };
    sign(Algorithm::RS256, &key, &claims(), Some(kid))
}

#[tokio::test]
async fn remote_keys_are_fetched_lazily_and_cached() {
    let fake = FakeFetch::new(&["rsa.jwk.json"], 0);
    let v = remote(&fake);
    assert_eq!(fake.calls(), 0);
    assert!(v.verify(&rs("rsa-1")).await.is_ok());
    assert!(v.verify(&rs("rsa-1")).await.is_ok());
    assert_eq!(fake.calls(), 1);
}

#[tokio::test]
async fn fetched_sets_skip_broken_keys() {
    let fake = FakeFetch::new(&[], 0);
    let broken = json!({"kty": "RSA", "kid": "rsa-1", "n": "", "e": "AQAB"});
    *fake.body.lock().unwrap() = Ok(json!({"keys": [broken, {"kty": "EC", "crv": "P-521"}, jwk("rsa.jwk.json")]}));
    assert!(remote(&fake).verify(&rs("rsa-1")).await.is_ok());
}

#[test]
fn verifier_and_its_future_are_send_and_sync() {
    fn send_sync<T: Send + Sync>(_: &T) {}
    fn send<T: Send>(_: T) {}
    let v = remote(&FakeFetch::new(&[], 0));
    send_sync(&v);
    send(v.verify("x.y.z"));
}

#[tokio::test]
async fn unknown_kid_refetches_rotated_set() {
    let fake = FakeFetch::new(&["rsa.jwk.json"], 0);
    let v = remote(&fake).with_refetch_interval(Duration::ZERO);
    assert!(v.verify(&rs("rsa-1")).await.is_ok());
    fake.serve(&["rsa2.jwk.json"]);
    let ok = v.verify(&rs("rsa-2")).await.unwrap();
    assert_eq!(ok.key_id.as_deref(), Some("rsa-2"));
    assert_eq!(fake.calls(), 2);
    // The old key is gone after the rotation (and a refetch does not bring it back).
    assert_eq!(
        v.verify(&rs("rsa-1")).await.unwrap_err(),
        JwtError::UnknownKey(Some("rsa-1".into()))
    );
}

#[tokio::test]
async fn unknown_kid_refetches_at_most_once_per_interval() {
    let fake = FakeFetch::new(&["rsa.jwk.json"], 0);
    let v = remote(&fake).with_refetch_interval(Duration::from_millis(400));
    assert!(v.verify(&rs("rsa-1")).await.is_ok());
    tokio::time::sleep(Duration::from_millis(450)).await;
    fake.serve(&["rsa.jwk.json", "rsa2.jwk.json"]);
    let unknown = sign(Algorithm::RS256, &rsa_key(), &claims(), Some("nope"));
    assert_eq!(
        v.verify(&unknown).await.unwrap_err(),
        JwtError::UnknownKey(Some("nope".into()))
    );
    assert_eq!(fake.calls(), 2);
    assert!(matches!(v.verify(&unknown).await, Err(JwtError::UnknownKey(_))));
    assert_eq!(fake.calls(), 2);
    // The refetch brought rsa-2 along.
    assert!(v.verify(&rs("rsa-2")).await.is_ok());
    assert_eq!(fake.calls(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_verifies_share_one_fetch() {
    let fake = FakeFetch::new(&["rsa.jwk.json"], 200);
    let v = Arc::new(remote(&fake).with_refetch_interval(Duration::ZERO));
    let run = |token: String| {
        let tasks: Vec<_> = (0..16)
            .map(|_| {
                let (v, token) = (v.clone(), token.clone());
                tokio::spawn(async move { v.verify(&token).await })
            })
            .collect();
        async move {
            for t in tasks {
                assert!(t.await.unwrap().is_ok());
            }
        }
    };
    run(rs("rsa-1")).await;
    assert_eq!(fake.calls(), 1);
    fake.serve(&["rsa.jwk.json", "rsa2.jwk.json"]);
    run(rs("rsa-2")).await;
    assert_eq!(fake.calls(), 2);
}

#[tokio::test]
async fn fetch_failure_without_keys_is_unavailable() {
    let fake = FakeFetch::new(&[], 0);
    fake.fail();
    let v = remote(&fake);
    let err = v.verify(&rs("rsa-1")).await.unwrap_err();
    assert!(err.is_unavailable());
    assert!(
        err.to_string().contains("connection refused") && err.to_string().contains(URL),
        "{err}"
    );
    assert_eq!(
        err.public_message(),
        "the signing keys could not be loaded; try again later"
    );
    // Within the refetch interval the failure is remembered, not retried.
    assert!(matches!(
        v.verify(&rs("rsa-1")).await,
        Err(JwtError::KeysUnavailable(_))
    ));
    assert_eq!(fake.calls(), 1);
    // A set without usable keys counts as a failure too.
    let fake = FakeFetch::new(&["oct.jwk.json"], 0);
    let err = remote(&fake).verify(&rs("rsa-1")).await.unwrap_err();
    assert!(err.to_string().contains("no usable signing key"), "{err}");
}

#[tokio::test]
async fn stale_keys_are_refetched_and_kept_on_failure() {
    let fake = FakeFetch::new(&["rsa.jwk.json"], 0);
    let v = remote(&fake)
        .with_max_key_age(Duration::from_millis(100))
        .with_refetch_interval(Duration::ZERO);
    assert!(v.verify(&rs("rsa-1")).await.is_ok());
    assert!(v.verify(&rs("rsa-1")).await.is_ok());
    assert_eq!(fake.calls(), 1);
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert!(v.verify(&rs("rsa-1")).await.is_ok());
    assert_eq!(fake.calls(), 2);
    tokio::time::sleep(Duration::from_millis(150)).await;
    fake.fail();
    assert!(
        v.verify(&rs("rsa-1")).await.is_ok(),
        "old keys are kept when a refetch fails"
    );
    assert_eq!(fake.calls(), 3);
}

/// Not a real benchmark: prints verifies per second with a cached key (debug build, ring at -O3).
#[test]
fn throughput_with_cached_key() {
    let v = fixed();
    block(async {
        for (name, alg, key, kid) in [
            ("RS256", Algorithm::RS256, rsa_key(), "rsa-1"),
            ("ES256", Algorithm::ES256, ec_key(), "ec-1"),
            ("EdDSA", Algorithm::EdDSA, ed_key(), "ed-1"),
        ] {
            let token = sign(alg, &key, &claims(), Some(kid));
            let start = Instant::now();
            let mut n = 0u32;
            while start.elapsed() < Duration::from_millis(500) {
                assert!(v.verify(&token).await.is_ok());
                n += 1;
            }
            println!("{name}: {:.0} verifies/s", f64::from(n) / start.elapsed().as_secs_f64());
        }
    });
}

#[test]
fn a_remembered_token_is_taken_again_only_while_in_time() {
    let v = verifier(JwtSettings {
        leeway_s: 0,
        ..settings()
    });
    let token = sign(
        Algorithm::ES256,
        &ec_key(),
        &with(claims(), "exp", json!(now() + 2)),
        Some("ec-1"),
    );
    let first = block(v.verify(&token)).unwrap();
    assert_eq!(block(v.verify(&token)).unwrap(), first);
    assert_eq!(v.verified.lock().unwrap().len(), 1);
    // A token that differs in one byte of its signature is not the remembered one.
    let mut forged = token.clone();
    let last = forged.pop().unwrap();
    forged.push(if last == 'A' { 'B' } else { 'A' });
    assert!(block(v.verify(&forged)).is_err());
    std::thread::sleep(Duration::from_millis(2100));
    assert_eq!(block(v.verify(&token)), Err(JwtError::Expired));
}

#[tokio::test]
async fn remembered_tokens_are_checked_again_when_the_key_set_changes() {
    let fake = FakeFetch::new(&["rsa.jwk.json"], 0);
    let v = remote(&fake).with_refetch_interval(Duration::ZERO);
    let old = rs("rsa-1");
    assert!(v.verify(&old).await.is_ok());
    // The key leaves the set; a token of the new key fetches the set again.
    fake.serve(&["rsa2.jwk.json"]);
    assert!(v.verify(&rs("rsa-2")).await.is_ok());
    assert_eq!(fake.calls(), 2);
    // The remembered token of the old key is verified again, and refused.
    assert!(v.verify(&old).await.is_err());
}
