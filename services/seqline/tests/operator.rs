//! What an operator sees of the real `seqline` binary: `seqline config`
//! prints TOML that loads back with its secrets masked, environment values
//! of string settings stay strings, and logs written to a pipe carry no
//! terminal colour codes.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

const SECRET: &str = "operator-secret-0123456789";
const KAFKA: &str = "kafka://app:hunter2@k1:9092,k2:9092?replication=1&sasl.password=pw2";

fn seqline(args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_seqline"))
        .args(args)
        .env_remove("SEQLINE_CONFIG")
        .env_remove("SEQLINE_SECRET")
        .envs(env.iter().copied())
        .output()
        .expect("run seqline")
}

fn config(file: Option<&Path>, env: &[(&str, &str)]) -> Output {
    let mut args = vec!["config".to_string()];
    if let Some(f) = file {
        args.extend(["--config".to_string(), f.display().to_string()]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    seqline(&args, env)
}

fn stdout(out: &Output) -> String {
    assert!(
        out.status.success(),
        "seqline config failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).expect("utf-8")
}

fn temp_dir(tag: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("seqline-{tag}-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

#[test]
fn printed_config_loads_back_identical_with_secrets_masked() {
    let dir = temp_dir("config-round-trip");
    let env = [
        ("SEQLINE__GATEWAY__TOKEN_SECRET", SECRET),
        ("SEQLINE__PORTS__LOG", KAFKA),
        ("SEQLINE__GATEWAY__ID", "gw-7"),
        ("SEQLINE__PERSISTER__BATCH_MAX", "64"),
    ];
    let first = stdout(&config(None, &env));
    for secret in [SECRET, "hunter2", "pw2"] {
        assert!(!first.contains(secret), "{secret} printed:\n{first}");
    }
    assert!(first.contains("token_secret = \"***MASKED***\""), "{first}");
    assert!(
        first.contains("kafka://app:***MASKED***@k1:9092,k2:9092?replication=1&sasl.password=***MASKED***"),
        "{first}"
    );
    let parsed: toml::Table = toml::from_str(&first).expect("valid TOML");
    assert_eq!(parsed["persister"]["batch_max"].as_integer(), Some(64));

    let file = dir.join("printed.toml");
    std::fs::write(&file, &first).unwrap();
    // The secrets come back from the environment; everything else from the file.
    let again = stdout(&config(
        Some(&file),
        &[
            ("SEQLINE__GATEWAY__TOKEN_SECRET", SECRET),
            ("SEQLINE__PORTS__LOG", KAFKA),
        ],
    ));
    assert_eq!(first, again, "print, load, print again: identical");

    // Loaded without the real secrets, the masks are refused, naming the key.
    let refused = config(Some(&file), &[]);
    assert_eq!(refused.status.code(), Some(2));
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(
        err.contains("gateway.token_secret holds ***MASKED***") || err.contains("ports.log holds ***MASKED***"),
        "{err}"
    );
    let refused = seqline(
        &[
            "dev",
            "--listen",
            "127.0.0.1:0",
            "--config",
            &file.display().to_string(),
        ],
        &[("SEQLINE__GATEWAY__TOKEN_SECRET", SECRET)],
    );
    assert_eq!(
        refused.status.code(),
        Some(2),
        "a server does not start on a masked URL"
    );
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(err.contains("ports.log holds ***MASKED***"), "{err}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn environment_values_of_string_settings_stay_strings() {
    let out = stdout(&config(
        None,
        &[
            ("SEQLINE__GATEWAY__ID", "123"),
            ("SEQLINE__PERSISTER__SEQUENCER_GROUP", "true"),
            ("SEQLINE__TELEMETRY__SERVICE_NAME", "2026"),
            ("SEQLINE__PERSISTER__BATCH_MAX", "9"),
            ("SEQLINE__GATEWAY__ALLOWED_ORIGINS", "[\"https://a.example\"]"),
        ],
    ));
    let parsed: toml::Table = toml::from_str(&out).expect("valid TOML");
    assert_eq!(parsed["gateway"]["id"].as_str(), Some("123"));
    assert_eq!(parsed["persister"]["sequencer_group"].as_str(), Some("true"));
    assert_eq!(parsed["telemetry"]["service_name"].as_str(), Some("2026"));
    assert_eq!(
        parsed["persister"]["batch_max"].as_integer(),
        Some(9),
        "numbers stay numbers"
    );
    assert_eq!(
        parsed["gateway"]["allowed_origins"].as_array().map(Vec::len),
        Some(1),
        "lists stay lists"
    );

    let refused = config(None, &[("SEQLINE__PERSISTER__BATCH_MAX", "many")]);
    assert_eq!(refused.status.code(), Some(2));
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(err.contains("persister.batch_max"), "{err}");
}

#[test]
fn logs_to_a_pipe_are_plain_text() {
    let data = temp_dir("plain-logs");
    let mut child = Command::new(env!("CARGO_BIN_EXE_seqline"))
        .args(["dev", "--listen", "127.0.0.1:0", "--data"])
        .arg(&data)
        .env_remove("SEQLINE_SECRET")
        .env_remove("NO_COLOR")
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn seqline");
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut seen = Vec::new();
    let opened = loop {
        match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(line) => {
                let done = line.contains("store opened");
                seen.push(line);
                if done {
                    break true;
                }
            }
            Err(_) => break false,
        }
    };
    child.kill().ok();
    child.wait().ok();
    std::fs::remove_dir_all(&data).ok();
    assert!(opened, "no `store opened` log line: {seen:#?}");
    assert!(
        seen.iter()
            .any(|l| l.contains("WARN") && l.contains("development token secret")),
        "{seen:#?}"
    );
    for line in &seen {
        assert!(!line.contains('\u{1b}'), "an ANSI escape in a piped log: {line:?}");
    }
}
