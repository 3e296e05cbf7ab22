//! Functions as OCI artifacts, against a real registry (Debian's
//! `docker-registry`, the CNCF distribution server) on a loopback port:
//! `wasmfn push`, deploys by tag and by digest through the API and the
//! CLI, the catalog's reference and digest, and every way a pull fails
//! while the previous version keeps serving.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::harness::*;

/// A `docker-registry` of the test's own on a loopback port, storing in a
/// temporary folder; killed when dropped.
pub(crate) struct Registry {
    child: std::process::Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Registry {
    /// Starts one; a machine without `docker-registry` fails the test.
    pub(crate) fn start() -> Self {
        Self::start_with(false)
    }

    /// Starts one that takes the user `ci` with the password `pushed-by-ci`
    /// (HTTP basic authentication) and nobody else.
    fn with_credentials() -> Self {
        Self::start_with(true)
    }

    fn start_with(credentials: bool) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let config = dir.path().join("config.yml");
        let mut text = format!(
            "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n\
             http:\n  addr: 127.0.0.1:{port}\n",
            dir.path().join("data").display()
        );
        if credentials {
            // bcrypt (cost 4) of `pushed-by-ci`.
            let htpasswd = dir.path().join("htpasswd");
            std::fs::write(
                &htpasswd,
                "ci:$2b$04$BvlMHWrUG/Zk.lQXonwJfub/KHRT7SVPDjfCZCI8GiaKNxQEnX3Ca\n",
            )
            .unwrap();
            text.push_str(&format!(
                "auth:\n  htpasswd:\n    realm: wasmfn-tests\n    path: {}\n",
                htpasswd.display()
            ));
        }
        std::fs::write(&config, text).unwrap();
        let child = std::process::Command::new("docker-registry")
            .arg("serve")
            .arg(&config)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start `docker-registry` ({e}): the OCI tests need a real registry; install it \
                     (Debian: `apt-get install docker-registry`), as .ci/run does"
                )
            });
        let mut registry = Self { child, port, _dir: dir };
        let end = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = registry.child.try_wait().unwrap() {
                panic!("docker-registry exited ({status}) before listening on {port}");
            }
            if answers(port) {
                break;
            }
            assert!(
                Instant::now() < end,
                "docker-registry did not answer on {port} within 20 s"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        registry
    }

    /// `127.0.0.1:PORT`.
    pub(crate) fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// `oci://127.0.0.1:PORT/REST`.
    pub(crate) fn reference(&self, rest: &str) -> String {
        format!("oci://{}/{rest}", self.host())
    }

    /// Stores an artifact by hand (the registry's own API, bypassing
    /// `wasmfn push`): a config and one layer of the types given, and the
    /// manifest's annotations; gives the manifest's digest.
    async fn put_raw(
        &self,
        repository: &str,
        tag: &str,
        (config_type, config): (&str, &[u8]),
        (layer_type, layer): (&str, &[u8]),
        annotations: Value,
    ) -> String {
        let c = reqwest::Client::new();
        let base = format!("http://{}", self.host());
        for blob in [config, layer] {
            let r = c
                .post(format!("{base}/v2/{repository}/blobs/uploads/"))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 202, "{}", r.text().await.unwrap());
            let location = r.headers()["location"].to_str().unwrap().to_string();
            let location = if location.starts_with("http") {
                location
            } else {
                format!("{base}{location}")
            };
            let sep = if location.contains('?') { '&' } else { '?' };
            let r = c
                .put(format!("{location}{sep}digest={}", sha256(blob)))
                .header("content-type", "application/octet-stream")
                .body(blob.to_vec())
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
        }
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": config_type, "digest": sha256(config), "size": config.len()},
            "layers": [{"mediaType": layer_type, "digest": sha256(layer), "size": layer.len()}],
            "annotations": annotations,
        })
        .to_string();
        let r = c
            .put(format!("{base}/v2/{repository}/manifests/{tag}"))
            .header("content-type", "application/vnd.oci.image.manifest.v1+json")
            .body(manifest.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
        sha256(manifest.as_bytes())
    }

    /// Kills the registry and waits for it.
    fn stop(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether the registry at `port` answers `GET /v2/` (a plain
/// TCP request: the registry starts before any client runtime).
fn answers(port: u16) -> bool {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    if write!(s, "GET /v2/ HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").is_err() {
        return false;
    }
    // 200, or 401 from a registry that wants credentials.
    let mut head = [0u8; 12];
    s.read_exact(&mut head).is_ok() && matches!(&head[9..12], b"200" | b"401")
}

fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", wasmfn_server::state::sha256_hex(bytes))
}

/// A function folder: `fn.config.json` with `extra`, and `guest_name`'s component beside it.
pub(crate) fn folder(root: &Path, name: &str, guest_name: &str, extra: Value) -> PathBuf {
    let dir = root.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(guest(guest_name), dir.join("f.wasm")).unwrap();
    let mut manifest = json!({"component": "f.wasm"});
    for (k, v) in extra.as_object().unwrap() {
        manifest[k] = v.clone();
    }
    std::fs::write(dir.join("fn.config.json"), manifest.to_string()).unwrap();
    dir
}

/// `wasmfn push DIR REF` with the registry listed as plain HTTP; gives the digest it printed.
pub(crate) fn push(registry: &Registry, dir: &Path, reference: &str) -> String {
    let (ok, out, err) = wasmfn(
        &[
            "push",
            dir.to_str().unwrap(),
            reference,
            "--no-build",
            "--insecure-registry",
            &registry.host(),
        ],
        &[],
    );
    assert!(ok, "push failed: {err}");
    let digest = out.trim().to_string();
    assert!(digest.starts_with("sha256:") && digest.len() == 71, "{out}");
    assert!(err.contains(&format!("@{digest}")), "{err}");
    digest
}

/// A host with a deploy token that may reach `registry` over plain HTTP.
async fn host(fx: &Fixture, registry: &Registry) -> (Served, String) {
    host_with(fx, registry, None).await
}

/// The same, with `--registry-auth AUTH`.
async fn host_with(fx: &Fixture, registry: &Registry, auth: Option<&Path>) -> (Served, String) {
    let (file, t) = tokens(fx.path(), &[("ci", &["admin"])]);
    let host = registry.host();
    let mut flags = vec!["--admin-tokens", file.to_str().unwrap(), "--insecure-registry", &host];
    if let Some(a) = auth {
        flags.extend(["--registry-auth", a.to_str().unwrap()]);
    }
    let served = serve(fx.path(), &flags).await;
    (served, t["ci"].clone())
}

/// `PUT /_fn/functions/NAME` with a JSON body; status and answer.
async fn deploy(base: &str, token: &str, name: &str, body: Value) -> (u16, Value) {
    let r = reqwest::Client::new()
        .put(format!("{base}/_fn/functions/{name}"))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

async fn entry(base: &str, token: &str, name: &str) -> Value {
    let r = reqwest::Client::new()
        .get(format!("{base}/_fn/functions/{name}"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

async fn body_of(base: &str, path: &str) -> (u16, String) {
    let r = reqwest::get(format!("{base}{path}")).await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

#[tokio::test]
async fn pushed_functions_deploy_by_tag_and_digest_and_the_catalog_shows_both() {
    let registry = Registry::start();
    let fx = Fixture::new();
    let work = tempfile::tempdir().unwrap();
    let v1 = folder(work.path(), "v1", "hello_plain", json!({"description": "v1"}));
    let v2 = folder(
        work.path(),
        "v2",
        "probe",
        json!({"description": "v2", "invoke": {"routes": ["/hello", "/hi"]}}),
    );
    let tag = registry.reference("functions/hello:1.0");
    let d1 = push(&registry, &v1, &tag);
    // The same folder again is the same artifact: its digest is the content's.
    assert_eq!(push(&registry, &v1, &tag), d1);

    let (served, token) = host(&fx, &registry).await;
    let base = served.base.clone();
    let (status, body) = deploy(&base, &token, "hello", json!({"component": tag})).await;
    assert_eq!(status, 201, "{body}");
    let component = sha256(&std::fs::read(v1.join("f.wasm")).unwrap());
    assert_eq!(body["digest"], component);
    assert_eq!(body["routes"], json!(["/hello"]));
    assert_eq!(body_of(&base, "/hello").await, (200, "plain hello\n".to_string()));
    // The manifest came with the artifact.
    let e = entry(&base, &token, "hello").await;
    assert_eq!(e["source"], json!({"reference": tag, "digest": d1}));
    assert_eq!(e["versions"][0]["source"], json!({"reference": tag, "digest": d1}));
    assert_eq!(e["versions"][0]["deployed_by"], "ci");

    // The tag moves on: what serves does not, until a deploy resolves it again.
    let d2 = push(&registry, &v2, &tag);
    assert_ne!(d1, d2);
    assert_eq!(body_of(&base, "/hi").await.0, 404);
    let (status, body) = deploy(&base, &token, "hello", json!({"component": tag})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["routes"], json!(["/hello", "/hi"]));
    assert_eq!(body_of(&base, "/hi").await.0, 200);
    let e = entry(&base, &token, "hello").await;
    assert_eq!(e["source"]["digest"], d2);
    assert_eq!(e["versions"][1]["source"]["digest"], d1);

    // The same tag again, unmoved: nothing changes.
    let (status, body) = deploy(&base, &token, "hello", json!({"component": tag})).await;
    assert_eq!((status, &body["changed"]), (200, &json!(false)), "{body}");

    // By digest, through the CLI, as another name with a manifest of its own.
    let pinned = registry.reference(&format!("functions/hello@{d1}"));
    let manifest = work.path().join("other.json");
    std::fs::write(&manifest, json!({"invoke": {"routes": ["/other"]}}).to_string()).unwrap();
    let (ok, out, err) = wasmfn(
        &[
            "deploy",
            &pinned,
            "--name",
            "other",
            "--manifest",
            manifest.to_str().unwrap(),
            "--url",
            &base,
            "--token",
            &token,
        ],
        &[],
    );
    assert!(ok, "{err}");
    assert!(
        out.contains("other: deployed (new)") && out.contains(&component),
        "{out}"
    );
    assert_eq!(body_of(&base, "/other").await, (200, "plain hello\n".to_string()));
    let e = entry(&base, &token, "other").await;
    assert_eq!(e["source"], json!({"reference": pinned, "digest": d1}));
    // The CLI names a deploy by its repository when no name is given.
    let (ok, out, err) = wasmfn(
        &[
            "deploy",
            &registry.reference(&format!("functions/hello@{d1}")),
            "--url",
            &base,
            "--token",
            &token,
        ],
        &[],
    );
    assert!(ok, "{err}");
    assert!(out.starts_with("hello: deployed"), "{out}");
    assert_eq!(body_of(&base, "/hi").await.0, 404);

    // Served again after a restart, from the state directory alone.
    drop(registry);
    let state = served.state.as_ref().unwrap().path().to_path_buf();
    let mut child = served.child;
    child.kill().await.unwrap();
    let (file, t) = tokens(fx.path(), &[("ci", &["admin"])]);
    let again = serve(
        fx.path(),
        &[
            "--admin-tokens",
            file.to_str().unwrap(),
            "--state-dir",
            state.to_str().unwrap(),
        ],
    )
    .await;
    assert_eq!(body_of(&again.base, "/other").await, (200, "plain hello\n".to_string()));
    assert_eq!(body_of(&again.base, "/hello").await, (200, "plain hello\n".to_string()));
    assert_eq!(body_of(&again.base, "/hi").await.0, 404);
    let e = entry(&again.base, &t["ci"], "other").await;
    assert_eq!(e["source"]["digest"], d1);
}

#[tokio::test]
async fn a_pull_that_fails_says_why_and_the_previous_version_keeps_serving() {
    let registry = Registry::start();
    let fx = Fixture::new();
    let work = tempfile::tempdir().unwrap();
    let v1 = folder(work.path(), "v1", "hello_plain", json!({}));
    let tag = registry.reference("functions/hello:1.0");
    let d1 = push(&registry, &v1, &tag);
    let (served, token) = host(&fx, &registry).await;
    let base = served.base.clone();
    assert_eq!(deploy(&base, &token, "hello", json!({"component": tag})).await.0, 201);

    // Artifacts the registry holds but that are not functions.
    let core_module = b"\0asm\x01\0\0\0";
    let component = std::fs::read(v1.join("f.wasm")).unwrap();
    let wasm_config = ("application/vnd.wasm.config.v0+json", &b"{}"[..]);
    registry
        .put_raw(
            "functions/image",
            "1",
            ("application/vnd.oci.image.config.v1+json", &b"{}"[..]),
            ("application/vnd.oci.image.layer.v1.tar", &b"tar"[..]),
            json!({}),
        )
        .await;
    registry
        .put_raw(
            "functions/core",
            "1",
            wasm_config,
            ("application/wasm", &core_module[..]),
            json!({}),
        )
        .await;
    let bare = registry
        .put_raw(
            "functions/bare",
            "1",
            wasm_config,
            ("application/wasm", &component[..]),
            json!({}),
        )
        .await;

    let unlisted = format!("oci://localhost:{}/functions/hello:1.0", registry.port);
    // (body, status, code, what the message says)
    let cases: Vec<(Value, u16, &str, String)> = vec![
        (
            json!({"component": registry.reference("functions/hello:nope")}),
            422,
            "invalid_artifact",
            "not in the registry".into(),
        ),
        (
            json!({"component": registry.reference("functions/nothing:1.0")}),
            422,
            "invalid_artifact",
            "not in the registry".into(),
        ),
        (
            json!({"component": registry.reference(&format!("functions/hello@sha256:{}", "0".repeat(64)))}),
            422,
            "invalid_artifact",
            "not in the registry".into(),
        ),
        (
            json!({"component": registry.reference("functions/image:1")}),
            422,
            "invalid_artifact",
            "not a wasm component artifact: its config is `application/vnd.oci.image.config.v1+json`".into(),
        ),
        (
            json!({"component": registry.reference("functions/core:1")}),
            422,
            "invalid_artifact",
            "not a WebAssembly component".into(),
        ),
        (
            json!({"component": registry.reference("functions/bare:1")}),
            400,
            "bad_upload",
            "carries no manifest".into(),
        ),
        (
            json!({"component": "oci://hello:1.0"}),
            422,
            "invalid_artifact",
            "field `component`: `oci://hello:1.0` is not an OCI reference".into(),
        ),
        (
            json!({"component": tag, "manifest": {"timeout_ms": "soon"}}),
            422,
            "invalid_function",
            "timeout_ms".into(),
        ),
        (
            json!({"manifest": {}}),
            400,
            "bad_upload",
            "missing field `component`".into(),
        ),
        (
            json!({"component": unlisted}),
            502,
            "registry_unavailable",
            format!("`--insecure-registry localhost:{}`", registry.port),
        ),
    ];
    for (body, status, code, says) in cases {
        let (got, answer) = deploy(&base, &token, "hello", body.clone()).await;
        assert_eq!(
            (got, answer["error"]["code"].as_str()),
            (status, Some(code)),
            "{body}: {answer}"
        );
        let message = answer["error"]["message"].as_str().unwrap();
        assert!(message.contains(&says), "{body}: {message}");
        assert_eq!(body_of(&base, "/hello").await, (200, "plain hello\n".to_string()));
        assert_eq!(entry(&base, &token, "hello").await["source"]["digest"], d1);
    }

    // A bare component deploys with the manifest the body gives.
    let (status, answer) = deploy(
        &base,
        &token,
        "bare",
        json!({"component": registry.reference("functions/bare:1"), "manifest": {"invoke": {"routes": ["/bare"]}}}),
    )
    .await;
    assert_eq!(status, 201, "{answer}");
    assert_eq!(entry(&base, &token, "bare").await["source"]["digest"], bare);

    // The registry gone: 502, and everything still serves.
    let port = registry.port;
    registry.stop();
    let (status, answer) = deploy(&base, &token, "hello", json!({"component": tag})).await;
    assert_eq!(status, 502, "{answer}");
    assert_eq!(answer["error"]["code"], "registry_unavailable");
    let message = answer["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("the registry cannot be reached") && message.contains(&port.to_string()),
        "{message}"
    );
    assert_eq!(body_of(&base, "/hello").await, (200, "plain hello\n".to_string()));
    assert_eq!(body_of(&base, "/bare").await.0, 200);
}

#[tokio::test]
async fn push_refuses_what_it_cannot_publish_naming_the_fix() {
    let registry = Registry::start();
    let work = tempfile::tempdir().unwrap();
    let good = folder(work.path(), "good", "hello_plain", json!({}));
    let core = work.path().join("core");
    std::fs::create_dir_all(&core).unwrap();
    std::fs::write(core.join("f.wasm"), b"\0asm\x01\0\0\0").unwrap();
    std::fs::write(core.join("fn.config.json"), r#"{"component": "f.wasm"}"#).unwrap();
    let bad_auth = work.path().join("auth.json");
    std::fs::write(&bad_auth, r#"{"credsStore": "desktop"}"#).unwrap();
    let tag = registry.reference("functions/x:1");
    let pinned = format!("{tag}@sha256:{}", "a".repeat(64));
    let host = registry.host();

    let cases: Vec<(Vec<&str>, String)> = vec![
        (
            vec!["push", good.to_str().unwrap(), &tag],
            format!("`--insecure-registry {host}`"),
        ),
        (
            vec!["push", core.to_str().unwrap(), &tag, "--insecure-registry", &host],
            "not a WebAssembly component".into(),
        ),
        (
            vec![
                "push",
                good.to_str().unwrap(),
                "oci://x/y",
                "--insecure-registry",
                &host,
            ],
            "names no registry host".into(),
        ),
        (
            vec!["push", good.to_str().unwrap(), &pinned, "--insecure-registry", &host],
            "push to a tag".into(),
        ),
        (
            vec![
                "push",
                good.to_str().unwrap(),
                &tag,
                "--insecure-registry",
                &host,
                "--registry-auth",
                bad_auth.to_str().unwrap(),
            ],
            format!("{}", bad_auth.display()),
        ),
    ];
    for (args, says) in cases {
        let (ok, _, err) = wasmfn(&args, &[]);
        assert!(!ok, "{args:?} succeeded");
        assert!(err.contains(&says), "{args:?}: {err}");
    }
    // Nothing was published under the tag.
    let r = reqwest::get(format!("http://{host}/v2/functions/x/tags/list"))
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
}

#[tokio::test]
async fn credentials_come_from_the_auth_file_for_push_and_deploy() {
    let registry = Registry::with_credentials();
    let work = tempfile::tempdir().unwrap();
    let dir = folder(work.path(), "hello", "hello_plain", json!({}));
    let host = registry.host();
    let auth_file = |name: &str, auth: &str| {
        let p = work.path().join(name);
        std::fs::write(&p, json!({"auths": {host.clone(): {"auth": auth}}}).to_string()).unwrap();
        p
    };
    // base64 of `ci:pushed-by-ci` and of `ci:wrong`.
    let good = auth_file("good.json", "Y2k6cHVzaGVkLWJ5LWNp");
    let wrong = auth_file("wrong.json", "Y2k6d3Jvbmc=");
    let tag = registry.reference("functions/hello:1");
    let push_with = |auth: Option<&Path>| {
        let mut args = vec!["push", dir.to_str().unwrap(), &tag, "--insecure-registry", &host];
        if let Some(a) = auth {
            args.extend(["--registry-auth", a.to_str().unwrap()]);
        }
        wasmfn(&args, &[])
    };
    for auth in [None, Some(wrong.as_path())] {
        let (ok, _, err) = push_with(auth);
        assert!(!ok, "pushed with {auth:?}");
        assert!(
            err.contains("the registry refused access") && err.contains("--registry-auth"),
            "{err}"
        );
    }
    let (ok, out, err) = push_with(Some(&good));
    assert!(ok, "{err}");
    let digest = out.trim().to_string();

    // A host without the credentials is refused; one with them deploys.
    let fx = Fixture::new();
    let (without, token) = host_with(&fx, &registry, None).await;
    let (status, answer) = deploy(&without.base, &token, "hello", json!({"component": tag})).await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (422, Some("invalid_artifact")),
        "{answer}"
    );
    let message = answer["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("refused access") && message.contains("--registry-auth"),
        "{message}"
    );
    assert!(!message.contains("pushed-by-ci"), "{message}");
    let (with, token) = host_with(&fx, &registry, Some(&good)).await;
    let (status, answer) = deploy(&with.base, &token, "hello", json!({"component": tag})).await;
    assert_eq!(status, 201, "{answer}");
    assert_eq!(entry(&with.base, &token, "hello").await["source"]["digest"], digest);
    assert_eq!(body_of(&with.base, "/hello").await, (200, "plain hello\n".to_string()));

    // A credentials file that cannot be used stops the start, naming it.
    let broken = work.path().join("broken.json");
    std::fs::write(&broken, "{").unwrap();
    let state = tempfile::tempdir().unwrap();
    let (ok, _, err) = wasmfn(
        &[
            "serve",
            fx.path().to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
            "--state-dir",
            state.path().to_str().unwrap(),
            "--registry-auth",
            broken.to_str().unwrap(),
        ],
        &[],
    );
    assert!(!ok);
    assert!(
        err.contains("--registry-auth") && err.contains(&broken.display().to_string()),
        "{err}"
    );
}

/// `POST /_fn/reload`, then the catalog's entry for `name`.
async fn reload_and_entry(base: &str, token: &str, name: &str) -> Value {
    let c = reqwest::Client::new();
    let r = c
        .post(format!("{base}/_fn/reload"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let catalog: Value = c
        .get(format!("{base}/_fn/catalog"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    catalog_entry(&catalog, name)
}

#[tokio::test]
async fn a_functions_directory_names_components_by_reference_pinned_until_it_names_another() {
    let registry = Registry::start();
    let work = tempfile::tempdir().unwrap();
    // v1 carries a fragment: the probe requires `n`.
    let v1 = folder(
        work.path(),
        "v1",
        "probe",
        json!({"openapi": "api.json", "invoke": {"methods": ["GET"]}}),
    );
    std::fs::write(
        v1.join("api.json"),
        json!({"paths": {"/": {"get": {"parameters": [{"name": "n", "in": "query", "required": true, "schema": {"type": "integer"}}],
                 "responses": {"200": {"description": "the probe's echo"}}}}}})
        .to_string(),
    )
    .unwrap();
    let v2 = folder(work.path(), "v2", "hello_plain", json!({}));
    let tag = registry.reference("functions/probe:1");
    let d1 = push(&registry, &v1, &tag);

    let fx = Fixture::new();
    let manifest = |component: &str| {
        fx.file(
            "probe/fn.config.json",
            &json!({"component": component, "invoke": {"methods": ["GET"]}}).to_string(),
        );
    };
    manifest(&tag);
    let state = tempfile::tempdir().unwrap();
    let (file, t) = tokens(work.path(), &[("ci", &["admin"])]);
    let token = t["ci"].clone();
    let host = registry.host();
    let flags = [
        "--admin-tokens",
        file.to_str().unwrap(),
        "--state-dir",
        state.path().to_str().unwrap(),
        "--insecure-registry",
        &host,
    ];
    let served = serve(fx.path(), &flags).await;
    let base = served.base.clone();
    // The component and the fragment the artifact carries.
    assert_eq!(body_of(&base, "/probe?n=3").await.0, 200);
    assert_eq!(body_of(&base, "/probe").await.0, 422);
    let e = reload_and_entry(&base, &token, "probe").await;
    assert_eq!(e["state"], "ready", "{e}");
    assert_eq!(e["artifact"], json!({"reference": tag, "digest": d1}));

    // The tag moves on; a reload keeps the pin.
    let d2 = push(&registry, &v2, &tag);
    let e = reload_and_entry(&base, &token, "probe").await;
    assert_eq!(e["artifact"]["digest"], d1);
    assert_eq!(body_of(&base, "/probe").await.0, 422);

    // Another reference in the manifest resolves anew.
    let pinned = registry.reference(&format!("functions/probe@{d2}"));
    manifest(&pinned);
    let e = reload_and_entry(&base, &token, "probe").await;
    assert_eq!(e["artifact"], json!({"reference": pinned, "digest": d2}));
    assert_eq!(body_of(&base, "/probe").await, (200, "plain hello\n".to_string()));

    // One that cannot be pulled: the previous version keeps serving, the reason is shown.
    manifest(&registry.reference("functions/probe:missing"));
    let e = reload_and_entry(&base, &token, "probe").await;
    let error = e["reload_error"].as_str().unwrap_or_default();
    assert!(
        error.contains("field `component`") && error.contains("not in the registry"),
        "{e}"
    );
    assert_eq!(body_of(&base, "/probe").await, (200, "plain hello\n".to_string()));

    // Without the registry, a restart serves what the pins name.
    manifest(&pinned);
    drop(registry);
    let mut child = served.child;
    child.kill().await.unwrap();
    let again = serve(fx.path(), &flags).await;
    assert_eq!(body_of(&again.base, "/probe").await, (200, "plain hello\n".to_string()));
    let e = reload_and_entry(&again.base, &token, "probe").await;
    assert_eq!(e["artifact"]["digest"], d2);
    // A new reference with the registry gone: the reason, and the old one serves.
    manifest(&format!("oci://{host}/functions/probe:2"));
    let e = reload_and_entry(&again.base, &token, "probe").await;
    let error = e["reload_error"].as_str().unwrap_or_default();
    assert!(error.contains("the registry cannot be reached"), "{e}");
    assert_eq!(body_of(&again.base, "/probe").await, (200, "plain hello\n".to_string()));
}
