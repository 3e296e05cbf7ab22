//! Building function components from source (`wasmfn build`) and making
//! new function folders from templates (`wasmfn new`). No engine and no
//! server: toolchains, processes and files.
//!
//! ```no_run
//! use wasmfn_build::{BuildOptions, build_all};
//!
//! let report = build_all("functions".as_ref(), &BuildOptions::default())?;
//! println!("{} built, {} up to date, {} failed", report.built, report.up_to_date, report.failed);
//! # Ok::<(), anyhow::Error>(())
//! ```
//!
//! What a folder holds decides how it is built:
//!
//! | file | language | toolchain |
//! |---|---|---|
//! | `Cargo.toml` | Rust | cargo, target `wasm32-wasip2` |
//! | `app.py` | Python | componentize-py [`COMPONENTIZE_PY`] |
//! | `index.js` | JavaScript | componentize-js [`COMPONENTIZE_JS`] on Node.js |
//!
//! The component is written to the path the function's manifest names.
//! Rust builds run one at a time (cargo shares its target directory and
//! uses every core); Python and JavaScript builds run beside them, up to
//! `jobs` at once. A build whose inputs have not changed since its last
//! success is skipped.
//!
//! - `rust`, `guest`: the Rust and the Python/JavaScript toolchains.
//! - `sdk`: the Python and JavaScript helpers, staged for componentize.
//! - `new`: [`new_function`], templates under `host/build/templates/`.

mod guest;
mod new;
mod rust;
mod sdk;

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub use guest::{COMPONENTIZE_JS, COMPONENTIZE_PY, MIN_NODE_MAJOR};
pub use new::{NewFunction, new_function};
pub use rust::{RUST_TARGET, build_rust, ensure_rust_target};

use wasmfn_manifest::Policy;
use wasmfn_manifest::discovery::{FunctionSpec, discover};

/// How a function folder is built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    /// A crate with a `Cargo.toml`, built with cargo for `wasm32-wasip2`.
    Rust,
    /// An `app.py`, built with componentize-py.
    Python,
    /// An `index.js`, built with componentize-js.
    Js,
}

impl std::str::FromStr for Lang {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "rust" => Ok(Lang::Rust),
            "python" => Ok(Lang::Python),
            "js" => Ok(Lang::Js),
            other => Err(format!("unknown language `{other}`: use `rust`, `python` or `js`")),
        }
    }
}

impl Lang {
    /// The language of a function folder, from its build recipe.
    pub fn of(dir: &Path) -> Option<Lang> {
        if dir.join("Cargo.toml").is_file() {
            Some(Lang::Rust)
        } else if dir.join("app.py").is_file() {
            Some(Lang::Python)
        } else if dir.join("index.js").is_file() {
            Some(Lang::Js)
        } else {
            None
        }
    }

    /// The name users type (`--lang`).
    pub fn name(self) -> &'static str {
        match self {
            Lang::Rust => "rust",
            Lang::Python => "python",
            Lang::Js => "js",
        }
    }

    fn toolchain(self) -> &'static str {
        match self {
            Lang::Rust => "cargo, wasm32-wasip2",
            Lang::Python => "componentize-py",
            Lang::Js => "componentize-js",
        }
    }
}

/// How to build.
#[derive(Debug, Clone)]
pub struct BuildOptions {
    /// Install a missing componentize-py / componentize-js under
    /// `toolchains_dir` instead of failing with instructions.
    pub install_toolchains: bool,
    /// Where wasmfn keeps the toolchains it installs, the helper libraries
    /// it stages and what it remembers of past builds.
    pub toolchains_dir: PathBuf,
    /// Python and JavaScript builds at once.
    pub jobs: usize,
    /// Build even what is up to date.
    pub force: bool,
}

impl Default for BuildOptions {
    fn default() -> Self {
        Self {
            install_toolchains: false,
            toolchains_dir: default_toolchains_dir(),
            jobs: std::thread::available_parallelism().map_or(2, |n| n.get()).min(4),
            force: false,
        }
    }
}

/// `$XDG_CACHE_HOME/wasmfn/toolchains`, or `~/.cache/wasmfn/toolchains`.
pub fn default_toolchains_dir() -> PathBuf {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    base.join("wasmfn").join("toolchains")
}

/// What a build did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct BuildReport {
    /// Components written anew.
    pub built: usize,
    /// Functions whose component was already up to date.
    pub up_to_date: usize,
    /// Functions whose build failed, or whose toolchain is missing.
    pub failed: usize,
    /// Function folders without a build recipe (a component only).
    pub skipped: usize,
    /// `(function, message)` of every failed build.
    pub errors: Vec<(String, String)>,
}

/// One function to build.
#[derive(Debug, Clone)]
pub struct Recipe {
    /// The function's name, as in its manifest and the build's messages.
    pub name: String,
    /// Its language, from the build recipe its folder holds.
    pub lang: Lang,
    /// The function's folder, where its sources are.
    pub dir: PathBuf,
    /// Where the component is written: the path its manifest names.
    pub component: PathBuf,
}

impl Recipe {
    /// The recipe of a discovered function, if its folder has one.
    pub fn of(f: &FunctionSpec) -> Option<Recipe> {
        Some(Recipe {
            name: f.name.clone(),
            lang: Lang::of(&f.dir)?,
            dir: f.dir.clone(),
            component: f.component_path.clone(),
        })
    }

    /// The files the build reads from the folder (its sources, not its
    /// output), sorted.
    pub fn source_files(&self) -> Vec<PathBuf> {
        let mut files = Vec::new();
        let exts: &[&str] = match self.lang {
            Lang::Rust => &["rs", "toml", "wit"],
            Lang::Python => &["py", "json", "txt", "toml", "wit"],
            Lang::Js => &["js", "mjs", "json", "wit"],
        };
        collect_sources(&self.dir, exts, &self.component, &mut files);
        files.sort();
        files
    }

    /// A digest of the contents of [`Recipe::source_files`].
    pub fn source_digest(&self) -> String {
        let files = self.source_files();
        let mut h = sha2::Sha256::default();
        use sha2::Digest;
        for f in &files {
            h.update(f.strip_prefix(&self.dir).unwrap_or(f).to_string_lossy().as_bytes());
            h.update([0]);
            h.update(std::fs::read(f).unwrap_or_default());
            h.update([0]);
        }
        hex(&h.finalize())
    }
}

fn collect_sources(dir: &Path, exts: &[&str], skip: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else { return };
    for e in rd.filter_map(Result::ok) {
        let p = e.path();
        let name = e.file_name();
        let name = name.to_string_lossy();
        if wasmfn_manifest::discovery::is_generated_or_hidden(&name) {
            continue;
        }
        if p.is_dir() {
            // A nested function folder is a function of its own.
            if !p.join(wasmfn_manifest::MANIFEST_FILE).is_file() {
                collect_sources(&p, exts, skip, out);
            }
        } else if p != skip && p.extension().is_some_and(|x| exts.iter().any(|e| x == *e)) {
            out.push(p);
        }
    }
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// What building one function did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// A new component was written.
    Built,
    /// The component was already up to date and is unchanged.
    UpToDate,
}

/// Builds one function with its language's toolchain.
pub fn build_one(recipe: &Recipe, opts: &BuildOptions) -> anyhow::Result<Outcome> {
    match recipe.lang {
        Lang::Rust => {
            let changed = build_rust(&recipe.dir.join("Cargo.toml"), &recipe.component, &recipe.name)?;
            Ok(if changed { Outcome::Built } else { Outcome::UpToDate })
        }
        Lang::Python | Lang::Js => guest::build(recipe, opts),
    }
}

/// Builds every function under `dir` that has a build recipe, printing
/// progress and a summary to stderr.
pub fn build_all(dir: &Path, opts: &BuildOptions) -> anyhow::Result<BuildReport> {
    let started = Instant::now();
    let found = discover(dir, &Policy::default())
        .map_err(|e| anyhow::anyhow!("cannot read functions directory `{}`: {e}", dir.display()))?;
    let mut report = BuildReport::default();
    let mut rust = VecDeque::new();
    let mut guests = VecDeque::new();
    for f in &found.functions {
        match Recipe::of(f) {
            Some(r) if r.lang == Lang::Rust => rust.push_back(r),
            Some(r) => guests.push_back(r),
            None => report.skipped += 1,
        }
    }
    for f in &found.failed {
        eprintln!("warning: `{}` not built: {}", f.name, f.error);
    }
    let total = rust.len() + guests.len();
    // Toolchains first, once each, so parallel builds never race to
    // install them; a missing one fails only the functions that need it.
    let mut missing: Vec<(Lang, String)> = Vec::new();
    for lang in [Lang::Python, Lang::Js] {
        if guests.iter().any(|r| r.lang == lang)
            && let Err(e) = guest::ensure_toolchain(lang, opts)
        {
            missing.push((lang, format!("{e:#}")));
        }
    }
    let progress = Arc::new(Progress {
        total,
        next: Mutex::new(0),
        report: Mutex::new(report),
    });
    guests.retain(|r| match missing.iter().find(|(l, _)| *l == r.lang) {
        Some((_, e)) => {
            progress.finish(r, Err(anyhow::anyhow!("{e}")), Duration::ZERO);
            false
        }
        None => true,
    });
    let queue = Arc::new(Mutex::new(guests));
    std::thread::scope(|s| {
        for _ in 0..opts.jobs.max(1) {
            let queue = queue.clone();
            let progress = progress.clone();
            s.spawn(move || {
                loop {
                    let Some(r) = queue.lock().expect("queue").pop_front() else {
                        break;
                    };
                    progress.run(&r, opts);
                }
            });
        }
        let progress = progress.clone();
        s.spawn(move || {
            for r in rust {
                progress.run(&r, opts);
            }
        });
    });
    let report = Arc::try_unwrap(progress)
        .map(|p| p.report.into_inner().expect("report"))
        .unwrap_or_else(|p| p.report.lock().expect("report").clone());
    eprintln!(
        "build finished in {:.1} s: {} built, {} up to date, {} failed, {} without a build recipe",
        started.elapsed().as_secs_f64(),
        report.built,
        report.up_to_date,
        report.failed,
        report.skipped
    );
    for (name, _) in &report.errors {
        eprintln!("  failed: {name}");
    }
    Ok(report)
}

struct Progress {
    total: usize,
    next: Mutex<usize>,
    report: Mutex<BuildReport>,
}

/// Long builds say they are still going this often.
const TICK: Duration = Duration::from_secs(10);

impl Progress {
    fn run(&self, r: &Recipe, opts: &BuildOptions) {
        let n = {
            let mut next = self.next.lock().expect("progress");
            *next += 1;
            *next
        };
        eprintln!(
            "[{n}/{}] building {} ({}, {})",
            self.total,
            r.name,
            r.lang.name(),
            r.lang.toolchain()
        );
        let started = Instant::now();
        let done = std::sync::atomic::AtomicBool::new(false);
        let result = std::thread::scope(|s| {
            s.spawn(|| {
                let mut next = TICK;
                while !done.load(std::sync::atomic::Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(100));
                    if started.elapsed() >= next {
                        eprintln!("      … {} still building ({} s)", r.name, next.as_secs());
                        next += TICK;
                    }
                }
            });
            let result = build_one(r, opts);
            done.store(true, std::sync::atomic::Ordering::Relaxed);
            result
        });
        self.finish(r, result, started.elapsed());
    }

    fn finish(&self, r: &Recipe, result: anyhow::Result<Outcome>, took: Duration) {
        let mut report = self.report.lock().expect("report");
        match result {
            Ok(Outcome::Built) => {
                report.built += 1;
                eprintln!("      built {} in {:.1} s", r.name, took.as_secs_f64());
            }
            Ok(Outcome::UpToDate) => {
                report.up_to_date += 1;
                eprintln!("      {} is up to date", r.name);
            }
            Err(e) => {
                report.failed += 1;
                let message = format!("{e:#}");
                eprintln!("error: function `{}` failed to build: {message}", r.name);
                report.errors.push((r.name.clone(), message));
            }
        }
    }
}

/// Streams a child's output to stderr, each line prefixed with `label`,
/// and keeps the last lines for the error message.
pub(crate) fn tee(stream: impl Read + Send + 'static, label: String) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut tail: VecDeque<String> = VecDeque::new();
        for line in BufReader::new(stream).lines().map_while(Result::ok) {
            eprintln!("  {label} | {line}");
            if tail.len() == 60 {
                tail.pop_front();
            }
            tail.push_back(line);
        }
        tail.into_iter().collect::<Vec<_>>().join("\n")
    })
}

/// Writes a component so that a watcher never sees half of it: to a
/// temporary file beside it, then renamed.
pub(crate) fn write_component(dest: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let tmp = dest.with_extension(format!("wasm.tmp-{}", std::process::id()));
    std::fs::write(&tmp, bytes).map_err(|e| anyhow::anyhow!("cannot write `{}`: {e}", tmp.display()))?;
    std::fs::rename(&tmp, dest).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        anyhow::anyhow!("cannot write `{}`: {e}", dest.display())
    })
}
