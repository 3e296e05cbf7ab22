//! Discovery: walk a functions directory and turn every `fn.config.json`
//! into a [`FunctionSpec`], resolving folder routes and policy overlays.
//!
//! Folder names become route segments: `users/[id]` is `/users/{id}`,
//! `files/[...path]` a catch-all of one or more segments, and
//! `docs/[[...path]]` an optional catch-all (it also answers `/docs`).
//! Folders whose names start with `_` or `.`, and build output folders
//! (`target`, `node_modules`), are skipped.

mod folder;

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use http::Method;

use crate::manifest::{FunctionManifest, MANIFEST_FILE, Policy, PolicyOverlay};
use crate::routing::{HostRule, RoutePattern};

pub use folder::{FolderRouteError, folder_routes};

/// Everything needed to load and mount one function.
#[derive(Debug, Clone, PartialEq)]
pub struct FunctionSpec {
    /// The folder path relative to the functions root (`users/[id]`), `.` for the root itself.
    pub name: String,
    pub dir: PathBuf,
    pub manifest_path: PathBuf,
    pub component_path: PathBuf,
    pub description: Option<String>,
    pub routes: Vec<RoutePattern>,
    /// Routes that serve but stay out of the OpenAPI document.
    pub schema_hidden: Vec<RoutePattern>,
    /// A sidecar OpenAPI fragment named by the manifest.
    pub openapi_path: Option<PathBuf>,
    pub methods: Vec<Method>,
    pub hosts: Vec<HostRule>,
    pub force_url: bool,
    /// The effective policy: host defaults, then overlays from the root
    /// down, then the function's own manifest.
    pub policy: Policy,
}

/// A function folder that cannot be mounted, with the reason.
#[derive(Debug, Clone)]
pub struct FailedSpec {
    pub name: String,
    pub dir: PathBuf,
    pub manifest_path: PathBuf,
    pub component_path: Option<PathBuf>,
    pub error: String,
}

/// The result of walking a functions directory.
#[derive(Debug, Default)]
pub struct Discovery {
    pub functions: Vec<FunctionSpec>,
    pub failed: Vec<FailedSpec>,
}

/// Folder names never walked into.
const SKIPPED_DIRS: [&str; 2] = ["target", "node_modules"];

/// Walks `root` and collects every function below it.
///
/// Only an unreadable root is an error; every problem below it is recorded
/// in [`Discovery::failed`] and the walk goes on.
pub fn discover(root: &Path, defaults: &Policy) -> std::io::Result<Discovery> {
    let meta = std::fs::metadata(root)?;
    if !meta.is_dir() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::NotADirectory,
            format!("`{}` is not a directory", root.display()),
        ));
    }
    let mut walk = Walk {
        out: Discovery::default(),
        seen: HashSet::new(),
        defaults: defaults.clone(),
    };
    walk.dir(root, &[], &PolicyOverlay::default(), None);
    Ok(walk.out)
}

struct Walk {
    out: Discovery,
    seen: HashSet<PathBuf>,
    defaults: Policy,
}

impl Walk {
    fn dir(&mut self, dir: &Path, rel: &[String], inherited: &PolicyOverlay, broken_overlay: Option<&str>) {
        // Symlinks are followed, but a folder is never walked twice.
        if let Ok(canon) = dir.canonicalize()
            && !self.seen.insert(canon)
        {
            return;
        }
        let name = if rel.is_empty() { ".".to_string() } else { rel.join("/") };
        let manifest_path = dir.join(MANIFEST_FILE);
        let mut overlay = inherited.clone();
        let mut broken = broken_overlay.map(str::to_string);
        if manifest_path.is_file() {
            match FunctionManifest::load(&manifest_path) {
                Ok(manifest) => {
                    overlay = inherited.overlaid_by(&manifest.policy());
                    if manifest.component.is_some() {
                        self.function(dir, rel, &name, &manifest_path, manifest, &overlay, broken.as_deref());
                    }
                }
                Err(e) => {
                    // A broken manifest fails this folder, and every function
                    // below it: their effective policy is unknown.
                    let message = e.to_string();
                    self.out.failed.push(FailedSpec {
                        name: name.clone(),
                        dir: dir.to_path_buf(),
                        manifest_path: manifest_path.clone(),
                        component_path: None,
                        error: message.clone(),
                    });
                    broken = Some(message);
                }
            }
        }
        let mut children: Vec<(String, PathBuf)> = match std::fs::read_dir(dir) {
            Ok(rd) => rd
                .filter_map(Result::ok)
                .filter(|e| e.path().is_dir())
                .filter_map(|e| Some((e.file_name().into_string().ok()?, e.path())))
                .filter(|(n, _)| !n.starts_with('_') && !n.starts_with('.') && !SKIPPED_DIRS.contains(&n.as_str()))
                .collect(),
            Err(e) => {
                tracing::warn!(dir = %dir.display(), error = %e, "cannot read folder; skipped");
                Vec::new()
            }
        };
        children.sort();
        for (child, path) in children {
            let mut rel = rel.to_vec();
            rel.push(child);
            self.dir(&path, &rel, &overlay, broken.as_deref());
        }
    }

    #[expect(
        clippy::too_many_arguments,
        reason = "one call site; a struct would only rename them"
    )]
    fn function(
        &mut self,
        dir: &Path,
        rel: &[String],
        name: &str,
        manifest_path: &Path,
        manifest: FunctionManifest,
        overlay: &PolicyOverlay,
        broken_overlay: Option<&str>,
    ) {
        let component_path = dir.join(manifest.component.as_deref().unwrap_or_default());
        let fail = |error: String| FailedSpec {
            name: name.to_string(),
            dir: dir.to_path_buf(),
            manifest_path: manifest_path.to_path_buf(),
            component_path: Some(component_path.clone()),
            error,
        };
        if let Some(e) = broken_overlay {
            self.out
                .failed
                .push(fail(format!("a policy overlay above this function is invalid: {e}")));
            return;
        }
        match spec_from_manifest(rel, manifest_path, &manifest) {
            Ok(((routes, schema_hidden), methods, hosts)) => {
                let invoke = manifest.invoke.unwrap_or_default();
                self.out.functions.push(FunctionSpec {
                    name: name.to_string(),
                    dir: dir.to_path_buf(),
                    manifest_path: manifest_path.to_path_buf(),
                    component_path: component_path.clone(),
                    description: manifest.description.clone(),
                    routes,
                    schema_hidden,
                    openapi_path: manifest.openapi.as_ref().map(|p| dir.join(p)),
                    methods,
                    hosts,
                    force_url: invoke.force_url,
                    policy: self.defaults.with(overlay),
                });
            }
            Err(e) => self.out.failed.push(fail(e)),
        }
    }
}

type Mount = ((Vec<RoutePattern>, Vec<RoutePattern>), Vec<Method>, Vec<HostRule>);

fn spec_from_manifest(rel: &[String], manifest_path: &Path, manifest: &FunctionManifest) -> Result<Mount, String> {
    let field =
        |field: &str, message: String| format!("invalid `{}`: field `{field}`: {message}", manifest_path.display());
    let invoke = manifest.invoke.clone().unwrap_or_default();
    let routes = match &invoke.routes {
        Some(list) if list.is_empty() => {
            return Err(field(
                "invoke.routes",
                "must list at least one route (or be left out to use the folder path)".into(),
            ));
        }
        Some(list) => {
            let mut routes: Vec<RoutePattern> = Vec::new();
            let mut hidden = Vec::new();
            for (i, r) in list.iter().enumerate() {
                let p =
                    RoutePattern::parse(&r.path).map_err(|e| field(&format!("invoke.routes[{i}]"), e.to_string()))?;
                if !routes.contains(&p) {
                    if !r.include_in_schema {
                        hidden.push(p.clone());
                    }
                    routes.push(p);
                }
            }
            (routes, hidden)
        }
        None => (
            folder_routes(rel).map_err(|e| format!("cannot route folder `{}`: {e}", rel.join("/")))?,
            Vec::new(),
        ),
    };
    let methods = invoke
        .methods
        .as_deref()
        .unwrap_or(&["GET".to_string()])
        .iter()
        .map(|m| {
            m.parse::<Method>()
                .expect("methods are checked when the manifest is parsed")
        })
        .collect();
    let hosts = invoke
        .allow_hosts
        .iter()
        .enumerate()
        .map(|(i, h)| HostRule::parse(h).map_err(|e| field(&format!("invoke.allow_hosts[{i}]"), e.to_string())))
        .collect::<Result<_, _>>()?;
    Ok((routes, methods, hosts))
}

#[cfg(test)]
mod tests;
