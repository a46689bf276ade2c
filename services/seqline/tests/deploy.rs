//! The deployment files: the compose file parses (`docker-compose config`,
//! Debian's docker-compose parses without an engine), and every
//! `SEQLINE__…` setting the compose file passes is a key the binary
//! accepts. The Helm chart is checked rendered, in `helm.rs`.

#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::process::Command;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[test]
fn the_compose_file_is_valid() {
    let file = repo().join("deploy/docker-compose.yml");
    let out = Command::new("docker-compose")
        .arg("-f")
        .arg(&file)
        .args(["config", "-q"])
        .output();
    let out = match out {
        Ok(o) => o,
        Err(e) => panic!(
            "docker-compose is needed to validate {}: {e} (run `make test-tools`)",
            file.display()
        ),
    };
    assert!(
        out.status.success(),
        "docker-compose config failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `SEQLINE__…=value` pairs written in a deployment file.
fn settings(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for line in text.lines().map(str::trim) {
        // `SEQLINE__X__Y: value`
        if let Some((k, v)) = line.split_once(':') {
            if k.starts_with("SEQLINE__") {
                out.push((k.to_string(), v.trim().trim_matches('"').to_string()));
            }
        }
    }
    out
}

#[test]
fn every_setting_in_the_deployment_files_is_a_known_key() {
    let all = settings(&std::fs::read_to_string(repo().join("deploy/docker-compose.yml")).unwrap());
    assert!(all.len() >= 4, "found too few settings: {all:?}");
    for (key, value) in all {
        // Template values are replaced by a placeholder of the right shape.
        let value = if value.contains("{{") || value.contains("${") {
            match key.as_str() {
                k if k.ends_with("__LOG") => "kafka://kafka:9092".to_string(),
                k if k.ends_with("__STORE") => "scylla://scylla:9042/seqline".to_string(),
                k if k.ends_with("__PRESENCE") => "redis://redis:6379".to_string(),
                _ => "http://collector:4317".to_string(),
            }
        } else {
            value
        };
        let out = Command::new(env!("CARGO_BIN_EXE_seqline"))
            .arg("config")
            .env(&key, &value)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{key}={value} is refused: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
