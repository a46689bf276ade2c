//! Cluster mode: every part a separate OS process, as a user deploys it.
//! Apache Kafka (one KRaft node, data on disk), Apache Cassandra (the CQL
//! server standing in for ScyllaDB) and `redis-server`, and two processes of
//! each role (`seqline gateway`, `seqline persister`, `seqline fanout`)
//! configured through the environment, as an orchestrator would. Faults are
//! real signals to real processes: SIGKILL, SIGTERM, SIGSTOP/SIGCONT, and a
//! role restarted with `SEQLINE_FAILPOINTS` armed aborts (or stops itself)
//! at a named point.
//!
//! The engines are private to the cluster ([`Engines::Private`], what the
//! chaos runner uses: it kills them) or the shared ones of a test run
//! ([`Engines::Shared`]: `SEQLINE_TEST_KAFKA`, `SEQLINE_TEST_CASSANDRA`;
//! faults on the engines are refused there). Each cluster has its own topic
//! prefix, keyspace and Redis key prefix, so clusters can share engines.

use crate::metrics;
use crate::report::Tally;
use crate::schedule::{Fault, Point, Step};
use anyhow::{bail, Context, Result};
use seqline_core::failpoint::names;
use seqline_core::records::Topic;
use seqline_testkit::cassandra::CassandraServer;
use seqline_testkit::kafka::KafkaServer;
use seqline_testkit::servers::{self, ServerProcess};
use std::collections::BTreeMap;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// What a role process is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `seqline gateway`.
    Gateway,
    /// `seqline persister` (sequencer + timeline writer).
    Persister,
    /// `seqline fanout`.
    Fanout,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Gateway => "gateway",
            Kind::Persister => "persister",
            Kind::Fanout => "fanout",
        }
    }
}

/// Where the engines come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Engines {
    /// Kafka and Cassandra processes of this cluster's own (they can be
    /// killed and restarted).
    Private,
    /// The shared engines of the test run (`SEQLINE_TEST_KAFKA`,
    /// `SEQLINE_TEST_CASSANDRA`); only the roles and Redis can be faulted.
    Shared,
}

/// How to lay the cluster out.
#[derive(Clone, Debug)]
pub struct ClusterOptions {
    /// The `seqline` binary.
    pub bin: PathBuf,
    /// Logs of every process go here.
    pub dir: PathBuf,
    /// Token secret of the gateways.
    pub secret: String,
    /// Private or shared engines.
    pub engines: Engines,
    /// Gateway processes.
    pub gateways: usize,
    /// Persister processes.
    pub persisters: usize,
    /// Fanout processes.
    pub fanouts: usize,
    /// Partitions of the keyed topics.
    pub partitions: u32,
    /// The consumers' session timeout (a stalled member loses its
    /// partitions this long after its last heartbeat).
    pub session_timeout: Duration,
    /// The producers' delivery timeout (an append fails after it).
    pub message_timeout: Duration,
    /// Extra `SEQLINE__…` settings for every role, e.g. the persister's
    /// read-diffusion threshold.
    pub env: Vec<(String, String)>,
}

impl ClusterOptions {
    /// Two gateways, two persisters, two fanouts on private engines, with
    /// production consumer settings but a 10 s producer timeout.
    pub fn new(bin: PathBuf, dir: PathBuf, secret: &str) -> Self {
        Self {
            bin,
            dir,
            secret: secret.to_string(),
            engines: Engines::Private,
            gateways: 2,
            persisters: 2,
            fanouts: 2,
            partitions: env_u32("CHAOS_KAFKA_PARTITIONS").unwrap_or(4),
            session_timeout: env_millis("CHAOS_KAFKA_SESSION_TIMEOUT_MS").unwrap_or(Duration::from_secs(10)),
            message_timeout: Duration::from_secs(10),
            env: Vec::new(),
        }
    }
}

fn env_u32(name: &str) -> Option<u32> {
    std::env::var(name).ok()?.parse().ok()
}

fn env_millis(name: &str) -> Option<Duration> {
    std::env::var(name).ok()?.parse().ok().map(Duration::from_millis)
}

/// SIGABRT: how a process armed with `SEQLINE_FAILPOINTS=…abort@N` dies.
const SIGABRT: i32 = 6;

/// How long a role may take to print its banner (it connects to Kafka,
/// Cassandra and Redis first; after an engine restart that can take a while).
const START_DEADLINE: Duration = Duration::from_secs(120);

/// F9: how long past the session timeout a stopped sequencer may stay
/// stopped while the runner waits for the other persister to take its
/// partitions over and store the commands the stopped one holds.
const F9_TAKEOVER: Duration = Duration::from_secs(90);

/// Sends `signal` (`STOP`, `CONT`, `TERM`, `KILL`) to `pid`.
fn signal(pid: u32, signal: &str) -> bool {
    crate::embedded::signal(pid, signal)
}

/// Whether `pid` is stopped (state `T` in `/proc/PID/stat`).
fn is_stopped(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rsplit_once(')').map(|(_, rest)| rest.trim_start().starts_with('T')))
        .unwrap_or(false)
}

/// A free loopback port (bound and released: the role binds it right after).
fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// One role process and what its ended lifetimes counted.
pub struct RoleProcess {
    kind: Kind,
    slot: usize,
    starts: u64,
    child: Option<Child>,
    /// Gateway: where it listens (fixed after the first start); others:
    /// their health endpoint (`/metrics`).
    addr: String,
    /// Counters of the current lifetime at the last scrape.
    last: BTreeMap<String, u64>,
    /// Counters summed over the lifetimes that ended.
    banked: BTreeMap<String, u64>,
}

impl RoleProcess {
    /// `gateway-0`, `persister-1`, …
    pub fn name(&self) -> String {
        format!("{}-{}", self.kind.name(), self.slot)
    }

    /// The process id while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(Child::id)
    }

    /// Reads the process's counters (failure point hits, fence refusals).
    async fn scrape(&mut self) {
        if self.child.is_none() {
            return;
        }
        if let Some(text) = metrics::scrape(&self.addr).await {
            let mut now = BTreeMap::new();
            for (point, n) in metrics::parse_failpoints(&text) {
                now.insert(format!("failpoint:{point}"), n);
            }
            if let Some(n) = metrics::value(&text, "seqline_fence_refusals_total") {
                now.insert("fence_refusals".into(), n);
            }
            self.last = now;
        }
    }

    /// Ends the current lifetime's books: its last counters go to the bank.
    fn bank(&mut self) {
        for (k, v) in std::mem::take(&mut self.last) {
            *self.banked.entry(k).or_default() += v;
        }
    }

    /// A counter summed over every lifetime.
    fn total(&self, key: &str) -> u64 {
        self.banked.get(key).copied().unwrap_or(0) + self.last.get(key).copied().unwrap_or(0)
    }

    /// SIGKILL and wait (the counters are read first).
    async fn kill(&mut self) {
        self.scrape().await;
        if let Some(mut c) = self.child.take() {
            let _ = c.kill().await;
        }
        self.bank();
    }

    /// SIGTERM and wait for the drain (SIGKILL after 30 s).
    async fn terminate(&mut self) -> Result<()> {
        self.scrape().await;
        let Some(mut c) = self.child.take() else { return Ok(()) };
        if let Some(pid) = c.id() {
            signal(pid, "TERM");
        }
        let outcome = tokio::time::timeout(Duration::from_secs(30), c.wait()).await;
        self.bank();
        match outcome {
            Ok(status) => {
                let status = status.context("waiting for a role")?;
                if !status.success() {
                    bail!("{} exited with {status} after SIGTERM", self.name());
                }
                Ok(())
            }
            Err(_) => {
                let _ = c.kill().await;
                bail!("{} did not stop within 30 s of SIGTERM", self.name())
            }
        }
    }

    /// Whether it ended on its own, and how.
    fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.as_mut().and_then(|c| c.try_wait().ok().flatten())
    }
}

/// The system under test.
pub struct Cluster {
    o: ClusterOptions,
    kafka: Option<KafkaServer>,
    cassandra: Option<CassandraServer>,
    redis: ServerProcess,
    redis_port: u16,
    bootstrap: String,
    cql: String,
    /// This cluster's names: topic prefix, keyspace, Redis prefix.
    run: String,
    /// The runner's own broker connection: poison records, backlog.
    injector: seqline_kafka::KafkaLog,
    roles: Vec<RoleProcess>,
}

impl Cluster {
    /// Starts the engines (or takes the shared ones), `redis-server`, and
    /// the role processes: one persister first (it creates the keyspace and
    /// the topics), then the rest.
    pub async fn start(o: ClusterOptions) -> Result<Cluster> {
        std::fs::create_dir_all(&o.dir).with_context(|| format!("creating {}", o.dir.display()))?;
        if !o.bin.exists() {
            bail!(
                "the seqline binary {} does not exist: build it first (cargo build -p seqline)",
                o.bin.display()
            );
        }
        let run = uuid::Uuid::new_v4().simple().to_string()[..10].to_string();
        let (kafka, cassandra, bootstrap, cql) = match o.engines {
            Engines::Private => {
                // Both JVMs start side by side.
                let k = tokio::task::spawn_blocking(KafkaServer::start);
                let c = tokio::task::spawn_blocking(CassandraServer::start);
                let (k, c) = (
                    k.await.context("starting Kafka")?,
                    c.await.context("starting Cassandra")?,
                );
                let (b, q) = (k.bootstrap().to_string(), c.addr().to_string());
                (Some(k), Some(c), b, q)
            }
            Engines::Shared => (
                None,
                None,
                seqline_testkit::kafka::shared_bootstrap(),
                seqline_testkit::cassandra::shared_nodes(),
            ),
        };
        let redis = tokio::task::spawn_blocking(servers::redis).await?;
        let redis_port = redis
            .addr
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .context("redis port")?;
        let injector = seqline_kafka::KafkaLog::connect(seqline_kafka::KafkaOptions {
            bootstrap: bootstrap.clone(),
            topic_prefix: format!("c{run}."),
            inbound: o.partitions,
            deliveries: o.partitions,
            user_events: o.partitions,
            conv_events: o.partitions,
            priority_events: o.partitions,
            replication_factor: 1,
            session_timeout: o.session_timeout,
            message_timeout: o.message_timeout,
            ..Default::default()
        })
        .await
        .context("connecting to Kafka")?;
        let mut c = Cluster {
            o,
            kafka,
            cassandra,
            redis,
            redis_port,
            bootstrap,
            cql,
            run,
            injector,
            roles: Vec::new(),
        };
        let layout = [
            (Kind::Persister, c.o.persisters),
            (Kind::Fanout, c.o.fanouts),
            (Kind::Gateway, c.o.gateways),
        ];
        for (kind, n) in layout {
            for slot in 0..n {
                let mut role = RoleProcess {
                    kind,
                    slot,
                    starts: 0,
                    child: None,
                    addr: match kind {
                        Kind::Gateway => "127.0.0.1:0".into(),
                        _ => format!("127.0.0.1:{}", free_port()?),
                    },
                    last: BTreeMap::new(),
                    banked: BTreeMap::new(),
                };
                c.spawn(&mut role, None).await?;
                c.roles.push(role);
            }
        }
        Ok(c)
    }

    /// The `kafka://` URL every role gets.
    fn log_url(&self) -> String {
        format!(
            "kafka://{}?prefix=c{}.&partitions={}&replication=1&session_timeout={}ms&max_poll_interval={}ms&message_timeout={}ms",
            self.bootstrap,
            self.run,
            self.o.partitions,
            self.o.session_timeout.as_millis(),
            // A worker that stops reading gives its partitions away after
            // this long (the default, 300 s, would make F9 long).
            self.o.session_timeout.as_millis().max(30_000),
            self.o.message_timeout.as_millis(),
        )
    }

    /// The `scylla://` URL every role gets (one node: replication 1).
    fn store_url(&self) -> String {
        format!("scylla://{}/c{}?rf=1", self.cql, self.run)
    }

    /// Starts `role` (again) and waits for its banner; with `failpoints`
    /// armed when given. Retries until [`START_DEADLINE`], as an
    /// orchestrator restarts a role that fails while an engine is away.
    async fn spawn(&self, role: &mut RoleProcess, failpoints: Option<&str>) -> Result<()> {
        let deadline = Instant::now() + START_DEADLINE;
        loop {
            role.starts += 1;
            let log_path = self.o.dir.join(format!("{}.log", role.name()));
            let log = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&log_path)
                .with_context(|| format!("opening {}", log_path.display()))?;
            let mut cmd = Command::new(&self.o.bin);
            cmd.arg(role.kind.name())
                .env("SEQLINE_SECRET", &self.o.secret)
                .env("SEQLINE__PORTS__LOG", self.log_url())
                .env("SEQLINE__PORTS__STORE", self.store_url())
                .env(
                    "SEQLINE__PORTS__PRESENCE",
                    format!("redis://127.0.0.1:{}?prefix=c{}", self.redis_port, self.run),
                )
                .env("SEQLINE__GATEWAY__ID", format!("gw-{}", role.slot))
                .env(
                    "RUST_LOG",
                    std::env::var("SEQLINE_CHAOS_SERVER_LOG").unwrap_or("warn".into()),
                )
                .env_remove("SEQLINE_FAILPOINTS")
                .env_remove("SEQLINE_CONFIG")
                .envs(self.o.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(log)
                .kill_on_drop(true);
            match role.kind {
                Kind::Gateway => {
                    cmd.args(["--listen", &role.addr]);
                }
                _ => {
                    cmd.env("SEQLINE__HEALTH__LISTEN", &role.addr);
                }
            }
            if let Some(f) = failpoints {
                cmd.env("SEQLINE_FAILPOINTS", f);
            }
            let mut child = cmd
                .spawn()
                .with_context(|| format!("starting {}", self.o.bin.display()))?;
            let stdout = child.stdout.take().context("role stdout")?;
            let mut lines = BufReader::new(stdout).lines();
            let left = deadline.saturating_duration_since(Instant::now());
            let banner = tokio::time::timeout(left, lines.next_line()).await;
            let expected = match role.kind {
                Kind::Gateway => "seqline gateway listening on ",
                Kind::Persister => "seqline persister running",
                Kind::Fanout => "seqline fanout running",
            };
            match banner {
                Ok(Ok(Some(line))) if line.starts_with(expected) => {
                    if role.kind == Kind::Gateway {
                        role.addr = line.trim_start_matches(expected).trim().to_string();
                    }
                    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
                    role.child = Some(child);
                    return Ok(());
                }
                other => {
                    let _ = child.kill().await;
                    // A configuration the role refuses will not get better.
                    let tail = std::fs::read_to_string(&log_path).unwrap_or_default();
                    if let Some(line) = tail.lines().last().filter(|l| l.contains("configuration error")) {
                        bail!("{} refused its configuration: {line}", role.name());
                    }
                    if Instant::now() >= deadline {
                        bail!(
                            "{} did not start within {START_DEADLINE:?} ({other:?}); see {}",
                            role.name(),
                            log_path.display()
                        );
                    }
                    tracing::info!(role = %role.name(), "a role did not start (an engine may be away); trying again");
                    // The old port may still be held for a moment after a kill.
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        }
    }

    /// How the system is laid out, for the report.
    pub fn describe(&self) -> String {
        let engines = match self.o.engines {
            Engines::Private => "private",
            Engines::Shared => "shared",
        };
        format!(
            "Apache Kafka {} and Apache Cassandra {} ({engines} processes), redis-server {}; \
             {} gateway, {} persister and {} fanout processes; {} partitions, session timeout {:?}, \
             producer timeout {:?}",
            self.bootstrap,
            self.cql,
            self.redis.addr,
            self.o.gateways,
            self.o.persisters,
            self.o.fanouts,
            self.o.partitions,
            self.o.session_timeout,
            self.o.message_timeout,
        )
    }

    /// The drained signal of the final phase: neither the sequencers nor
    /// the timeline writers have anything uncommitted, and still nothing
    /// after a producer timeout (by when any append a gateway still held
    /// has landed or failed).
    pub fn drain_check(&self) -> seqline_loadgen::DrainCheck {
        let log = self.injector.clone();
        let linger = self.o.message_timeout;
        // The roles run with the default group names.
        let groups = std::sync::Arc::new(seqline_persister::PersisterConfig::default());
        seqline_loadgen::DrainCheck::new(move || {
            let (log, groups) = (log.clone(), groups.clone());
            Box::pin(async move {
                let behind = || async {
                    let sequencer = log.backlog(&groups.sequencer_group, &Topic::Inbound).await?;
                    let timeline = log.backlog(&groups.timeline_group, &Topic::Deliveries).await?;
                    anyhow::Ok(sequencer + timeline)
                };
                if behind().await? > 0 {
                    return Ok(false);
                }
                tokio::time::sleep(linger).await;
                Ok(behind().await? == 0)
            })
        })
    }

    /// The gateways' addresses.
    pub fn gateways(&self) -> Vec<String> {
        self.roles
            .iter()
            .filter(|r| r.kind == Kind::Gateway)
            .map(|r| r.addr.clone())
            .collect()
    }

    fn pick(&self, kind: Kind, pick: u64) -> Result<usize> {
        let of: Vec<usize> = (0..self.roles.len()).filter(|i| self.roles[*i].kind == kind).collect();
        if of.is_empty() {
            bail!("the cluster has no {} process", kind.name());
        }
        Ok(of[(pick as usize) % of.len()])
    }

    /// Kills the role at `index` (SIGKILL) and starts it again.
    async fn kill_and_replace(&mut self, index: usize) -> Result<()> {
        let mut role = self.roles.remove(index);
        role.kill().await;
        let started = self.spawn(&mut role, None).await;
        self.roles.insert(index, role);
        started
    }

    /// Restarts every role that ended on its own (a role fails fast, e.g.
    /// when an engine stays away; an orchestrator restarts it). Returns
    /// what ended and why.
    pub async fn restart_failed(&mut self) -> Result<Vec<String>> {
        let mut ended = Vec::new();
        // The counters of every live role, before any of them dies.
        for r in &mut self.roles {
            r.scrape().await;
        }
        for i in 0..self.roles.len() {
            if let Some(status) = self.roles[i].exited() {
                ended.push(format!("{}: exited with {status}", self.roles[i].name()));
                self.roles[i].child = None;
                self.roles[i].bank();
                let mut role = self.roles.remove(i);
                let started = self.spawn(&mut role, None).await;
                self.roles.insert(i, role);
                started?;
            }
        }
        Ok(ended)
    }

    /// Total acks over the gateways.
    async fn acks(&self) -> u64 {
        let mut n = 0;
        for a in self.gateways() {
            n += metrics::acks(&a).await.unwrap_or(0);
        }
        n
    }

    fn kafka(&mut self) -> Result<&mut KafkaServer> {
        self.kafka
            .as_mut()
            .context("faults on Kafka need the cluster's own broker (Engines::Private)")
    }

    /// Injects one fault of cluster mode and heals it.
    pub async fn inject(&mut self, fault: Fault, step: &Step, tally: &mut Tally) -> Result<()> {
        match fault {
            Fault::KillGateway => {
                let i = self.pick(Kind::Gateway, step.pick)?;
                self.kill_and_replace(i).await?;
            }
            Fault::KillPersister => {
                let i = self.pick(Kind::Persister, step.pick)?;
                // Anywhere in the next second: mid-batch, mid-commit.
                tokio::time::sleep(Duration::from_millis(step.pick % 1_000)).await;
                self.kill_and_replace(i).await?;
            }
            Fault::KillFanout => {
                let i = self.pick(Kind::Fanout, step.pick)?;
                self.kill_and_replace(i).await?;
            }
            Fault::KillRoleAt(point) => self.abort_at(point, step, tally).await?,
            Fault::RollingRestart => {
                for i in 0..self.roles.len() {
                    let mut role = self.roles.remove(i);
                    let stopped = role.terminate().await;
                    let started = self.spawn(&mut role, None).await;
                    self.roles.insert(i, role);
                    if let Err(e) = stopped {
                        tally.unexpected_exit(format!("{e:#}"));
                    }
                    started?;
                }
            }
            Fault::BrokerPause => {
                let k = self.kafka()?;
                k.signal("STOP");
                tokio::time::sleep(step.hold).await;
                k.signal("CONT");
            }
            Fault::BrokerOutage => {
                self.kafka()?.signal("STOP");
                // Acks of appends the broker took before it stopped are out
                // within a second; after that no ack may be sent.
                tokio::time::sleep(Duration::from_secs(1)).await;
                let before = self.acks().await;
                tokio::time::sleep(self.o.message_timeout + step.hold).await;
                let after = self.acks().await;
                self.kafka()?.signal("CONT");
                tally.acks_during_outage += after.saturating_sub(before);
            }
            Fault::BrokerKill => {
                let mut k = self.kafka.take().context("F6 needs the cluster's own broker")?;
                let hold = step.hold;
                let restarted = tokio::task::spawn_blocking(move || {
                    k.kill();
                    std::thread::sleep(hold);
                    k.restart();
                    k
                })
                .await
                .context("restarting Kafka")?;
                self.kafka = Some(restarted);
            }
            Fault::StoreRestart => {
                let mut c = self
                    .cassandra
                    .take()
                    .context("a store restart needs the cluster's own Cassandra")?;
                let restarted = tokio::task::spawn_blocking(move || {
                    c.kill();
                    c.restart();
                    c
                })
                .await
                .context("restarting Cassandra")?;
                self.cassandra = Some(restarted);
            }
            Fault::SequencerStall => self.stall_sequencer(step, tally).await?,
            Fault::RedisRestart => {
                self.redis.kill();
                tokio::time::sleep(step.hold).await;
                let port = self.redis_port;
                self.redis = tokio::task::spawn_blocking(move || servers::redis_on(port)).await?;
            }
            Fault::PoisonRecords => self.poison(step.pick).await?,
            other => bail!("{other:?} is not a fault of cluster mode"),
        }
        Ok(())
    }

    /// F9 across processes: a persister is restarted armed to stop itself
    /// (SIGSTOP) in the middle of a sequencer batch, before its store write.
    /// It stays stopped past the session timeout, so the group gives its
    /// partitions to the other persister, which stores the same commands.
    /// Then SIGCONT: the stopped one writes its stale batch, and the store's
    /// compare-and-set must refuse it (the fence refusals count it).
    pub async fn stall_sequencer(&mut self, step: &Step, tally: &mut Tally) -> Result<()> {
        let i = self.pick(Kind::Persister, step.pick)?;
        let nth = 1 + step.pick % 20;
        let mut role = self.roles.remove(i);
        role.kill().await;
        let point = names::SEQUENCER_BEFORE_STORE;
        let started = self.spawn(&mut role, Some(&format!("{point}=stop@{nth}"))).await;
        let pid = role.pid();
        self.roles.insert(i, role);
        started?;
        let pid = pid.context("the armed persister has no pid")?;
        // It joins the consumer group first: a rebalance that waits out the
        // killed member's session, then seconds more on a loaded machine.
        let deadline = Instant::now() + self.o.session_timeout + Duration::from_secs(50);
        while !is_stopped(pid) {
            if self.roles[i].exited().is_some() || Instant::now() > deadline {
                tally.point_missed(point);
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        tally.point_reached(point);
        let fenced_before = self.fence_refusals().await;
        // Where the sequencers stood when it stopped: its partitions are the
        // ones whose position then stays put while records wait behind it.
        let group = seqline_persister::PersisterConfig::default().sequencer_group;
        let at_stop = self
            .injector
            .positions(&group, &Topic::Inbound)
            .await
            .unwrap_or_default();
        tokio::time::sleep(self.o.session_timeout + step.hold).await;
        // The takeover is done once the other persister has read and stored
        // past the position of the moment of the stop on every partition
        // that then had records waiting (the stopped one's among them): it
        // has stored the commands the stopped one holds, whose batch is now
        // stale.
        let deadline = Instant::now() + F9_TAKEOVER;
        while Instant::now() < deadline {
            let now = self
                .injector
                .positions(&group, &Topic::Inbound)
                .await
                .unwrap_or_default();
            let moved = now.len() == at_stop.len()
                && now
                    .iter()
                    .zip(&at_stop)
                    .all(|((pos, _), (was, end))| was == end || pos > was);
            if moved {
                break;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        signal(pid, "CONT");
        // Read its counters while it lives: the refusal of its stale write
        // comes within moments (a later fault may kill it before the next
        // scrape, and a killed process cannot be asked).
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline && self.fence_refusals().await <= fenced_before {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        Ok(())
    }

    /// Restarts a role of the kind that runs `point`, armed to abort on
    /// one of its next hits; waits for the abort and starts it clean. A
    /// point not reached in 20 s is counted as missed.
    async fn abort_at(&mut self, point: Point, step: &Step, tally: &mut Tally) -> Result<()> {
        let kind = match point {
            Point::AfterAppend => Kind::Gateway,
            Point::SequencerAfterStore | Point::BeforeOffsetCommit | Point::TimelineAfterStore => Kind::Persister,
        };
        let i = self.pick(kind, step.pick)?;
        let nth = 1 + step.pick % 100;
        let mut role = self.roles.remove(i);
        role.kill().await;
        let started = self
            .spawn(&mut role, Some(&format!("{}=abort@{nth}", point.name())))
            .await;
        if let Err(e) = started {
            self.roles.insert(i, role);
            return Err(e);
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = role.exited() {
                role.child = None;
                if status.signal() == Some(SIGABRT) {
                    tally.point_reached(point.name());
                    // It died on hit `nth` (the lifetime's other counters
                    // are not known).
                    role.last.insert(format!("failpoint:{}", point.name()), nth);
                } else {
                    tally.role_failure(format!(
                        "{} armed at {}: exited with {status}",
                        role.name(),
                        point.name()
                    ));
                }
                role.bank();
                break;
            }
            if Instant::now() > deadline {
                tally.point_missed(point.name());
                role.kill().await;
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let started = self.spawn(&mut role, None).await;
        self.roles.insert(i, role);
        started
    }

    /// Undecodable, empty and large junk records into the topics the roles
    /// consume (F13): each must be dead-lettered and its partition flow on.
    async fn poison(&self, pick: u64) -> Result<()> {
        let junk: [Vec<u8>; 3] = [
            b"\xffnot a record".to_vec(),
            Vec::new(),
            (0..256 * 1024).map(|i| (i as u64 ^ pick) as u8).collect(),
        ];
        for (i, topic) in [Topic::Inbound, Topic::Deliveries, Topic::UserEvents]
            .iter()
            .enumerate()
        {
            let partition = ((pick >> (8 * i)) % u64::from(self.o.partitions)) as u32;
            for raw in &junk {
                self.injector
                    .inject_raw_for_tests(topic, partition, raw.clone())
                    .await
                    .with_context(|| format!("injecting into {}", topic.name()))?;
            }
        }
        Ok(())
    }

    /// Everything back up: engines running, every role live.
    pub async fn heal(&mut self, tally: &mut Tally) -> Result<()> {
        if let Some(k) = &self.kafka {
            k.signal("CONT");
        }
        for r in &self.roles {
            if let Some(pid) = r.pid() {
                signal(pid, "CONT");
            }
        }
        if self.redis.pid().is_none() {
            let port = self.redis_port;
            self.redis = tokio::task::spawn_blocking(move || servers::redis_on(port)).await?;
        }
        for ended in self.restart_failed().await? {
            tally.role_failure(ended);
        }
        Ok(())
    }

    /// Failure point hits summed over every role lifetime.
    pub async fn failpoint_hits(&mut self) -> Vec<(String, u64)> {
        let mut out: BTreeMap<String, u64> = BTreeMap::new();
        for r in &mut self.roles {
            r.scrape().await;
            let keys: std::collections::BTreeSet<String> = r.banked.keys().chain(r.last.keys()).cloned().collect();
            for k in keys {
                if let Some(point) = k.strip_prefix("failpoint:") {
                    *out.entry(point.to_string()).or_default() += r.total(&k);
                }
            }
        }
        out.into_iter().collect()
    }

    /// Stale writes the store refused, summed over every persister lifetime.
    pub async fn fence_refusals(&mut self) -> u64 {
        let mut n = 0;
        for r in &mut self.roles {
            r.scrape().await;
            n += r.total("fence_refusals");
        }
        n
    }

    /// Where the roles' logs are.
    pub fn dir(&self) -> &Path {
        &self.o.dir
    }

    /// Stops every role (drain), then the engines this cluster started.
    pub async fn stop(mut self) {
        for r in &mut self.roles {
            if let Some(pid) = r.pid() {
                signal(pid, "CONT");
            }
            if let Err(e) = r.terminate().await {
                tracing::warn!(error = %format!("{e:#}"), "a role did not drain cleanly");
            }
        }
        self.redis.kill();
        let (kafka, cassandra) = (self.kafka.take(), self.cassandra.take());
        let _ = tokio::task::spawn_blocking(move || {
            drop(kafka);
            drop(cassandra);
        })
        .await;
    }
}
