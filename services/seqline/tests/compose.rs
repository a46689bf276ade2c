//! deploy/docker-compose.yml's roles without a container engine: the
//! persister, fanout and gateway run as processes of the test's binary with
//! exactly the environment and command the compose file gives each service,
//! the compose host names pointed at the run's engines (the shared Apache
//! Kafka and Apache Cassandra, a `redis-server` of the test's own), the
//! published ports at free loopback ports. Only the names are made private
//! (a keyspace and a topic prefix of this run) so the shared engines stay
//! clean. Started in compose's order, each waiting until the one it depends
//! on passes its compose healthcheck; then W1 runs through the gateway with
//! the secret `make traffic` uses, and every acknowledged message must be
//! delivered.

#![allow(clippy::unwrap_used)]

mod common;

use common::deploy_files::{compose_services, make_default, Service};
use seqline_loadgen::{Mode, RunOptions, Workload};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// How long a role may take to connect to the engines and pass its healthcheck.
const HEALTHY_WITHIN: Duration = Duration::from_secs(120);

/// A role process this test started (killed by its PID if still running
/// when dropped).
struct Role {
    name: String,
    child: Child,
    log: PathBuf,
    /// The healthcheck command, addresses mapped.
    health: Vec<String>,
}

impl Drop for Role {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_addr() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().to_string()
}

/// The compose service's addresses → this run's: `(from, to)` pairs.
struct Mapping {
    pairs: Vec<(String, String)>,
}

impl Mapping {
    fn apply(&self, value: &str) -> String {
        let mut v = value.to_string();
        for (from, to) in &self.pairs {
            v = v.replace(from.as_str(), to);
        }
        v
    }
}

fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

/// Starts `name` as compose would, and waits until its healthcheck passes.
async fn start(name: &str, service: &Service, base: &Mapping, dir: &Path) -> Role {
    // Per role: its health port (and the gateway's published port).
    let health_addr = free_addr();
    let mut pairs = base.pairs.clone();
    pairs.push(("0.0.0.0:7601".into(), health_addr.clone()));
    pairs.push(("127.0.0.1:7601".into(), health_addr.clone()));
    let map = Mapping { pairs };
    let env: Vec<(String, String)> = service
        .environment
        .iter()
        .map(|(k, v)| (k.clone(), map.apply(v)))
        .collect();
    for (k, v) in &env {
        for host in ["kafka", "scylla", "redis", "otel-collector"] {
            assert!(
                !v.contains(&format!("//{host}:")),
                "{name}: {k}={v} names the compose host {host}, which the test does not map"
            );
        }
    }
    let log = dir.join(format!("{name}.log"));
    let out = std::fs::File::create(&log).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_seqline"))
        .args(service.command.iter().map(|a| map.apply(a)))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(env)
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .unwrap();
    let health: Vec<String> = service.healthcheck.iter().map(|a| map.apply(a)).collect();
    assert_eq!(health.first().map(String::as_str), Some("CMD"), "{name}: {health:?}");
    let mut role = Role {
        name: name.to_string(),
        child,
        log,
        health,
    };
    let what = format!("{name} to pass its compose healthcheck");
    seqline_testkit::wait::until(HEALTHY_WITHIN, &what, || {
        if let Some(status) = role.child.try_wait().unwrap() {
            panic!("{name} exited at start-up with {status}:\n{}", tail(&role.log));
        }
        let passed = std::net::TcpStream::connect(&health_addr).is_ok() && healthcheck(&role);
        async move { passed.then_some(()) }
    })
    .await;
    role
}

/// Runs the role's healthcheck (`CMD binary args…`) with the test's binary
/// in place of the image's path.
fn healthcheck(role: &Role) -> bool {
    Command::new(env!("CARGO_BIN_EXE_seqline"))
        .args(&role.health[2..])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap()
        .success()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_compose_roles_start_on_the_compose_environment_and_deliver_w1() {
    let kafka = seqline_testkit::kafka::shared_bootstrap();
    let cassandra = seqline_testkit::cassandra::shared_nodes();
    let redis = tokio::task::spawn_blocking(seqline_testkit::servers::redis)
        .await
        .unwrap();
    let services = compose_services();
    let run = uuid::Uuid::new_v4().simple().to_string()[..10].to_string();
    let gateway_addr = free_addr();
    // Nothing listens here: trace export fails quietly, as with a collector
    // that is away.
    let collector = free_addr();
    let dir = common::temp_dir("compose");
    let base = Mapping {
        pairs: vec![
            // This run's names on the shared engines.
            ("kafka:9092?".into(), format!("{kafka}?prefix=c{run}.&")),
            ("scylla:9042/seqline?".into(), format!("{cassandra}/c{run}?")),
            ("kafka:9092".into(), kafka.clone()),
            ("scylla:9042".into(), cassandra.clone()),
            ("redis:6379".into(), redis.addr.clone()),
            ("otel-collector:4317".into(), collector),
            ("0.0.0.0:7600".into(), gateway_addr.clone()),
        ],
    };

    // compose's order: the persister (it creates the topics and the
    // keyspace), then the roles that depend on it being healthy.
    let mut roles = Vec::new();
    for name in ["persister", "fanout", "gateway"] {
        let service = services
            .get(name)
            .unwrap_or_else(|| panic!("the compose file has no {name} service"));
        roles.push(start(name, service, &base, &dir).await);
    }

    // `make traffic`'s secret against the compose gateway.
    let secret = make_default("SECRET");
    let mut o = RunOptions::new(
        Workload::W1 {
            users: 12,
            messages: 600,
            two_device_fraction: 0.25,
        },
        secret,
    );
    o.url = format!("ws://{gateway_addr}/v1/ws");
    o.http = format!("http://{gateway_addr}");
    o.mode = Mode::ClosedLoop { window: 4 };
    o.max_duration = Duration::from_secs(120);
    o.settle_timeout = Duration::from_secs(90);
    o.seed = 18;
    let report = seqline_loadgen::run(o).await.expect("w1 run");
    eprintln!("{report}");
    assert!(report.acked >= 500, "too little acknowledged: {}", report.acked);
    assert!(report.passed(), "W1 through the compose roles did not pass:\n{report}");

    // `docker-compose down` sends SIGTERM: every role drains and exits 0.
    for role in roles.iter_mut().rev() {
        assert!(healthcheck(role), "{} is unhealthy after the run", role.name);
        assert!(seqline_testkit::servers::signal_pid(role.child.id(), "TERM"));
        let what = format!("{} to exit on SIGTERM", role.name);
        let child = &mut role.child;
        let status = seqline_testkit::wait::until(Duration::from_secs(30), &what, || {
            let s = child.try_wait().unwrap();
            async move { s }
        })
        .await;
        assert!(
            status.success(),
            "{} exited with {status} after SIGTERM:\n{}",
            role.name,
            tail(&role.log)
        );
    }
    drop(roles);
    drop(redis);
    std::fs::remove_dir_all(&dir).unwrap();
}
