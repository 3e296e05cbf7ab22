//! Discovery: walk a functions directory and turn every `fn.config.json`
//! into a [`FunctionSpec`], resolving folder routes and policy overlays.
//!
//! Folder names become route segments: `users/[id]` is `/users/{id}`,
//! `files/[...path]` a catch-all of one or more segments, and
//! `docs/[[...path]]` an optional catch-all (it also answers `/docs`).
//! Folders whose names start with `_` or `.`, and build output folders
//! (`target`, `node_modules`, `__pycache__`), are skipped
//! ([`is_skipped_dir`]).

mod folder;

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use http::Method;

use crate::{FunctionManifest, MANIFEST_FILE, Policy, PolicyOverlay};
use wasmfn_routing::{HostRule, RoutePattern};

pub use folder::{FolderRouteError, folder_routes};

/// How a manifest's `component` names an OCI artifact instead of a file.
pub const OCI_SCHEME: &str = "oci://";

/// Everything needed to load and mount one function.
#[derive(Debug, Clone, PartialEq)]
pub struct FunctionSpec {
    /// The folder path relative to the functions root (`users/[id]`), `.` for the root itself.
    pub name: String,
    /// The function's folder.
    pub dir: PathBuf,
    /// Path of its `fn.config.json`.
    pub manifest_path: PathBuf,
    /// Path of its component, resolved against `dir`; for a component
    /// named by an OCI reference, the reference until the host pulls it.
    pub component_path: PathBuf,
    /// The OCI reference its manifest names as `component`
    /// (`oci://registry/repository:tag`), which the host pulls.
    pub component_ref: Option<String>,
    /// The manifest's one-line description, shown in the catalog.
    pub description: Option<String>,
    /// The routes it serves: `invoke.routes`, or those of its folder path.
    pub routes: Vec<RoutePattern>,
    /// Routes that serve but stay out of the OpenAPI document.
    pub schema_hidden: Vec<RoutePattern>,
    /// Routes with an `auth` of their own, in place of `policy.auth`.
    pub route_auth: Vec<(RoutePattern, crate::AuthSettings)>,
    /// A sidecar OpenAPI fragment named by the manifest.
    pub openapi_path: Option<PathBuf>,
    /// Methods it answers (`invoke.methods`, `GET` by default).
    pub methods: Vec<Method>,
    /// `Host` values it serves; empty means any host.
    pub hosts: Vec<HostRule>,
    /// Whether its routes win over overlapping claims that do not force theirs.
    pub force_url: bool,
    /// The effective policy: host defaults, then overlays from the root
    /// down, then the function's own manifest.
    pub policy: Policy,
    /// Invocations the host makes on a timetable (`schedules`).
    pub schedules: Vec<crate::Schedule>,
}

/// A function folder that cannot be mounted, with the reason.
#[derive(Debug, Clone)]
pub struct FailedSpec {
    /// The folder path relative to the functions root, as in [`FunctionSpec::name`].
    pub name: String,
    /// The function's folder.
    pub dir: PathBuf,
    /// Path of the `fn.config.json` found there.
    pub manifest_path: PathBuf,
    /// Path of the component; `None` when the manifest itself could not be read.
    pub component_path: Option<PathBuf>,
    /// Why it cannot be mounted, naming the file and field where there is one.
    pub error: String,
}

/// The result of walking a functions directory.
#[derive(Debug, Default)]
pub struct Discovery {
    /// Functions ready to load, in folder order.
    pub functions: Vec<FunctionSpec>,
    /// Folders with a manifest that cannot be used: broken files, bad routes, broken overlays above.
    pub failed: Vec<FailedSpec>,
}

/// Folders that hold neither a function nor its sources: hidden ones,
/// build outputs and caches. Builds skip these when they look for sources.
pub fn is_generated_or_hidden(name: &str) -> bool {
    name.starts_with('.') || matches!(name, "target" | "node_modules" | "__pycache__")
}

/// Folders discovery (and the reload watcher) never walks into: those of
/// [`is_generated_or_hidden`], and those whose names start with `_` (code
/// shared between functions, kept beside them).
pub fn is_skipped_dir(name: &str) -> bool {
    name.starts_with('_') || is_generated_or_hidden(name)
}

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
                    } else if manifest.schedules.is_some() {
                        self.out.failed.push(FailedSpec {
                            name: name.clone(),
                            dir: dir.to_path_buf(),
                            manifest_path: manifest_path.clone(),
                            component_path: None,
                            error: SpecError::OverlaySchedules {
                                manifest: manifest_path.clone(),
                            }
                            .to_string(),
                        });
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
                .filter(|(n, _)| !is_skipped_dir(n))
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
        let component = manifest.component.as_deref().unwrap_or_default();
        let component_ref = component.starts_with(OCI_SCHEME).then(|| component.to_string());
        let component_path = match &component_ref {
            Some(r) => PathBuf::from(r),
            None => dir.join(component),
        };
        let fail = |error: SpecError| FailedSpec {
            name: name.to_string(),
            dir: dir.to_path_buf(),
            manifest_path: manifest_path.to_path_buf(),
            component_path: Some(component_path.clone()),
            error: error.to_string(),
        };
        if let Some(e) = broken_overlay {
            self.out.failed.push(fail(SpecError::BrokenOverlay(e.to_string())));
            return;
        }
        match spec_from_manifest(rel, manifest_path, &manifest) {
            Ok(((routes, schema_hidden), methods, hosts)) => {
                let route_auth = route_auth(&manifest);
                let invoke = manifest.invoke.unwrap_or_default();
                self.out.functions.push(FunctionSpec {
                    name: name.to_string(),
                    dir: dir.to_path_buf(),
                    manifest_path: manifest_path.to_path_buf(),
                    component_path: component_path.clone(),
                    component_ref,
                    description: manifest.description.clone(),
                    routes,
                    schema_hidden,
                    route_auth,
                    openapi_path: manifest.openapi.as_ref().map(|p| dir.join(p)),
                    methods,
                    hosts,
                    force_url: invoke.force_url,
                    policy: self.defaults.with(overlay),
                    schedules: manifest.schedules.clone().unwrap_or_default(),
                });
            }
            Err(e) => self.out.failed.push(fail(e)),
        }
    }
}

/// The spec of a function that lives outside any functions directory (one
/// deployed through the admin API): its manifest (its `component` field
/// ignored), its parts at the paths given, the host's defaults under its
/// own limits. Without `invoke.routes` it serves `/{name}`.
/// `manifest_path` names the manifest in messages.
pub fn standalone_spec(
    name: &str,
    manifest_path: &Path,
    manifest: &FunctionManifest,
    component_path: &Path,
    openapi_path: Option<&Path>,
    defaults: &Policy,
) -> Result<FunctionSpec, SpecError> {
    let dir = manifest_path.parent().unwrap_or(Path::new("")).to_path_buf();
    let ((routes, schema_hidden), methods, hosts) = spec_from_manifest(&[name.to_string()], manifest_path, manifest)?;
    let invoke = manifest.invoke.clone().unwrap_or_default();
    Ok(FunctionSpec {
        name: name.to_string(),
        dir,
        manifest_path: manifest_path.to_path_buf(),
        component_path: component_path.to_path_buf(),
        component_ref: None,
        description: manifest.description.clone(),
        routes,
        schema_hidden,
        route_auth: route_auth(manifest),
        openapi_path: openapi_path.map(Path::to_path_buf),
        methods,
        hosts,
        force_url: invoke.force_url,
        policy: defaults.with(&manifest.policy()),
        schedules: manifest.schedules.clone().unwrap_or_default(),
    })
}

/// The routes of `invoke.routes` that set their own `auth`.
fn route_auth(manifest: &FunctionManifest) -> Vec<(RoutePattern, crate::AuthSettings)> {
    let Some(routes) = manifest.invoke.as_ref().and_then(|i| i.routes.as_ref()) else {
        return Vec::new();
    };
    routes
        .iter()
        .filter_map(|r| Some((RoutePattern::parse(&r.path).ok()?, r.auth.clone()?)))
        .collect()
}

type Mount = ((Vec<RoutePattern>, Vec<RoutePattern>), Vec<Method>, Vec<HostRule>);

/// Why a function's manifest, valid as a file, does not make a function:
/// its routes or hosts do not parse, or an overlay above it is broken.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum SpecError {
    /// `invoke.routes` is present but empty.
    #[error(
        "invalid `{}`: field `invoke.routes`: must list at least one route (or be left out to use the folder path)",
        manifest.display()
    )]
    NoRoutes {
        /// The manifest.
        manifest: PathBuf,
    },
    /// An entry of `invoke.routes` is not a valid pattern.
    #[error("invalid `{}`: field `invoke.routes[{index}]`: {source}", manifest.display())]
    Route {
        /// The manifest.
        manifest: PathBuf,
        /// The entry's index.
        index: usize,
        /// Why the pattern is refused.
        source: wasmfn_routing::PatternError,
    },
    /// The folder path does not make a route (and `invoke.routes` is absent).
    #[error("cannot route folder `{folder}`: {source}")]
    Folder {
        /// The folder, relative to the functions directory.
        folder: String,
        /// Why it makes no route.
        source: FolderRouteError,
    },
    /// An entry of `invoke.allow_hosts` is not a valid host rule.
    #[error("invalid `{}`: field `invoke.allow_hosts[{index}]`: {source}", manifest.display())]
    Host {
        /// The manifest.
        manifest: PathBuf,
        /// The entry's index.
        index: usize,
        /// Why the rule is refused.
        source: wasmfn_routing::HostRuleError,
    },
    /// An entry of `schedules` does not fit the function.
    #[error("invalid `{}`: field `schedules`: entry {index}, {message}", manifest.display())]
    Schedule {
        /// The manifest.
        manifest: PathBuf,
        /// The entry's index.
        index: usize,
        /// What does not fit, and the fix.
        message: String,
    },
    /// A manifest without `component` (a policy overlay) has `schedules`.
    #[error(
        "invalid `{}`: field `schedules`: a policy overlay (a manifest without `component`) runs nothing; \
         move the schedules to the manifest of the function they call",
        manifest.display()
    )]
    OverlaySchedules {
        /// The manifest.
        manifest: PathBuf,
    },
    /// A policy overlay in a folder above the function does not parse.
    #[error("a policy overlay above this function is invalid: {0}")]
    BrokenOverlay(String),
}

fn spec_from_manifest(rel: &[String], manifest_path: &Path, manifest: &FunctionManifest) -> Result<Mount, SpecError> {
    let invoke = manifest.invoke.clone().unwrap_or_default();
    let routes = match &invoke.routes {
        Some(list) if list.is_empty() => {
            return Err(SpecError::NoRoutes {
                manifest: manifest_path.to_path_buf(),
            });
        }
        Some(list) => {
            let mut routes: Vec<RoutePattern> = Vec::new();
            let mut hidden = Vec::new();
            for (index, r) in list.iter().enumerate() {
                let p = RoutePattern::parse(&r.path).map_err(|source| SpecError::Route {
                    manifest: manifest_path.to_path_buf(),
                    index,
                    source,
                })?;
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
            folder_routes(rel).map_err(|source| SpecError::Folder {
                folder: rel.join("/"),
                source,
            })?,
            Vec::new(),
        ),
    };
    let methods: Vec<Method> = invoke
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
        .map(|(index, h)| {
            HostRule::parse(h).map_err(|source| SpecError::Host {
                manifest: manifest_path.to_path_buf(),
                index,
                source,
            })
        })
        .collect::<Result<_, _>>()?;
    for (index, schedule) in manifest.schedules.iter().flatten().enumerate() {
        let bad = |message: String| SpecError::Schedule {
            manifest: manifest_path.to_path_buf(),
            index,
            message,
        };
        if !methods.contains(&schedule.method) {
            let listed: Vec<&str> = methods.iter().map(Method::as_str).collect();
            return Err(bad(format!(
                "`method`: the function answers {} only (`invoke.methods`); add `{}` there or schedule one of those",
                listed.join(", "),
                schedule.method
            )));
        }
        if schedule.path.is_none() && !routes.0.first().is_some_and(RoutePattern::is_static) {
            return Err(bad(
                "`path`: the function's first route has parameters, so the request needs a `path` of its own".into(),
            ));
        }
    }
    Ok((routes, methods, hosts))
}

#[cfg(test)]
mod tests;
