use super::*;
use http::header::{
    ACCESS_CONTROL_ALLOW_CREDENTIALS as ACAC, ACCESS_CONTROL_ALLOW_HEADERS as ACAH,
    ACCESS_CONTROL_ALLOW_METHODS as ACAM, ACCESS_CONTROL_ALLOW_ORIGIN as ACAO, ACCESS_CONTROL_EXPOSE_HEADERS as ACEH,
    ACCESS_CONTROL_MAX_AGE as ACMA, ACCESS_CONTROL_REQUEST_HEADERS as ACRH, ACCESS_CONTROL_REQUEST_METHOD as ACRM,
    ORIGIN, VARY,
};

const APP: &str = "https://app.example.com";

fn settings(json: &str) -> CorsSettings {
    serde_json::from_str(json).expect("settings parse")
}

fn policy(json: &str) -> CorsPolicy {
    CorsPolicy::new(&settings(json)).expect("settings are valid")
}

fn check_err(json: &str) -> String {
    let s = settings(json);
    let err = s.check().expect_err("settings should be refused");
    assert_eq!(
        CorsPolicy::new(&s).err().as_deref(),
        Some(err.as_str()),
        "check and new agree"
    );
    err
}

fn headers(pairs: &[(&HeaderName, &str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        map.append(
            (*name).clone(),
            HeaderValue::from_str(value).expect("test header value"),
        );
    }
    map
}

fn get<'a>(map: &'a HeaderMap, name: &HeaderName) -> Option<&'a str> {
    map.get(name).map(|v| v.to_str().expect("ascii header"))
}

fn all(map: &HeaderMap, name: &HeaderName) -> Vec<String> {
    map.get_all(name)
        .iter()
        .map(|v| v.to_str().expect("ascii header").to_owned())
        .collect()
}

fn has_cors(map: &HeaderMap) -> bool {
    map.keys().any(|n| n.as_str().starts_with("access-control-"))
}

const ROUTE: &[Method] = &[Method::GET, Method::HEAD, Method::POST];

// ---- settings and check() ----

#[test]
fn settings_defaults_and_round_trip() {
    let s = settings(r#"{"allow_origins": ["*"]}"#);
    assert!(s.allow_methods.is_empty() && s.allow_headers.is_empty() && s.expose_headers.is_empty());
    assert!(!s.allow_credentials);
    assert_eq!(s.max_age_s, None);
    s.check().expect("valid");
    let full = settings(
        r#"{"allow_origins": ["https://app.example.com"], "allow_methods": ["GET","POST"],
            "allow_headers": ["content-type","x-api-key"], "expose_headers": ["x-request-id"],
            "allow_credentials": false, "max_age_s": 600}"#,
    );
    full.check().expect("valid");
    let again: CorsSettings = serde_json::from_value(serde_json::to_value(&full).expect("ser")).expect("de");
    assert_eq!(again, full);
}

#[test]
fn settings_refuse_unknown_fields_and_missing_origins() {
    let err = serde_json::from_str::<CorsSettings>(r#"{"allow_origins": ["*"], "allow_origin": ["*"]}"#)
        .expect_err("unknown field");
    assert!(err.to_string().contains("unknown field `allow_origin`"), "{err}");
    let err = serde_json::from_str::<CorsSettings>(r#"{"allow_methods": ["GET"]}"#).expect_err("missing");
    assert!(err.to_string().contains("missing field `allow_origins`"), "{err}");
}

#[test]
fn check_refuses_wildcard_origin_with_credentials() {
    assert_eq!(
        check_err(r#"{"allow_origins": ["*"], "allow_credentials": true}"#),
        "field `cors.allow_credentials`: a wildcard origin cannot be combined with credentials; list the origins instead"
    );
}

#[test]
fn check_refuses_other_wildcards_with_credentials() {
    for (field, what) in [
        ("allow_methods", "methods"),
        ("allow_headers", "headers"),
        ("expose_headers", "headers"),
    ] {
        let err = check_err(&format!(
            r#"{{"allow_origins": ["{APP}"], "allow_credentials": true, "{field}": ["*"]}}"#
        ));
        assert_eq!(
            err,
            format!(
                "field `cors.allow_credentials`: a wildcard in `cors.{field}` cannot be combined with credentials; \
                 list the {what} instead"
            )
        );
    }
    // Without credentials the same wildcards are fine.
    policy(r#"{"allow_origins": ["*"], "allow_methods": ["*"], "allow_headers": ["*"], "expose_headers": ["*"]}"#);
}

#[test]
fn check_refuses_empty_origins_and_mixed_wildcards() {
    assert!(check_err(r#"{"allow_origins": []}"#).starts_with("field `cors.allow_origins`: must list at least one"));
    for field in ["allow_origins", "allow_methods", "allow_headers", "expose_headers"] {
        let other = if field == "allow_origins" {
            APP
        } else if field == "allow_methods" {
            "GET"
        } else {
            "x-a"
        };
        let origins = if field == "allow_origins" {
            String::new()
        } else {
            format!(r#""allow_origins": ["{APP}"], "#)
        };
        let err = check_err(&format!(r#"{{{origins}"{field}": ["{other}", "*"]}}"#));
        assert_eq!(
            err,
            format!(
                "field `cors.{field}`: `*` cannot be mixed with other entries; write [\"*\"] alone or list the entries"
            )
        );
    }
}

#[test]
fn check_refuses_malformed_origins_naming_the_fix() {
    let cases = [
        ("app.example.com", "is not an origin: expected `scheme://host[:port]`"),
        (
            "https://app.example.com/",
            "has a path or trailing slash, which browsers never send in `Origin`; write `https://app.example.com`",
        ),
        ("https://app.example.com/api/v1", "write `https://app.example.com`"),
        (
            "HTTPS://App.Example.com",
            "has upper-case letters, but browsers send origins in lower case and they are compared exactly; write `https://app.example.com`",
        ),
        (
            "https://app.example.com:443",
            "names the default port, which browsers leave out of `Origin`; write `https://app.example.com`",
        ),
        ("http://[::1]:80", "write `http://[::1]`"),
        ("https://app.example.com:0", "has an invalid port"),
        ("https://app.example.com:70000", "has an invalid port"),
        ("https://app.example.com:08080", "has an invalid port"),
        ("https://app.example.com:", "has an invalid port"),
        ("null", "`null` cannot be allowed"),
        ("https://*.example.com", "patterns are not supported; list each origin"),
        (
            "https://bücher.example",
            "is not ASCII: browsers send international host names in punycode",
        ),
        ("https://user@app.example.com", "with no path, query or user name"),
        ("https://app.example.com?x=1", "with no path, query or user name"),
        ("https://", "is not an origin"),
        ("https://[::1", "has an invalid host"),
        ("https://[::1]x", "has an invalid host"),
        ("https://[zz]", "has an invalid host"),
        ("https://a b.com", "has an invalid host"),
        ("1ttp://a.com", "has an invalid scheme"),
    ];
    for (origin, expected) in cases {
        let err = check_err(&format!(r#"{{"allow_origins": ["{APP}", "{origin}"]}}"#));
        assert!(err.starts_with("field `cors.allow_origins[1]`: "), "{origin}: {err}");
        assert!(err.contains(expected), "{origin}: {err}");
    }
}

#[test]
fn check_accepts_well_formed_origins() {
    for origin in [
        "http://localhost:3000",
        "https://[::1]:8443",
        "http://127.0.0.1:8080",
        "capacitor://localhost",
        "https://xn--bcher-kva.example",
        "http://app.example.com:443",
    ] {
        settings(&format!(r#"{{"allow_origins": ["{origin}"]}}"#))
            .check()
            .unwrap_or_else(|e| panic!("{origin}: {e}"));
    }
}

#[test]
fn check_refuses_invalid_header_names_and_methods() {
    let base = format!(r#""allow_origins": ["{APP}"]"#);
    assert_eq!(
        check_err(&format!(r#"{{{base}, "allow_headers": ["content-type", "x api"]}}"#)),
        "field `cors.allow_headers[1]`: `x api` is not a valid header name, e.g. `x-api-key`"
    );
    assert_eq!(
        check_err(&format!(r#"{{{base}, "expose_headers": [""]}}"#)),
        "field `cors.expose_headers[0]`: `` is not a valid header name, e.g. `x-api-key`"
    );
    assert_eq!(
        check_err(&format!(r#"{{{base}, "allow_methods": ["GET", "GE T"]}}"#)),
        "field `cors.allow_methods[1]`: `GE T` is not a valid method name, e.g. `PUT`"
    );
}

#[test]
fn check_refuses_max_age_beyond_a_day() {
    settings(r#"{"allow_origins": ["*"], "max_age_s": 86400}"#)
        .check()
        .expect("a day is fine");
    assert_eq!(
        check_err(r#"{"allow_origins": ["*"], "max_age_s": 600000}"#),
        "field `cors.max_age_s`: `600000` is too large: it counts seconds, at most 86400 (a day; browsers cap it, \
         Chromium at 7200)"
    );
}

// ---- preflight ----

#[test]
fn is_preflight_needs_options_origin_and_request_method() {
    let full = headers(&[(&ORIGIN, APP), (&ACRM, "PUT")]);
    assert!(CorsPolicy::is_preflight(&Method::OPTIONS, &full));
    assert!(!CorsPolicy::is_preflight(&Method::GET, &full));
    assert!(!CorsPolicy::is_preflight(&Method::OPTIONS, &headers(&[(&ORIGIN, APP)])));
    assert!(!CorsPolicy::is_preflight(&Method::OPTIONS, &headers(&[(&ACRM, "PUT")])));
}

const LISTED: &str = r#"{"allow_origins": ["https://app.example.com", "http://localhost:3000"],
    "allow_methods": ["get", "PUT", "put"], "allow_headers": ["Content-Type", "x-api-key"],
    "expose_headers": ["x-request-id"]}"#;

#[test]
fn preflight_allowed_origin() {
    let p = policy(LISTED);
    let req = headers(&[
        (&ORIGIN, "http://localhost:3000"),
        (&ACRM, "PUT"),
        (&ACRH, "content-type,x-api-key"),
    ]);
    let answer = p.preflight(&req, ROUTE);
    assert_eq!(answer.status, StatusCode::NO_CONTENT);
    assert_eq!(answer.refusal, None);
    let h = &answer.headers;
    assert_eq!(get(h, &ACAO), Some("http://localhost:3000"));
    assert_eq!(
        get(h, &ACAM),
        Some("GET, PUT"),
        "upper-cased, deduplicated, configured list not route's"
    );
    assert_eq!(get(h, &ACAH), Some("content-type, x-api-key"));
    assert_eq!(
        all(h, &VARY),
        ["origin, access-control-request-method, access-control-request-headers"]
    );
    assert_eq!(get(h, &ACAC), None);
    assert_eq!(get(h, &ACMA), None);
    assert_eq!(get(h, &ACEH), None, "expose headers belong on actual responses only");

    let response = answer.into_response(());
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert_eq!(get(response.headers(), &ACAO), Some("http://localhost:3000"));
}

#[test]
fn preflight_refused_origin_has_only_vary() {
    let p = policy(LISTED);
    for origin in [
        "https://evil.example.com",
        "https://app.example.com.evil.com",
        "HTTPS://APP.EXAMPLE.COM",
        "null",
    ] {
        let answer = p.preflight(&headers(&[(&ORIGIN, origin), (&ACRM, "PUT")]), ROUTE);
        assert_eq!(answer.status, StatusCode::NO_CONTENT);
        assert_eq!(answer.refusal, Some(Refusal::Origin), "{origin}");
        assert!(!has_cors(&answer.headers), "{origin}: {:?}", answer.headers);
        assert_eq!(all(&answer.headers, &VARY).len(), 1);
    }
    let answer = p.preflight(&headers(&[(&ACRM, "PUT")]), ROUTE);
    assert_eq!(answer.refusal, Some(Refusal::Origin));
    assert_eq!(Refusal::Origin.to_string(), "origin not allowed");
}

#[test]
fn preflight_method_not_allowed() {
    let p = policy(LISTED);
    let answer = p.preflight(&headers(&[(&ORIGIN, APP), (&ACRM, "DELETE")]), ROUTE);
    assert_eq!(answer.refusal, Some(Refusal::Method));
    // The lists stay, so the browser names the method at fault.
    assert_eq!(get(&answer.headers, &ACAO), Some(APP));
    assert_eq!(get(&answer.headers, &ACAM), Some("GET, PUT"));
    // Methods compare exactly, as in browsers: `put` is not `PUT`.
    let answer = p.preflight(&headers(&[(&ORIGIN, APP), (&ACRM, "put")]), ROUTE);
    assert_eq!(answer.refusal, Some(Refusal::Method));
    // A safelisted method passes whatever the list says.
    let answer = p.preflight(&headers(&[(&ORIGIN, APP), (&ACRM, "POST")]), ROUTE);
    assert_eq!(answer.refusal, None);
    // No Access-Control-Request-Method, or two of them.
    assert_eq!(
        p.preflight(&headers(&[(&ORIGIN, APP)]), ROUTE).refusal,
        Some(Refusal::Method)
    );
    let two = headers(&[(&ORIGIN, APP), (&ACRM, "PUT"), (&ACRM, "PUT")]);
    assert_eq!(p.preflight(&two, ROUTE).refusal, Some(Refusal::Method));
}

#[test]
fn preflight_uses_route_methods_when_none_configured() {
    let p = policy(r#"{"allow_origins": ["*"]}"#);
    let route = [Method::GET, Method::HEAD, Method::PATCH];
    let answer = p.preflight(&headers(&[(&ORIGIN, APP), (&ACRM, "PATCH")]), &route);
    assert_eq!(answer.refusal, None);
    assert_eq!(get(&answer.headers, &ACAO), Some("*"));
    assert_eq!(get(&answer.headers, &ACAM), Some("GET, HEAD, PATCH"));
    assert_eq!(get(&answer.headers, &ACAH), None);
    let answer = p.preflight(&headers(&[(&ORIGIN, APP), (&ACRM, "DELETE")]), &route);
    assert_eq!(answer.refusal, Some(Refusal::Method));
    let answer = p.preflight(&headers(&[(&ORIGIN, APP), (&ACRM, "DELETE")]), &[]);
    assert_eq!(
        (answer.refusal, get(&answer.headers, &ACAM)),
        (Some(Refusal::Method), None)
    );
}

#[test]
fn preflight_headers_not_allowed() {
    let p = policy(LISTED);
    let req = headers(&[(&ORIGIN, APP), (&ACRM, "PUT"), (&ACRH, "content-type, x-secret")]);
    let answer = p.preflight(&req, ROUTE);
    assert_eq!(answer.refusal, Some(Refusal::Headers));
    assert_eq!(get(&answer.headers, &ACAH), Some("content-type, x-api-key"));
    // Names compare case-insensitively; empty list elements are ignored.
    let req = headers(&[(&ORIGIN, APP), (&ACRM, "PUT"), (&ACRH, "X-Api-Key, ,Content-Type")]);
    assert_eq!(p.preflight(&req, ROUTE).refusal, None);
    // A method refusal is reported first.
    let req = headers(&[(&ORIGIN, APP), (&ACRM, "DELETE"), (&ACRH, "x-secret")]);
    assert_eq!(p.preflight(&req, ROUTE).refusal, Some(Refusal::Method));
    // No allowed headers at all: any requested header is refused, and no Access-Control-Allow-Headers is sent.
    let bare = policy(r#"{"allow_origins": ["*"]}"#);
    let answer = bare.preflight(&headers(&[(&ORIGIN, APP), (&ACRM, "GET"), (&ACRH, "x-a")]), ROUTE);
    assert_eq!(
        (answer.refusal, get(&answer.headers, &ACAH)),
        (Some(Refusal::Headers), None)
    );
}

#[test]
fn preflight_mirrors_wildcard_headers_and_methods() {
    let p = policy(r#"{"allow_origins": ["*"], "allow_headers": ["*"], "allow_methods": ["*"]}"#);
    let req = headers(&[(&ORIGIN, APP), (&ACRM, "PURGE"), (&ACRH, "authorization,x-anything")]);
    let answer = p.preflight(&req, ROUTE);
    assert_eq!(answer.refusal, None);
    assert_eq!(get(&answer.headers, &ACAH), Some("authorization,x-anything"));
    assert_eq!(get(&answer.headers, &ACAM), Some("PURGE"));
    let answer = p.preflight(&headers(&[(&ORIGIN, APP), (&ACRM, "GET")]), ROUTE);
    assert_eq!(answer.refusal, None);
    assert_eq!(get(&answer.headers, &ACAH), None, "nothing requested, nothing mirrored");
}

#[test]
fn preflight_max_age_and_credentials() {
    let p = policy(r#"{"allow_origins": ["https://app.example.com"], "allow_credentials": true, "max_age_s": 600}"#);
    let answer = p.preflight(&headers(&[(&ORIGIN, APP), (&ACRM, "GET")]), ROUTE);
    assert_eq!(answer.refusal, None);
    assert_eq!(
        get(&answer.headers, &ACAO),
        Some(APP),
        "echoed, never `*`, with credentials"
    );
    assert_eq!(get(&answer.headers, &ACAC), Some("true"));
    assert_eq!(get(&answer.headers, &ACMA), Some("600"));
    // A refused origin gets neither.
    let answer = p.preflight(&headers(&[(&ORIGIN, "https://other.example"), (&ACRM, "GET")]), ROUTE);
    assert!(!has_cors(&answer.headers));
}

#[test]
fn preflight_with_several_origins_or_null() {
    let listed = policy(LISTED);
    let any = policy(r#"{"allow_origins": ["*"]}"#);
    let two = headers(&[(&ORIGIN, APP), (&ORIGIN, APP), (&ACRM, "GET")]);
    assert_eq!(listed.preflight(&two, ROUTE).refusal, Some(Refusal::Origin));
    assert_eq!(any.preflight(&two, ROUTE).refusal, Some(Refusal::Origin));
    let null = headers(&[(&ORIGIN, "null"), (&ACRM, "GET")]);
    assert_eq!(listed.preflight(&null, ROUTE).refusal, Some(Refusal::Origin));
    let answer = any.preflight(&null, ROUTE);
    assert_eq!((answer.refusal, get(&answer.headers, &ACAO)), (None, Some("*")));
}

// ---- apply ----

#[test]
fn apply_exact_origin_with_expose_headers() {
    let p = policy(LISTED);
    let mut response = headers(&[(&header::CONTENT_TYPE, "text/plain")]);
    p.apply(&headers(&[(&ORIGIN, APP)]), &mut response);
    assert_eq!(get(&response, &ACAO), Some(APP));
    assert_eq!(get(&response, &ACEH), Some("x-request-id"));
    assert_eq!(all(&response, &VARY), ["origin"]);
    assert_eq!(get(&response, &ACAC), None);
    assert_eq!(
        get(&response, &ACAM),
        None,
        "preflight-only headers stay off actual responses"
    );
    assert_eq!(get(&response, &ACMA), None);
    assert_eq!(get(&response, &header::CONTENT_TYPE), Some("text/plain"));
}

#[test]
fn apply_wildcard_answers_star() {
    let p = policy(r#"{"allow_origins": ["*"], "expose_headers": ["*"]}"#);
    let mut response = HeaderMap::new();
    p.apply(&headers(&[(&ORIGIN, APP)]), &mut response);
    assert_eq!(get(&response, &ACAO), Some("*"));
    assert_eq!(get(&response, &ACEH), Some("*"));
    assert_eq!(get(&response, &ACAC), None);
}

#[test]
fn apply_with_credentials() {
    let p = policy(r#"{"allow_origins": ["https://app.example.com"], "allow_credentials": true}"#);
    let mut response = HeaderMap::new();
    p.apply(&headers(&[(&ORIGIN, APP)]), &mut response);
    assert_eq!(
        (get(&response, &ACAO), get(&response, &ACAC)),
        (Some(APP), Some("true"))
    );
    assert_eq!(get(&response, &ACEH), None);
}

#[test]
fn apply_without_or_with_refused_origin_adds_only_vary() {
    for p in [policy(LISTED), policy(r#"{"allow_origins": ["*"]}"#)] {
        let mut response = HeaderMap::new();
        p.apply(&HeaderMap::new(), &mut response);
        assert!(!has_cors(&response));
        assert_eq!(all(&response, &VARY), ["origin"]);
    }
    let mut response = HeaderMap::new();
    policy(LISTED).apply(&headers(&[(&ORIGIN, "https://evil.example")]), &mut response);
    assert!(!has_cors(&response));
    assert_eq!(all(&response, &VARY), ["origin"]);
}

#[test]
fn apply_merges_vary() {
    let p = policy(LISTED);
    let req = headers(&[(&ORIGIN, APP)]);
    let mut response = headers(&[(&VARY, "accept-encoding")]);
    p.apply(&req, &mut response);
    assert_eq!(
        all(&response, &VARY),
        ["accept-encoding", "origin"],
        "appended, not clobbered"
    );
    for already in ["Origin", "Accept-Encoding, Origin", "*", "accept, *"] {
        let mut response = headers(&[(&VARY, already)]);
        p.apply(&req, &mut response);
        assert_eq!(all(&response, &VARY), [already], "{already}");
    }
    // Applying twice does not repeat it.
    let mut response = HeaderMap::new();
    p.apply(&req, &mut response);
    p.apply(&req, &mut response);
    assert_eq!(all(&response, &VARY), ["origin"]);
}

#[test]
fn apply_replaces_guest_cors_headers() {
    let p = policy(LISTED);
    let guest = || {
        headers(&[
            (&ACAO, "*"),
            (&ACAC, "true"),
            (&ACEH, "x-secret"),
            (&ACAM, "DELETE"),
            (&HeaderName::from_static("access-control-allow-private-network"), "true"),
            (&header::CONTENT_LENGTH, "2"),
        ])
    };
    let mut response = guest();
    p.apply(&headers(&[(&ORIGIN, APP)]), &mut response);
    assert_eq!(all(&response, &ACAO), [APP]);
    assert_eq!(all(&response, &ACEH), ["x-request-id"]);
    assert_eq!(get(&response, &ACAC), None);
    assert_eq!(get(&response, &ACAM), None);
    assert_eq!(response.len(), 4, "{response:?}");
    // A refused origin, or none, cannot be let through by the guest.
    for req in [headers(&[(&ORIGIN, "https://evil.example")]), HeaderMap::new()] {
        let mut response = guest();
        p.apply(&req, &mut response);
        assert!(!has_cors(&response), "{response:?}");
        assert_eq!(get(&response, &header::CONTENT_LENGTH), Some("2"));
    }
}

#[test]
fn apply_with_several_origins_or_null() {
    let two = headers(&[(&ORIGIN, APP), (&ORIGIN, "http://localhost:3000")]);
    for p in [policy(LISTED), policy(r#"{"allow_origins": ["*"]}"#)] {
        let mut response = HeaderMap::new();
        p.apply(&two, &mut response);
        assert!(!has_cors(&response));
        assert_eq!(all(&response, &VARY), ["origin"]);
    }
    // One header holding a list is not an allowed origin either.
    let mut response = HeaderMap::new();
    policy(LISTED).apply(
        &headers(&[(&ORIGIN, "https://app.example.com, http://localhost:3000")]),
        &mut response,
    );
    assert!(!has_cors(&response));

    let null = headers(&[(&ORIGIN, "null")]);
    let mut response = HeaderMap::new();
    policy(LISTED).apply(&null, &mut response);
    assert!(!has_cors(&response));
    let mut response = HeaderMap::new();
    policy(r#"{"allow_origins": ["*"]}"#).apply(&null, &mut response);
    assert_eq!(get(&response, &ACAO), Some("*"));
}
