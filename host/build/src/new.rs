//! `wasmfn new`: a function folder that builds and serves as it is.

use std::path::{Path, PathBuf};

use wasmfn_routing::valid_param_name;

use crate::Lang;

/// The SDK this binary was built beside.
const BUILT_WITH_SDK: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../guest-sdk");

/// What `wasmfn new` is asked to make.
#[derive(Debug, Clone)]
pub struct NewFunction {
    /// The function's name: its folder, and its route (`/NAME`).
    pub name: String,
    /// The language of the function.
    pub lang: Lang,
    /// The functions directory to create it in.
    pub dir: PathBuf,
    /// Path of the `wasmfn-sdk` crate (default: the one this build is beside).
    pub sdk: Option<PathBuf>,
}

/// The files of each template (`host/build/templates/`), as (path in the
/// new folder, text with `{{name}}`, `{{crate_name}}` and `{{sdk}}` to fill).
fn template(lang: Lang) -> &'static [(&'static str, &'static str)] {
    const MANIFEST: &str = include_str!("../templates/fn.config.json");
    match lang {
        Lang::Rust => &[
            ("fn.config.json", MANIFEST),
            ("Cargo.toml", include_str!("../templates/rust/Cargo.toml.tmpl")),
            ("src/lib.rs", include_str!("../templates/rust/lib.rs.tmpl")),
            ("README.md", include_str!("../templates/rust/README.md")),
        ],
        Lang::Python => &[
            ("fn.config.json", MANIFEST),
            ("app.py", include_str!("../templates/python/app.py")),
            ("README.md", include_str!("../templates/python/README.md")),
        ],
        Lang::Js => &[
            ("fn.config.json", MANIFEST),
            ("index.js", include_str!("../templates/js/index.js")),
            ("README.md", include_str!("../templates/js/README.md")),
        ],
    }
}

/// Creates `dir/name/` from the template of `args.lang`; refuses to
/// overwrite anything.
pub fn new_function(args: &NewFunction) -> anyhow::Result<PathBuf> {
    let name = &args.name;
    anyhow::ensure!(
        valid_param_name(name) && name.bytes().next().is_some_and(|b| b.is_ascii_lowercase()),
        "invalid function name `{name}`: use lowercase letters, digits, `-` and `_`, starting with a letter"
    );
    let folder = args.dir.join(name);
    anyhow::ensure!(
        !folder.exists(),
        "`{}` already exists; nothing was written",
        folder.display()
    );
    std::fs::create_dir_all(&folder).map_err(|e| anyhow::anyhow!("cannot create `{}`: {e}", folder.display()))?;
    let sdk = match args.lang {
        Lang::Rust => sdk_path(args, &folder)?,
        Lang::Python | Lang::Js => String::new(),
    };
    let crate_name = name.replace('-', "_");
    for (path, text) in template(args.lang) {
        let text = text
            .replace("{{name}}", name)
            .replace("{{crate_name}}", &crate_name)
            .replace("{{sdk}}", &sdk);
        let path = folder.join(path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| anyhow::anyhow!("cannot create `{}`: {e}", parent.display()))?;
        }
        write(&path, &text)?;
    }
    Ok(folder)
}

/// The SDK's path as the new crate's `Cargo.toml` names it, escaped for
/// TOML: relative when the two share a directory below the root (the folder
/// and the SDK move together, e.g. inside one checkout), else absolute.
fn sdk_path(args: &NewFunction, folder: &Path) -> anyhow::Result<String> {
    let sdk = args.sdk.clone().unwrap_or_else(|| PathBuf::from(BUILT_WITH_SDK));
    let sdk = sdk.canonicalize().map_err(|_| {
        anyhow::anyhow!(
            "cannot find the `wasmfn-sdk` crate at `{}`; pass its path with `--sdk`",
            sdk.display()
        )
    })?;
    let sdk = folder
        .canonicalize()
        .ok()
        .and_then(|at| relative_path(&at, &sdk))
        .unwrap_or(sdk);
    Ok(toml_escape(&sdk.display().to_string()))
}

fn write(path: &Path, text: &str) -> anyhow::Result<()> {
    std::fs::write(path, text).map_err(|e| anyhow::anyhow!("cannot write `{}`: {e}", path.display()))
}

/// `to` as seen from the directory `from` (both absolute, canonical), when
/// they share an ancestor other than the root.
fn relative_path(from: &Path, to: &Path) -> Option<PathBuf> {
    use std::path::Component;
    let from: Vec<Component> = from.components().collect();
    let to: Vec<Component> = to.components().collect();
    let common = from.iter().zip(&to).take_while(|(a, b)| a == b).count();
    let shared_below_root = to[..common].iter().any(|c| matches!(c, Component::Normal(_)));
    if !shared_below_root {
        return None;
    }
    let mut out = PathBuf::new();
    for _ in common..from.len() {
        out.push("..");
    }
    out.extend(&to[common..]);
    Some(if out.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        out
    })
}

/// The inside of a TOML basic string.
fn toml_escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_path_within_a_shared_directory() {
        let rel = |a: &str, b: &str| relative_path(Path::new(a), Path::new(b));
        assert_eq!(
            rel("/w/repo/functions/hi", "/w/repo/guest-sdk"),
            Some(PathBuf::from("../../guest-sdk"))
        );
        assert_eq!(rel("/w/repo", "/w/repo/guest-sdk"), Some(PathBuf::from("guest-sdk")));
        assert_eq!(rel("/w/repo/sdk", "/w/repo/sdk"), Some(PathBuf::from(".")));
        // Sharing only the root: the absolute path is clearer.
        assert_eq!(rel("/tmp/x/hi", "/work/guest-sdk"), None);
    }

    #[test]
    fn toml_strings_are_escaped() {
        assert_eq!(toml_escape(r#"a"b\c"#), r#"a\"b\\c"#);
    }

    #[test]
    fn a_new_rust_function_names_the_sdk_by_a_relative_path() {
        let root = tempfile::tempdir().unwrap();
        let sdk = root.path().join("guest-sdk");
        std::fs::create_dir_all(&sdk).unwrap();
        let args = NewFunction {
            name: "hi".into(),
            lang: Lang::Rust,
            dir: root.path().join("project/functions"),
            sdk: Some(sdk),
        };
        let folder = new_function(&args).unwrap();
        let manifest = std::fs::read_to_string(folder.join("Cargo.toml")).unwrap();
        assert!(
            manifest.contains(r#"wasmfn-sdk = { path = "../../../guest-sdk" }"#),
            "{manifest}"
        );
        assert!(manifest.contains(r#"name = "hi""#), "{manifest}");
        let lib = std::fs::read_to_string(folder.join("src/lib.rs")).unwrap();
        assert!(lib.starts_with("//! `hi`: served at `/hi`"), "{lib}");
        assert!(!lib.contains("{{"), "every placeholder is filled: {lib}");
    }

    #[test]
    fn every_template_shows_where_config_and_secrets_go() {
        let root = tempfile::tempdir().unwrap();
        let sdk = root.path().join("guest-sdk");
        std::fs::create_dir_all(&sdk).unwrap();
        for (lang, entry, reads) in [
            (Lang::Rust, "src/lib.rs", r#"config::get("greeting")"#),
            (Lang::Python, "app.py", r#"config.get("greeting", "Hello")"#),
            (Lang::Js, "index.js", r#"config.get("greeting", "Hello")"#),
        ] {
            let args = NewFunction {
                name: format!("fn-{}", lang.name()),
                lang,
                dir: root.path().join("functions"),
                sdk: Some(sdk.clone()),
            };
            let folder = new_function(&args).unwrap();
            let read = |f: &str| std::fs::read_to_string(folder.join(f)).unwrap();
            let manifest: serde_json::Value = serde_json::from_str(&read("fn.config.json")).unwrap();
            assert_eq!(manifest["config"], serde_json::json!({"greeting": "Hello"}), "{lang:?}");
            assert!(read(entry).contains(reads), "{lang:?}: {}", read(entry));
            let readme = read("README.md");
            for needle in ["`config`", "`secrets`", "WASMFN_SECRET_API_KEY", "docs/capabilities.md"] {
                assert!(readme.contains(needle), "{lang:?} README lacks {needle}: {readme}");
            }
        }
    }

    #[test]
    fn every_template_fills_every_placeholder() {
        let root = tempfile::tempdir().unwrap();
        for (lang, entry) in [(Lang::Python, "app.py"), (Lang::Js, "index.js")] {
            let args = NewFunction {
                name: "my-fn".into(),
                lang,
                dir: root.path().to_path_buf(),
                sdk: None,
            };
            let folder = new_function(&args).unwrap();
            for file in [entry, "fn.config.json", "README.md"] {
                let text = std::fs::read_to_string(folder.join(file)).unwrap();
                assert!(!text.contains("{{"), "{file}: {text}");
                assert!(text.contains("my-fn") || text.contains("my_fn"), "{file}: {text}");
            }
            std::fs::remove_dir_all(&folder).unwrap();
            assert!(new_function(&args).is_ok(), "the folder can be made again");
            assert!(new_function(&args).is_err(), "an existing folder is refused");
            std::fs::remove_dir_all(&folder).unwrap();
        }
    }
}
