//! Request paths against a table of every kind of pattern: splitting and
//! percent-decoding never panic, never yield a `.` or `..` segment, and a
//! match's parameters are the decoded segments.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use wasmfn_routing::{HostRule, RouteClaim, RouteOutcome, RoutePattern, RouteTable, split_path};

fn table() -> &'static RouteTable {
    static TABLE: OnceLock<RouteTable> = OnceLock::new();
    TABLE.get_or_init(|| {
        let routes = [
            "/",
            "/hello",
            "/users/{id}",
            "/users/me",
            "/files/{...path}",
            "/docs",
            "/{a}/{b}/{c}",
            "/café/{nom}",
        ];
        let claims = routes
            .iter()
            .enumerate()
            .map(|(i, r)| RouteClaim {
                function: i,
                function_name: format!("f{i}"),
                pattern: RoutePattern::parse(r).unwrap(),
                methods: vec![http::Method::GET],
                hosts: if i == 1 {
                    vec![HostRule::parse("*.example.org").unwrap()]
                } else {
                    vec![]
                },
                force_url: false,
                tag: i,
            })
            .collect();
        RouteTable::build(claims)
    })
}

fuzz_target!(|data: (&str, &str)| {
    let (path, host) = data;
    let Ok(segments) = split_path(path) else { return };
    for s in &segments {
        assert!(s != "." && s != "..", "`{path}` gave a `{s}` segment");
    }
    let host = host.to_ascii_lowercase();
    if let RouteOutcome::Matched(m) = table().route(&http::Method::GET, &host, None, &segments) {
        // Every parameter is one decoded segment (a catch-all: several,
        // joined by `/`), never empty.
        for (_, value) in &m.params {
            assert!(
                !value.is_empty(),
                "`{path}` matched `{}` with an empty parameter",
                m.claim.pattern
            );
        }
    }
});
