//! The house rules of the workspace, read from `cargo metadata`: which of
//! the host's crates may depend on which (no cycles, arrows pointing one
//! way), and the heavy dependencies each kept in exactly one crate.

use std::collections::{BTreeMap, BTreeSet};

/// Every host crate and the host crates it may depend on (normal and
/// build dependencies; tests and benches may use more).
const ALLOWED: &[(&str, &[&str])] = &[
    ("wasmfn-routing", &[]),
    ("wasmfn-manifest", &["wasmfn-routing"]),
    ("wasmfn-openapi", &["wasmfn-manifest", "wasmfn-routing"]),
    ("wasmfn-kv", &[]),
    ("wasmfn-oci", &[]),
    ("wasmfn-runtime", &["wasmfn-manifest", "wasmfn-kv"]),
    ("wasmfn-build", &["wasmfn-manifest", "wasmfn-routing"]),
    (
        "wasmfn-server",
        &[
            "wasmfn-manifest",
            "wasmfn-routing",
            "wasmfn-openapi",
            "wasmfn-runtime",
            "wasmfn-kv",
            "wasmfn-oci",
        ],
    ),
    ("wasmfn", &["wasmfn-server", "wasmfn-build", "wasmfn-oci"]),
];

/// Words that may each appear in the dependencies of one crate only.
const CONFINED: &[(&str, &str)] = &[
    ("wasmtime", "wasmfn-runtime"),
    ("axum", "wasmfn-server"),
    ("clap", "wasmfn"),
    ("rusqlite", "wasmfn-kv"),
    ("redis", "wasmfn-kv"),
    ("oci-client", "wasmfn-oci"),
];

/// Each workspace package under `host/` with the names of its normal and
/// build dependencies.
fn host_crates() -> BTreeMap<String, BTreeSet<String>> {
    let out = std::process::Command::new(env!("CARGO"))
        .args(["metadata", "--format-version", "1", "--no-deps", "--offline"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run cargo metadata");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let root = meta["workspace_root"].as_str().unwrap().to_string();
    meta["packages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| {
            let manifest = p["manifest_path"].as_str().unwrap();
            manifest.starts_with(&format!("{root}/host/"))
        })
        .map(|p| {
            let deps = p["dependencies"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|d| d["kind"].is_null() || d["kind"] == "build")
                .map(|d| d["name"].as_str().unwrap().to_string())
                .collect();
            (p["name"].as_str().unwrap().to_string(), deps)
        })
        .collect()
}

#[test]
fn every_host_crate_is_known_and_depends_only_downwards() {
    let crates = host_crates();
    let allowed: BTreeMap<&str, &[&str]> = ALLOWED.iter().copied().collect();
    assert_eq!(
        crates.keys().map(String::as_str).collect::<BTreeSet<_>>(),
        allowed.keys().copied().collect::<BTreeSet<_>>(),
        "a crate under host/ is missing from ALLOWED (or gone): say what it may depend on"
    );
    for (name, deps) in &crates {
        for dep in deps.iter().filter(|d| d.starts_with("wasmfn")) {
            assert!(
                allowed[name.as_str()].contains(&dep.as_str()),
                "`{name}` depends on `{dep}`, which ARCHITECTURE.md does not allow"
            );
        }
    }
}

#[test]
fn the_host_crates_have_no_cycle() {
    let crates = host_crates();
    // Kahn's algorithm: every crate must come out.
    let mut left: BTreeMap<&str, BTreeSet<&str>> = crates
        .iter()
        .map(|(n, deps)| {
            let internal = deps
                .iter()
                .filter(|d| crates.contains_key(*d))
                .map(String::as_str)
                .collect();
            (n.as_str(), internal)
        })
        .collect();
    while let Some(free) = left.iter().find(|(_, d)| d.is_empty()).map(|(n, _)| *n) {
        left.remove(free);
        left.values_mut().for_each(|d| {
            d.remove(free);
        });
    }
    assert!(left.is_empty(), "a dependency cycle among: {:?}", left.keys());
}

#[test]
fn heavy_dependencies_stay_in_their_one_crate() {
    let crates = host_crates();
    for (word, owner) in CONFINED {
        let users: Vec<&str> = crates
            .iter()
            .filter(|(_, deps)| deps.iter().any(|d| d.contains(word)))
            .map(|(n, _)| n.as_str())
            .collect();
        assert_eq!(users, [*owner], "`{word}` must be named by `{owner}` alone");
    }
}
