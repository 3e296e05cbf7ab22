//! Components of the functions directory named by OCI reference
//! (`"component": "oci://registry/repository:tag"` in `fn.config.json`):
//! pulled once, checked against their digests, kept by content digest, and
//! pinned: a reference resolves to the artifact it named when it was first
//! loaded, across reloads and restarts (the pins live in the state
//! directory), until the manifest names another reference.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::state::sha256_hex;

/// Where a reference resolved to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pin {
    /// The digest of the artifact's manifest (`sha256:…`).
    pub digest: String,
    /// SHA-256 (hex) of the component: its file is `<hex>.wasm`.
    pub component: String,
    /// SHA-256 (hex) of the OpenAPI fragment the artifact carries, if any: `<hex>.json`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub openapi: Option<String>,
}

/// A reference resolved: the component's file and the fragment's.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// The artifact's manifest digest.
    pub digest: String,
    /// The component, pulled.
    pub component: PathBuf,
    /// The fragment the artifact carries, if any.
    pub openapi: Option<PathBuf>,
}

/// The pulled components of the functions directory, and their pins.
#[derive(Debug)]
pub struct OciComponents {
    options: wasmfn_oci::RegistryOptions,
    dir: PathBuf,
    /// Kept only while the host runs (no state directory).
    _temporary: Option<tempfile::TempDir>,
    max_bytes: u64,
    pins: Mutex<BTreeMap<String, Pin>>,
}

const PINS_FILE: &str = "pins.json";

impl OciComponents {
    /// Pulls into `dir` (`<state dir>/oci`), or into a temporary folder
    /// when there is no state directory (then nothing is pinned across
    /// restarts); components of at most `max_bytes`.
    pub fn open(options: wasmfn_oci::RegistryOptions, dir: Option<&Path>, max_bytes: u64) -> anyhow::Result<Self> {
        let (dir, temporary) = match dir {
            Some(d) => {
                std::fs::create_dir_all(d)
                    .map_err(|e| anyhow::anyhow!("cannot create `{}` (pulled OCI components): {e}", d.display()))?;
                (d.to_path_buf(), None)
            }
            None => {
                let t = tempfile::tempdir()?;
                (t.path().to_path_buf(), Some(t))
            }
        };
        let path = dir.join(PINS_FILE);
        let pins = match std::fs::read_to_string(&path) {
            Ok(text) => serde_json::from_str(&text).map_err(|e| {
                anyhow::anyhow!(
                    "`{}` is damaged ({e}); remove it, and every OCI reference of the functions directory \
                     resolves again at the next start",
                    path.display()
                )
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => anyhow::bail!("cannot read `{}`: {e}", path.display()),
        };
        Ok(Self {
            options,
            dir,
            _temporary: temporary,
            max_bytes,
            pins: Mutex::new(pins),
        })
    }

    /// The pin of `reference`, if it was resolved.
    pub fn pin(&self, reference: &str) -> Option<Pin> {
        self.pins.lock().expect("no panics while held").get(reference).cloned()
    }

    /// The files of `reference`: those it is pinned to, or, the first time,
    /// those pulled from its registry now (the pin is written before this
    /// returns). Blocks while it pulls.
    pub fn resolve(&self, reference: &str) -> Result<Resolved, String> {
        if let Some(pin) = self.pin(reference) {
            let resolved = self.files(&pin);
            // Files are named by their digest: one that does not hash to
            // its name (cut short by a crash) is pulled again.
            let whole = |path: &Path, hex: &str| std::fs::read(path).is_ok_and(|b| sha256_hex(&b) == hex);
            let openapi_whole = match (&resolved.openapi, &pin.openapi) {
                (Some(path), Some(hex)) => whole(path, hex),
                _ => true,
            };
            if whole(&resolved.component, &pin.component) && openapi_whole {
                return Ok(resolved);
            }
        }
        let parsed = wasmfn_oci::OciRef::parse(reference).map_err(|e| e.to_string())?;
        let options = self.options.clone();
        let max = self.max_bytes;
        // Its own thread and runtime: the loader runs on blocking threads
        // and at start, inside or outside the host's runtime.
        let pulled = std::thread::scope(|s| {
            s.spawn(move || -> Result<wasmfn_oci::Pulled, String> {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|e| format!("cannot start a runtime to pull: {e}"))?;
                let registries = wasmfn_oci::Registries::new(&options).map_err(|e| e.to_string())?;
                rt.block_on(registries.pull(&parsed, Some(max)))
                    .map_err(|e| e.to_string())
            })
            .join()
            .unwrap_or_else(|_| Err("the pull panicked".into()))
        })?;
        let pin = Pin {
            digest: pulled.digest.clone(),
            component: self.write(&pulled.component, "wasm")?,
            openapi: match &pulled.openapi {
                Some(text) => Some(self.write(text.as_bytes(), "json")?),
                None => None,
            },
        };
        let resolved = self.files(&pin);
        let mut pins = self.pins.lock().expect("no panics while held");
        pins.insert(reference.to_string(), pin);
        self.save(&pins)?;
        tracing::info!(reference, digest = %pulled.digest, "OCI component pulled and pinned");
        Ok(resolved)
    }

    /// Forgets the pins of references no manifest names any more, and
    /// removes the files nothing pins.
    pub fn retain(&self, names: &BTreeSet<String>) {
        let mut pins = self.pins.lock().expect("no panics while held");
        let before = pins.len();
        pins.retain(|r, _| names.contains(r));
        if pins.len() == before {
            return;
        }
        if let Err(e) = self.save(&pins) {
            tracing::warn!(error = %e, "OCI pins not saved");
        }
        let kept: BTreeSet<String> = pins
            .values()
            .flat_map(|p| {
                std::iter::once(format!("{}.wasm", p.component)).chain(p.openapi.iter().map(|o| format!("{o}.json")))
            })
            .collect();
        for entry in std::fs::read_dir(&self.dir).into_iter().flatten().flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name != PINS_FILE && !kept.contains(&name) {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }

    fn files(&self, pin: &Pin) -> Resolved {
        Resolved {
            digest: pin.digest.clone(),
            component: self.dir.join(format!("{}.wasm", pin.component)),
            openapi: pin.openapi.as_ref().map(|o| self.dir.join(format!("{o}.json"))),
        }
    }

    /// Writes `bytes` as `<sha256>.<ext>` (whole or not at all); gives the hex.
    fn write(&self, bytes: &[u8], ext: &str) -> Result<String, String> {
        let hex = sha256_hex(bytes);
        let path = self.dir.join(format!("{hex}.{ext}"));
        if !path.is_file() {
            write_whole(&path, bytes)?;
        }
        Ok(hex)
    }

    fn save(&self, pins: &BTreeMap<String, Pin>) -> Result<(), String> {
        let text = serde_json::to_vec_pretty(pins).expect("pins serialise");
        write_whole(&self.dir.join(PINS_FILE), &text)
    }
}

/// Writes `path` through a temporary file beside it, so that a crash leaves
/// the old file or the new one.
fn write_whole(path: &Path, bytes: &[u8]) -> Result<(), String> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes)
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(|e| format!("cannot write `{}`: {e}", path.display()))
}

/// Resolves the OCI references of `specs` (a directory's functions): each
/// one pulled (or as pinned) has its component and, if it names none, the
/// artifact's fragment; gives the names of those that could not be, with
/// why. With `directory`, pins that neither `specs` nor a version serving
/// in `previous` names are forgotten.
pub(crate) fn resolve_all(
    oci: Option<&OciComponents>,
    directory: bool,
    specs: &mut [wasmfn_manifest::discovery::FunctionSpec],
    previous: Option<&crate::registry::Snapshot>,
) -> std::collections::HashMap<String, String> {
    let mut unpulled = std::collections::HashMap::new();
    if let (Some(oci), true) = (oci, directory) {
        let serving = previous.into_iter().flat_map(|p| p.functions.iter().map(|f| &f.spec));
        oci.retain(
            &specs
                .iter()
                .chain(serving)
                .filter_map(|s| s.component_ref.clone())
                .collect(),
        );
    }
    for spec in specs.iter_mut() {
        let Some(reference) = spec.component_ref.clone() else {
            continue;
        };
        let resolved = match oci {
            Some(oci) => oci.resolve(&reference),
            None => Err(format!(
                "`{reference}` names an OCI artifact, which this command does not pull; serve the directory"
            )),
        };
        match resolved {
            Ok(r) => {
                spec.component_path = r.component;
                if spec.openapi_path.is_none() {
                    spec.openapi_path = r.openapi;
                }
            }
            Err(error) => {
                let message = format!("`{}`: field `component`: {error}", spec.manifest_path.display());
                unpulled.insert(spec.name.clone(), message);
            }
        }
    }
    unpulled
}
