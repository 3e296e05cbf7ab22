//! The admin listener with TLS and client certificates, and the
//! request-head limit.

use serde_json::json;

use super::*;

/// A CA, a server certificate for `localhost` and 127.0.0.1, and a client
/// certificate, written as PEM files under `dir`.
fn certificates(dir: &Path) -> HashMap<&'static str, PathBuf> {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name.push(rcgen::DnType::CommonName, "wasmfn test CA");
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let server_key = KeyPair::generate().unwrap();
    let server = CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
        .unwrap()
        .signed_by(&server_key, &ca_cert, &ca_key)
        .unwrap();
    let client_key = KeyPair::generate().unwrap();
    let mut client_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    client_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "deployer");
    client_params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    let client = client_params.signed_by(&client_key, &ca_cert, &ca_key).unwrap();
    let mut out = HashMap::new();
    for (name, pem) in [
        ("ca", ca_cert.pem()),
        ("server", server.pem()),
        ("server_key", server_key.serialize_pem()),
        ("client", client.pem()),
        ("client_key", client_key.serialize_pem()),
    ] {
        let p = dir.join(format!("{name}.pem"));
        std::fs::write(&p, pem).unwrap();
        out.insert(name, p);
    }
    out
}

/// Serves DIR with FLAGS (an admin listener among them); the server, the
/// admin listener's address (from its log line) and port.
async fn serve_tls(dir: &Path, flags: &[&str]) -> (Served, String, String) {
    let mut served = serve(dir, flags).await;
    let line = served.line_with("admin surface on").await;
    let admin = line.split("://").nth(1).unwrap().split('/').next().unwrap().to_string();
    let port = admin.rsplit(':').next().unwrap().to_string();
    (served, admin, port)
}

#[tokio::test]
async fn the_admin_listener_serves_tls_with_and_without_client_certificates() {
    let fx = Fixture::new();
    fx.function("dirfn", "probe", json!({}));
    let certs = certificates(fx.path());
    let p = |k: &str| certs[k].to_str().unwrap().to_string();
    let ca = reqwest::Certificate::from_pem(&std::fs::read(&certs["ca"]).unwrap()).unwrap();
    let tls_client = reqwest::Client::builder()
        .use_rustls_tls()
        .add_root_certificate(ca.clone())
        .build()
        .unwrap();
    let plain = reqwest::Client::new();

    let (cert, key) = (p("server"), p("server_key"));
    let tls_flags = [
        "--admin-listen",
        "127.0.0.1:0",
        "--admin-tls-cert",
        &cert,
        "--admin-tls-key",
        &key,
    ];
    let (served, admin, port) = serve_tls(fx.path(), &tls_flags).await;
    let r = tls_client
        .get(format!("https://localhost:{port}/_fn/catalog"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.version(), reqwest::Version::HTTP_2, "ALPN offers h2");
    // The function listener serves none of the admin surface, only the public part.
    let base = served.base.clone();
    let (code, _) = error_code(plain.get(format!("{base}/_fn/catalog")).send().await.unwrap(), 404).await;
    assert_eq!(code, "not_found");
    assert_eq!(
        plain.get(format!("{base}/_fn/health")).send().await.unwrap().status(),
        200
    );
    assert_eq!(plain.get(format!("{base}/dirfn")).send().await.unwrap().status(), 200);
    // And the admin listener serves no function.
    let r = tls_client
        .get(format!("https://localhost:{port}/dirfn"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    // Plain HTTP to the TLS listener gets nowhere.
    assert!(plain.get(format!("http://{admin}/_fn/catalog")).send().await.is_err());
    drop(served);

    let client_ca = p("ca");
    let (_served, _, port) = serve_tls(
        fx.path(),
        &[&tls_flags[..], &["--admin-client-ca", &client_ca]].concat(),
    )
    .await;
    let url = format!("https://localhost:{port}/_fn/catalog");
    assert!(
        tls_client.get(&url).send().await.is_err(),
        "no client certificate, no connection"
    );
    let mut identity = std::fs::read(&certs["client"]).unwrap();
    identity.extend(std::fs::read(&certs["client_key"]).unwrap());
    let with_cert = reqwest::Client::builder()
        .use_rustls_tls()
        .add_root_certificate(ca)
        .identity(reqwest::Identity::from_pem(&identity).unwrap())
        .build()
        .unwrap();
    assert_eq!(with_cert.get(&url).send().await.unwrap().status(), 200);
    // The CLI too, with its certificate flags.
    let (ok, out, err) = wasmfn(
        &[
            "functions",
            "--url",
            &format!("https://localhost:{port}"),
            "--ca-cert",
            &p("ca"),
            "--client-cert",
            &p("client"),
            "--client-key",
            &p("client_key"),
        ],
        &[],
    );
    assert!(ok, "{err}");
    assert!(out.contains("dirfn") && out.contains("directory"), "{out}");
}

#[tokio::test]
async fn request_heads_over_the_limit_get_431() {
    let fx = Fixture::new();
    fx.function("dirfn", "probe", json!({}));
    let c = reqwest::Client::new();
    let big = "x".repeat(100 * 1024);
    let served = serve(fx.path(), &[]).await;
    let r = c
        .get(format!("{}/dirfn", served.base))
        .header("x-big", &big)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 431);
    // Just under the default 64 KiB passes.
    let r = c
        .get(format!("{}/dirfn", served.base))
        .header("x-big", "x".repeat(60 * 1024))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    drop(served);
    let served = serve(fx.path(), &["--max-header-bytes", "262144"]).await;
    let r = c
        .get(format!("{}/dirfn", served.base))
        .header("x-big", &big)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let (ok, _, err) = wasmfn(
        &["serve", fx.path().to_str().unwrap(), "--max-header-bytes", "100"],
        &[],
    );
    assert!(!ok && err.contains("--max-header-bytes"), "{err}");
}
