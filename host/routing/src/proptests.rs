//! Properties of parsing and matching, over generated patterns and paths
//! (the same invariants the `route_pattern` and `route_match` fuzz targets
//! check, run on stable in every test run).

use std::borrow::Cow;

use http::Method;
use proptest::prelude::*;

use crate::{HostRule, RouteClaim, RouteOutcome, RoutePattern, RouteTable, split_path};

/// Text built from the pieces patterns and paths are made of, so that
/// generated input reaches deep into the parsers.
fn pattern_text() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just("/".to_string()),
        Just("{".to_string()),
        Just("}".to_string()),
        Just("...".to_string()),
        Just("?".to_string()),
        Just(".".to_string()),
        Just("..".to_string()),
        Just("%2F".to_string()),
        Just("%".to_string()),
        Just("é".to_string()),
        "[a-z_]{1,4}",
        any::<char>().prop_map(String::from),
    ];
    prop::collection::vec(piece, 0..12).prop_map(|v| v.concat())
}

fn table(patterns: &[RoutePattern]) -> RouteTable {
    RouteTable::build(
        patterns
            .iter()
            .enumerate()
            .map(|(i, p)| RouteClaim {
                function: i,
                function_name: format!("f{i}"),
                pattern: p.clone(),
                methods: vec![Method::GET],
                hosts: if i % 3 == 2 {
                    vec![HostRule::parse("*.example.org").unwrap()]
                } else {
                    vec![]
                },
                force_url: false,
                tag: i,
            })
            .collect(),
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn a_parsed_pattern_prints_back_to_itself(text in pattern_text()) {
        if let Ok(p) = RoutePattern::parse(&text) {
            let printed = p.to_string();
            let again = RoutePattern::parse(&printed);
            prop_assert_eq!(again, Ok(p), "printed as `{}`", printed);
        }
    }

    #[test]
    fn split_paths_never_hold_dot_segments(path in pattern_text()) {
        if let Ok(segments) = split_path(&path) {
            for s in &segments {
                prop_assert!(s != "." && s != "..", "`{}` gave `{}`", path, s);
                prop_assert!(!s.bytes().any(|b| b.is_ascii_control()), "`{}` gave `{:?}`", path, s);
            }
        }
    }

    #[test]
    fn matching_never_panics_and_finds_what_a_pattern_names(
        routes in prop::collection::vec(pattern_text(), 1..6),
        path in pattern_text(),
        host in "[a-z.]{0,12}",
    ) {
        let patterns: Vec<RoutePattern> = routes.iter().filter_map(|r| RoutePattern::parse(r).ok()).collect();
        let t = table(&patterns);
        if let Ok(segments) = split_path(&path)
            && let RouteOutcome::Matched(m) = t.route(&Method::GET, &host, None, &segments)
        {
            prop_assert!(patterns.contains(&m.claim.pattern));
        }
        // Every claim serves GET only: any other method is refused as a
        // method, never as a host, and `Allow` names what is served.
        if let Ok(segments) = split_path(&path) {
            match t.route(&Method::TRACE, &host, None, &segments) {
                RouteOutcome::NotFound => {}
                RouteOutcome::MethodNotAllowed { allow } => prop_assert_eq!(allow, [Method::GET, Method::HEAD]),
                other => prop_assert!(false, "TRACE `{}` on `{}` answered {:?}", path, host, other),
            }
        }
        // A static pattern served on every host finds itself (or its
        // conflict, when two functions claim it).
        for (i, p) in patterns.iter().enumerate() {
            let text = p.to_string();
            if i % 3 == 2 || p.param_names().next().is_some() || text.contains('%') {
                continue;
            }
            let segments: Vec<Cow<'_, str>> = split_path(&text).unwrap();
            match t.route(&Method::GET, "localhost", None, &segments) {
                RouteOutcome::Matched(m) => prop_assert_eq!(&m.claim.pattern, p),
                RouteOutcome::Conflict { route, .. } => prop_assert_eq!(route, text.as_str()),
                other => prop_assert!(false, "`{}` answered {:?}", text, other),
            }
        }
    }
}
