//! Why one function did not load.

use std::path::PathBuf;
use std::sync::Arc;

use wasmfn_openapi::{FragmentError, MountError};

/// Why one function did not load: shown in the catalog, the log and by
/// `wasmfn check`; the other functions load regardless.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum LoadError {
    /// The manifest asks for more memory than the host's ceiling.
    #[error(
        "invalid `{}`: field `max_memory_bytes`: `{asked}` is above this host's ceiling of {ceiling} bytes (`--memory-ceiling`)",
        manifest.display()
    )]
    AboveMemoryCeiling {
        /// The manifest that asks.
        manifest: PathBuf,
        /// What it asks for.
        asked: u64,
        /// The host's `--memory-ceiling`.
        ceiling: u64,
    },
    /// `instance_concurrency` cannot apply: it is above `instance_reuse`,
    /// or the component serves `wasi:http@0.2`.
    #[error("invalid `{}`: field `instance_concurrency`: {message}", manifest.display())]
    InstanceConcurrency {
        /// The manifest that sets it.
        manifest: PathBuf,
        /// What is wrong, and the fix.
        message: String,
    },
    /// The component file cannot be read.
    #[error("cannot read component `{}`: {source}", path.display())]
    ReadComponent {
        /// The component's path.
        path: PathBuf,
        /// Why it cannot be read.
        source: Arc<std::io::Error>,
    },
    /// The component does not compile or link.
    #[error(transparent)]
    Compile(Arc<wasmfn_runtime::CompileError>),
    /// The component's `describe` export failed.
    #[error(transparent)]
    Describe(Arc<wasmfn_runtime::DescribeError>),
    /// The sidecar fragment the manifest names cannot be read.
    #[error("cannot read OpenAPI fragment `{}`: {source}", path.display())]
    ReadFragment {
        /// The fragment's path.
        path: PathBuf,
        /// Why it cannot be read.
        source: Arc<std::io::Error>,
    },
    /// The sidecar fragment is not a valid fragment.
    #[error("function `{function}`: `{}`: {source}", path.display())]
    Sidecar {
        /// The function.
        function: String,
        /// The fragment's path.
        path: PathBuf,
        /// What is wrong with it.
        source: Box<FragmentError>,
    },
    /// What `describe` returned is not a valid fragment.
    #[error("function `{function}`: `describe` returned an {source}")]
    Described {
        /// The function.
        function: String,
        /// What is wrong with it.
        source: Box<FragmentError>,
    },
    /// The function asks for more than its tenant's quotas allow.
    #[error("{0}")]
    Quota(String),
    /// Its `auth` or `cors` cannot be put in force (keys that do not load, a `jwks_url` outside its outbound rules).
    #[error("{0}")]
    Invalid(String),
    /// The function's operations cannot be mounted under its routes.
    #[error("function `{function}`: {source}")]
    Mount {
        /// The function.
        function: String,
        /// Why they cannot.
        source: Box<MountError>,
    },
}
