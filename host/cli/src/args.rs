//! The command line's arguments: clap definitions of every command and
//! flag (each with an environment twin), and their mapping to the
//! libraries' settings ([`HostConfig`], [`BuildOptions`], [`Drain`]).

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use wasmfn_build::BuildOptions;
use wasmfn_server::manifest::Policy;
use wasmfn_server::runtime::{RuntimeConfig, default_cache_dir};
use wasmfn_server::telemetry::{TelemetryConfig, TraceConfig};
use wasmfn_server::{AdminAccess, AdminListener, AdminTokens, Drain, HeadLimits, HostConfig, Scope, TlsFiles};

/// Serve a directory of WebAssembly HTTP components as one API.
#[derive(Debug, Parser)]
#[command(name = "wasmfn", version, about, long_about = None)]
pub struct Cli {
    /// The command to run.
    #[command(subcommand)]
    pub command: Command,
    /// Log format.
    #[arg(long, global = true, env = "WASMFN_LOG_FORMAT", default_value = "text", value_parser = ["text", "json"])]
    pub log_format: String,
}

/// The `wasmfn` commands, one variant each.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Load every function under DIR and serve them over HTTP.
    Serve(ServeArgs),
    /// Load and compile everything, print routes, conflicts and errors;
    /// exit non-zero if there is any conflict or error.
    Check(HostArgs),
    /// Print the route table from the manifests, without compiling
    /// (functions that describe themselves show their mount points).
    Routes(DirArg),
    /// Print the unified OpenAPI document without serving.
    Openapi(OpenapiArgs),
    /// Build every function under DIR that has a build recipe
    /// (`Cargo.toml`, `app.py` or `index.js`).
    Build(BuildArgs),
    /// Build, serve and watch: a change to a function's source rebuilds it,
    /// a change to a manifest or component reloads it.
    Dev(ServeArgs),
    /// Create a function folder that builds and serves as it is.
    New(NewArgs),
    /// Deploy a function folder to a running host (building it first if it
    /// has a recipe and is out of date).
    Deploy(DeployArgs),
    /// Publish a function folder to an OCI registry as a Wasm artifact
    /// (building it first if it has a recipe and is out of date); prints
    /// the reference pinned to its digest, for `wasmfn deploy`.
    Push(PushArgs),
    /// Serve the version of a deployed function deployed before the current one again.
    Rollback(NameArgs),
    /// Stop serving a deployed function; its requests in flight finish.
    Undeploy(NameArgs),
    /// List a running host's functions: origin, state, digest, versions, routes.
    Functions(ClientArgs),
    /// Print the last lines of a function's guest output and access log
    /// on a running host; `-f` follows new lines until interrupted.
    Logs(LogsArgs),
    /// Admin tokens.
    #[command(subcommand)]
    Token(TokenCommand),
}

/// `wasmfn token …`.
#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Print a new random admin token (once) and its entry for the token file.
    Create(TokenCreateArgs),
}

/// The arguments of `wasmfn token create`.
#[derive(Debug, Args)]
pub struct TokenCreateArgs {
    /// The token's id, shown in the audit log and in `deployed_by`.
    #[arg(long)]
    pub id: String,
    /// What it may do: `read`, `deploy`, `admin` (repeat for several).
    #[arg(long, required = true, num_args = 1..)]
    pub scope: Vec<Scope>,
    /// Bind the token to one tenant: it sees and changes that tenant's
    /// objects only (another tenant's answer 404).
    #[arg(long)]
    pub tenant: Option<String>,
}

/// How to reach a running host's admin surface.
#[derive(Debug, Args, Clone)]
pub struct ClientArgs {
    /// The host's base URL (its admin listener, if it has one).
    #[arg(long, env = "WASMFN_URL", default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// An admin token (sent as `Authorization: Bearer`).
    #[arg(long, env = "WASMFN_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// A CA certificate (PEM) to trust for an `https` URL, beside the system's.
    #[arg(long, env = "WASMFN_CA_CERT")]
    pub ca_cert: Option<PathBuf>,
    /// A client certificate (PEM), for an admin listener that requires one.
    #[arg(long, env = "WASMFN_CLIENT_CERT")]
    pub client_cert: Option<PathBuf>,
    /// The client certificate's private key (PEM).
    #[arg(long, env = "WASMFN_CLIENT_KEY")]
    pub client_key: Option<PathBuf>,
    /// The tenant whose functions to act on [default: `default`, the host's own].
    #[arg(long, env = "WASMFN_TENANT")]
    pub tenant: Option<String>,
}

impl ClientArgs {
    /// `/_fn/functions` of the tenant acted on.
    pub fn functions_path(&self) -> String {
        match self.tenant.as_deref() {
            None | Some("default") => "/_fn/functions".into(),
            Some(t) => format!("/_fn/tenants/{t}/functions"),
        }
    }
}

/// The arguments of `wasmfn deploy`.
#[derive(Debug, Args)]
pub struct DeployArgs {
    /// The function's folder: its `fn.config.json`, the component it names
    /// and the fragment it names, if any. Or an OCI reference
    /// (`oci://REGISTRY/REPOSITORY:TAG` or `…@sha256:…`) the host pulls
    /// itself, with the manifest the artifact carries (or `--manifest`).
    pub dir: PathBuf,
    /// The name to deploy it as [default: the folder's name, or the
    /// reference's last path segment].
    #[arg(long)]
    pub name: Option<String>,
    /// With an OCI reference: a `fn.config.json` to deploy it with,
    /// instead of the one the artifact carries.
    #[arg(long)]
    pub manifest: Option<PathBuf>,
    /// Upload the component as it is, without building.
    #[arg(long)]
    pub no_build: bool,
    /// The host to deploy to.
    #[command(flatten)]
    pub client: ClientArgs,
    /// Where the Python and JavaScript toolchains come from, for the build.
    #[command(flatten)]
    pub toolchains: ToolchainArgs,
}

/// The arguments of `wasmfn push`.
#[derive(Debug, Args)]
pub struct PushArgs {
    /// The function's folder: its `fn.config.json`, the component it names
    /// and the fragment it names, if any.
    pub dir: PathBuf,
    /// Where to push it: `oci://REGISTRY/REPOSITORY:TAG`.
    pub reference: String,
    /// Push the component as it is, without building.
    #[arg(long)]
    pub no_build: bool,
    /// How to reach the registry.
    #[command(flatten)]
    pub registries: RegistryArgs,
    /// Where the Python and JavaScript toolchains come from, for the build.
    #[command(flatten)]
    pub toolchains: ToolchainArgs,
}

/// How to reach OCI registries.
#[derive(Debug, Args, Clone)]
pub struct RegistryArgs {
    /// A docker-style `config.json` holding registries' credentials under
    /// `auths` (`{"auths": {"REGISTRY": {"auth": "BASE64(USER:PASSWORD)"}}}`).
    #[arg(long, env = "WASMFN_REGISTRY_AUTH")]
    pub registry_auth: Option<PathBuf>,
    /// A registry (`host:port`) spoken to over plain HTTP instead of HTTPS;
    /// repeat (or separate with commas) for several.
    #[arg(
        long = "insecure-registry",
        env = "WASMFN_INSECURE_REGISTRIES",
        value_delimiter = ','
    )]
    pub insecure_registries: Vec<String>,
}

impl RegistryArgs {
    /// The options of the registries' client.
    pub fn options(&self) -> wasmfn_oci::RegistryOptions {
        wasmfn_oci::RegistryOptions {
            auth_file: self.registry_auth.clone(),
            insecure: self.insecure_registries.clone(),
        }
    }
}

/// A deployed function's name, and the host.
#[derive(Debug, Args)]
pub struct NameArgs {
    /// The function's name.
    pub name: String,
    /// The host.
    #[command(flatten)]
    pub client: ClientArgs,
}

/// The arguments of `wasmfn logs`.
#[derive(Debug, Args)]
pub struct LogsArgs {
    /// The function's name.
    pub name: String,
    /// How many of the last lines (the host keeps 1000 per function).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(0..=1000))]
    pub tail: u32,
    /// Keep printing new lines as they come, until interrupted.
    #[arg(short = 'f', long)]
    pub follow: bool,
    /// The host.
    #[command(flatten)]
    pub client: ClientArgs,
}

/// The arguments of `wasmfn routes`: the functions directory alone.
#[derive(Debug, Args)]
pub struct DirArg {
    /// The functions directory.
    #[arg(default_value = "functions", env = "WASMFN_DIR")]
    pub dir: PathBuf,
}

/// The arguments of `wasmfn build`.
#[derive(Debug, Args)]
pub struct BuildArgs {
    /// The functions directory.
    #[arg(default_value = "functions", env = "WASMFN_DIR")]
    pub dir: PathBuf,
    /// Where the Python and JavaScript toolchains come from.
    #[command(flatten)]
    pub toolchains: ToolchainArgs,
    /// Python and JavaScript builds to run at once [default: cores, at most 4].
    #[arg(long, short = 'j', env = "WASMFN_BUILD_JOBS", value_parser = clap::value_parser!(u16).range(1..=64))]
    pub jobs: Option<u16>,
    /// Build every function, even those that are up to date.
    #[arg(long)]
    pub force: bool,
}

/// Where the Python and JavaScript toolchains come from.
#[derive(Debug, Args, Clone)]
pub struct ToolchainArgs {
    /// Install a missing componentize-py (with pip, in its own virtual
    /// environment) or componentize-js (with npm) under the toolchains
    /// directory, instead of stopping with instructions.
    #[arg(long, env = "WASMFN_INSTALL_TOOLCHAINS")]
    pub install_toolchains: bool,
    /// Where wasmfn keeps the toolchains it installs
    /// [default: $XDG_CACHE_HOME/wasmfn/toolchains or ~/.cache/wasmfn/toolchains].
    #[arg(long, env = "WASMFN_TOOLCHAINS_DIR")]
    pub toolchains_dir: Option<PathBuf>,
}

impl ToolchainArgs {
    /// Build options with these toolchain settings.
    pub fn options(&self) -> BuildOptions {
        let mut o = BuildOptions {
            install_toolchains: self.install_toolchains,
            ..Default::default()
        };
        if let Some(d) = &self.toolchains_dir {
            o.toolchains_dir = d.clone();
        }
        o
    }
}

/// The arguments of `wasmfn openapi`: those of a host that loads but does not serve.
#[derive(Debug, Args)]
pub struct OpenapiArgs {
    /// The functions directory and host settings to load it with.
    #[command(flatten)]
    pub host: HostArgs,
}

/// The arguments of `wasmfn serve` and `wasmfn dev`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The functions directory and host settings to serve it with.
    #[command(flatten)]
    pub host: HostArgs,
    /// Address to listen on.
    #[arg(long, env = "WASMFN_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Build the functions (as `wasmfn build`) before serving.
    #[arg(long, env = "WASMFN_BUILD")]
    pub build: bool,
    /// Reload when a manifest, component or fragment under DIR changes.
    #[arg(long, env = "WASMFN_WATCH")]
    pub watch: bool,
    /// Worker threads that serve connections and run guests [default: one
    /// per core]. Fewer threads than cores keep each connection on one
    /// core (lower latency at low concurrency) and leave cores to the
    /// network stack, at the cost of guests computing at once.
    #[arg(long, env = "WASMFN_WORKER_THREADS", value_parser = clap::value_parser!(u16).range(1..=4096))]
    pub worker_threads: Option<u16>,
    /// Where the toolchains come from, for `--build` and `dev`.
    #[command(flatten)]
    pub toolchains: ToolchainArgs,
    /// After SIGTERM or SIGINT, how long the listener keeps accepting while
    /// `/_fn/ready` already answers 503 (a load balancer's health-check
    /// interval).
    #[arg(long, env = "WASMFN_DRAIN_DELAY_MS", default_value_t = 0, value_parser = clap::value_parser!(u64).range(0..=3_600_000))]
    pub drain_delay_ms: u64,
    /// Then, how long requests in flight may take to finish; what still
    /// runs is interrupted (503) and the exit status is 1. Also how long a
    /// replaced or undeployed version may finish its requests.
    #[arg(long, env = "WASMFN_DRAIN_TIMEOUT_MS", default_value_t = 30_000, value_parser = clap::value_parser!(u64).range(0..=3_600_000))]
    pub drain_timeout_ms: u64,
    /// Serve the admin surface (everything under `/_fn` but `health`,
    /// `ready`, `openapi.json` and `docs`) on this address only.
    #[arg(long, env = "WASMFN_ADMIN_LISTEN")]
    pub admin_listen: Option<SocketAddr>,
    /// The admin token file: a JSON list of `{"id", "sha256", "scopes"}`
    /// (`wasmfn token create` prints entries). Without it the admin surface
    /// answers loopback clients only, read-only under `serve`.
    #[arg(long, env = "WASMFN_ADMIN_TOKENS")]
    pub admin_tokens: Option<PathBuf>,
    /// The admin listener's TLS certificate chain (PEM); needs `--admin-listen`.
    #[arg(long, env = "WASMFN_ADMIN_TLS_CERT", requires_all = ["admin_listen", "admin_tls_key"])]
    pub admin_tls_cert: Option<PathBuf>,
    /// The admin listener's TLS private key (PEM).
    #[arg(long, env = "WASMFN_ADMIN_TLS_KEY", requires = "admin_tls_cert")]
    pub admin_tls_key: Option<PathBuf>,
    /// Require admin clients to present a certificate signed by this CA (PEM).
    #[arg(long, env = "WASMFN_ADMIN_CLIENT_CA", requires = "admin_tls_cert")]
    pub admin_client_ca: Option<PathBuf>,
    /// Where deployed functions, the desired state and the audit log are
    /// kept [default: $XDG_DATA_HOME/wasmfn or ~/.local/share/wasmfn].
    #[arg(long, env = "WASMFN_STATE_DIR")]
    pub state_dir: Option<PathBuf>,
    /// The operator's fixed tenants: a JSON object of tenant id →
    /// `{"hosts": [...], "quotas": {...}}`; the admin API cannot change them.
    #[arg(long, env = "WASMFN_TENANTS")]
    pub tenants: Option<PathBuf>,
    /// Versions kept per deployed function; older ones are removed.
    #[arg(long, env = "WASMFN_KEEP_VERSIONS", default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub keep_versions: u32,
    /// The largest deploy upload accepted, in bytes (413 beyond).
    #[arg(long, env = "WASMFN_MAX_DEPLOY_BYTES", default_value_t = 64 << 20, value_parser = clap::value_parser!(u64).range(1024..=1 << 32))]
    pub max_deploy_bytes: u64,
    /// The largest request head (request line and headers) accepted, in
    /// bytes; beyond it the answer is 431.
    #[arg(long, env = "WASMFN_MAX_HEADER_BYTES", default_value_t = wasmfn_server::DEFAULT_MAX_HEADER_BYTES as u64,
          value_parser = clap::value_parser!(u64).range(wasmfn_server::MIN_MAX_HEADER_BYTES as u64..=16 << 20))]
    pub max_header_bytes: u64,
    /// Write one access-log line per function request to the log (JSON
    /// with `--log-format json`): request id, trace id, tenant, function,
    /// route, status, duration, bytes, guest CPU, instance kind, limit.
    #[arg(long, env = "WASMFN_ACCESS_LOG")]
    pub access_log: bool,
    /// Export traces over OTLP/HTTP to this collector (its base URL, as
    /// `OTEL_EXPORTER_OTLP_ENDPOINT`; spans go to `/v1/traces`). The
    /// standard `OTEL_*` variables apply too; without either, no traces.
    #[arg(long)]
    pub otlp_endpoint: Option<String>,
    /// Record no metrics and no access lines (`/_fn/metrics` answers
    /// 404): only to measure what recording costs.
    #[arg(long, env = "WASMFN_NO_METRICS")]
    pub no_metrics: bool,
    /// Secrets as files: `DIR/<name>` for the tenant `default`,
    /// `DIR/<tenant>/<name>` for others (a Kubernetes Secret mounted as a folder).
    #[arg(long, env = "WASMFN_SECRETS_DIR")]
    pub secrets_dir: Option<PathBuf>,
    /// The key secrets set through the admin API are sealed under: 32
    /// random bytes, base64 (`head -c 32 /dev/urandom | base64 > key`).
    /// Without it, `PUT /_fn/secrets/…` is refused.
    #[arg(long, env = "WASMFN_SECRETS_KEY_FILE")]
    pub secrets_key_file: Option<PathBuf>,
    /// Share the desired state (deployed functions, tenants, API keys,
    /// sealed secrets, and the deployed components by digest) with every
    /// host that names this Redis (`redis://[user:password@]host:port[/db]`):
    /// a change through any of them reaches all within seconds. The state
    /// directory keeps this host's copy.
    #[arg(long, env = "WASMFN_STATE_STORE")]
    pub state_store: Option<String>,
    /// With `--state-store`: keep the shared state's blobs (deployed
    /// components, manifests, fragments) in this OCI repository
    /// (`oci://REGISTRY/REPOSITORY`), each tagged `sha256-<hex>` of its
    /// digest, instead of in Redis. Credentials and plain-HTTP registries
    /// as for deploys (`--registry-auth`, `--insecure-registry`).
    #[arg(long, env = "WASMFN_BLOB_REGISTRY")]
    pub blob_registry: Option<String>,
    /// Keep functions' key-value stores in this Redis server
    /// (`redis://[user:password@]host:port[/db]`), shared by every host
    /// that names it [default: `kv.sqlite3` in the state directory].
    #[arg(long, env = "WASMFN_KV_REDIS_URL")]
    pub kv_redis_url: Option<String>,
}

/// The arguments of `wasmfn new`.
#[derive(Debug, Args)]
pub struct NewArgs {
    /// The function's name: its folder, and its route (`/NAME`).
    pub name: String,
    /// The language of the function.
    #[arg(long, default_value = "rust", value_parser = ["rust", "python", "js"])]
    pub lang: String,
    /// The functions directory to create it in.
    #[arg(long, default_value = "functions", env = "WASMFN_DIR")]
    pub dir: PathBuf,
    /// Path of the `wasmfn-sdk` crate (default: the one this binary was built with).
    #[arg(long, env = "WASMFN_SDK")]
    pub sdk: Option<PathBuf>,
}

/// Host-wide settings and the defaults functions inherit.
#[derive(Debug, Args)]
pub struct HostArgs {
    /// The functions directory.
    #[arg(default_value = "functions", env = "WASMFN_DIR")]
    pub dir: PathBuf,
    /// Invocations running at once across all functions.
    #[arg(long, env = "WASMFN_MAX_CONCURRENCY", default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub max_concurrency: u32,
    /// The largest `max_memory_bytes` a function may set (sizes the instance pool).
    #[arg(long, env = "WASMFN_MEMORY_CEILING", default_value_t = 1 << 30, value_parser = clap::value_parser!(u64).range(65_536..=1 << 32))]
    pub memory_ceiling: u64,
    /// Where compiled components are cached; wasmtime prunes this folder, so
    /// it must not hold anything else [default: $XDG_CACHE_HOME/wasmfn/compiled
    /// or ~/.cache/wasmfn/compiled].
    #[arg(long, env = "WASMFN_CACHE_DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Compile every component at every start.
    #[arg(long, env = "WASMFN_NO_CACHE")]
    pub no_cache: bool,
    /// How OCI registries are reached: the components manifests name by
    /// `oci://` reference, and deploys from registries.
    #[command(flatten)]
    pub registries: RegistryArgs,
    /// Allocate instances on demand instead of from a pool.
    #[arg(long, env = "WASMFN_NO_POOLING")]
    pub no_pooling: bool,
    /// Bytes of each pooled memory reset in place between requests instead
    /// of returned to the kernel [default: 16 MiB where the kernel finds
    /// dirty pages (Linux 6.7+), else 64 KiB].
    #[arg(long, env = "WASMFN_KEEP_RESIDENT_BYTES", value_parser = clap::value_parser!(u64).range(0..=1 << 32))]
    pub keep_resident_bytes: Option<u64>,
    /// Copy every linear-memory image on instantiation instead of mapping
    /// small ones copy-on-write (for measurements).
    #[arg(long, env = "WASMFN_NO_MEMORY_COW")]
    pub no_memory_cow: bool,
    /// Components whose linear-memory images (data the instance starts
    /// with) are larger than this are copied into each instance instead of
    /// mapped copy-on-write: an interpreter that writes all over its heap
    /// costs less that way (Linux 6.7+; elsewhere every image is mapped).
    #[arg(long, env = "WASMFN_COW_MAX_IMAGE_BYTES", default_value_t = wasmfn_server::runtime::DEFAULT_COW_MAX_IMAGE_BYTES)]
    pub cow_max_image_bytes: u64,
    /// Instances made ahead, one per recently used function, so that a
    /// request need not wait for its instantiation (each still serves one
    /// request); host-wide, 0 to make every instance on its request.
    #[arg(long, env = "WASMFN_WARM_INSTANCES", default_value_t = 16, value_parser = clap::value_parser!(u32).range(0..=10_000))]
    pub warm_instances: u32,
    /// Default `timeout_ms` for functions that do not set it.
    #[arg(long, env = "WASMFN_DEFAULT_TIMEOUT_MS", value_parser = clap::value_parser!(u64).range(1..=3_600_000))]
    pub default_timeout_ms: Option<u64>,
    /// Default `max_concurrency` (0 = no per-function limit).
    #[arg(long, env = "WASMFN_DEFAULT_MAX_CONCURRENCY", value_parser = clap::value_parser!(u32).range(0..=100_000))]
    pub default_max_concurrency: Option<u32>,
    /// Default `max_queue`.
    #[arg(long, env = "WASMFN_DEFAULT_MAX_QUEUE", value_parser = clap::value_parser!(u32).range(0..=100_000))]
    pub default_max_queue: Option<u32>,
    /// Default `queue_timeout_ms`.
    #[arg(long, env = "WASMFN_DEFAULT_QUEUE_TIMEOUT_MS", value_parser = clap::value_parser!(u64).range(1..=3_600_000))]
    pub default_queue_timeout_ms: Option<u64>,
    /// Default `overflow_status` (429 or 503).
    #[arg(long, env = "WASMFN_DEFAULT_OVERFLOW_STATUS", value_parser = ["429", "503"])]
    pub default_overflow_status: Option<String>,
    /// Default `max_body_bytes`.
    #[arg(long, env = "WASMFN_DEFAULT_MAX_BODY_BYTES")]
    pub default_max_body_bytes: Option<u64>,
    /// Default `max_response_bytes`.
    #[arg(long, env = "WASMFN_DEFAULT_MAX_RESPONSE_BYTES", value_parser = clap::value_parser!(u64).range(1..))]
    pub default_max_response_bytes: Option<u64>,
    /// Describe the host's own `/_fn/*` endpoints in the OpenAPI document too.
    #[arg(long, env = "WASMFN_OPENAPI_ADMIN")]
    pub openapi_admin: bool,
    /// Check responses against their declared schemas and log mismatches
    /// (buffers declared JSON responses; meant for development).
    #[arg(long, env = "WASMFN_VALIDATE_RESPONSES")]
    pub validate_responses: bool,
    /// Default `max_memory_bytes`.
    #[arg(long, env = "WASMFN_DEFAULT_MAX_MEMORY_BYTES", value_parser = clap::value_parser!(u64).range(65_536..=1 << 32))]
    pub default_max_memory_bytes: Option<u64>,
    /// Default `instance_reuse`: requests one instance may serve in
    /// sequence (1: a fresh instance per request).
    #[arg(long, env = "WASMFN_DEFAULT_INSTANCE_REUSE", value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub default_instance_reuse: Option<u32>,
    /// Default `instance_idle_ms`.
    #[arg(long, env = "WASMFN_DEFAULT_INSTANCE_IDLE_MS", value_parser = clap::value_parser!(u64).range(1..=3_600_000))]
    pub default_instance_idle_ms: Option<u64>,
}

impl HostArgs {
    /// The host configuration these flags describe.
    pub fn config(&self) -> anyhow::Result<HostConfig> {
        let d = Policy::default();
        let defaults = Policy {
            timeout_ms: self.default_timeout_ms.unwrap_or(d.timeout_ms),
            max_concurrency: self.default_max_concurrency.unwrap_or(d.max_concurrency),
            max_queue: self.default_max_queue.unwrap_or(d.max_queue),
            queue_timeout_ms: self.default_queue_timeout_ms.unwrap_or(d.queue_timeout_ms),
            overflow_status: match &self.default_overflow_status {
                Some(s) => s.parse()?,
                None => d.overflow_status,
            },
            max_body_bytes: self.default_max_body_bytes.unwrap_or(d.max_body_bytes),
            max_response_bytes: self.default_max_response_bytes.unwrap_or(d.max_response_bytes),
            max_memory_bytes: self.default_max_memory_bytes.unwrap_or(d.max_memory_bytes),
            instance_reuse: self.default_instance_reuse.unwrap_or(d.instance_reuse),
            instance_idle_ms: self.default_instance_idle_ms.unwrap_or(d.instance_idle_ms),
            ..d
        };
        anyhow::ensure!(
            defaults.max_memory_bytes <= self.memory_ceiling,
            "`--default-max-memory-bytes` ({}) is above `--memory-ceiling` ({})",
            defaults.max_memory_bytes,
            self.memory_ceiling
        );
        Ok(HostConfig {
            functions_dir: self.dir.clone(),
            defaults,
            max_concurrency: self.max_concurrency,
            openapi_admin: self.openapi_admin,
            validate_responses: self.validate_responses,
            runtime: RuntimeConfig {
                max_instances: self.max_concurrency.saturating_add(16),
                memory_ceiling: self.memory_ceiling,
                pooling: !self.no_pooling,
                keep_resident: self.keep_resident_bytes,
                memory_cow: !self.no_memory_cow,
                cow_max_image_bytes: self.cow_max_image_bytes,
                warm_instances: self.warm_instances,
                cache_dir: if self.no_cache {
                    None
                } else {
                    self.cache_dir.clone().or_else(default_cache_dir)
                },
            },
            registries: self.registries.options(),
            ..HostConfig::new(&self.dir)
        })
    }
}

/// Where the state directory is by default: `$XDG_DATA_HOME/wasmfn` or
/// `~/.local/share/wasmfn`.
pub fn default_state_dir() -> Option<PathBuf> {
    std::env::var_os("XDG_DATA_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))
        .map(|d| d.join("wasmfn"))
}

impl ServeArgs {
    /// The host configuration: that of [`HostArgs`], with the admin access,
    /// the state directory and the request-head limit. `dev` opens writes
    /// to loopback clients when there are no tokens.
    pub(crate) fn config(&self, dev: bool) -> anyhow::Result<HostConfig> {
        let mut c = self.host.config()?;
        c.admin = AdminAccess {
            tokens: match &self.admin_tokens {
                Some(p) => Some(AdminTokens::load(p)?),
                None => None,
            },
            tokens_file: self.admin_tokens.clone(),
            loopback_writes: dev,
        };
        c.state_dir = Some(self.state_dir.clone().or_else(default_state_dir).ok_or_else(|| {
            anyhow::anyhow!("no state directory: set `--state-dir` (neither XDG_DATA_HOME nor HOME is set)")
        })?);
        c.keep_versions = self.keep_versions as usize;
        if let Some(p) = &self.tenants {
            // Read now, so that a broken file stops the start with its message.
            wasmfn_server::tenant::load_tenants_file(p)?;
            c.tenants_file = Some(p.clone());
        }
        c.max_deploy_bytes = self.max_deploy_bytes;
        c.state_store = self.state_store.clone();
        c.blob_registry = self.blob_registry.clone();
        c.secrets_dir = self.secrets_dir.clone();
        c.secrets_key_file = self.secrets_key_file.clone();
        if let Some(url) = &self.kv_redis_url {
            c.key_value = wasmfn_server::KeyValueBackend::Redis(url.clone());
        }
        // Read now, so that a broken credentials file stops the start with its message.
        wasmfn_oci::Registries::new(&c.registries).map_err(|e| anyhow::anyhow!("`--registry-auth`: {e}"))?;
        c.telemetry = TelemetryConfig {
            metrics: !self.no_metrics,
            access_log: self.access_log,
            traces: TraceConfig::resolve(self.otlp_endpoint.as_deref())?,
        };
        c.head_limits = HeadLimits {
            max_header_bytes: self.max_header_bytes as usize,
            ..HeadLimits::default()
        };
        Ok(c)
    }

    /// `--admin-listen` with its TLS files.
    pub(crate) fn admin_listener(&self) -> Option<AdminListener> {
        Some(AdminListener {
            addr: self.admin_listen?,
            tls: match (&self.admin_tls_cert, &self.admin_tls_key) {
                (Some(cert), Some(key)) => Some(TlsFiles {
                    cert: cert.clone(),
                    key: key.clone(),
                    client_ca: self.admin_client_ca.clone(),
                }),
                _ => None,
            },
        })
    }

    /// Refuses a toolchains folder inside the compile cache, whose cleanup
    /// would delete it.
    pub(crate) fn check_folders(&self) -> anyhow::Result<()> {
        let toolchains = self.toolchains.options().toolchains_dir;
        if let Some(cache) = self.host.cache_dir.clone().or_else(default_cache_dir)
            && !self.host.no_cache
            && toolchains.starts_with(&cache)
        {
            anyhow::bail!(
                "the toolchains folder `{}` is inside the compile cache `{}`, whose cleanup would delete it: \
                 choose another `--toolchains-dir` or `--cache-dir`",
                toolchains.display(),
                cache.display()
            );
        }
        Ok(())
    }

    /// `--drain-delay-ms` and `--drain-timeout-ms`.
    pub(crate) fn drain(&self) -> Drain {
        Drain {
            delay: std::time::Duration::from_millis(self.drain_delay_ms),
            timeout: std::time::Duration::from_millis(self.drain_timeout_ms),
        }
    }

    /// The async runtime that serves, with `--worker-threads`.
    pub(crate) fn tokio(&self) -> std::io::Result<tokio::runtime::Runtime> {
        let mut rt = tokio::runtime::Builder::new_multi_thread();
        rt.enable_all();
        if let Some(n) = self.worker_threads {
            rt.worker_threads(usize::from(n));
        }
        rt.build()
    }
}
