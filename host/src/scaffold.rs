//! `wasmfn new`: a function folder that builds and serves as it is.

use std::path::{Path, PathBuf};

use crate::cli::NewArgs;
use crate::routing::valid_param_name;

/// The SDK this binary was built beside.
const BUILT_WITH_SDK: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../guest-sdk");

/// Creates `dir/name/` for a function in `args.lang`; refuses to overwrite.
pub fn new_function(args: &NewArgs) -> anyhow::Result<PathBuf> {
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
    match args.lang.as_str() {
        "python" => return new_python(name, &folder),
        "js" => return new_js(name, &folder),
        _ => {}
    }
    let sdk = match &args.sdk {
        Some(p) => p.clone(),
        None => PathBuf::from(BUILT_WITH_SDK),
    };
    let sdk = sdk.canonicalize().map_err(|_| {
        anyhow::anyhow!(
            "cannot find the `wasmfn-sdk` crate at `{}`; pass its path with `--sdk`",
            sdk.display()
        )
    })?;
    std::fs::create_dir_all(folder.join("src"))?;
    // Relative when the two share a directory below the root (the folder
    // and the SDK move together, e.g. inside one checkout), else absolute.
    let sdk = folder
        .canonicalize()
        .ok()
        .and_then(|at| relative_path(&at, &sdk))
        .unwrap_or(sdk);
    let crate_name = name.replace('-', "_");
    write(
        &folder.join("fn.config.json"),
        &format!(
            "{{\n  \"component\": \"{crate_name}.wasm\",\n  \"description\": \"What `{name}` does, in one line.\",\n  \"timeout_ms\": 5000\n}}\n"
        ),
    )?;
    write(
        &folder.join("Cargo.toml"),
        &format!(
            r#"[package]
name = "{crate_name}"
version = "0.1.0"
edition = "2024"
publish = false

[lib]
crate-type = ["cdylib"]

[dependencies]
wasmfn-sdk = {{ path = "{sdk}" }}
serde = {{ version = "1", features = ["derive"] }}
schemars = "1"

[profile.release]
opt-level = "s"
lto = true
codegen-units = 1
strip = true

# A function builds on its own, inside or outside another workspace.
[workspace]
"#,
            sdk = toml_escape(&sdk.display().to_string())
        ),
    )?;
    write(
        &folder.join("src/lib.rs"),
        &format!(
            r#"//! `{name}`: served at `/{name}` (its folder), described in `/_fn/openapi.json`.

use schemars::JsonSchema;
use serde::{{Deserialize, Serialize}};
use wasmfn_sdk::{{Json, Query}};

#[derive(Deserialize, JsonSchema)]
struct Params {{
    /// Who to greet.
    #[schemars(length(min = 1, max = 40))]
    name: Option<String>,
}}

/// The answer.
#[derive(Serialize, JsonSchema)]
struct Greeting {{
    message: String,
}}

fn greet(Query(p): Query<Params>) -> Json<Greeting> {{
    let name = p.name.unwrap_or_else(|| "world".into());
    Json(Greeting {{ message: format!("Hello, {{name}}!") }})
}}

wasmfn_sdk::function! {{
    /// Greets someone.
    get "/" => greet,
}}
"#
        ),
    )?;
    write(
        &folder.join("README.md"),
        &format!(
            "# {name}\n\nA wasmfn function in Rust, served at `/{name}`. `src/lib.rs` declares its operations with \
             `wasmfn_sdk::function!`; their schemas come from the Rust types, and the host checks every request \
             against them. Build with `wasmfn build`, or run `wasmfn dev` to rebuild on every change; limits and \
             routes live in `fn.config.json` (see the wasmfn docs, `docs/manifest.md`).\n"
        ),
    )?;
    Ok(folder)
}

fn manifest(name: &str, component: &str) -> String {
    format!(
        "{{\n  \"component\": \"{component}\",\n  \"description\": \"What `{name}` does, in one line.\",\n  \"timeout_ms\": 5000\n}}\n"
    )
}

fn new_python(name: &str, folder: &Path) -> anyhow::Result<PathBuf> {
    std::fs::create_dir_all(folder)?;
    let component = format!("{}.wasm", name.replace('-', "_"));
    write(&folder.join("fn.config.json"), &manifest(name, &component))?;
    write(
        &folder.join("app.py"),
        &format!(
            r#""""`{name}`: served at `/{name}` (its folder), described in `/_fn/openapi.json`."""

from dataclasses import dataclass
from typing import Annotated, Optional

from wasmfn import App, Field

app = App(title="{name}")


@dataclass
class Greeting:
    """The answer."""

    message: str


@app.get("/", query={{"name": Optional[Annotated[str, Field(min_length=1, max_length=40)]]}})
def greet(req) -> Greeting:
    """Greets someone."""
    name = req.query.get("name") or "world"
    return Greeting(message=f"Hello, {{name}}!")
"#
        ),
    )?;
    write(
        &folder.join("README.md"),
        &format!(
            "# {name}\n\nA wasmfn function in Python, served at `/{name}`. `app.py` declares its operations on \
             `app = wasmfn.App(...)`; their schemas come from the types given (dataclasses, `Annotated[..., \
             Field(...)]`), and the host checks every request against them. `wasmfn build` makes the component with \
             componentize-py (other modules in this folder are importable), `wasmfn dev` rebuilds it on every \
             change; limits and routes live in `fn.config.json` (see the wasmfn docs, `docs/manifest.md` and \
             `docs/languages.md`).\n"
        ),
    )?;
    Ok(folder.to_path_buf())
}

fn new_js(name: &str, folder: &Path) -> anyhow::Result<PathBuf> {
    std::fs::create_dir_all(folder)?;
    let component = format!("{}.wasm", name.replace('-', "_"));
    write(&folder.join("fn.config.json"), &manifest(name, &component))?;
    write(
        &folder.join("index.js"),
        &format!(
            r#"// `{name}`: served at `/{name}` (its folder), described in `/_fn/openapi.json`.
import {{ App }} from "wasmfn";

const app = new App({{ title: "{name}" }});

const Greeting = app.schema("Greeting", {{
  type: "object",
  description: "The answer.",
  properties: {{ message: {{ type: "string" }} }},
  required: ["message"],
}});

app.get(
  "/",
  {{
    summary: "Greets someone.",
    query: {{ name: {{ type: "string", minLength: 1, maxLength: 40 }} }},
    response: Greeting,
  }},
  (req) => ({{ message: `Hello, ${{req.query.name ?? "world"}}!` }}),
);

export default app;
"#
        ),
    )?;
    write(
        &folder.join("README.md"),
        &format!(
            "# {name}\n\nA wasmfn function in JavaScript, served at `/{name}`. `index.js` declares its operations \
             on `new App(...)` (imported from `\"wasmfn\"`) and exports it as the default; the JSON Schemas given \
             there go into the API document, and the host checks every request against them. `wasmfn build` makes \
             the component with componentize-js (relative imports work), `wasmfn dev` rebuilds it on every change; \
             limits and routes live in `fn.config.json` (see the wasmfn docs, `docs/manifest.md` and \
             `docs/languages.md`).\n"
        ),
    )?;
    Ok(folder.to_path_buf())
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
        let args = NewArgs {
            name: "hi".into(),
            lang: "rust".into(),
            dir: root.path().join("project/functions"),
            sdk: Some(sdk),
        };
        let folder = new_function(&args).unwrap();
        let manifest = std::fs::read_to_string(folder.join("Cargo.toml")).unwrap();
        assert!(
            manifest.contains(r#"wasmfn-sdk = { path = "../../../guest-sdk" }"#),
            "{manifest}"
        );
    }
}
