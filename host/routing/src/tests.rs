//! Table-driven tests of matching, precedence and conflicts.

use http::Method;

use super::*;

fn claim(function: usize, pattern: &str, methods: &[&str], hosts: &[&str], force: bool) -> RouteClaim {
    RouteClaim {
        function,
        function_name: format!("f{function}"),
        pattern: RoutePattern::parse(pattern).unwrap(),
        methods: methods.iter().map(|m| m.parse().unwrap()).collect(),
        hosts: hosts.iter().map(|h| HostRule::parse(h).unwrap()).collect(),
        force_url: force,
        tag: function,
    }
}

fn get(table: &RouteTable, method: &str, host: &str, path: &str) -> String {
    let segs = match split_path(path) {
        Ok(s) => s,
        Err(e) => return format!("bad path: {e}"),
    };
    let method: Method = method.parse().unwrap();
    match table.route(&method, host, None, &segs) {
        RouteOutcome::Matched(m) => {
            let params: Vec<String> = m.params.iter().map(|(k, v)| format!("{k}={v}")).collect();
            format!("f{} {} {}", m.claim.function, m.claim.pattern, params.join(","))
                .trim_end()
                .to_string()
        }
        RouteOutcome::NotFound => "404".into(),
        RouteOutcome::MethodNotAllowed { allow } => {
            format!("405 {}", allow.iter().map(|m| m.as_str()).collect::<Vec<_>>().join(","))
        }
        RouteOutcome::MisdirectedHost => "421".into(),
        RouteOutcome::Conflict { route, functions } => {
            format!("409 {route} {}", functions.join(","))
        }
    }
}

fn sample() -> RouteTable {
    RouteTable::build(vec![
        claim(0, "/", &["GET"], &[], false),
        claim(1, "/hello", &["GET", "POST"], &[], false),
        claim(2, "/users/{id}", &["GET"], &[], false),
        claim(3, "/users/me", &["GET"], &[], false),
        claim(4, "/files/{...path}", &["GET"], &[], false),
        claim(5, "/users/{id}/posts/{post}", &["GET"], &[], false),
        claim(6, "/{a}/{b}/{c}", &["GET"], &[], false),
        claim(7, "/x/{b}/c", &["GET"], &[], false),
        claim(8, "/only-api", &["GET"], &["api.example.com", "*.example.org"], false),
        claim(9, "/café/{nom}", &["GET"], &[], false),
        claim(10, "/items/{id}", &["DELETE"], &[], false),
        claim(11, "/items/special", &["POST"], &[], false),
        claim(12, "/docs", &["GET"], &[], false),
        claim(12, "/docs/{...path}", &["GET"], &[], false),
    ])
}

#[test]
fn matching_table() {
    let t = sample();
    let cases = [
        ("GET", "/", "f0 /"),
        ("GET", "/hello", "f1 /hello"),
        ("GET", "/hello/", "f1 /hello"),
        ("POST", "/hello", "f1 /hello"),
        ("HEAD", "/hello", "f1 /hello"),
        ("PUT", "/hello", "405 GET,HEAD,POST"),
        ("GET", "/hello//", "404"),
        ("GET", "//hello", "404"),
        ("GET", "/HELLO", "404"),
        ("GET", "/users/42", "f2 /users/{id} id=42"),
        ("GET", "/users/me", "f3 /users/me"),
        ("GET", "/users/a%20b", "f2 /users/{id} id=a b"),
        ("GET", "/users/a%2Fb", "f2 /users/{id} id=a/b"),
        ("GET", "/users/", "404"),
        ("GET", "/users", "404"),
        (
            "GET",
            "/users/../hello",
            "bad path: path `/users/../hello` contains a `.` or `..` segment",
        ),
        (
            "GET",
            "/users/%2e%2e/hello",
            "bad path: path `/users/%2e%2e/hello` contains a `.` or `..` segment",
        ),
        (
            "GET",
            "/users/./x",
            "bad path: path `/users/./x` contains a `.` or `..` segment",
        ),
        (
            "GET",
            "/users/%ff",
            "bad path: path `/users/%ff` is not valid percent-encoded UTF-8",
        ),
        (
            "GET",
            "/users/%00",
            "bad path: path `/users/%00` contains a control character",
        ),
        ("GET", "/users/%C2%87", "f2 /users/{id} id=\u{87}"),
        ("GET", "/files/a", "f4 /files/{...path} path=a"),
        ("GET", "/files/a/b/c.txt", "f4 /files/{...path} path=a/b/c.txt"),
        ("GET", "/files", "404"),
        ("GET", "/files/a//b", "404"),
        ("GET", "/users/1/posts/2", "f5 /users/{id}/posts/{post} id=1,post=2"),
        ("GET", "/x/y/c", "f7 /x/{b}/c b=y"),
        ("GET", "/x/y/z", "f6 /{a}/{b}/{c} a=x,b=y,c=z"),
        ("GET", "/caf%C3%A9/cr%C3%AApe", "f9 /café/{nom} nom=crêpe"),
        ("GET", "/café/x", "f9 /café/{nom} nom=x"),
        ("DELETE", "/items/special", "405 POST"),
        ("DELETE", "/items/other", "f10 /items/{id} id=other"),
        ("POST", "/items/special", "f11 /items/special"),
        ("GET", "/items/special", "405 POST"),
        ("GET", "/docs", "f12 /docs"),
        ("GET", "/docs/a/b", "f12 /docs/{...path} path=a/b"),
        ("GET", "/nope", "404"),
        ("GET", "relative", "bad path: path `relative` must start with `/`"),
    ];
    for (method, path, want) in cases {
        assert_eq!(get(&t, method, "localhost", path), want, "{method} {path}");
    }
}

#[test]
fn hosts() {
    let t = sample();
    assert_eq!(get(&t, "GET", "api.example.com", "/only-api"), "f8 /only-api");
    assert_eq!(get(&t, "GET", "a.example.org", "/only-api"), "f8 /only-api");
    assert_eq!(get(&t, "GET", "example.org", "/only-api"), "421");
    assert_eq!(get(&t, "GET", "localhost", "/only-api"), "421");
    assert_eq!(get(&t, "HEAD", "localhost", "/only-api"), "421");
    assert_eq!(get(&t, "POST", "api.example.com", "/only-api"), "405 GET,HEAD");
    // The method is checked before the host: one no claim serves is 405, whatever the host.
    assert_eq!(get(&t, "POST", "localhost", "/only-api"), "405 GET,HEAD");
    assert_eq!(get(&t, "TRACE", "example.org", "/only-api"), "405 GET,HEAD");
}

#[test]
fn same_route_on_disjoint_hosts_is_no_conflict() {
    let t = RouteTable::build(vec![
        claim(0, "/x", &["GET"], &["a.com"], false),
        claim(1, "/x", &["GET"], &["b.com"], false),
    ]);
    assert!(t.conflicts().is_empty());
    assert_eq!(get(&t, "GET", "a.com", "/x"), "f0 /x");
    assert_eq!(get(&t, "GET", "b.com", "/x"), "f1 /x");
    assert_eq!(get(&t, "GET", "c.com", "/x"), "421");
    assert_eq!(get(&t, "POST", "c.com", "/x"), "405 GET,HEAD");
}

#[test]
fn methods_are_checked_before_hosts() {
    let t = RouteTable::build(vec![
        claim(0, "/y", &["GET"], &["a.com"], false),
        claim(1, "/y", &["POST"], &["b.com"], false),
        claim(2, "/z/{id}", &["DELETE"], &["a.com"], false),
        claim(3, "/z/special", &["PUT"], &["b.com"], false),
    ]);
    let cases = [
        // A host a claim serves decides with its own methods.
        ("POST", "a.com", "/y", "405 GET,HEAD"),
        ("GET", "b.com", "/y", "405 POST"),
        // Other hosts: 421 for a method some claim serves, else 405 with every host's.
        ("POST", "c.com", "/y", "421"),
        ("GET", "c.com", "/y", "421"),
        ("TRACE", "c.com", "/y", "405 GET,HEAD,POST"),
        // Every pattern that has the path counts, in precedence order.
        ("DELETE", "c.com", "/z/special", "421"),
        ("PUT", "c.com", "/z/special", "421"),
        ("GET", "c.com", "/z/special", "405 DELETE,PUT"),
        ("PUT", "a.com", "/z/special", "405 DELETE"),
        ("GET", "c.com", "/nope", "404"),
    ];
    for (method, host, path, want) in cases {
        assert_eq!(get(&t, method, host, path), want, "{method} {host} {path}");
    }
    // A method another claim took with `force_url` is not served by the claim it was taken from.
    let t = RouteTable::build(vec![
        claim(0, "/w", &["GET", "POST"], &["a.com"], false),
        claim(1, "/w", &["POST"], &["*.com"], true),
    ]);
    assert_eq!(get(&t, "POST", "b.org", "/w"), "421");
    assert_eq!(get(&t, "PUT", "b.org", "/w"), "405 GET,HEAD,POST");
}

#[test]
fn conflicts_and_force() {
    let cases: &[(&[RouteClaim], &str, &str)] = &[
        // Same route and method: conflict, neither serves.
        (
            &[
                claim(0, "/x", &["GET"], &[], false),
                claim(1, "/x", &["GET"], &[], false),
            ],
            "409 /x f0,f1",
            "/x GET f0,f1; /x HEAD f0,f1",
        ),
        // Param names do not matter: same shape.
        (
            &[
                claim(0, "/{id}", &["GET"], &[], false),
                claim(1, "/{uid}", &["GET"], &[], false),
            ],
            "409 /{id} f0,f1",
            "/{id} GET f0,f1; /{id} HEAD f0,f1",
        ),
        // Different methods on one route do not conflict.
        (
            &[
                claim(0, "/x", &["GET"], &[], false),
                claim(1, "/x", &["POST"], &[], false),
            ],
            "f0 /x",
            "",
        ),
        // force_url wins.
        (
            &[
                claim(0, "/x", &["GET"], &[], false),
                claim(1, "/x", &["GET"], &[], true),
            ],
            "f1 /x",
            "",
        ),
        (
            &[
                claim(0, "/x", &["GET"], &[], true),
                claim(1, "/x", &["GET"], &[], false),
            ],
            "f0 /x",
            "",
        ),
        // Two forced claims still conflict.
        (
            &[claim(0, "/x", &["GET"], &[], true), claim(1, "/x", &["GET"], &[], true)],
            "409 /x f0,f1",
            "/x GET f0,f1; /x HEAD f0,f1",
        ),
        // One forced claim beats two others, which do not conflict among themselves.
        (
            &[
                claim(0, "/x", &["GET"], &[], false),
                claim(1, "/x", &["GET"], &[], false),
                claim(2, "/x", &["GET"], &[], true),
            ],
            "f2 /x",
            "",
        ),
        // Overlapping hosts conflict; an empty list overlaps everything.
        (
            &[
                claim(0, "/x", &["GET"], &["*.a.com"], false),
                claim(1, "/x", &["GET"], &[], false),
            ],
            "409 /x f0,f1",
            "/x GET f0,f1; /x HEAD f0,f1",
        ),
        // Partial method overlap: only the shared method conflicts.
        (
            &[
                claim(0, "/x", &["GET", "POST"], &[], false),
                claim(1, "/x", &["POST"], &[], false),
            ],
            "f0 /x",
            "/x POST f0,f1",
        ),
        // Two routes of one function never conflict with each other.
        (
            &[
                claim(0, "/x", &["GET"], &[], false),
                claim(0, "/x/", &["GET"], &[], false),
            ],
            "f0 /x",
            "",
        ),
    ];
    for (claims, outcome, listed) in cases {
        let t = RouteTable::build(claims.to_vec());
        assert_eq!(&get(&t, "GET", "x.a.com", "/x"), outcome, "{claims:?}");
        let shown: Vec<String> = t
            .conflicts()
            .iter()
            .map(|c| format!("{} {} {}", c.route, c.method, c.functions.join(",")))
            .collect();
        assert_eq!(&shown.join("; "), listed, "{claims:?}");
    }
    let t = RouteTable::build(vec![
        claim(0, "/x", &["GET", "POST"], &[], false),
        claim(1, "/x", &["POST"], &[], false),
    ]);
    assert_eq!(get(&t, "POST", "h", "/x"), "409 /x f0,f1");
}

#[test]
fn precedence_is_global_not_left_to_right() {
    // `/{z}/b/c` has more static segments than `/a/{x}/{y}`.
    let t = RouteTable::build(vec![
        claim(0, "/a/{x}/{y}", &["GET"], &[], false),
        claim(1, "/{z}/b/c", &["GET"], &[], false),
        claim(2, "/a/{...rest}", &["GET"], &[], false),
    ]);
    assert_eq!(get(&t, "GET", "h", "/a/b/c"), "f1 /{z}/b/c z=a");
    assert_eq!(get(&t, "GET", "h", "/a/q/c"), "f0 /a/{x}/{y} x=q,y=c");
    assert_eq!(get(&t, "GET", "h", "/a/q"), "f2 /a/{...rest} rest=q");
    // Equal rank keys fall back to lexical order, so the result never depends on input order.
    let a = RouteTable::build(vec![
        claim(0, "/{p}/x", &["GET"], &[], false),
        claim(1, "/x/{q}", &["GET"], &[], false),
    ]);
    let b = RouteTable::build(vec![
        claim(1, "/x/{q}", &["GET"], &[], false),
        claim(0, "/{p}/x", &["GET"], &[], false),
    ]);
    assert_eq!(get(&a, "GET", "h", "/x/x"), get(&b, "GET", "h", "/x/x"));
}

#[test]
fn ten_thousand_routes() {
    let claims = (0..10_000)
        .map(|i| claim(i, &format!("/fn{i}/{{id}}"), &["GET"], &[], false))
        .collect();
    let t = RouteTable::build(claims);
    assert_eq!(get(&t, "GET", "h", "/fn9999/7"), "f9999 /fn9999/{id} id=7");
    assert_eq!(get(&t, "GET", "h", "/fn10000/7"), "404");
}
