//! Functions as OCI artifacts, in the CNCF "Wasm OCI artifact" layout: one
//! layer `application/wasm` (the component), a config
//! `application/vnd.wasm.config.v0+json` (architecture `wasm`, os
//! `wasip2`, the layer's digest, the component's imports and exports), and
//! on the manifest wasmfn's own annotations: the function's
//! `fn.config.json` and its OpenAPI fragment, when it has one.
//!
//! References are `oci://registry/repository[:tag][@sha256:…]`, the
//! registry always named. Credentials come from a docker-style
//! `config.json` (`auths`); a registry is spoken to over HTTPS unless the
//! operator lists it as plain HTTP. Everything pulled is checked against
//! its digests, and must be a component.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use base64::Engine;
use oci_client::client::{ClientConfig, ClientProtocol, Config, ImageLayer};
use oci_client::errors::{OciDistributionError, OciErrorCode};
use oci_client::manifest::OciImageManifest;
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The scheme of a component reference that names an OCI artifact.
pub const SCHEME: &str = "oci://";
/// The media type of the component's layer.
pub const LAYER_MEDIA_TYPE: &str = "application/wasm";
/// The media type of the artifact's config.
pub const CONFIG_MEDIA_TYPE: &str = "application/vnd.wasm.config.v0+json";
/// The manifest annotation holding the function's `fn.config.json`.
pub const MANIFEST_ANNOTATION: &str = "dev.wasmfn.manifest";
/// The manifest annotation holding the function's OpenAPI fragment.
pub const OPENAPI_ANNOTATION: &str = "dev.wasmfn.openapi";

/// The artifact type (and layer media type) of a blob of a host's shared
/// state kept in a registry (`--blob-registry`): a component, manifest or
/// fragment, by its digest.
pub const BLOB_MEDIA_TYPE: &str = "application/vnd.wasmfn.blob.v1";
/// The empty config such an artifact has (OCI image spec 1.1).
const EMPTY_CONFIG_MEDIA_TYPE: &str = "application/vnd.oci.empty.v1+json";

/// Why a push or a pull failed.
#[derive(Debug, thiserror::Error)]
pub enum OciError {
    /// Not an `oci://` reference wasmfn can use.
    #[error("`{text}` is not an OCI reference: {message}")]
    Reference {
        /// What was given.
        text: String,
        /// What is wrong, and the form to use.
        message: String,
    },
    /// The registry credentials file cannot be used.
    #[error("registry credentials `{}`: {message}", path.display())]
    Credentials {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// The registry did not answer.
    #[error("{reference}: the registry cannot be reached: {message}")]
    Unreachable {
        /// The artifact.
        reference: String,
        /// What the connection said, and a hint.
        message: String,
    },
    /// No such repository, tag or digest.
    #[error("{reference}: not in the registry (no such repository, tag or digest)")]
    NotFound {
        /// The artifact.
        reference: String,
    },
    /// The registry refused the credentials (or their absence).
    #[error("{reference}: the registry refused access ({message}); give its credentials with `--registry-auth`")]
    Denied {
        /// The artifact.
        reference: String,
        /// What the registry said.
        message: String,
    },
    /// The artifact is not a wasm component in the expected layout.
    #[error("{reference}: not a wasm component artifact: {message}")]
    NotAComponent {
        /// The artifact.
        reference: String,
        /// What it is instead.
        message: String,
    },
    /// What arrived is not what its digest says.
    #[error("{reference}: digest mismatch: {message}")]
    Digest {
        /// The artifact.
        reference: String,
        /// Which digest, expected and found.
        message: String,
    },
    /// The component is larger than the limit given.
    #[error("{reference}: the component is {size} bytes, more than the limit of {limit}")]
    TooLarge {
        /// The artifact.
        reference: String,
        /// Its layer's size.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// Any other failure of the registry's API.
    #[error("{reference}: {message}")]
    Registry {
        /// The artifact.
        reference: String,
        /// What went wrong.
        message: String,
    },
}

/// `oci://registry/repository[:tag][@sha256:…]`: a function's component
/// in an OCI registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OciRef {
    reference: Reference,
}

impl OciRef {
    /// Whether `text` is meant as an OCI reference (starts with `oci://`).
    pub fn is_oci(text: &str) -> bool {
        text.starts_with(SCHEME)
    }

    /// Parses `oci://registry/repository[:tag][@sha256:…]`. The registry
    /// must be named (a host with a dot or a port, or `localhost`); without
    /// a tag or digest the tag is `latest`.
    pub fn parse(text: &str) -> Result<Self, OciError> {
        let bad = |message: &str| OciError::Reference {
            text: text.to_string(),
            message: message.to_string(),
        };
        let form = "write `oci://REGISTRY/REPOSITORY:TAG` or `oci://REGISTRY/REPOSITORY@sha256:DIGEST`, \
                    e.g. `oci://registry.example:5000/functions/hello:1.0`";
        let rest = text
            .strip_prefix(SCHEME)
            .ok_or_else(|| bad(&format!("it does not start with `oci://`; {form}")))?;
        let (registry, path) = rest.split_once('/').unwrap_or((rest, ""));
        let named = registry.contains('.') || registry.contains(':') || registry == "localhost";
        if !named || path.is_empty() {
            return Err(bad(&format!("it names no registry host; {form}")));
        }
        let reference: Reference = rest
            .parse()
            .map_err(|e: oci_client::ParseError| bad(&format!("{e}; {form}")))?;
        Ok(Self { reference })
    }

    /// The registry (`host[:port]`).
    pub fn registry(&self) -> &str {
        self.reference.registry()
    }

    /// The repository (`functions/hello`).
    pub fn repository(&self) -> &str {
        self.reference.repository()
    }

    /// The digest it is pinned to, if it is (`sha256:…`).
    pub fn digest(&self) -> Option<&str> {
        self.reference.digest()
    }

    /// The tag a blob of `digest` is kept under in this repository:
    /// `oci://registry/repository:sha256-<hex>`.
    fn blob_tag(&self, digest: &str) -> OciRef {
        OciRef {
            reference: Reference::with_tag(
                self.reference.registry().to_string(),
                self.reference.repository().to_string(),
                digest.replace(':', "-"),
            ),
        }
    }

    /// The same artifact pinned to `digest`: `oci://registry/repository@digest`.
    pub fn pinned(&self, digest: &str) -> OciRef {
        OciRef {
            reference: Reference::with_digest(
                self.reference.registry().to_string(),
                self.reference.repository().to_string(),
                digest.to_string(),
            ),
        }
    }
}

impl fmt::Display for OciRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{SCHEME}{}", self.reference.whole())
    }
}

/// How the host reaches registries.
#[derive(Debug, Clone, Default)]
pub struct RegistryOptions {
    /// A docker-style `config.json` whose `auths` hold registries' credentials.
    pub auth_file: Option<PathBuf>,
    /// Registries (`host[:port]`) spoken to over plain HTTP; every other
    /// one over HTTPS.
    pub insecure: Vec<String>,
}

/// What a function's artifact holds besides its component.
#[derive(Debug, Clone, Copy)]
pub struct Artifact<'a> {
    /// The component's bytes.
    pub component: &'a [u8],
    /// The function's `fn.config.json` text.
    pub manifest: &'a str,
    /// Its OpenAPI fragment's text, for a component that does not describe itself.
    pub openapi: Option<&'a str>,
}

/// A function's artifact, pulled and checked.
#[derive(Debug, Clone)]
pub struct Pulled {
    /// The artifact pinned to the digest it had (`oci://…@sha256:…`).
    pub pinned: OciRef,
    /// The digest of its manifest (`sha256:…`).
    pub digest: String,
    /// The component's bytes (their digest checked).
    pub component: Vec<u8>,
    /// The `fn.config.json` it was pushed with, if it has one.
    pub manifest: Option<String>,
    /// The OpenAPI fragment it was pushed with, if it has one.
    pub openapi: Option<String>,
}

/// The client of every registry the host or the CLI speaks to.
pub struct Registries {
    client: Client,
    credentials: BTreeMap<String, (String, String)>,
    insecure: Vec<String>,
}

impl fmt::Debug for Registries {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registries")
            .field("credentials_for", &self.credentials.keys().collect::<Vec<_>>())
            .field("insecure", &self.insecure)
            .finish()
    }
}

impl Registries {
    /// A client with `options`; fails only on a credentials file that
    /// cannot be read or understood.
    pub fn new(options: &RegistryOptions) -> Result<Self, OciError> {
        // The TLS provider the rest of the host uses; set once per process.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let credentials = match &options.auth_file {
            Some(path) => read_credentials(path)?,
            None => BTreeMap::new(),
        };
        let client = Client::new(ClientConfig {
            protocol: ClientProtocol::HttpsExcept(options.insecure.clone()),
            ..ClientConfig::default()
        });
        Ok(Self {
            client,
            credentials,
            insecure: options.insecure.clone(),
        })
    }

    fn auth(&self, registry: &str) -> RegistryAuth {
        match self.credentials.get(registry) {
            Some((user, password)) => RegistryAuth::Basic(user.clone(), password.clone()),
            None => RegistryAuth::Anonymous,
        }
    }

    /// Pulls the function's artifact at `r`: its manifest (resolving a
    /// tag to the digest it has now), then its one component layer, of at
    /// most `max_bytes`, checked against its digest and for being a
    /// component.
    pub async fn pull(&self, r: &OciRef, max_bytes: Option<u64>) -> Result<Pulled, OciError> {
        let auth = self.auth(r.registry());
        let (manifest, digest) = self
            .client
            .pull_image_manifest(&r.reference, &auth)
            .await
            .map_err(|e| self.classify(r, e))?;
        if let Some(want) = r.digest()
            && want != digest
        {
            return Err(OciError::Digest {
                reference: r.to_string(),
                message: format!("the registry answered manifest {digest}"),
            });
        }
        let not_component = |message: String| OciError::NotAComponent {
            reference: r.to_string(),
            message,
        };
        if manifest.config.media_type != CONFIG_MEDIA_TYPE {
            return Err(not_component(format!(
                "its config is `{}`, not `{CONFIG_MEDIA_TYPE}`",
                manifest.config.media_type
            )));
        }
        let layer = match manifest.layers.as_slice() {
            [one] if one.media_type == LAYER_MEDIA_TYPE => one,
            layers => {
                let types: Vec<&str> = layers.iter().map(|l| l.media_type.as_str()).collect();
                return Err(not_component(format!(
                    "it has the layers {types:?}, not one `{LAYER_MEDIA_TYPE}` layer"
                )));
            }
        };
        let size = u64::try_from(layer.size).unwrap_or(0);
        if let Some(limit) = max_bytes.filter(|l| size > *l) {
            return Err(OciError::TooLarge {
                reference: r.to_string(),
                size,
                limit,
            });
        }
        let mut component = Vec::with_capacity(size as usize);
        self.client
            .pull_blob(&r.reference, layer, &mut component)
            .await
            .map_err(|e| self.classify(r, e))?;
        let found = sha256(&component);
        if found != layer.digest {
            return Err(OciError::Digest {
                reference: r.to_string(),
                message: format!("layer {} arrived as {found}", layer.digest),
            });
        }
        if !wasmparser::Parser::is_component(&component) {
            return Err(not_component(
                "its layer is not a WebAssembly component (a core module, or not wasm at all)".into(),
            ));
        }
        let annotation = |key: &str| manifest.annotations.as_ref().and_then(|a| a.get(key)).cloned();
        Ok(Pulled {
            pinned: r.pinned(&digest),
            manifest: annotation(MANIFEST_ANNOTATION),
            openapi: annotation(OPENAPI_ANNOTATION),
            digest,
            component,
        })
    }

    /// Pushes `artifact` to `r` (a tag) and answers it pinned to the
    /// digest the registry gave its manifest. The same artifact pushed
    /// again has the same digest.
    pub async fn push(&self, r: &OciRef, artifact: Artifact<'_>) -> Result<OciRef, OciError> {
        if r.digest().is_some() {
            return Err(OciError::Reference {
                text: r.to_string(),
                message: "push to a tag (`oci://REGISTRY/REPOSITORY:TAG`); the registry gives the digest".into(),
            });
        }
        let (imports, exports) = names(artifact.component).map_err(|message| OciError::NotAComponent {
            reference: r.to_string(),
            message,
        })?;
        let layer = ImageLayer::new(artifact.component.to_vec(), LAYER_MEDIA_TYPE.to_string(), None);
        let config = WasmConfig {
            architecture: "wasm",
            os: "wasip2",
            layer_digests: vec![sha256(artifact.component)],
            component: ComponentNames { imports, exports },
        };
        let config = Config::new(
            serde_json::to_vec(&config).expect("a config serialises"),
            CONFIG_MEDIA_TYPE.to_string(),
            None,
        );
        let mut annotations = BTreeMap::from([(MANIFEST_ANNOTATION.to_string(), artifact.manifest.to_string())]);
        if let Some(openapi) = artifact.openapi {
            annotations.insert(OPENAPI_ANNOTATION.to_string(), openapi.to_string());
        }
        let layers = [layer];
        let mut manifest = OciImageManifest::build(&layers, &config, Some(annotations));
        manifest.artifact_type = Some(CONFIG_MEDIA_TYPE.to_string());
        let auth = self.auth(r.registry());
        self.client
            .push(&r.reference, &layers, config, &auth, Some(manifest))
            .await
            .map_err(|e| self.classify(r, e))?;
        let digest = self
            .client
            .fetch_manifest_digest(&r.reference, &auth)
            .await
            .map_err(|e| self.classify(r, e))?;
        Ok(r.pinned(&digest))
    }

    /// Keeps `bytes` in the repository of `repo` as an artifact of one
    /// [`BLOB_MEDIA_TYPE`] layer tagged `sha256-<hex>` of their digest
    /// (the tag keeps it from the registry's garbage collection), and
    /// answers the digest. Keeping the same bytes again changes nothing.
    pub async fn put_blob(&self, repo: &OciRef, bytes: &[u8]) -> Result<String, OciError> {
        let digest = sha256(bytes);
        let target = repo.blob_tag(&digest);
        let layer = ImageLayer::new(bytes.to_vec(), BLOB_MEDIA_TYPE.to_string(), None);
        let config = Config::new(b"{}".to_vec(), EMPTY_CONFIG_MEDIA_TYPE.to_string(), None);
        let layers = [layer];
        let mut manifest = OciImageManifest::build(&layers, &config, None);
        manifest.artifact_type = Some(BLOB_MEDIA_TYPE.to_string());
        let auth = self.auth(target.registry());
        self.client
            .push(&target.reference, &layers, config, &auth, Some(manifest))
            .await
            .map_err(|e| self.classify(&target, e))?;
        Ok(digest)
    }

    /// The bytes of `digest` (`sha256:<hex>`) in the repository of `repo`,
    /// checked against it; `None` when the repository does not hold them.
    pub async fn get_blob(&self, repo: &OciRef, digest: &str) -> Result<Option<Vec<u8>>, OciError> {
        let target = repo.pinned(digest);
        let auth = self.auth(target.registry());
        let attempt = async {
            self.client
                .auth(&target.reference, &auth, oci_client::RegistryOperation::Pull)
                .await?;
            let mut bytes = Vec::new();
            self.client.pull_blob(&target.reference, digest, &mut bytes).await?;
            Ok(bytes)
        };
        match attempt.await.map_err(|e| self.classify(&target, e)) {
            Ok(bytes) => {
                let found = sha256(&bytes);
                if found != digest {
                    return Err(OciError::Digest {
                        reference: target.to_string(),
                        message: format!("blob {digest} arrived as {found}"),
                    });
                }
                Ok(Some(bytes))
            }
            Err(OciError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The error of `e`, named for what the operator can do about it.
    fn classify(&self, r: &OciRef, e: OciDistributionError) -> OciError {
        let reference = r.to_string();
        match e {
            OciDistributionError::RequestError(e) if e.is_connect() || e.is_timeout() || e.is_request() => {
                let hint = if self.insecure.iter().any(|i| i == r.registry()) {
                    String::new()
                } else {
                    format!(
                        " (spoken to over HTTPS: a registry that serves plain HTTP must be listed with \
                         `--insecure-registry {}`)",
                        r.registry()
                    )
                };
                OciError::Unreachable {
                    reference,
                    message: format!("{}{hint}", error_chain(&e)),
                }
            }
            OciDistributionError::ImageManifestNotFoundError(_) => OciError::NotFound { reference },
            OciDistributionError::AuthenticationFailure(message) => OciError::Denied { reference, message },
            OciDistributionError::UnauthorizedError { .. } => OciError::Denied {
                reference,
                message: "unauthorized".into(),
            },
            OciDistributionError::IncompatibleLayerMediaTypeError(t) => OciError::NotAComponent {
                reference,
                message: format!("a layer of type `{t}`"),
            },
            OciDistributionError::DigestError(e) => OciError::Digest {
                reference,
                message: e.to_string(),
            },
            OciDistributionError::RegistryError { envelope, .. } => {
                let message = envelope
                    .errors
                    .iter()
                    .map(|e| format!("{:?}: {}", e.code, e.message))
                    .collect::<Vec<_>>()
                    .join("; ");
                let codes: Vec<&OciErrorCode> = envelope.errors.iter().map(|e| &e.code).collect();
                if codes.iter().any(|c| {
                    matches!(
                        c,
                        OciErrorCode::ManifestUnknown
                            | OciErrorCode::NameUnknown
                            | OciErrorCode::NotFound
                            | OciErrorCode::BlobUnknown
                    )
                }) {
                    OciError::NotFound { reference }
                } else if codes
                    .iter()
                    .any(|c| matches!(c, OciErrorCode::Unauthorized | OciErrorCode::Denied))
                {
                    OciError::Denied { reference, message }
                } else {
                    OciError::Registry { reference, message }
                }
            }
            OciDistributionError::ServerError { code: 404, .. } => OciError::NotFound { reference },
            OciDistributionError::ServerError {
                code: 401 | 403,
                message,
                ..
            } => OciError::Denied { reference, message },
            other => OciError::Registry {
                reference,
                message: error_chain(&other),
            },
        }
    }
}

/// An error and its sources, one after another.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let more = s.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = s.source();
    }
    text
}

/// `sha256:<hex>` of `bytes`.
pub fn sha256(bytes: &[u8]) -> String {
    let hash = Sha256::digest(bytes);
    let hex: String = hash.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

/// The config of a Wasm OCI artifact.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct WasmConfig {
    architecture: &'static str,
    os: &'static str,
    layer_digests: Vec<String>,
    component: ComponentNames,
}

/// What a component imports and exports (the names of its top level).
#[derive(Serialize)]
struct ComponentNames {
    imports: Vec<String>,
    exports: Vec<String>,
}

/// The names a component imports and exports, or why it is not one.
fn names(bytes: &[u8]) -> Result<(Vec<String>, Vec<String>), String> {
    use wasmparser::{Parser, Payload};
    if !Parser::is_component(bytes) {
        return Err("not a WebAssembly component (a core module, or not wasm at all)".into());
    }
    let (mut imports, mut exports) = (Vec::new(), Vec::new());
    // Nested modules and components come in the same stream, between their
    // own header and `End`: only the outermost level's names count.
    let mut depth = 0usize;
    for payload in Parser::new(0).parse_all(bytes) {
        match payload.map_err(|e| format!("not a valid component: {e}"))? {
            Payload::ModuleSection { .. } | Payload::ComponentSection { .. } => depth += 1,
            Payload::End(_) => depth = depth.saturating_sub(1),
            Payload::ComponentImportSection(reader) if depth == 0 => {
                for import in reader {
                    let import = import.map_err(|e| format!("not a valid component: {e}"))?;
                    imports.push(import.name.name.to_string());
                }
            }
            Payload::ComponentExportSection(reader) if depth == 0 => {
                for export in reader {
                    let export = export.map_err(|e| format!("not a valid component: {e}"))?;
                    exports.push(export.name.name.to_string());
                }
            }
            _ => {}
        }
    }
    Ok((imports, exports))
}

/// A docker-style `config.json`.
#[derive(Deserialize)]
struct CredentialsFile {
    #[serde(default)]
    auths: BTreeMap<String, Entry>,
    #[serde(default, rename = "credsStore")]
    creds_store: Option<String>,
    #[serde(default, rename = "credHelpers")]
    cred_helpers: BTreeMap<String, String>,
}

#[derive(Deserialize)]
struct Entry {
    auth: Option<String>,
    username: Option<String>,
    password: Option<String>,
}

/// Registry (`host[:port]`) → user and password, from `path`.
fn read_credentials(path: &Path) -> Result<BTreeMap<String, (String, String)>, OciError> {
    let bad = |message: String| OciError::Credentials {
        path: path.to_path_buf(),
        message,
    };
    let text = std::fs::read_to_string(path).map_err(|e| bad(format!("cannot be read: {e}")))?;
    let file: CredentialsFile = serde_json::from_str(&text).map_err(|e| {
        bad(format!(
            "is not a docker-style config.json ({e}); write {{\"auths\": {{\"REGISTRY\": {{\"auth\": \"BASE64(USER:PASSWORD)\"}}}}}}"
        ))
    })?;
    if file.creds_store.is_some() || !file.cred_helpers.is_empty() {
        return Err(bad(
            "names credential helpers (`credsStore`, `credHelpers`), which wasmfn does not run; \
             give each registry's credentials under `auths`"
                .into(),
        ));
    }
    let mut credentials = BTreeMap::new();
    for (key, entry) in file.auths {
        // `https://registry.example/v1/` and `registry.example` name the same registry.
        let registry = key
            .trim_start_matches("https://")
            .trim_start_matches("http://")
            .split('/')
            .next()
            .unwrap_or_default()
            .to_string();
        let pair = match (entry.auth, entry.username, entry.password) {
            (Some(auth), _, _) => {
                let decoded = base64::engine::general_purpose::STANDARD
                    .decode(auth.trim())
                    .ok()
                    .and_then(|b| String::from_utf8(b).ok())
                    .ok_or_else(|| bad(format!("`auths.{key}.auth` is not base64 of `USER:PASSWORD`")))?;
                let (user, password) = decoded
                    .split_once(':')
                    .ok_or_else(|| bad(format!("`auths.{key}.auth` is not base64 of `USER:PASSWORD`")))?;
                (user.to_string(), password.to_string())
            }
            (None, Some(user), Some(password)) => (user, password),
            _ => {
                return Err(bad(format!(
                    "`auths.{key}` has neither `auth` nor `username` and `password`"
                )));
            }
        };
        credentials.insert(registry, pair);
    }
    Ok(credentials)
}

#[cfg(test)]
mod tests;
