//! The Grafana dashboard and the Prometheus alert rules that ship in
//! `deploy/` ask only for series the binary exports: every `seqline_…` name
//! in their queries is in the `/metrics` of a running `seqline dev` (every
//! role in one process, one registry), and the alert rules file has the
//! shape Prometheus loads.

#![allow(clippy::unwrap_used)]

mod common;

use common::deploy_files::{read, repo};
use std::collections::BTreeSet;
use std::process::{Command, Stdio};
use std::time::Duration;

/// Every `seqline_…` series name in `text`.
fn series_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while let Some(at) = text[i..].find("seqline_") {
        let start = i + at;
        let end = bytes[start..]
            .iter()
            .position(|b| !(b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'_'))
            .map_or(text.len(), |n| start + n);
        names.insert(text[start..end].to_string());
        i = end;
    }
    names
}

/// The names `/metrics` declares (`# TYPE name kind`), histograms with
/// their `_bucket`, `_sum` and `_count` series.
fn exported(metrics: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for line in metrics.lines() {
        let mut words = line.split_whitespace();
        if let (Some("#"), Some("TYPE"), Some(name), Some(kind)) =
            (words.next(), words.next(), words.next(), words.next())
        {
            names.insert(name.to_string());
            if kind == "histogram" {
                for suffix in ["_bucket", "_sum", "_count"] {
                    names.insert(format!("{name}{suffix}"));
                }
            }
        }
    }
    names
}

/// The queries of the dashboard's panels.
fn dashboard_queries() -> Vec<String> {
    let dashboard: serde_json::Value = serde_json::from_str(&read("deploy/grafana/dashboards/seqline.json")).unwrap();
    dashboard["panels"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["targets"].as_array().cloned().unwrap_or_default())
        .filter_map(|t| t["expr"].as_str().map(str::to_string))
        .collect()
}

/// The rules of the alerts file, as JSON (read with PyYAML, as the compose
/// checks read the compose file).
fn alert_rules() -> Vec<serde_json::Value> {
    let file = repo().join("deploy/prometheus/alerts.yml");
    let out = Command::new("python3")
        .args([
            "-c",
            "import json, sys, yaml; print(json.dumps(yaml.safe_load(open(sys.argv[1]))))",
        ])
        .arg(&file)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "reading {} needs python3 with PyYAML (`make test-tools`): {e}",
                file.display()
            )
        });
    assert!(
        out.status.success(),
        "{} does not parse: {}",
        file.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    doc["groups"]
        .as_array()
        .expect("groups")
        .iter()
        .flat_map(|g| g["rules"].as_array().cloned().expect("each group has rules"))
        .collect()
}

/// `/metrics` of a fresh `seqline dev`.
async fn metrics_of_seqline_dev() -> String {
    let addr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().to_string()
    };
    let data = common::temp_dir("dashboard");
    let mut child = Command::new(env!("CARGO_BIN_EXE_seqline"))
        .args(["dev", "--listen", &addr, "--data"])
        .arg(&data)
        .env("SEQLINE_SECRET", "dashboard-test-secret-0123456789")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let text = seqline_testkit::wait::until(Duration::from_secs(60), "seqline dev's /metrics", || {
        let addr = addr.clone();
        async move { common::http_get(&addr, "/metrics").await }
    })
    .await;
    let _ = child.kill();
    let _ = child.wait();
    std::fs::remove_dir_all(&data).ok();
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_and_the_alerts_query_only_series_the_binary_exports() {
    let exported = exported(&metrics_of_seqline_dev().await);
    assert!(exported.contains("seqline_consumer_lag_records"), "{exported:?}");
    let queries: Vec<String> = dashboard_queries()
        .into_iter()
        .chain(alert_rules().iter().map(|r| r["expr"].as_str().unwrap().to_string()))
        .collect();
    assert!(queries.len() > 10, "{queries:?}");
    let missing: Vec<(String, String)> = queries
        .iter()
        .flat_map(|q| series_names(q).into_iter().map(move |n| (n, q.clone())))
        .filter(|(name, _)| !exported.contains(name))
        .collect();
    assert!(
        missing.is_empty(),
        "queried but not exported (name, query): {missing:#?}"
    );
}

#[test]
fn every_alert_rule_says_when_how_bad_and_what_to_do() {
    let rules = alert_rules();
    let names: Vec<&str> = rules.iter().filter_map(|r| r["alert"].as_str()).collect();
    assert_eq!(names.len(), rules.len(), "every rule is an alert: {rules:?}");
    for wanted in ["SeqlineTargetDown", "SeqlineConsumerLagHigh", "SeqlineDeadLetters"] {
        assert!(names.contains(&wanted), "{wanted} missing from {names:?}");
    }
    for r in &rules {
        let name = r["alert"].as_str().unwrap();
        assert!(r["expr"].as_str().is_some_and(|e| !e.is_empty()), "{name}: no expr");
        assert!(
            matches!(r["labels"]["severity"].as_str(), Some("page" | "ticket")),
            "{name}: severity is page or ticket"
        );
        for field in ["summary", "description"] {
            assert!(
                r["annotations"][field].as_str().is_some_and(|t| !t.is_empty()),
                "{name}: no {field}"
            );
        }
    }
    let prometheus = read("deploy/prometheus/prometheus.yml");
    assert!(
        prometheus.contains("/etc/prometheus/alerts.yml"),
        "prometheus.yml loads the rules"
    );
    assert!(
        read("deploy/docker-compose.yml").contains("./prometheus/alerts.yml:/etc/prometheus/alerts.yml"),
        "compose mounts the rules where prometheus.yml looks"
    );
}
