//! The admin client: `wasmfn deploy`, `rollback`, `undeploy` and
//! `functions` against a running host's admin surface, and `wasmfn token
//! create`; and `wasmfn push` to an OCI registry. Errors from the host
//! are printed as the host gave them.

use std::path::Path;
use std::process::ExitCode;

use serde_json::Value;

use crate::args::{ClientArgs, DeployArgs, LogsArgs, NameArgs, PushArgs, TokenCreateArgs, ToolchainArgs};
use wasmfn_server::manifest::discovery::standalone_spec;
use wasmfn_server::manifest::{FunctionManifest, MANIFEST_FILE, Policy};

/// A client for one host.
struct Admin {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
}

impl Admin {
    fn new(args: &ClientArgs) -> anyhow::Result<Self> {
        let mut b = reqwest::Client::builder().use_rustls_tls();
        if let Some(ca) = &args.ca_cert {
            let pem =
                std::fs::read(ca).map_err(|e| anyhow::anyhow!("cannot read `--ca-cert` `{}`: {e}", ca.display()))?;
            let cert = reqwest::Certificate::from_pem(&pem)
                .map_err(|e| anyhow::anyhow!("`--ca-cert` `{}` is not a PEM certificate: {e}", ca.display()))?;
            b = b.add_root_certificate(cert);
        }
        match (&args.client_cert, &args.client_key) {
            (Some(cert), Some(key)) => {
                let mut pem = std::fs::read(cert)
                    .map_err(|e| anyhow::anyhow!("cannot read `--client-cert` `{}`: {e}", cert.display()))?;
                pem.push(b'\n');
                pem.extend(
                    std::fs::read(key)
                        .map_err(|e| anyhow::anyhow!("cannot read `--client-key` `{}`: {e}", key.display()))?,
                );
                let id = reqwest::Identity::from_pem(&pem)
                    .map_err(|e| anyhow::anyhow!("`--client-cert` and `--client-key` do not make an identity: {e}"))?;
                b = b.identity(id);
            }
            (None, None) => {}
            _ => anyhow::bail!("give `--client-cert` and `--client-key` together"),
        }
        Ok(Self {
            http: b.build()?,
            base: args.url.trim_end_matches('/').to_string(),
            token: args.token.clone().filter(|t| !t.is_empty()),
        })
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let r = self.http.request(method, format!("{}{path}", self.base));
        match &self.token {
            Some(t) => r.bearer_auth(t),
            None => r,
        }
    }

    /// Sends `req`; a JSON body on success, the host's error otherwise.
    async fn send(&self, req: reqwest::RequestBuilder) -> anyhow::Result<(u16, Value)> {
        let resp = req
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("cannot reach the host at {}: {}", self.base, error_chain(&e)))?;
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        let body: Value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        if (200..300).contains(&status) {
            return Ok((status, body));
        }
        Err(host_error(status, &body))
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

/// The host's error, as it gave it: status, code, message, details, request id.
fn host_error(status: u16, body: &Value) -> anyhow::Error {
    let e = &body["error"];
    match e["message"].as_str() {
        Some(message) => {
            let mut s = format!(
                "the host answered {status} {}: {message}",
                e["code"].as_str().unwrap_or("")
            );
            if let Some(d) = e.get("details").filter(|d| !d.is_null()) {
                s.push_str(&format!("\n  details: {d}"));
            }
            if let Some(id) = body["request_id"].as_str() {
                s.push_str(&format!("\n  request id: {id}"));
            }
            anyhow::anyhow!(s)
        }
        None => anyhow::anyhow!("the host answered {status}: {body}"),
    }
}

fn block_on<T>(f: impl Future<Output = anyhow::Result<T>>) -> anyhow::Result<T> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(f)
}

/// A function folder, built and read: what `deploy` uploads and `push` publishes.
struct Folder {
    manifest: String,
    component_file: String,
    component: Vec<u8>,
    openapi: Option<String>,
}

/// Reads the function folder `dir` (deployed or pushed as `name`),
/// building it first if it has a recipe, unless `no_build`.
fn read_folder(dir: &Path, name: &str, no_build: bool, toolchains: &ToolchainArgs) -> anyhow::Result<Folder> {
    let manifest_path = dir.join(MANIFEST_FILE);
    let manifest_text = std::fs::read_to_string(&manifest_path)
        .map_err(|e| anyhow::anyhow!("cannot read `{}`: {e}", manifest_path.display()))?;
    let manifest = FunctionManifest::parse(&manifest_path, &manifest_text)?;
    let Some(component) = manifest.component.as_deref() else {
        anyhow::bail!(
            "`{}` names no `component`: a deployable function folder has a manifest with `\"component\": \"<file>.wasm\"`",
            manifest_path.display()
        );
    };
    let component_path = dir.join(component);
    let spec = standalone_spec(
        name,
        &manifest_path,
        &manifest,
        &component_path,
        None,
        &Policy::default(),
    )?;
    if wasmfn_build::Recipe::of(&spec).is_some() && !no_build {
        let report = wasmfn_build::build_all(dir, &toolchains.options())?;
        anyhow::ensure!(
            report.failed == 0,
            "the build of `{}` failed; nothing was sent",
            dir.display()
        );
    }
    let wasm = std::fs::read(&component_path)
        .map_err(|e| anyhow::anyhow!("cannot read component `{}`: {e}", component_path.display()))?;
    let openapi = match &manifest.openapi {
        Some(o) => {
            let p = dir.join(o);
            Some(std::fs::read_to_string(&p).map_err(|e| anyhow::anyhow!("cannot read `{}`: {e}", p.display()))?)
        }
        None => None,
    };
    Ok(Folder {
        manifest: manifest_text,
        component_file: component.to_string(),
        component: wasm,
        openapi,
    })
}

/// `wasmfn deploy DIR`: builds the function if it has a recipe and is out
/// of date, then uploads its manifest, component and fragment. `wasmfn
/// deploy oci://…`: the host pulls the artifact itself.
pub(crate) fn deploy(args: &DeployArgs) -> anyhow::Result<ExitCode> {
    let target = args.dir.to_string_lossy();
    let (name, request) = if wasmfn_oci::OciRef::is_oci(&target) {
        let reference = wasmfn_oci::OciRef::parse(&target)?;
        let name = match &args.name {
            Some(n) => n.clone(),
            None => reference_name(&reference)?,
        };
        let mut body = serde_json::json!({ "component": target });
        if let Some(path) = &args.manifest {
            let text = std::fs::read_to_string(path)
                .map_err(|e| anyhow::anyhow!("cannot read `--manifest` `{}`: {e}", path.display()))?;
            FunctionManifest::parse(path, &text)?;
            body["manifest"] = Value::String(text);
        }
        (name, Request::Json(body))
    } else {
        anyhow::ensure!(
            args.manifest.is_none(),
            "`--manifest` goes with an OCI reference; a folder deploys its own `fn.config.json`"
        );
        let name = match &args.name {
            Some(n) => n.clone(),
            None => folder_name(&args.dir)?,
        };
        let folder = read_folder(&args.dir, &name, args.no_build, &args.toolchains)?;
        let mut form = reqwest::multipart::Form::new()
            .part(
                "manifest",
                reqwest::multipart::Part::text(folder.manifest).mime_str("application/json")?,
            )
            .part(
                "component",
                reqwest::multipart::Part::bytes(folder.component)
                    .file_name(folder.component_file)
                    .mime_str("application/wasm")?,
            );
        if let Some(text) = folder.openapi {
            form = form.part(
                "openapi",
                reqwest::multipart::Part::text(text).mime_str("application/json")?,
            );
        }
        (name, Request::Form(form))
    };
    let admin = Admin::new(&args.client)?;
    let put = admin.request(
        reqwest::Method::PUT,
        &format!("{}/{name}", args.client.functions_path()),
    );
    let put = match request {
        Request::Json(body) => put.json(&body),
        Request::Form(form) => put.multipart(form),
    };
    let (status, body) = block_on(admin.send(put))?;
    let what = match (status, body["changed"].as_bool()) {
        (201, _) => "deployed (new)",
        (_, Some(false)) => "unchanged (the same version serves)",
        _ => "deployed",
    };
    println!(
        "{name}: {what}, {} on {}",
        body["digest"].as_str().unwrap_or("?"),
        body["routes"]
            .as_array()
            .map(|r| r.iter().filter_map(|r| r.as_str()).collect::<Vec<_>>().join(", "))
            .unwrap_or_default()
    );
    Ok(ExitCode::SUCCESS)
}

/// A deploy's body: an upload, or a reference the host pulls.
enum Request {
    Form(reqwest::multipart::Form),
    Json(Value),
}

/// The function name an OCI reference suggests: its repository's last segment.
fn reference_name(reference: &wasmfn_oci::OciRef) -> anyhow::Result<String> {
    let name = reference
        .repository()
        .rsplit('/')
        .next()
        .unwrap_or_default()
        .to_string();
    anyhow::ensure!(
        wasmfn_server::deploy::is_valid_name(&name),
        "the repository name `{name}` is not a function name (1 to 63 of a-z, 0-9, `-`); give `--name`"
    );
    Ok(name)
}

/// `wasmfn push DIR oci://…`: builds the function if it has a recipe and
/// is out of date, then publishes it as a Wasm OCI artifact; prints the
/// reference pinned to the digest the registry gave it.
pub(crate) fn push(args: &PushArgs) -> anyhow::Result<ExitCode> {
    let reference = wasmfn_oci::OciRef::parse(&args.reference)?;
    let name = folder_name(&args.dir).unwrap_or_else(|_| "function".into());
    let folder = read_folder(&args.dir, &name, args.no_build, &args.toolchains)?;
    let registries = wasmfn_oci::Registries::new(&args.registries.options())?;
    let pinned = block_on(async {
        Ok(registries
            .push(
                &reference,
                wasmfn_oci::Artifact {
                    component: &folder.component,
                    manifest: &folder.manifest,
                    openapi: folder.openapi.as_deref(),
                },
            )
            .await?)
    })?;
    println!("{}", pinned.digest().unwrap_or("?"));
    eprintln!("pushed {reference} as {pinned}");
    Ok(ExitCode::SUCCESS)
}

fn folder_name(dir: &Path) -> anyhow::Result<String> {
    let abs = std::path::absolute(dir)?;
    let name = abs
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| anyhow::anyhow!("`{}` has no folder name; give `--name`", dir.display()))?
        .to_string();
    anyhow::ensure!(
        wasmfn_server::deploy::is_valid_name(&name),
        "the folder name `{name}` is not a function name (1 to 63 of a-z, 0-9, `-`); give `--name`"
    );
    Ok(name)
}

/// `wasmfn rollback NAME`.
pub(crate) fn rollback(args: &NameArgs) -> anyhow::Result<ExitCode> {
    let admin = Admin::new(&args.client)?;
    let path = format!("{}/{}/rollback", args.client.functions_path(), args.name);
    let (_, body) = block_on(admin.send(admin.request(reqwest::Method::POST, &path)))?;
    println!(
        "{}: rolled back; {} serves",
        args.name,
        body["digest"].as_str().unwrap_or("?")
    );
    Ok(ExitCode::SUCCESS)
}

/// `wasmfn undeploy NAME`.
pub(crate) fn undeploy(args: &NameArgs) -> anyhow::Result<ExitCode> {
    let admin = Admin::new(&args.client)?;
    let path = format!("{}/{}", args.client.functions_path(), args.name);
    block_on(admin.send(admin.request(reqwest::Method::DELETE, &path)))?;
    println!("{}: undeployed", args.name);
    Ok(ExitCode::SUCCESS)
}

/// `wasmfn functions`: a table of every function the host serves.
pub(crate) fn functions(args: &ClientArgs) -> anyhow::Result<ExitCode> {
    let admin = Admin::new(args)?;
    let (_, body) = block_on(admin.send(admin.request(reqwest::Method::GET, &args.functions_path())))?;
    let mut rows = vec![[
        "NAME".to_string(),
        "ORIGIN".into(),
        "STATE".into(),
        "DIGEST".into(),
        "VERSIONS".into(),
        "ROUTES".into(),
    ]];
    for f in body["functions"].as_array().into_iter().flatten() {
        let s = |k: &str| f[k].as_str().unwrap_or("-").to_string();
        let digest = f["digest"]
            .as_str()
            .map(|d| d.trim_start_matches("sha256:").chars().take(12).collect())
            .unwrap_or_else(|| "-".into());
        let versions = f["versions"]
            .as_array()
            .map_or("-".to_string(), |v| v.len().to_string());
        let routes = f["routes"]
            .as_array()
            .map(|r| r.iter().filter_map(|r| r.as_str()).collect::<Vec<_>>().join(" "))
            .unwrap_or_default();
        rows.push([s("name"), s("origin"), s("state"), digest, versions, routes]);
    }
    let widths: Vec<usize> = (0..6)
        .map(|i| rows.iter().map(|r| r[i].len()).max().unwrap_or(0))
        .collect();
    for r in &rows {
        let line: Vec<String> = r.iter().zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect();
        println!("{}", line.join("  ").trim_end());
    }
    Ok(ExitCode::SUCCESS)
}

/// `wasmfn logs`: the function's last lines, then (`-f`) each new one as
/// the host streams it, until interrupted or the host goes away.
pub(crate) fn logs(args: &LogsArgs) -> anyhow::Result<ExitCode> {
    let admin = Admin::new(&args.client)?;
    let path = format!(
        "{}/{}/logs?tail={}{}",
        args.client.functions_path(),
        args.name,
        args.tail,
        if args.follow { "&follow=1" } else { "" }
    );
    block_on(async {
        if !args.follow {
            let (_, body) = admin.send(admin.request(reqwest::Method::GET, &path)).await?;
            for line in body["lines"].as_array().into_iter().flatten() {
                println!("{}", log_line(line));
            }
            return Ok(ExitCode::SUCCESS);
        }
        let mut resp = admin
            .request(reqwest::Method::GET, &path)
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("cannot reach the host at {}: {}", admin.base, error_chain(&e)))?;
        let status = resp.status().as_u16();
        if !(200..300).contains(&status) {
            let text = resp.text().await.unwrap_or_default();
            return Err(host_error(
                status,
                &serde_json::from_str(&text).unwrap_or(Value::String(text)),
            ));
        }
        // Server-sent events: `data:` lines, one JSON log line each; an
        // event named `lagged` says how many lines were missed.
        let mut pending = String::new();
        let mut event = String::new();
        while let Some(chunk) = resp
            .chunk()
            .await
            .map_err(|e| anyhow::anyhow!("the stream from {} broke: {}", admin.base, error_chain(&e)))?
        {
            pending.push_str(&String::from_utf8_lossy(&chunk));
            while let Some(end) = pending.find('\n') {
                let line: String = pending.drain(..=end).collect();
                let line = line.trim_end_matches(['\r', '\n']);
                if let Some(name) = line.strip_prefix("event:") {
                    event = name.trim().to_string();
                } else if let Some(data) = line.strip_prefix("data:") {
                    let data = data.trim_start();
                    if event == "lagged" {
                        eprintln!("({data} lines were missed: this client fell behind)");
                    } else if let Ok(v) = serde_json::from_str::<Value>(data) {
                        println!("{}", log_line(&v));
                    }
                } else if line.is_empty() {
                    event.clear();
                }
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}

/// `TIME KIND REQUEST-ID TEXT`.
fn log_line(v: &Value) -> String {
    let s = |k: &str| v[k].as_str().unwrap_or("-");
    format!("{} {:<6} {} {}", s("time"), s("kind"), s("request_id"), s("text"))
}

/// `wasmfn token create`: prints a new token once, and its entry for the token file.
pub(crate) fn token_create(args: &TokenCreateArgs) -> anyhow::Result<ExitCode> {
    let (token, entry) = wasmfn_server::auth::new_token(&args.id, &args.scope, args.tenant.as_deref())?;
    println!("token (shown once; give it to the client as WASMFN_TOKEN or `--token`):");
    println!("{token}");
    println!();
    println!("entry for the admin token file (`--admin-tokens`, a JSON list):");
    println!("{entry}");
    Ok(ExitCode::SUCCESS)
}
