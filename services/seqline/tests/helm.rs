//! The Helm chart (`deploy/helm/seqline`), rendered with `helm template` and
//! read back: every gateway gets an id of its own, every `SEQLINE__…`
//! setting and the configuration file are accepted by the binary, the probes
//! ask paths the binary serves (a real `seqline dev` answers them), the pods
//! run without root, and `helm lint --strict` is clean.
//!
//! Needs `helm` (`make test-tools` builds it into `$(go env GOPATH)/bin`)
//! and python3 with PyYAML (Debian's python3-yaml) to read the YAML.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

const TOKEN: &str = "helm-test-secret-0123456789";

fn chart() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../deploy/helm/seqline")
}

/// `helm` from PATH, else from Go's install directory.
fn helm() -> Command {
    let mut candidates = vec![PathBuf::from("helm")];
    if let Ok(out) = Command::new("go").args(["env", "GOPATH"]).output() {
        let gopath = String::from_utf8_lossy(&out.stdout).trim().to_string();
        if !gopath.is_empty() {
            candidates.push(Path::new(&gopath).join("bin/helm"));
        }
    }
    for c in &candidates {
        if Command::new(c)
            .arg("version")
            .output()
            .is_ok_and(|o| o.status.success())
        {
            return Command::new(c);
        }
    }
    panic!(
        "helm is needed to check the chart and was not found (looked for {candidates:?}): run `make test-tools` \
         (it runs `go install helm.sh/helm/v3/cmd/helm@v3.21.4`) or install helm 3 on PATH"
    );
}

fn run_helm(args: &[&str]) -> String {
    let out = helm().args(args).output().expect("run helm");
    assert!(
        out.status.success(),
        "helm {args:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// YAML documents as JSON values, read by python3's PyYAML.
fn yaml_docs(text: &str) -> Vec<Value> {
    let script = "import sys, json, yaml\n\
                  json.dump([d for d in yaml.safe_load_all(sys.stdin) if d is not None], sys.stdout)";
    let child = Command::new("python3")
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => panic!("python3 is needed to read the rendered YAML: {e} (apt-get install python3 python3-yaml)"),
    };
    child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "could not read the rendered YAML (PyYAML is needed: `make test-tools` or apt-get install python3-yaml):\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    match serde_json::from_slice(&out.stdout).unwrap() {
        Value::Array(docs) => docs,
        other => panic!("not a list of documents: {other}"),
    }
}

/// `helm template` with `sets` (on top of a token secret value).
fn render(sets: &[&str]) -> Vec<Value> {
    render_for(None, sets)
}

/// [`render`] for a given Kubernetes version (helm's default otherwise).
fn render_for(kube_version: Option<&str>, sets: &[&str]) -> Vec<Value> {
    let chart = chart();
    let mut args = vec!["template", "rel", chart.to_str().unwrap()];
    if let Some(v) = kube_version {
        args.extend(["--kube-version", v]);
    }
    args.push("--set");
    let token = format!("tokenSecret.value={TOKEN}");
    args.push(&token);
    for s in sets {
        args.extend(["--set", s]);
    }
    yaml_docs(&run_helm(&args))
}

fn find<'a>(docs: &'a [Value], kind: &str, name: &str) -> &'a Value {
    docs.iter()
        .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name} in the rendered chart"))
}

fn workloads(docs: &[Value]) -> Vec<&Value> {
    docs.iter()
        .filter(|d| d["kind"] == "Deployment" || d["kind"] == "StatefulSet")
        .collect()
}

fn containers(workload: &Value) -> &Vec<Value> {
    workload["spec"]["template"]["spec"]["containers"].as_array().unwrap()
}

/// The rendered configuration file, written where the binary can read it.
fn config_file(docs: &[Value], dir: &Path) -> PathBuf {
    let map = find(docs, "ConfigMap", "rel-seqline-config");
    let path = dir.join("seqline.toml");
    std::fs::write(&path, map["data"]["seqline.toml"].as_str().unwrap()).unwrap();
    path
}

/// A container's environment as the kubelet would give it: Secret
/// references become a value of the right shape, `metadata.name` the pod's.
fn env_of(container: &Value, pod_name: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for e in container["env"].as_array().into_iter().flatten() {
        let name = e["name"].as_str().unwrap().to_string();
        let value = if let Some(v) = e["value"].as_str() {
            v.to_string()
        } else if e["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name" {
            pod_name.to_string()
        } else if e["valueFrom"]["secretKeyRef"].is_object() {
            match name.as_str() {
                "SEQLINE__PORTS__LOG" => "kafka://kafka:9092".into(),
                "SEQLINE__PORTS__STORE" => "scylla://scylla:9042/seqline".into(),
                "SEQLINE__PORTS__PRESENCE" => "redis://:password@redis:6379".into(),
                _ => TOKEN.into(),
            }
        } else {
            panic!("env {name} has a source this test does not know: {e}")
        };
        out.push((name, value));
    }
    out
}

/// `seqline config --config FILE` with `env`; returns its output.
fn seqline_config(file: &Path, env: &[(String, String)]) -> String {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_seqline"));
    cmd.arg("config").arg("--config").arg(file);
    for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("SEQLINE")) {
        cmd.env_remove(k);
    }
    let out = cmd.envs(env.iter().map(|(k, v)| (k, v))).output().unwrap();
    assert!(
        out.status.success(),
        "the binary refuses the chart's settings {env:?}:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn helm_lint_is_clean() {
    let chart = chart();
    let chart = chart.to_str().unwrap();
    let token = format!("tokenSecret.value={TOKEN}");
    run_helm(&["lint", "--strict", chart, "--set", &token]);
    run_helm(&[
        "lint",
        "--strict",
        chart,
        "--set",
        "tokenSecret.existingSecret=seqline-token,serviceMonitor.enabled=true",
        "--set",
        "gateway.autoscaling.enabled=true,persister.autoscaling.enabled=true,fanout.autoscaling.enabled=true",
    ]);
    // The schema refuses what the binary would refuse later.
    let out = helm()
        .args(["lint", "--strict", chart, "--set", "tokenSecret.value=short"])
        .output()
        .unwrap();
    assert!(!out.status.success(), "a 5-byte token secret passes the schema");
    let out = helm()
        .args([
            "lint",
            "--strict",
            chart,
            "--set",
            &token,
            "--set",
            "kafka.url=kafka:9092",
        ])
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "a Kafka address without kafka:// passes the schema"
    );
}

#[test]
fn each_gateway_has_its_own_id() {
    let docs = render(&["gateway.replicas=3"]);
    let sts = find(&docs, "StatefulSet", "rel-seqline-gateway");
    assert_eq!(sts["spec"]["replicas"], 3);
    assert_eq!(sts["spec"]["serviceName"], "rel-seqline-gateway-pods");
    find(&docs, "Service", "rel-seqline-gateway-pods");
    let container = &containers(sts)[0];
    let ids: Vec<&Value> = container["env"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["name"] == "SEQLINE__GATEWAY__ID")
        .collect();
    assert_eq!(ids.len(), 1, "one SEQLINE__GATEWAY__ID: {ids:?}");
    assert_eq!(
        ids[0]["valueFrom"]["fieldRef"]["fieldPath"], "metadata.name",
        "the gateway id is the pod's name"
    );
    let dir = common::temp_dir("helm-ids");
    let file = config_file(&docs, &dir);
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(
        !text
            .lines()
            .any(|l| l.trim_start().starts_with("id ") || l.trim_start().starts_with("id=")),
        "the configuration file must not set one id for every gateway:\n{text}"
    );
    // A StatefulSet's pods are named <name>-<ordinal>; each must be an id
    // the binary takes, and it must be the one in effect.
    let mut seen = BTreeSet::new();
    for ordinal in 0..3 {
        let pod = format!("rel-seqline-gateway-{ordinal}");
        let printed = seqline_config(&file, &env_of(container, &pod));
        assert!(printed.contains(&pod), "gateway id {pod} not in effect:\n{printed}");
        assert!(!printed.contains("\"gw-1\""), "the default id is still in effect");
        seen.insert(pod);
    }
    assert_eq!(seen.len(), 3);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn every_setting_in_the_rendered_chart_is_a_known_key() {
    let docs = render(&[
        "serviceMonitor.enabled=true",
        "logLevel=debug",
        "kafka.existingSecret=kafka-url,scylla.existingSecret=scylla-url,redis.existingSecret=redis-url",
        "extraEnv[0].name=SEQLINE__TELEMETRY__OTLP_ENDPOINT,extraEnv[0].value=http://otel:4317",
    ]);
    let dir = common::temp_dir("helm-keys");
    let file = config_file(&docs, &dir);
    let mut keys = BTreeSet::new();
    for w in workloads(&docs) {
        for c in containers(w) {
            let env = env_of(c, "rel-seqline-gateway-0");
            for (k, _) in &env {
                if k.starts_with("SEQLINE__") {
                    keys.insert(k.clone());
                }
            }
            seqline_config(&file, &env);
            // Backends with credentials come from the Secrets named.
            for e in c["env"].as_array().unwrap() {
                if e["name"].as_str().unwrap().starts_with("SEQLINE__PORTS__") {
                    let secret = e["valueFrom"]["secretKeyRef"]["name"].as_str().unwrap_or("");
                    assert!(secret.ends_with("-url"), "{e} is not read from its Secret");
                }
            }
        }
    }
    for k in [
        "SEQLINE__GATEWAY__ID",
        "SEQLINE__HEALTH__LISTEN",
        "SEQLINE__PORTS__LOG",
        "SEQLINE__TELEMETRY__OTLP_ENDPOINT",
    ] {
        assert!(keys.contains(k), "{k} is not set by the chart: {keys:?}");
    }
    std::fs::remove_dir_all(&dir).ok();
}

/// The status code of `GET path` on 127.0.0.1:`port`, if it answers.
fn get_status(port: u16, path: &str) -> Option<u16> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    text.split(' ').nth(1)?.parse().ok()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn probes_ask_paths_the_binary_serves() {
    let docs = render(&[]);
    // Probes by the port they name: "ws" is the gateway's own server
    // (`--listen`), "health" the health server ([health] listen).
    let mut probes: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    for w in workloads(&docs) {
        let role = w["metadata"]["labels"]["app.kubernetes.io/component"].as_str().unwrap();
        for c in containers(w) {
            let args: Vec<&str> = c["args"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| a.as_str().unwrap())
                .collect();
            let env = env_of(c, "pod");
            for p in c["ports"].as_array().unwrap() {
                let port = p["containerPort"].as_u64().unwrap().to_string();
                let bound = match p["name"].as_str().unwrap() {
                    "ws" => args.iter().any(|a| a.ends_with(&format!(":{port}"))),
                    "health" => env
                        .iter()
                        .any(|(k, v)| k == "SEQLINE__HEALTH__LISTEN" && v.ends_with(&format!(":{port}"))),
                    other => panic!("{role}: unknown port {other}"),
                };
                assert!(bound, "{role}: port {p} is not where the binary listens");
            }
            for kind in ["startupProbe", "readinessProbe", "livenessProbe"] {
                let get = &c[kind]["httpGet"];
                assert!(get.is_object(), "{role} has no {kind}");
                let key = (
                    get["port"].as_str().unwrap().to_string(),
                    get["path"].as_str().unwrap().to_string(),
                );
                probes.entry(key).or_default().push(format!("{role} {kind}"));
            }
        }
        if role == "gateway" {
            let c = &containers(w)[0];
            assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/readyz");
            assert_eq!(
                c["readinessProbe"]["httpGet"]["port"], "ws",
                "the gateway's own readiness"
            );
        }
    }
    assert!(probes.len() >= 3, "{probes:?}");

    let (ws, health) = (free_port(), free_port());
    let data = common::temp_dir("helm-probes");
    let health_addr = format!("127.0.0.1:{health}");
    let server = common::Server::start_with(
        &data,
        &format!("127.0.0.1:{ws}"),
        &[("SEQLINE__HEALTH__LISTEN", health_addr.as_str())],
    );
    for ((port, path), users) in &probes {
        let port = match port.as_str() {
            "ws" => ws,
            "health" => health,
            other => panic!("unknown probe port {other}"),
        };
        let what = format!("{path} on the {port} port ({users:?}) to answer 200");
        seqline_testkit::wait::until_blocking(Duration::from_secs(30), &what, || {
            (get_status(port, path) == Some(200)).then_some(())
        });
    }
    drop(server);
    std::fs::remove_dir_all(&data).ok();
}

#[test]
fn pods_run_without_root_on_a_read_only_root() {
    let docs = render(&[]);
    let sts = find(&docs, "StatefulSet", "rel-seqline-gateway");
    let spec = &sts["spec"]["template"]["spec"];
    let grace = spec["terminationGracePeriodSeconds"].as_u64().unwrap();
    // The sleep action from Kubernetes 1.30, `sleep N` in the image before.
    let hook = &containers(sts)[0]["lifecycle"]["preStop"];
    let pre_stop = hook["sleep"]["seconds"]
        .as_u64()
        .or_else(|| hook["exec"]["command"][1].as_str().and_then(|s| s.parse().ok()))
        .unwrap_or_else(|| panic!("no pre-stop sleep: {hook}"));
    assert!(
        grace >= pre_stop + 20,
        "grace {grace}s leaves no room for the pre-stop sleep ({pre_stop}s) and the 10 s drain and store close"
    );
    for w in workloads(&docs) {
        let spec = &w["spec"]["template"]["spec"];
        assert_eq!(
            spec["securityContext"]["runAsNonRoot"], true,
            "{}",
            w["metadata"]["name"]
        );
        for c in containers(w) {
            let sc = &c["securityContext"];
            assert_eq!(sc["readOnlyRootFilesystem"], true);
            assert_eq!(sc["allowPrivilegeEscalation"], false);
            assert_eq!(sc["capabilities"]["drop"], serde_json::json!(["ALL"]));
        }
        assert!(
            docs.iter()
                .any(|d| d["kind"] == "PodDisruptionBudget" && d["metadata"]["name"] == w["metadata"]["name"]),
            "no PodDisruptionBudget for {}",
            w["metadata"]["name"]
        );
        let labels = &w["metadata"]["labels"];
        for l in [
            "app.kubernetes.io/name",
            "app.kubernetes.io/instance",
            "app.kubernetes.io/component",
        ] {
            assert!(labels[l].is_string(), "{l} missing on {}", w["metadata"]["name"]);
        }
    }
    assert!(
        !docs
            .iter()
            .any(|d| d["kind"] == "HorizontalPodAutoscaler" || d["kind"] == "ServiceMonitor"),
        "autoscaling and the ServiceMonitor are off by default"
    );
    let docs = render_for(Some("1.31.0"), &[]);
    let sts = find(&docs, "StatefulSet", "rel-seqline-gateway");
    assert_eq!(
        containers(sts)[0]["lifecycle"]["preStop"]["sleep"]["seconds"],
        pre_stop,
        "from Kubernetes 1.30 the pre-stop hook needs no program in the image"
    );
    let docs = render(&["tokenSecret.existingSecret=mine"]);
    assert!(
        !docs.iter().any(|d| d["kind"] == "Secret"),
        "an existing token Secret is used as is"
    );
}
