//! Rust functions: a folder with a `Cargo.toml` is built with cargo for
//! `wasm32-wasip2`, and the component is copied to the path its manifest
//! names.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The target every Rust function is built for.
pub const RUST_TARGET: &str = "wasm32-wasip2";

/// Makes sure the Rust standard library for [`RUST_TARGET`] is installed,
/// adding it with rustup when it is missing.
pub fn ensure_rust_target(dir: &Path) -> anyhow::Result<()> {
    let libdir = Command::new("rustc")
        .args(["--print", "target-libdir", "--target", RUST_TARGET])
        .current_dir(dir)
        .output()
        .map_err(|e| anyhow::anyhow!("cannot run `rustc`: {e}; install Rust with rustup (https://rustup.rs)"))?;
    let path = String::from_utf8_lossy(&libdir.stdout).trim().to_string();
    if libdir.status.success() && Path::new(&path).is_dir() {
        return Ok(());
    }
    eprintln!("installing the Rust target {RUST_TARGET} (rustup target add {RUST_TARGET})");
    let status = Command::new("rustup")
        .args(["target", "add", RUST_TARGET])
        .current_dir(dir)
        .status()
        .map_err(|e| anyhow::anyhow!("the Rust target `{RUST_TARGET}` is missing and `rustup` cannot run ({e}); install it with `rustup target add {RUST_TARGET}`"))?;
    anyhow::ensure!(
        status.success(),
        "`rustup target add {RUST_TARGET}` failed; run it by hand to see why"
    );
    Ok(())
}

/// Builds one cargo package and copies its component to `dest`; `false`
/// when the component did not change.
pub fn build_rust(cargo_toml: &Path, dest: &Path, label: &str) -> anyhow::Result<bool> {
    let cargo_toml = &cargo_toml
        .canonicalize()
        .map_err(|e| anyhow::anyhow!("cannot read `{}`: {e}", cargo_toml.display()))?;
    let dir = cargo_toml.parent().unwrap_or(Path::new("."));
    ensure_rust_target(dir)?;
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut child = Command::new(&cargo)
        .current_dir(dir)
        .args(["build", "--release", "--target", RUST_TARGET, "--message-format", "json-render-diagnostics"])
        .arg("--manifest-path")
        .arg(cargo_toml)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            anyhow::anyhow!(
                "cannot run `{}`: {e}; install Rust with rustup (https://rustup.rs), then `rustup target add {RUST_TARGET}`",
                Path::new(&cargo).display()
            )
        })?;
    // The compiler's own words go to the terminal as they come, and the
    // tail of them into the error.
    let stderr = child.stderr.take().expect("stderr is piped");
    let tee = super::tee(stderr, label.to_string());
    let want = cargo_toml.clone();
    let mut artifact: Option<PathBuf> = None;
    let stdout = child.stdout.take().expect("stdout is piped");
    for line in BufReader::new(stdout).lines() {
        let line = line?;
        let Ok(msg) = serde_json::from_str::<serde_json::Value>(&line) else {
            continue;
        };
        if msg["reason"] != "compiler-artifact" {
            continue;
        }
        let same = msg["manifest_path"]
            .as_str()
            .and_then(|p| Path::new(p).canonicalize().ok())
            .is_some_and(|p| p == want);
        if !same {
            continue;
        }
        for f in msg["filenames"].as_array().into_iter().flatten() {
            if let Some(f) = f.as_str().filter(|f| f.ends_with(".wasm")) {
                artifact = Some(PathBuf::from(f));
            }
        }
    }
    let status = child.wait()?;
    let said = tee.join().unwrap_or_default();
    anyhow::ensure!(status.success(), "cargo exited with {status}:\n{said}");
    let artifact = artifact.ok_or_else(|| {
        anyhow::anyhow!(
            "cargo built no `.wasm` for `{}`: is it a `cdylib` (or a `bin`)?",
            cargo_toml.display()
        )
    })?;
    let new = std::fs::read(&artifact)?;
    if std::fs::read(dest).ok().as_deref() == Some(new.as_slice()) {
        return Ok(false);
    }
    super::write_component(dest, &new)?;
    Ok(true)
}
