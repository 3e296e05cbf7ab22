//! The helper libraries and WIT files built into this binary, so that
//! `wasmfn build` works on a function folder anywhere: they are written to
//! a folder named after their digest under the toolchains directory.

use std::path::{Path, PathBuf};

use sha2::Digest;

/// `(path under the staged folder, contents)`.
const FILES: &[(&str, &str)] = &[
    (
        "python/wasmfn/__init__.py",
        include_str!("../../../guest-sdk/python/wasmfn/__init__.py"),
    ),
    (
        "python/wasmfn/_app.py",
        include_str!("../../../guest-sdk/python/wasmfn/_app.py"),
    ),
    (
        "python/wasmfn/_http.py",
        include_str!("../../../guest-sdk/python/wasmfn/_http.py"),
    ),
    (
        "python/wasmfn/_schema.py",
        include_str!("../../../guest-sdk/python/wasmfn/_schema.py"),
    ),
    (
        "python/wasmfn/_wasi.py",
        include_str!("../../../guest-sdk/python/wasmfn/_wasi.py"),
    ),
    (
        "python/wasmfn/config.py",
        include_str!("../../../guest-sdk/python/wasmfn/config.py"),
    ),
    (
        "python/wasmfn/kv.py",
        include_str!("../../../guest-sdk/python/wasmfn/kv.py"),
    ),
    (
        "python/wasmfn/secret.py",
        include_str!("../../../guest-sdk/python/wasmfn/secret.py"),
    ),
    ("js/wasmfn.js", include_str!("../../../guest-sdk/js/wasmfn.js")),
    ("wit/wasmfn.wit", include_str!("../../../wit/wasmfn.wit")),
    ("wit/deps/cli.wit", include_str!("../../../wit/deps/cli.wit")),
    ("wit/deps/clocks.wit", include_str!("../../../wit/deps/clocks.wit")),
    ("wit/deps/config.wit", include_str!("../../../wit/deps/config.wit")),
    (
        "wit/deps/filesystem.wit",
        include_str!("../../../wit/deps/filesystem.wit"),
    ),
    ("wit/deps/http.wit", include_str!("../../../wit/deps/http.wit")),
    ("wit/deps/keyvalue.wit", include_str!("../../../wit/deps/keyvalue.wit")),
    ("wit/deps/io.wit", include_str!("../../../wit/deps/io.wit")),
    ("wit/deps/random.wit", include_str!("../../../wit/deps/random.wit")),
    ("wit/deps/sockets.wit", include_str!("../../../wit/deps/sockets.wit")),
];

/// The WASI version of the vendored WIT.
const WASI_VERSION: &str = "0.2.12";
/// The WASI version the JavaScript engine (StarlingMonkey, inside
/// componentize-js) is built against; its built-in `fetch` event only
/// serves that version of `wasi:http/incoming-handler`. The host links any
/// `0.2.x`, so the JavaScript world is the same WIT at this version.
pub(crate) const JS_WASI_VERSION: &str = "0.2.10";

/// The world every Python and JavaScript function built here targets: a
/// function that also takes requests whole (`wasmfn:function/handler`),
/// one call per request instead of a dozen calls out of the component.
pub(crate) const WORLD: &str = "wasmfn:function/function-with-handler@0.1.0";

/// Where the staged files are.
pub(crate) struct Staged {
    pub root: PathBuf,
}

impl Staged {
    pub(crate) fn python(&self) -> PathBuf {
        self.root.join("python")
    }
    pub(crate) fn js_helper(&self) -> PathBuf {
        self.root.join("js/wasmfn.js")
    }
    pub(crate) fn wit(&self) -> PathBuf {
        self.root.join("wit")
    }
    pub(crate) fn wit_js(&self) -> PathBuf {
        self.root.join("wit-js")
    }
}

/// A digest of the helper libraries and WIT (part of every build's inputs).
pub(crate) fn digest() -> String {
    let mut h = sha2::Sha256::default();
    for (path, text) in FILES {
        h.update(path.as_bytes());
        h.update([0]);
        h.update(text.as_bytes());
        h.update([0]);
    }
    super::hex(&h.finalize())
}

/// Writes the files under `toolchains/sdk-<digest>/` unless they are there.
pub(crate) fn stage(toolchains: &Path) -> anyhow::Result<Staged> {
    let digest = digest();
    let root = toolchains.join(format!("sdk-{}", &digest[..16]));
    let complete = root.join(".complete");
    let whole = |root: &Path| {
        FILES.iter().all(|(rel, _)| {
            root.join(rel).is_file()
                && rel
                    .strip_prefix("wit/")
                    .is_none_or(|w| root.join("wit-js").join(w).is_file())
        })
    };
    if complete.is_file() && whole(&root) {
        return Ok(Staged { root });
    }
    // Missing or damaged (something deleted part of it): staged again.
    if root.exists() {
        let _ = std::fs::remove_dir_all(&root);
    }
    // Staged in a private folder, then renamed, so that concurrent builds
    // never see half of it.
    let tmp = toolchains.join(format!(".sdk-{}-{}", std::process::id(), fastrand::u64(..)));
    let write = |rel: &str, text: &str| -> anyhow::Result<()> {
        let path = tmp.join(rel);
        std::fs::create_dir_all(path.parent().expect("staged files are in folders"))?;
        std::fs::write(&path, text).map_err(|e| anyhow::anyhow!("cannot write `{}`: {e}", path.display()))
    };
    for (rel, text) in FILES {
        write(rel, text)?;
        if let Some(wit) = rel.strip_prefix("wit/") {
            let js = text
                .replace(&format!("@{WASI_VERSION}"), &format!("@{JS_WASI_VERSION}"))
                .replace(
                    &format!("version = {WASI_VERSION}"),
                    &format!("version = {JS_WASI_VERSION}"),
                );
            write(&format!("wit-js/{wit}"), &js)?;
        }
    }
    write(".complete", &digest)?;
    match std::fs::rename(&tmp, &root) {
        Ok(()) => {}
        // Someone else staged the same files first.
        Err(_) if complete.is_file() && whole(&root) => {
            let _ = std::fs::remove_dir_all(&tmp);
        }
        Err(e) => {
            let _ = std::fs::remove_dir_all(&tmp);
            anyhow::bail!("cannot stage the helper libraries in `{}`: {e}", root.display());
        }
    }
    Ok(Staged { root })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A WIT file or a helper module the toolchains are not given breaks
    /// every Python or JavaScript build that needs it.
    #[test]
    fn every_wit_file_and_helper_module_of_the_repository_is_shipped() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        for (dir, staged_as, ext) in [
            ("wit", "wit", "wit"),
            ("wit/deps", "wit/deps", "wit"),
            ("guest-sdk/python/wasmfn", "python/wasmfn", "py"),
        ] {
            for entry in std::fs::read_dir(root.join(dir)).unwrap() {
                let path = entry.unwrap().path();
                if path.extension().is_some_and(|e| e == ext) {
                    let rel = format!("{staged_as}/{}", path.file_name().unwrap().to_string_lossy());
                    assert!(FILES.iter().any(|(p, _)| *p == rel), "`{rel}` is missing from `FILES`");
                }
            }
        }
    }

    #[test]
    fn staged_files_are_checked_and_restaged_when_damaged() {
        let dir = tempfile::tempdir().unwrap();
        let staged = stage(dir.path()).unwrap();
        let wit = staged.wit().join("wasmfn.wit");
        assert!(wit.is_file());
        let js_http = std::fs::read_to_string(staged.wit_js().join("deps/http.wit")).unwrap();
        assert!(
            js_http.starts_with(&format!("package wasi:http@{JS_WASI_VERSION};")),
            "{js_http:.40}"
        );
        // The world imports `wasi:config/store`: both toolchains resolve it.
        for wit in [staged.wit(), staged.wit_js()] {
            let config = std::fs::read_to_string(wit.join("deps/config.wit")).unwrap();
            assert!(config.starts_with("package wasi:config@0.2.0-rc.1;"), "{config:.40}");
        }
        // Something (a cache cleanup, a person) deletes part of it.
        std::fs::remove_dir_all(staged.python()).unwrap();
        std::fs::remove_file(&wit).unwrap();
        let again = stage(dir.path()).unwrap();
        assert_eq!(again.root, staged.root);
        assert!(again.python().join("wasmfn/_wasi.py").is_file());
        assert!(wit.is_file());
    }
}
