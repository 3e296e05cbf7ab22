//! `deploy/kubernetes`: every overlay renders with `kubectl kustomize`,
//! validates against the Kubernetes schemas (`kubernetes-validate
//! --strict`), holds together (selectors, names, the drain arithmetic),
//! and the container's command line, run by the real binary, serves and
//! drains as the probes expect.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};

use crate::harness::*;

/// The Kubernetes version the schemas are those of.
const KUBERNETES: &str = "1.32.0";

fn overlay(name: &str) -> PathBuf {
    repo().join("deploy/kubernetes/overlays").join(name)
}

/// `kubectl kustomize DIR`: the rendered YAML.
fn render(dir: &Path) -> String {
    let out = Command::new("kubectl")
        .arg("kustomize")
        .arg(dir)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run `kubectl` ({e}): the Kubernetes tests render the overlays with \
                 `kubectl kustomize`; install kubectl (https://kubernetes.io/docs/tasks/tools/)"
            )
        });
    assert!(
        out.status.success(),
        "kubectl kustomize {} failed: {}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Validates `yaml` against the Kubernetes schemas, rejecting unknown
/// fields; a kind without a schema (a custom resource) is allowed only if
/// it is one of `custom`.
fn validate(name: &str, yaml: &str, custom: &[&str]) {
    let file = tempfile::NamedTempFile::with_suffix(".yaml").unwrap();
    std::fs::write(file.path(), yaml).unwrap();
    let out = Command::new(python_tools().join("kubernetes-validate"))
        .args(["--strict", "--quiet", "-k", KUBERNETES])
        .arg(file.path())
        .output()
        .expect("run kubernetes-validate");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{name} does not validate:\n{said}");
    for line in said.lines().filter(|l| !l.trim().is_empty()) {
        assert!(
            custom.iter().any(|k| line.contains(&format!("kind {k} "))),
            "{name}: {line}"
        );
    }
}

/// The rendered objects, as JSON.
fn objects(yaml: &str) -> Vec<Value> {
    let mut child = Command::new(python())
        .args([
            "-c",
            "import sys, json, yaml; print(json.dumps([d for d in yaml.safe_load_all(sys.stdin) if d]))",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(yaml.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    serde_json::from_slice(&out.stdout).unwrap()
}

fn find<'a>(objects: &'a [Value], kind: &str, name: &str) -> &'a Value {
    objects
        .iter()
        .find(|o| o["kind"] == kind && o["metadata"]["name"].as_str().is_some_and(|n| n.starts_with(name)))
        .unwrap_or_else(|| panic!("no {kind} {name}"))
}

fn kinds(objects: &[Value]) -> Vec<String> {
    let mut k: Vec<String> = objects
        .iter()
        .map(|o| {
            format!(
                "{}/{}",
                o["kind"].as_str().unwrap(),
                o["metadata"]["name"].as_str().unwrap()
            )
        })
        .collect();
    k.sort();
    k
}

/// Whether every `key: value` of `selector` is among `labels`.
fn selects(selector: &Value, labels: &Value) -> bool {
    let s = selector.as_object().expect("a selector");
    !s.is_empty() && s.iter().all(|(k, v)| labels[k] == *v)
}

/// The value of `--flag=VALUE` among `args`.
fn flag<'a>(args: &'a [Value], name: &str) -> Option<&'a str> {
    args.iter()
        .filter_map(Value::as_str)
        .find_map(|a| a.strip_prefix(&format!("{name}=")))
}

/// What every overlay's Deployment must hold; gives its pod labels and container.
fn check_deployment(objects: &[Value]) -> (Value, Value) {
    let d = find(objects, "Deployment", "wasmfn");
    let pod = &d["spec"]["template"];
    let labels = pod["metadata"]["labels"].clone();
    assert!(selects(&d["spec"]["selector"]["matchLabels"], &labels), "{d}");
    let spec = &pod["spec"];
    assert_eq!(spec["securityContext"]["runAsNonRoot"], true);
    assert_eq!(spec["automountServiceAccountToken"], false);
    let c = spec["containers"][0].clone();
    assert_eq!(c["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(c["securityContext"]["allowPrivilegeEscalation"], false);
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/_fn/ready");
    assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/_fn/health");
    assert_eq!(c["startupProbe"]["httpGet"]["path"], "/_fn/health");
    // The drain fits in the grace period: preStop, then the delay and the timeout.
    let args = c["args"].as_array().unwrap();
    let delay: u64 = flag(args, "--drain-delay-ms").unwrap().parse().unwrap();
    let timeout: u64 = flag(args, "--drain-timeout-ms").unwrap().parse().unwrap();
    let pre_stop = c["lifecycle"]["preStop"]["sleep"]["seconds"].as_u64().unwrap();
    let grace = spec["terminationGracePeriodSeconds"].as_u64().unwrap();
    assert!(
        pre_stop * 1000 + delay + timeout + 2000 <= grace * 1000,
        "preStop {pre_stop} s + drain {delay} + {timeout} ms does not fit in {grace} s"
    );
    // Every volume mounted exists, and the probes' port is the one served.
    let volumes: Vec<&str> = spec["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["name"].as_str().unwrap())
        .collect();
    for m in c["volumeMounts"].as_array().unwrap() {
        assert!(volumes.contains(&m["name"].as_str().unwrap()), "{m}");
    }
    assert_eq!(flag(args, "--listen"), Some("0.0.0.0:8080"));
    assert_eq!(
        c["ports"][0],
        json!({"name": "http", "containerPort": 8080, "protocol": "TCP"})
    );
    // The Service, the budget and the network policy pick these pods.
    let service = find(objects, "Service", "wasmfn");
    assert!(selects(&service["spec"]["selector"], &labels));
    assert_eq!(service["spec"]["ports"][0]["targetPort"], "http");
    assert!(selects(
        &find(objects, "PodDisruptionBudget", "wasmfn")["spec"]["selector"]["matchLabels"],
        &labels
    ));
    let policy = find(objects, "NetworkPolicy", "wasmfn");
    assert!(selects(&policy["spec"]["podSelector"]["matchLabels"], &labels));
    assert_eq!(policy["spec"]["ingress"][0]["ports"][0]["port"], 8080);
    (labels, c)
}

#[test]
fn the_single_replica_overlay_keeps_its_state_on_a_volume() {
    let yaml = render(&overlay("single"));
    validate("overlays/single", &yaml, &[]);
    let objects = objects(&yaml);
    assert_eq!(
        kinds(&objects),
        [
            "Deployment/wasmfn",
            "NetworkPolicy/wasmfn",
            "PersistentVolumeClaim/wasmfn-state",
            "PodDisruptionBudget/wasmfn",
            "Service/wasmfn",
            "ServiceAccount/wasmfn",
        ]
    );
    check_deployment(&objects);
    let d = find(&objects, "Deployment", "wasmfn");
    assert_eq!(d["spec"]["replicas"], 1);
    assert_eq!(d["spec"]["strategy"]["type"], "Recreate");
    let state = d["spec"]["template"]["spec"]["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "state")
        .unwrap();
    assert_eq!(
        state,
        &json!({"name": "state", "persistentVolumeClaim": {"claimName": "wasmfn-state"}})
    );
}

#[test]
fn the_replicas_overlay_shares_its_state_in_redis_and_reads_functions_from_a_config_map() {
    let yaml = render(&overlay("replicas"));
    validate("overlays/replicas", &yaml, &[]);
    let objects = objects(&yaml);
    let (_, c) = check_deployment(&objects);
    let d = find(&objects, "Deployment", "wasmfn");
    assert_eq!(d["spec"]["replicas"], 3);
    assert_eq!(d["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"], 0);
    let hpa = find(&objects, "HorizontalPodAutoscaler", "wasmfn");
    assert_eq!(hpa["spec"]["scaleTargetRef"]["name"], "wasmfn");
    assert_eq!(hpa["spec"]["minReplicas"], 3);
    // Redis named by a Secret that exists, served by a Service that selects its pods.
    let env = c["env"].as_array().unwrap();
    let secret = find(&objects, "Secret", "wasmfn-redis");
    for name in ["WASMFN_KV_REDIS_URL", "WASMFN_STATE_STORE"] {
        let redis = env.iter().find(|e| e["name"] == name).unwrap();
        assert_eq!(redis["valueFrom"]["secretKeyRef"]["name"], secret["metadata"]["name"]);
    }
    let url = secret["stringData"]["url"].as_str().unwrap();
    let redis_service = find(&objects, "Service", "wasmfn-redis");
    assert!(url.starts_with(&format!(
        "redis://{}:6379",
        redis_service["metadata"]["name"].as_str().unwrap()
    )));
    assert!(selects(
        &redis_service["spec"]["selector"],
        &find(&objects, "Deployment", "wasmfn-redis")["spec"]["template"]["metadata"]["labels"]
    ));
    // The functions directory is the ConfigMap (its generated name), and
    // what it holds is a functions directory the binary reads.
    let map = find(&objects, "ConfigMap", "wasmfn-functions");
    let volume = d["spec"]["template"]["spec"]["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "functions")
        .unwrap();
    assert_eq!(volume["configMap"]["name"], map["metadata"]["name"]);
    let dir = tempfile::tempdir().unwrap();
    for item in volume["configMap"]["items"].as_array().unwrap() {
        let text = map["data"][item["key"].as_str().unwrap()].as_str().unwrap();
        let path = dir.path().join(item["path"].as_str().unwrap());
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    let (ok, out, err) = wasmfn(&["routes", dir.path().to_str().unwrap()], &[]);
    assert!(ok && out.contains("/hello"), "{out}{err}");
}

#[test]
fn the_monitored_overlay_scrapes_and_scales_on_what_the_host_exports() {
    let yaml = render(&overlay("replicas-monitored"));
    validate("overlays/replicas-monitored", &yaml, &["ServiceMonitor"]);
    let objects = objects(&yaml);
    let (labels, _) = check_deployment(&objects);
    let monitor = find(&objects, "ServiceMonitor", "wasmfn");
    assert!(selects(&monitor["spec"]["selector"]["matchLabels"], &labels));
    let endpoint = &monitor["spec"]["endpoints"][0];
    assert_eq!(endpoint["path"], "/_fn/metrics");
    assert_eq!(
        endpoint["port"],
        find(&objects, "Service", "wasmfn")["spec"]["ports"][0]["name"]
    );
    assert_eq!(endpoint["authorization"]["type"], "Bearer");
    let hpa = find(&objects, "HorizontalPodAutoscaler", "wasmfn");
    let metrics = hpa["spec"]["metrics"].as_array().unwrap();
    assert_eq!(metrics.len(), 2, "{hpa}");
    assert_eq!(metrics[1]["pods"]["metric"]["name"], "wasmfn_inflight_requests");
}

/// The container's arguments with the pod's paths mapped to `mounts` and
/// the listener on a free loopback port.
fn local_args(args: &[Value], mounts: &[(&str, &Path)]) -> Vec<String> {
    args.iter()
        .map(|a| {
            let a = a.as_str().unwrap().replace("0.0.0.0:8080", "127.0.0.1:0");
            mounts
                .iter()
                .fold(a, |a, (from, to)| a.replace(from, to.to_str().unwrap()))
        })
        .collect()
}

#[tokio::test]
async fn the_containers_command_line_serves_reports_ready_and_drains() {
    let yaml = render(&overlay("single"));
    let objects = objects(&yaml);
    let (_, c) = check_deployment(&objects);
    let fx = Fixture::new();
    fx.function("hello", "hello_plain", json!({}));
    let (state, cache, secrets, etc) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    let (tokens_file, t) = tokens(etc.path(), &[("prometheus", &["read"])]);
    let args = local_args(
        c["args"].as_array().unwrap(),
        &[
            ("/functions", fx.path()),
            ("/var/lib/wasmfn", state.path()),
            ("/var/cache/wasmfn", cache.path()),
            ("/etc/wasmfn/admin/tokens.json", &tokens_file),
            ("/etc/wasmfn/secrets", secrets.path()),
        ],
    );
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let served = Served::start(&args, &[], Duration::from_secs(120)).await;
    let (mut child, base) = served.print_log("[pod] ");
    let c = reqwest::Client::new();
    let get = |path: &str| c.get(format!("{base}{path}")).send();
    assert_eq!(get("/_fn/health").await.unwrap().status(), 200);
    assert_eq!(get("/_fn/ready").await.unwrap().status(), 200);
    assert_eq!(get("/hello").await.unwrap().text().await.unwrap(), "plain hello\n");
    // What the monitoring overlay scrapes and scales on, with a `read` token.
    let metrics = c
        .get(format!("{base}/_fn/metrics"))
        .bearer_auth(&t["prometheus"])
        .send()
        .await
        .unwrap();
    assert_eq!(metrics.status(), 200);
    let text = metrics.text().await.unwrap();
    assert!(text.contains("wasmfn_inflight_requests{"), "{text}");
    // SIGTERM (after preStop): not ready at once, still serving during the delay.
    signal(&child, "TERM");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(get("/_fn/ready").await.unwrap().status(), 503);
    assert_eq!(get("/hello").await.unwrap().status(), 200);
    let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .expect("the host exits within its drain")
        .unwrap();
    assert!(status.success(), "{status}");
}
