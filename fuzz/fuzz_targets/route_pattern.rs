//! Route patterns as written in `invoke.routes` and folder names: a
//! pattern that parses prints back to text that parses to the same
//! pattern, and matching any path against it never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wasmfn_routing::{RouteClaim, RoutePattern, RouteTable, split_path};

fuzz_target!(|data: (&str, &str)| {
    let (route, path) = data;
    let Ok(pattern) = RoutePattern::parse(route) else {
        return;
    };
    let printed = pattern.to_string();
    let again = RoutePattern::parse(&printed).expect("a printed pattern parses");
    assert_eq!(again, pattern, "`{route}` printed as `{printed}`");
    let table = RouteTable::build(vec![RouteClaim {
        function: 0,
        function_name: "f".into(),
        pattern,
        methods: vec![http::Method::GET],
        hosts: vec![],
        force_url: false,
        tag: 0,
    }]);
    if let Ok(segments) = split_path(path) {
        let _ = table.route(&http::Method::GET, "localhost", None, &segments);
    }
});
