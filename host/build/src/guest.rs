//! Python and JavaScript functions: their toolchains (found, or installed
//! on request under the toolchains directory) and their builds.

use std::ffi::OsString;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use sha2::Digest;

use super::sdk::{self, WORLD};
use super::{BuildOptions, Lang, Outcome, Recipe, hex, tee, write_component};

/// The componentize-py release Python functions are built with.
pub const COMPONENTIZE_PY: &str = "0.25.1";
/// The `@bytecodealliance/componentize-js` release JavaScript functions are
/// built with.
pub const COMPONENTIZE_JS: &str = "0.23.0";
/// The oldest Node.js that runs componentize-js.
pub const MIN_NODE_MAJOR: u32 = 18;

/// The JavaScript side of a JavaScript build: calls `componentize()` (the
/// package's API; its command line is not used).
const COMPONENTIZE_MJS: &str = r#"// Written by wasmfn: builds one JavaScript function into a component.
import { componentize } from "@bytecodealliance/componentize-js";
import { writeFile } from "node:fs/promises";

const [sourcePath, witPath, worldName, out] = process.argv.slice(2);
try {
  const { component } = await componentize({ sourcePath, witPath, worldName });
  await writeFile(out, component);
} catch (e) {
  console.error(e?.message ?? String(e));
  process.exit(1);
}
"#;

/// How to run a toolchain: a program and its leading arguments.
struct Tool {
    argv: Vec<OsString>,
    version: String,
}

impl Tool {
    fn command(&self) -> Command {
        let mut c = Command::new(&self.argv[0]);
        c.args(&self.argv[1..]);
        c
    }
}

fn py_dir(opts: &BuildOptions) -> PathBuf {
    opts.toolchains_dir.join(format!("componentize-py-{COMPONENTIZE_PY}"))
}

fn js_dir(opts: &BuildOptions) -> PathBuf {
    opts.toolchains_dir.join(format!("componentize-js-{COMPONENTIZE_JS}"))
}

/// The version a `componentize-py` prints, if it runs.
fn py_version(program: &Path) -> Option<String> {
    let out = Command::new(program)
        .arg("--version")
        .stderr(Stdio::null())
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    Some(text.trim().strip_prefix("componentize-py ")?.to_string())
}

fn find_python_tool(opts: &BuildOptions) -> anyhow::Result<Tool> {
    let managed = py_dir(opts);
    let install_hint = format!(
        "install it with `pip install componentize-py=={COMPONENTIZE_PY}` (on PATH, or point \
         WASMFN_COMPONENTIZE_PY at it), or build with `--install-toolchains` to let wasmfn install it in `{}`",
        managed.display()
    );
    if let Some(p) = std::env::var_os("WASMFN_COMPONENTIZE_PY") {
        let p = PathBuf::from(p);
        return match py_version(&p) {
            Some(v) if v == COMPONENTIZE_PY => Ok(Tool {
                argv: vec![p.into()],
                version: v,
            }),
            Some(v) => anyhow::bail!(
                "WASMFN_COMPONENTIZE_PY (`{}`) is componentize-py {v}; wasmfn's Python helper needs {COMPONENTIZE_PY}: {install_hint}",
                p.display()
            ),
            None => anyhow::bail!(
                "WASMFN_COMPONENTIZE_PY (`{}`) does not run: {install_hint}",
                p.display()
            ),
        };
    }
    let bin = managed.join("bin/componentize-py");
    if managed.join(".complete").is_file() && py_version(&bin).as_deref() == Some(COMPONENTIZE_PY) {
        return Ok(Tool {
            argv: vec![bin.into()],
            version: COMPONENTIZE_PY.into(),
        });
    }
    match py_version(Path::new("componentize-py")) {
        Some(v) if v == COMPONENTIZE_PY => Ok(Tool {
            argv: vec!["componentize-py".into()],
            version: v,
        }),
        Some(v) => anyhow::bail!(
            "the componentize-py on PATH is {v}; wasmfn's Python helper needs {COMPONENTIZE_PY}: {install_hint}"
        ),
        None => anyhow::bail!(
            "componentize-py {COMPONENTIZE_PY} is not installed (Python functions need it): {install_hint}"
        ),
    }
}

fn node_major() -> Option<(u32, String)> {
    let out = Command::new("node").arg("--version").output().ok()?;
    let v = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let major = v.strip_prefix('v')?.split('.').next()?.parse().ok()?;
    Some((major, v))
}

fn installed_js_version(dir: &Path) -> Option<String> {
    let text = std::fs::read_to_string(dir.join("node_modules/@bytecodealliance/componentize-js/package.json")).ok()?;
    let json: serde_json::Value = serde_json::from_str(&text).ok()?;
    json["version"].as_str().map(str::to_string)
}

fn find_js_tool(opts: &BuildOptions) -> anyhow::Result<Tool> {
    match node_major() {
        Some((major, _)) if major >= MIN_NODE_MAJOR => {}
        Some((_, v)) => anyhow::bail!(
            "Node.js {v} is too old for componentize-js (JavaScript functions need Node.js {MIN_NODE_MAJOR} or newer): \
             install a newer one from https://nodejs.org"
        ),
        None => anyhow::bail!(
            "Node.js is not installed (JavaScript functions are built with componentize-js on Node.js \
             {MIN_NODE_MAJOR} or newer): install it from https://nodejs.org or your package manager (`apt install nodejs npm`)"
        ),
    }
    let dir = match std::env::var_os("WASMFN_COMPONENTIZE_JS") {
        Some(d) => PathBuf::from(d),
        None => js_dir(opts),
    };
    match installed_js_version(&dir) {
        Some(v) if v == COMPONENTIZE_JS => {}
        found => {
            let what = match found {
                Some(v) => format!("`{}` holds componentize-js {v}, not {COMPONENTIZE_JS}", dir.display()),
                None => format!("componentize-js {COMPONENTIZE_JS} is not installed (JavaScript functions need it)"),
            };
            anyhow::bail!(
                "{what}: build with `--install-toolchains` to let wasmfn install it, or run \
                 `npm install --prefix {} @bytecodealliance/componentize-js@{COMPONENTIZE_JS}`",
                dir.display()
            );
        }
    }
    let script = dir.join("wasmfn-componentize.mjs");
    if std::fs::read_to_string(&script).ok().as_deref() != Some(COMPONENTIZE_MJS) {
        std::fs::write(&script, COMPONENTIZE_MJS)
            .map_err(|e| anyhow::anyhow!("cannot write `{}`: {e}", script.display()))?;
    }
    Ok(Tool {
        argv: vec!["node".into(), script.into()],
        version: COMPONENTIZE_JS.into(),
    })
}

fn find_tool(lang: Lang, opts: &BuildOptions) -> anyhow::Result<Tool> {
    match lang {
        Lang::Python => find_python_tool(opts),
        Lang::Js => find_js_tool(opts),
        Lang::Rust => unreachable!("Rust functions are built with cargo"),
    }
}

/// Finds the toolchain `lang` needs, installing it when that was asked for.
pub(crate) fn ensure_toolchain(lang: Lang, opts: &BuildOptions) -> anyhow::Result<()> {
    let missing = match find_tool(lang, opts) {
        Ok(_) => return Ok(()),
        Err(e) => e,
    };
    if !opts.install_toolchains {
        return Err(missing);
    }
    // Node.js itself is not installed by wasmfn.
    if lang == Lang::Js && node_major().is_none_or(|(m, _)| m < MIN_NODE_MAJOR) {
        return Err(missing);
    }
    std::fs::create_dir_all(&opts.toolchains_dir)
        .map_err(|e| anyhow::anyhow!("cannot create `{}`: {e}", opts.toolchains_dir.display()))?;
    // One install at a time, across processes.
    let lock_path = opts.toolchains_dir.join(".install.lock");
    let lock = File::create(&lock_path).map_err(|e| anyhow::anyhow!("cannot create `{}`: {e}", lock_path.display()))?;
    lock.lock()?;
    if find_tool(lang, opts).is_ok() {
        return Ok(());
    }
    match lang {
        Lang::Python => install_python(opts)?,
        Lang::Js => install_js(opts)?,
        Lang::Rust => unreachable!("Rust functions are built with cargo"),
    }
    drop(lock);
    find_tool(lang, opts).map(|_| ())
}

fn run_install(label: &str, mut cmd: Command, what: &str) -> anyhow::Result<()> {
    eprintln!("installing {what}: {cmd:?}");
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| anyhow::anyhow!("cannot run {:?} to install {what}: {e}", cmd.get_program()))?;
    let out = tee(child.stdout.take().expect("piped"), label.to_string());
    let err = tee(child.stderr.take().expect("piped"), label.to_string());
    let status = child.wait()?;
    let said = format!("{}\n{}", out.join().unwrap_or_default(), err.join().unwrap_or_default());
    anyhow::ensure!(
        status.success(),
        "installing {what} failed ({status}):\n{}",
        said.trim()
    );
    Ok(())
}

fn install_python(opts: &BuildOptions) -> anyhow::Result<()> {
    let dir = py_dir(opts);
    let _ = std::fs::remove_dir_all(&dir);
    let python = std::env::var_os("WASMFN_PYTHON").unwrap_or_else(|| "python3".into());
    let mut venv = Command::new(&python);
    venv.args(["-m", "venv"]).arg(&dir);
    run_install("python3 -m venv", venv, "a Python environment for componentize-py").map_err(|e| {
        anyhow::anyhow!("{e:#}\n(componentize-py is installed with Python 3 and its `venv` module: install python3 and python3-venv)")
    })?;
    let mut pip = Command::new(dir.join("bin/pip"));
    pip.args(["install", "--disable-pip-version-check", "--no-input"])
        .arg(format!("componentize-py=={COMPONENTIZE_PY}"));
    run_install("pip", pip, &format!("componentize-py {COMPONENTIZE_PY}"))?;
    std::fs::write(dir.join(".complete"), COMPONENTIZE_PY)?;
    Ok(())
}

fn install_js(opts: &BuildOptions) -> anyhow::Result<()> {
    let dir = js_dir(opts);
    std::fs::create_dir_all(&dir)?;
    let mut npm = Command::new("npm");
    npm.args(["install", "--no-audit", "--no-fund", "--loglevel=error", "--prefix"])
        .arg(&dir)
        .arg(format!("@bytecodealliance/componentize-js@{COMPONENTIZE_JS}"));
    run_install("npm", npm, &format!("componentize-js {COMPONENTIZE_JS}"))
        .map_err(|e| anyhow::anyhow!("{e:#}\n(componentize-js is installed with npm, which comes with Node.js)"))
}

/// Where a function's build remembers its inputs, and works.
fn key_of(recipe: &Recipe) -> String {
    let path = recipe
        .component
        .canonicalize()
        .unwrap_or_else(|_| std::env::current_dir().unwrap_or_default().join(&recipe.component));
    hex(&sha2::Sha256::digest(path.to_string_lossy().as_bytes()))[..24].to_string()
}

fn file_digest(path: &Path) -> Option<String> {
    std::fs::read(path).ok().map(|b| hex(&sha2::Sha256::digest(&b)))
}

/// Builds a Python or JavaScript function, unless its inputs (sources,
/// helper library, toolchain) are those of its last successful build and
/// the component is still the one that build wrote.
pub(crate) fn build(recipe: &Recipe, opts: &BuildOptions) -> anyhow::Result<Outcome> {
    // The toolchains run in a work folder of their own: a relative
    // toolchains folder is taken from where the build was started.
    let absolute;
    let opts = if opts.toolchains_dir.is_absolute() {
        opts
    } else {
        absolute = BuildOptions {
            toolchains_dir: std::path::absolute(&opts.toolchains_dir)?,
            ..opts.clone()
        };
        &absolute
    };
    let tool = find_tool(recipe.lang, opts)?;
    let inputs = {
        let mut h = sha2::Sha256::default();
        h.update(recipe.lang.name());
        h.update([0]);
        h.update(&tool.version);
        h.update([0]);
        h.update(sdk::digest());
        h.update([0]);
        h.update(recipe.source_digest());
        hex(&h.finalize())
    };
    let key = key_of(recipe);
    let stamp = opts.toolchains_dir.join("stamps").join(&key);
    if !opts.force
        && let Ok(text) = std::fs::read_to_string(&stamp)
        && let Some((was_inputs, was_output)) = text.trim().split_once('\n')
        && was_inputs == inputs
        && file_digest(&recipe.component).as_deref() == Some(was_output)
    {
        return Ok(Outcome::UpToDate);
    }
    let staged = sdk::stage(&opts.toolchains_dir)?;
    let work = opts.toolchains_dir.join("work").join(&key);
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).map_err(|e| anyhow::anyhow!("cannot create `{}`: {e}", work.display()))?;
    let out = work.join("component.wasm");
    let mut cmd = tool.command();
    match recipe.lang {
        Lang::Python => {
            std::fs::write(
                work.join("wasmfn_entry.py"),
                "# Written by wasmfn build: exports the `app` of app.py.\n\
                 import app as _module\n\
                 from wasmfn._wasi import exports_for as _exports_for\n\
                 if not hasattr(_module, \"app\"):\n    \
                     raise SystemExit(\"app.py must define `app = wasmfn.App(...)` at module level\")\n\
                 IncomingHandler, Metadata, Handler = _exports_for(_module.app)\n",
            )?;
            // The sources are copied, so that the build leaves nothing
            // (no `__pycache__`) in the function's folder.
            let src = work.join("src");
            copy_sources(recipe, &recipe.dir, &src)?;
            cmd.arg("-d")
                .arg(staged.wit())
                .args(["-w", WORLD, "componentize", "wasmfn_entry", "-p"])
                .arg(&work)
                .arg("-p")
                .arg(&src)
                .arg("-p")
                .arg(staged.python())
                .arg("-o")
                .arg(&out)
                .env("PYTHONDONTWRITEBYTECODE", "1")
                .current_dir(&work);
        }
        Lang::Js => {
            let src = work.join("src");
            copy_sources(recipe, &recipe.dir, &src)?;
            std::fs::copy(staged.js_helper(), src.join("__wasmfn.js"))?;
            let entry = src.join("__wasmfn_entry.js");
            std::fs::write(
                &entry,
                "// Written by wasmfn build: serves the default export of index.js, and\n\
                 // gives the helper the store its `config` and `secret` read and the\n\
                 // key-value stores `kv` opens.\n\
                 import app from \"./index.js\";\n\
                 import { get, getAll } from \"wasi:config/store@0.2.0-rc.1\";\n\
                 import { open } from \"wasi:keyvalue/store@0.2.0-draft\";\n\
                 import { increment } from \"wasi:keyvalue/atomics@0.2.0-draft\";\n\
                 import { getMany, setMany, deleteMany } from \"wasi:keyvalue/batch@0.2.0-draft\";\n\
                 import { config, kv, serve } from \"./__wasmfn.js\";\n\
                 config.useStore({ get, getAll });\n\
                 kv.useStores({ open, increment, getMany, setMany, deleteMany });\n\
                 export const handler = serve(app);\n\
                 export const metadata = { describe: () => app.describe() };\n",
            )?;
            cmd.arg(&entry)
                .arg(staged.wit_js())
                .arg(WORLD)
                .arg(&out)
                .current_dir(&work);
        }
        Lang::Rust => unreachable!("Rust functions are built with cargo"),
    }
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| anyhow::anyhow!("cannot run {:?}: {e}", cmd.get_program()))?;
    let said_out = tee(child.stdout.take().expect("piped"), recipe.name.clone());
    let said_err = tee(child.stderr.take().expect("piped"), recipe.name.clone());
    let status = child.wait()?;
    let said = format!(
        "{}\n{}",
        said_out.join().unwrap_or_default(),
        said_err.join().unwrap_or_default()
    );
    let tool_name = match recipe.lang {
        Lang::Python => "componentize-py",
        _ => "componentize-js",
    };
    anyhow::ensure!(
        status.success() && out.is_file(),
        "{tool_name} failed ({status}):\n{}",
        said.trim()
    );
    let bytes = std::fs::read(&out)?;
    if std::fs::read(&recipe.component).ok().as_deref() != Some(bytes.as_slice()) {
        write_component(&recipe.component, &bytes)?;
    }
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(stamp.parent().expect("stamps live in a folder"))?;
    std::fs::write(&stamp, format!("{inputs}\n{}\n", hex(&sha2::Sha256::digest(&bytes))))?;
    Ok(Outcome::Built)
}

/// Copies a function's sources (as [`Recipe::source_files`] lists them),
/// with JavaScript's `"wasmfn"` imports pointed at the staged helper.
fn copy_sources(recipe: &Recipe, root: &Path, to: &Path) -> anyhow::Result<()> {
    for p in recipe.source_files() {
        let rel = p.strip_prefix(root).unwrap_or(&p);
        let dest = to.join(rel);
        std::fs::create_dir_all(dest.parent().unwrap_or(to))?;
        let is_js = p.extension().is_some_and(|x| x == "js" || x == "mjs");
        if recipe.lang == Lang::Js && is_js {
            let depth = rel.components().count() - 1;
            let helper = match depth {
                0 => "./__wasmfn.js".to_string(),
                n => format!("{}__wasmfn.js", "../".repeat(n)),
            };
            let text =
                std::fs::read_to_string(&p).map_err(|e| anyhow::anyhow!("cannot read `{}`: {e}", p.display()))?;
            std::fs::write(&dest, point_imports(&text, &helper))?;
        } else {
            std::fs::copy(&p, &dest).map_err(|e| anyhow::anyhow!("cannot copy `{}`: {e}", p.display()))?;
        }
    }
    Ok(())
}

/// `from "wasmfn"` → `from "<helper>"` (both quote styles, `import` and
/// `export … from`).
pub(crate) fn point_imports(text: &str, helper: &str) -> String {
    let mut out = text.to_string();
    for q in ['"', '\''] {
        for lead in ["from ", "from", "import ", "import"] {
            out = out.replace(&format!("{lead}{q}wasmfn{q}"), &format!("{lead}{q}{helper}{q}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::point_imports;

    #[test]
    fn wasmfn_imports_point_at_the_staged_helper() {
        let src = "import { App } from \"wasmfn\";\nimport x from 'wasmfn';\nexport { json } from \"wasmfn\";\nimport \"wasmfn\";\nconst s = \"wasmfn\";\nimport y from \"wasmfn-extra\";\n";
        let got = point_imports(src, "./__wasmfn.js");
        assert_eq!(
            got,
            "import { App } from \"./__wasmfn.js\";\nimport x from './__wasmfn.js';\nexport { json } from \"./__wasmfn.js\";\nimport \"./__wasmfn.js\";\nconst s = \"wasmfn\";\nimport y from \"wasmfn-extra\";\n"
        );
    }
}
