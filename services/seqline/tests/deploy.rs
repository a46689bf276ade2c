//! The deployment files, checked as far as they can be without a container
//! engine: the compose file parses (`docker-compose config`, Debian's
//! docker-compose parses without an engine); every `SEQLINE__…` setting the
//! image and the compose file pass is a key the binary accepts; the image's
//! toolchain builds every locked crate; the build context leaves out build
//! output and data; the image's commands and healthchecks are ones the
//! binary accepts, and its default command serves and passes its
//! healthcheck; the data directory belongs to the user the image runs as;
//! `make traffic`, `make up` and the compose file agree. The roles running
//! on the compose file's environment: `compose.rs`; the Helm chart, rendered:
//! `helm.rs`.

#![allow(clippy::unwrap_used)]

mod common;

use common::deploy_files::{compose_services, exec_form, make_default, read, repo, runtime_stage, Instruction};
use std::process::{Command, Stdio};
use std::time::Duration;

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
    let mut all = Vec::new();
    for i in runtime_stage().iter().filter(|i| i.keyword == "ENV") {
        all.extend(image_env(i));
    }
    all.extend(settings(
        &std::fs::read_to_string(repo().join("deploy/docker-compose.yml")).unwrap(),
    ));
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

/// `KEY=value` pairs of an `ENV` instruction.
fn image_env(i: &Instruction) -> Vec<(String, String)> {
    i.args
        .split_whitespace()
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.trim_matches('"').to_string()))
        .collect()
}

/// `1.90` → (1, 90, 0).
fn version(v: &str) -> (u32, u32, u32) {
    let mut parts = v.trim().split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    let mut next = || parts.next().unwrap_or(0);
    (next(), next(), next())
}

/// The build stage's toolchain (`FROM rust:1.90-bookworm AS build` → `1.90`).
fn dockerfile_toolchain() -> String {
    let from = common::deploy_files::dockerfile()
        .into_iter()
        .find(|i| i.keyword == "FROM" && i.args.starts_with("rust:"))
        .expect("a build stage FROM rust:VERSION");
    let tag = from.args.trim_start_matches("rust:");
    tag.split(['-', ' ']).next().unwrap().to_string()
}

#[test]
fn the_image_builds_with_a_toolchain_every_locked_crate_accepts() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    // The crates of a Linux build, the image's (crates only other platforms
    // use, e.g. macOS's TLS, are never downloaded here).
    let rustc = Command::new("rustc").arg("-vV").output().unwrap();
    let host = String::from_utf8_lossy(&rustc.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("host: ").map(str::to_string))
        .expect("rustc -vV names the host");
    assert!(
        host.contains("linux"),
        "the image is a Linux build; this test runs on Linux ({host})"
    );
    let out = Command::new(cargo)
        .args([
            "metadata",
            "--format-version",
            "1",
            "--locked",
            "--offline",
            "--filter-platform",
            &host,
        ])
        .current_dir(repo())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let resolved: std::collections::BTreeSet<&str> = meta["resolve"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|n| n["id"].as_str())
        .collect();
    // Every crate from a registry or git in the resolved graph (the
    // workspace's own crates claim the workspace's version, checked below).
    let needs: Vec<(String, String)> = meta["packages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["id"].as_str().is_some_and(|id| resolved.contains(id)) && p["source"].is_string())
        .filter_map(|p| Some((p["rust_version"].as_str()?.to_string(), p["name"].as_str()?.to_string())))
        .collect();
    assert!(needs.len() > 20, "too few crates declare a rust-version: {needs:?}");
    let (highest, by) = needs.iter().max_by_key(|(v, _)| version(v)).unwrap();

    let image = dockerfile_toolchain();
    assert!(
        version(&image) >= version(highest),
        "deploy/Dockerfile builds with Rust {image}, but {by} needs {highest}"
    );
    let workspace = read("Cargo.toml")
        .lines()
        .find_map(|l| l.strip_prefix("rust-version = "))
        .expect("a workspace rust-version")
        .trim_matches('"')
        .to_string();
    assert!(
        version(&workspace) >= version(highest),
        "the workspace says rust-version {workspace}, but {by} needs {highest}"
    );
    assert_eq!(
        version(&workspace),
        version(&image),
        "the workspace's rust-version and the image's toolchain differ"
    );
    // The seqline crates claim the workspace's version (so cargo checks it).
    for p in meta["packages"].as_array().unwrap() {
        if p["source"].is_null() && p["name"].as_str().unwrap().starts_with("seqline") {
            assert_eq!(
                p["rust_version"].as_str(),
                Some(workspace.as_str()),
                "{} does not inherit the workspace's rust-version",
                p["name"]
            );
        }
    }
    assert!(
        read("README.md").contains(&format!("{workspace}+")),
        "the README does not state the minimum Rust version {workspace}"
    );
}

#[test]
fn the_build_context_leaves_out_build_output_engines_data_and_history() {
    let ignore = read(".dockerignore");
    let patterns: Vec<&str> = ignore
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| l.trim_start_matches('/').trim_end_matches('/'))
        .collect();
    for needed in [
        "target",
        ".engines",
        ".git",
        "seqline-data",
        "seqline-cluster",
        "fuzz/target",
    ] {
        assert!(
            patterns.contains(&needed),
            ".dockerignore does not leave out {needed}/: {patterns:?}"
        );
    }
    assert!(
        !patterns.iter().any(|p| p.starts_with('!')),
        "no exceptions expected: {patterns:?}"
    );
    // What the build copies is still there.
    for kept in ["services", "schemas", "Cargo.toml", "Cargo.lock"] {
        assert!(!patterns.contains(&kept), ".dockerignore leaves out {kept}");
    }
}

/// The path the image installs the binary at (`COPY --from=build … DEST`).
fn installed_binary() -> String {
    runtime_stage()
        .iter()
        .find(|i| i.keyword == "COPY" && i.args.starts_with("--from=build"))
        .and_then(|i| i.args.split_whitespace().last().map(str::to_string))
        .expect("the binary copied from the build stage")
}

fn instruction(keyword: &str) -> Vec<String> {
    let found = runtime_stage()
        .into_iter()
        .rfind(|i| i.keyword == keyword)
        .unwrap_or_else(|| panic!("the image has no {keyword}"));
    // HEALTHCHECK [OPTIONS] CMD [...]
    let args = match found.args.split_once("CMD ") {
        Some((_, cmd)) if keyword == "HEALTHCHECK" => cmd.to_string(),
        _ => found.args,
    };
    exec_form(&args)
}

/// Runs the binary with `args` then `--help`: clap reads every argument
/// before the help, so success means each subcommand and flag exists.
fn accepts(args: &[String]) {
    let out = Command::new(env!("CARGO_BIN_EXE_seqline"))
        .args(args)
        .arg("--help")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "`seqline {}` is refused: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_image_commands_and_healthchecks_are_ones_the_binary_accepts() {
    let binary = installed_binary();
    let entrypoint = instruction("ENTRYPOINT");
    assert_eq!(entrypoint, vec![binary.clone()], "the entrypoint is the binary");
    let cmd = instruction("CMD");
    accepts(&cmd);
    let health = instruction("HEALTHCHECK");
    assert_eq!(
        health[0], binary,
        "the healthcheck runs the binary (no shell in the image)"
    );
    assert_eq!(health[1], "health");
    accepts(&health[1..]);

    let services = compose_services();
    let roles: Vec<_> = services
        .iter()
        .filter(|(_, s)| s.image.as_deref() == Some("seqline:dev"))
        .collect();
    let names: Vec<&str> = roles.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["fanout", "gateway", "persister"]);
    for (name, s) in roles {
        accepts(&s.command);
        assert_eq!(s.command[0], name.as_str(), "{name} runs `seqline {name}`");
        assert_eq!(
            s.healthcheck.first().map(String::as_str),
            Some("CMD"),
            "{name}: the healthcheck runs without a shell"
        );
        assert_eq!(s.healthcheck[1], binary, "{name}'s healthcheck");
        accepts(&s.healthcheck[2..]);
        assert!(
            matches!(s.restart.as_deref(), Some("unless-stopped" | "on-failure" | "always")),
            "{name} is not restarted when it exits: {:?}",
            s.restart
        );
    }
}

#[test]
fn the_data_directory_exists_and_belongs_to_the_runtime_user() {
    let stage = runtime_stage();
    let user = stage
        .iter()
        .rfind(|i| i.keyword == "USER")
        .map(|i| i.args.clone())
        .expect("the image runs as a user of its own");
    assert_ne!(user, "root");
    let cmd = instruction("CMD");
    let data = cmd
        .iter()
        .position(|a| a == "--data")
        .map(|i| cmd[i + 1].clone())
        .expect("the default command names its data directory");
    // Created and handed to the user before USER switches to it.
    let user_at = stage.iter().position(|i| i.keyword == "USER").unwrap();
    let runs: String = stage[..user_at]
        .iter()
        .filter(|i| i.keyword == "RUN")
        .map(|i| i.args.clone())
        .collect::<Vec<_>>()
        .join(" ; ");
    assert!(
        runs.contains("useradd") && runs.contains(&format!(" {user}")),
        "no RUN creates the user {user}: {runs}"
    );
    let words: Vec<&str> = runs.split_whitespace().collect();
    let mkdir = words
        .windows(3)
        .any(|w| w[0] == "mkdir" && (w[1] == data || (w[1] == "-p" && w[2] == data)))
        || words
            .windows(4)
            .any(|w| w[0] == "install" && w.contains(&data.as_str()));
    assert!(mkdir, "no RUN creates {data}: {runs}");
    let chown = words
        .windows(3)
        .any(|w| w[0] == "chown" && w[1].split(':').next() == Some(&user) && w[2] == data);
    assert!(chown, "no RUN gives {data} to {user}: {runs}");
    let workdir = stage.iter().rfind(|i| i.keyword == "WORKDIR").map(|i| i.args.clone());
    assert_eq!(workdir.as_deref(), Some(data.as_str()), "relative paths land in {data}");
}

/// A free loopback address (bound and released; the process binds it next).
fn free_addr() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().to_string()
}

/// `seqline health` as the image's healthcheck runs it, with `from` → `to`.
fn healthcheck(health: &[String], from: &str, to: &str) -> bool {
    Command::new(env!("CARGO_BIN_EXE_seqline"))
        .args(health[1..].iter().map(|a| a.replace(from, to)))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap()
        .success()
}

/// A process the test started, killed (by its PID) if still running when
/// the test ends, failed or not.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The image's default command with the image's environment (addresses on
/// loopback, a private data directory) serves, its healthcheck passes, and
/// SIGTERM stops it cleanly.
#[tokio::test]
async fn the_image_default_command_serves_and_passes_its_healthcheck() {
    let (gateway, health_addr) = (free_addr(), free_addr());
    let data = common::temp_dir("image-default");
    let data_dir = data.to_str().unwrap().to_string();
    let map = |v: &str| {
        v.replace("0.0.0.0:7600", &gateway)
            .replace("0.0.0.0:7601", &health_addr)
            .replace("/var/lib/seqline", &data_dir)
    };
    let env: Vec<(String, String)> = runtime_stage()
        .iter()
        .filter(|i| i.keyword == "ENV")
        .flat_map(image_env)
        .map(|(k, v)| (k, map(&v)))
        .collect();
    let args: Vec<String> = instruction("CMD").iter().map(|a| map(a)).collect();
    let mut child = KillOnDrop(
        Command::new(env!("CARGO_BIN_EXE_seqline"))
            .args(&args)
            .envs(env)
            .env_remove("SEQLINE_SECRET")
            .env_remove("SEQLINE_CONFIG")
            .env("RUST_LOG", "warn")
            .current_dir(&data)
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let health = instruction("HEALTHCHECK");
    let health_port = health_addr.clone();
    seqline_testkit::wait::until(Duration::from_secs(60), "the image's healthcheck to pass", || {
        if let Some(status) = child.0.try_wait().unwrap() {
            panic!("the image's default command exited with {status}");
        }
        let up = std::net::TcpStream::connect(&health_port).is_ok();
        let passed = up && healthcheck(&health, "127.0.0.1:7601", &health_port);
        async move { passed.then_some(()) }
    })
    .await;
    // The gateway's own endpoint, as a probe of the gateway port would see it.
    let gateway_url = format!("http://{gateway}/healthz");
    let gw = Command::new(env!("CARGO_BIN_EXE_seqline"))
        .args(["health", "--url", &gateway_url])
        .output()
        .unwrap();
    assert!(gw.status.success(), "{}", String::from_utf8_lossy(&gw.stderr));
    assert!(String::from_utf8_lossy(&gw.stdout).contains("200"));
    assert!(data.join("seqline-data").exists() || std::fs::read_dir(&data).unwrap().next().is_some());

    assert!(seqline_testkit::servers::signal_pid(child.0.id(), "TERM"));
    let status = seqline_testkit::wait::until(Duration::from_secs(30), "seqline dev to exit on SIGTERM", || {
        let s = child.0.try_wait().unwrap();
        async move { s }
    })
    .await;
    assert!(status.success(), "seqline dev exited with {status} after SIGTERM");
    // Once it is gone, the healthcheck fails.
    assert!(!healthcheck(&health, "127.0.0.1:7601", &health_addr));
    std::fs::remove_dir_all(&data).unwrap();
}

#[test]
fn make_traffic_and_make_up_agree_with_the_compose_file() {
    let services = compose_services();
    let gateway = &services["gateway"];
    assert_eq!(
        gateway.environment.get("SEQLINE_SECRET"),
        Some(&make_default("SECRET")),
        "`make traffic` signs with the Makefile's SECRET; the compose gateway must accept it"
    );
    assert!(
        gateway.command.iter().any(|a| a.ends_with(":7600")) && make_default("LISTEN").ends_with(":7600"),
        "`make traffic` goes to port 7600, where compose publishes the gateway"
    );
    let compose = make_default("COMPOSE");
    let makefile = read("Makefile");
    assert!(
        makefile.contains(&format!("command -v {compose} ")),
        "`make test-tools` does not install {compose}, the tool `make up` runs"
    );
    for target in ["up:", "down:"] {
        let body = makefile
            .split(&format!("\n{target}\n"))
            .nth(1)
            .unwrap_or_else(|| panic!("no {target} target"));
        let recipe = body.lines().next().unwrap();
        assert!(
            recipe.contains("$(COMPOSE) -f deploy/docker-compose.yml"),
            "{target} {recipe}"
        );
    }
    // One node of each engine: everything replicated once.
    let env = &gateway.environment;
    assert!(env["SEQLINE__PORTS__LOG"].contains("replication=1"), "{env:?}");
    assert!(env["SEQLINE__PORTS__STORE"].contains("rf=1"), "{env:?}");
    let kafka = &services["kafka"].environment;
    for (k, v) in kafka {
        if k.contains("REPLICATION_FACTOR") || k.ends_with("MIN_ISR") || k.ends_with("MIN_INSYNC_REPLICAS") {
            assert_eq!(v, "1", "{k} on a one-broker cluster");
        }
    }
}
