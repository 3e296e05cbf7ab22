use super::*;

fn file(text: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.json");
    std::fs::write(&path, text).unwrap();
    (dir, path)
}

fn refused(text: &str) -> String {
    match OciRef::parse(text) {
        Err(e @ OciError::Reference { .. }) => e.to_string(),
        other => panic!("{text}: {other:?}"),
    }
}

#[test]
fn references_name_their_registry_and_keep_tag_and_digest() {
    let r = OciRef::parse("oci://registry.example:5000/functions/hello:1.0").unwrap();
    assert_eq!(r.registry(), "registry.example:5000");
    assert_eq!(r.digest(), None);
    assert_eq!(r.to_string(), "oci://registry.example:5000/functions/hello:1.0");

    let digest = format!("sha256:{}", "ab".repeat(32));
    let pinned = r.pinned(&digest);
    assert_eq!(pinned.digest(), Some(digest.as_str()));
    assert_eq!(
        pinned.to_string(),
        format!("oci://registry.example:5000/functions/hello@{digest}")
    );
    assert_eq!(OciRef::parse(&pinned.to_string()).unwrap(), pinned);

    let local = OciRef::parse("oci://localhost/hello").unwrap();
    assert_eq!(local.to_string(), "oci://localhost/hello:latest");
    assert_eq!(
        OciRef::parse("oci://127.0.0.1:5000/a/b:v2").unwrap().registry(),
        "127.0.0.1:5000"
    );
}

#[test]
fn references_without_scheme_registry_or_repository_are_refused_with_the_form() {
    for text in [
        "registry.example/hello:1",
        "oci://hello:1",
        "oci://functions/hello:1",
        "oci://registry.example",
        "oci://registry.example/",
        "oci://registry.example/Hello:1",
        "oci://registry.example/hello@sha256:short",
    ] {
        let msg = refused(text);
        assert!(msg.contains(&format!("`{text}`")), "{msg}");
        assert!(msg.contains("oci://REGISTRY/REPOSITORY:TAG"), "{msg}");
    }
    assert!(refused("hello").contains("does not start with `oci://`"));
    assert!(refused("oci://functions/hello").contains("names no registry host"));
}

#[test]
fn credentials_come_from_auths_by_registry() {
    let encoded = base64::engine::general_purpose::STANDARD.encode("ci:s3cret:with-colon");
    let (_d, path) = file(
        &serde_json::json!({
            "auths": {
                "https://registry.example/v1/": {"auth": encoded},
                "localhost:5000": {"username": "u", "password": "p"}
            }
        })
        .to_string(),
    );
    let credentials = read_credentials(&path).unwrap();
    assert_eq!(
        credentials.get("registry.example"),
        Some(&("ci".to_string(), "s3cret:with-colon".to_string()))
    );
    assert_eq!(
        credentials.get("localhost:5000"),
        Some(&("u".to_string(), "p".to_string()))
    );
    let registries = Registries::new(&RegistryOptions {
        auth_file: Some(path),
        insecure: vec!["localhost:5000".into()],
    })
    .unwrap();
    assert!(matches!(registries.auth("localhost:5000"), RegistryAuth::Basic(u, p) if u == "u" && p == "p"));
    assert!(matches!(registries.auth("elsewhere.example"), RegistryAuth::Anonymous));
    // The credentials themselves never appear in its debug form.
    let debug = format!("{registries:?}");
    assert!(
        !debug.contains("s3cret") && debug.contains("registry.example"),
        "{debug}"
    );
}

#[test]
fn credentials_files_that_cannot_be_used_are_refused_naming_file_and_fix() {
    let cases = [
        ("{", "is not a docker-style config.json"),
        (
            r#"{"auths": {"r.example": {"auth": "%%%"}}}"#,
            "`auths.r.example.auth` is not base64",
        ),
        (
            r#"{"auths": {"r.example": {"auth": "bm9jb2xvbg=="}}}"#,
            "`auths.r.example.auth` is not base64 of `USER:PASSWORD`",
        ),
        (
            r#"{"auths": {"r.example": {"username": "u"}}}"#,
            "has neither `auth` nor `username` and `password`",
        ),
        (r#"{"credsStore": "desktop"}"#, "credential helpers"),
        (r#"{"credHelpers": {"r.example": "ecr-login"}}"#, "credential helpers"),
    ];
    for (text, want) in cases {
        let (_d, path) = file(text);
        let e = Registries::new(&RegistryOptions {
            auth_file: Some(path.clone()),
            insecure: vec![],
        })
        .unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains(&path.display().to_string()) && msg.contains(want),
            "{text}: {msg}"
        );
    }
    let missing = Path::new("/nonexistent/wasmfn/config.json");
    let msg = read_credentials(missing).unwrap_err().to_string();
    assert!(
        msg.contains("/nonexistent/wasmfn/config.json") && msg.contains("cannot be read"),
        "{msg}"
    );
}

#[test]
fn only_components_are_pushed() {
    let core_module = b"\0asm\x01\0\0\0";
    let msg = names(core_module).unwrap_err();
    assert!(msg.contains("not a WebAssembly component"), "{msg}");
    assert!(names(b"hello").unwrap_err().contains("not a WebAssembly component"));
    // A component header with nothing after it is a component with no names.
    let empty_component = b"\0asm\x0d\0\x01\0";
    assert_eq!(names(empty_component).unwrap(), (vec![], vec![]));
}

#[test]
fn digests_are_sha256_of_the_bytes() {
    assert_eq!(
        sha256(b""),
        "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    );
}
