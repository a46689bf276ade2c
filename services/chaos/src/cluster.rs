//! Kafka mode: a real Kafka-protocol broker (tansu) and a real
//! `redis-server` as separate processes, and two instances of each role
//! (gateway, persister, fanout) with their own broker and Redis connections.
//!
//! Role processes would need a store they can all reach: ScyllaDB, which
//! cannot run on this machine, while the embedded store is one process's.
//! So each role instance runs here on its own tokio runtime (threads named
//! after the instance) around one shared embedded store, and a kill drops
//! that runtime at once: every task of the role, its queued pushes, its
//! in-memory state and its unflushed producer batches go, as with SIGKILL.
//! The broker and `redis-server` are real processes and get real signals.

use crate::report::Tally;
use crate::schedule::{Fault, Point, Step};
use anyhow::{bail, Context, Result};
use seqline_core::failpoint::{self, names};
use seqline_core::ports::{Log, Presence, Store};
use seqline_core::records::Topic;
use seqline_core::GatewayId;
use seqline_telemetry::metrics::Counter;
use seqline_telemetry::Metrics;
use seqline_testkit::servers::{self, ServerProcess};
use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// What a role instance is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Gateway,
    Persister,
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

/// One running role instance.
struct Role {
    kind: Kind,
    /// `gateway-0`, …: the slot, stable across restarts.
    slot: usize,
    /// The runtime's thread name, unique per start (`persister-1.4`).
    thread: String,
    runtime: Option<tokio::runtime::Runtime>,
    stop: CancellationToken,
    task: JoinHandle<Result<()>>,
    /// Gateways: where they listen.
    addr: Option<String>,
    /// The instance's broker connection, once made (for readiness).
    log: Arc<std::sync::OnceLock<seqline_kafka::KafkaLog>>,
}

impl Role {
    /// Every consumer of the instance is subscribed and has its assignment,
    /// but for those in `wedged` groups.
    fn settled(&self, wedged: &BTreeSet<String>) -> bool {
        let consumers = match self.kind {
            Kind::Gateway => 1,
            Kind::Persister | Kind::Fanout => 2,
        };
        self.log.get().is_some_and(|log| {
            let (all, _) = log.members_settled();
            all >= consumers && log.unsettled_groups().iter().all(|g| wedged.contains(g))
        })
    }

    /// The groups this instance is still waiting in.
    fn unsettled(&self) -> Vec<String> {
        self.log.get().map(|log| log.unsettled_groups()).unwrap_or_default()
    }
}

impl Drop for Role {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

/// The Kafka-mode system under test.
pub struct Cluster {
    broker: ServerProcess,
    redis: ServerProcess,
    redis_port: u16,
    kafka: seqline_kafka::KafkaOptions,
    redis_prefix: String,
    secret: String,
    store: Arc<dyn Store>,
    /// The runner's own broker connection, for injecting records (F13).
    injector: seqline_kafka::KafkaLog,
    roles: Vec<Role>,
    starts: u64,
    /// Groups tansu's coordinator left without an assignment on a topic
    /// that never carried a record (see [`Cluster::settle`]); later steps
    /// do not wait for them.
    wedged: BTreeSet<String>,
    /// The fence counter when the cluster started.
    fences_at_start: u64,
}

/// The topic a role's consumer group reads (the roles run with their
/// default configurations, see [`Cluster::spawn`]).
fn topic_of(group: &str) -> Option<Topic> {
    let persister = seqline_persister::PersisterConfig::default();
    let fanout = seqline_fanout::FanoutConfig::default();
    if group == persister.sequencer_group {
        Some(Topic::Inbound)
    } else if group == persister.timeline_group {
        Some(Topic::Deliveries)
    } else if group == fanout.group {
        Some(Topic::UserEvents)
    } else if group == fanout.conv_group {
        Some(Topic::ConvEvents)
    } else {
        let gw = group.strip_prefix("gateway.")?;
        GatewayId::parse(gw).ok().map(Topic::Gateway)
    }
}

/// After this long unsettled, a group on an empty topic is not waited for.
const SETTLE_SOFT: Duration = Duration::from_secs(40);
/// Longest wait for the groups to settle after replacing an instance.
const SETTLE_HARD: Duration = Duration::from_secs(180);

/// Instances of each role.
const INSTANCES: usize = 2;

/// F9: how long past the max poll interval a stalled sequencer is held.
/// Its consumer stops polling 5 s after the worker stopped reading and
/// leaves the group a max poll interval later; the other instance learns
/// of the rebalance at its next heartbeat, rejoins, takes the partitions
/// over and stores the held commands.
const F9_TAKEOVER: Duration = Duration::from_secs(20);

/// The consumers' session timeout: longer than the longest broker stop
/// (F8 holds the broker 8-13 s, past the 6 s producer timeout) plus a
/// heartbeat interval. A broker stopped past the session
/// timeout expires every member of every group at once on resume, and
/// tansu 0.6's coordinator then keeps the expired leader's id for the
/// next generation: no live member is leader, none ever gets an
/// assignment, and the group stays wedged for good (Apache Kafka elects a
/// new leader). The wedges of the long runs of 2026-12-07 each followed such
/// an outage; see docs/chaos.md.
const SESSION_TIMEOUT: Duration = Duration::from_secs(30);

/// The consumers' heartbeat: each member learns of a rebalance at its next
/// one, so a long session timeout need not make rebalances slow.
const HEARTBEAT: Duration = Duration::from_secs(2);

/// Tuning of the broker clients for long runs, read from the environment
/// (`CHAOS_KAFKA_PARTITIONS`, `CHAOS_KAFKA_GW_PARTITIONS`,
/// `CHAOS_KAFKA_LINGER_MS`, `CHAOS_KAFKA_FETCH_WAIT_MS`,
/// `CHAOS_KAFKA_SESSION_TIMEOUT_MS`): tansu's in-memory
/// engine reads a partition by walking its batches, so a run of an hour goes
/// further with fewer, larger batches (see docs/chaos.md).
fn env_u32(name: &str) -> Option<u32> {
    std::env::var(name).ok()?.parse().ok()
}

fn env_millis(name: &str) -> Option<Duration> {
    std::env::var(name).ok()?.parse().ok().map(Duration::from_millis)
}

impl Cluster {
    /// Starts the broker, `redis-server`, the store in `data`, and two
    /// instances of every role.
    pub async fn start(data: &Path, secret: &str, run: &str) -> Result<Cluster> {
        let broker = tokio::task::spawn_blocking(servers::tansu).await?;
        let redis = tokio::task::spawn_blocking(servers::redis).await?;
        let redis_port = redis
            .addr
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .context("redis port")?;
        let parts = env_u32("CHAOS_KAFKA_PARTITIONS").unwrap_or(4);
        let gw_parts = env_u32("CHAOS_KAFKA_GW_PARTITIONS").unwrap_or(1);
        let session_timeout = env_millis("CHAOS_KAFKA_SESSION_TIMEOUT_MS").unwrap_or(SESSION_TIMEOUT);
        let kafka = seqline_kafka::KafkaOptions {
            bootstrap: broker.addr.clone(),
            topic_prefix: format!("chaos{run}."),
            inbound: parts,
            deliveries: parts,
            user_events: parts,
            conv_events: (parts / 2).max(1),
            gateway: gw_parts,
            replication_factor: 1,
            session_timeout,
            // Rebalances are noticed at the next heartbeat: keep them quick
            // although the session timeout is long.
            heartbeat: Some(HEARTBEAT),
            // A stalled worker's consumer leaves its group this long after
            // it stopped polling (F9 gets a takeover).
            max_poll_interval: session_timeout,
            message_timeout: Duration::from_secs(6),
            linger: env_millis("CHAOS_KAFKA_LINGER_MS").unwrap_or(Duration::from_millis(5)),
            fetch_wait: env_millis("CHAOS_KAFKA_FETCH_WAIT_MS").unwrap_or(Duration::from_millis(20)),
            extra: std::env::var("CHAOS_KAFKA_DEBUG")
                .map(|d| vec![("debug".to_string(), d)])
                .unwrap_or_default(),
            ..Default::default()
        };
        let injector = seqline_kafka::KafkaLog::connect(kafka.clone())
            .await
            .context("connecting to the broker")?;
        std::fs::create_dir_all(data)?;
        let engine = seqline_embedded::EmbeddedEngine::open(data).context("opening the store")?;
        let store: Arc<dyn Store> = Arc::new(seqline_embedded::EmbeddedStore::open(engine)?);
        let mut c = Cluster {
            broker,
            redis,
            redis_port,
            kafka,
            redis_prefix: format!("chaos{run}"),
            secret: secret.to_string(),
            store,
            injector,
            roles: Vec::new(),
            starts: 0,
            wedged: BTreeSet::new(),
            fences_at_start: Metrics::global().counter(Counter::FenceRefusals),
        };
        for kind in [Kind::Persister, Kind::Fanout, Kind::Gateway] {
            for slot in 0..INSTANCES {
                let role = c.spawn_retrying(kind, slot).await?;
                c.roles.push(role);
            }
        }
        Ok(c)
    }

    /// How the system is laid out, for the report.
    pub fn describe(&self) -> String {
        format!(
            "tansu {} and redis-server {} (processes); {INSTANCES} gateways, {INSTANCES} persisters, \
             {INSTANCES} fanouts (one runtime each, shared embedded store); partitions {} (gw.* {}), \
             session timeout {:?}, heartbeat {:?}, max poll interval {:?}, linger {:?}, fetch wait {:?}",
            self.broker.addr,
            self.redis.addr,
            self.kafka.inbound,
            self.kafka.gateway,
            self.kafka.session_timeout,
            self.kafka.heartbeat.unwrap_or(self.kafka.session_timeout / 3),
            self.kafka.max_poll_interval,
            self.kafka.linger,
            self.kafka.fetch_wait
        )
    }

    /// The drained signal of the final phase: neither the sequencers nor
    /// the timeline writers have anything uncommitted, and still nothing
    /// after a producer timeout (by when any append a gateway still held
    /// has landed or failed).
    pub fn drain_check(&self) -> seqline_loadgen::DrainCheck {
        let log = self.injector.clone();
        let linger = self.kafka.message_timeout;
        // The roles run with the default configuration (see `spawn`).
        let groups = Arc::new(seqline_persister::PersisterConfig::default());
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

    /// The gateways' addresses (the proxy's backends).
    pub fn gateways(&self) -> Vec<String> {
        self.roles.iter().filter_map(|r| r.addr.clone()).collect()
    }

    /// Starts one instance of `kind` in `slot` on a runtime of its own.
    async fn spawn(&mut self, kind: Kind, slot: usize) -> Result<Role> {
        self.starts += 1;
        let thread = format!("{}-{slot}.{}", kind.name(), self.starts);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .thread_name(thread.clone())
            .build()
            .context("role runtime")?;
        let stop = CancellationToken::new();
        let kafka = self.kafka.clone();
        let store = self.store.clone();
        let redis = seqline_redis::RedisOptions::new(format!("redis://{}", self.redis.addr))
            .with_prefix(self.redis_prefix.clone());
        let (addr_tx, addr_rx) = tokio::sync::oneshot::channel();
        let secret = self.secret.clone();
        let s = stop.clone();
        let shared_log = Arc::new(std::sync::OnceLock::new());
        let set_log = shared_log.clone();
        let task = runtime.spawn(async move {
            let log = seqline_kafka::KafkaLog::connect(kafka).await?;
            // A weak hold would be better; the role drops its clone when
            // it is replaced (see `kill_and_replace`).
            let _ = set_log.set(log.clone());
            let log: Arc<dyn Log> = Arc::new(log);
            match kind {
                Kind::Persister => {
                    let ports = seqline_persister::Ports { log, store };
                    seqline_persister::run(Default::default(), ports, s).await?;
                }
                Kind::Fanout => {
                    let presence: Arc<dyn Presence> = Arc::new(seqline_redis::RedisPresence::connect(redis).await?);
                    let ports = seqline_fanout::Ports { log, presence };
                    seqline_fanout::run(Default::default(), ports, s).await?;
                }
                Kind::Gateway => {
                    let presence: Arc<dyn Presence> = Arc::new(seqline_redis::RedisPresence::connect(redis).await?);
                    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
                    let _ = addr_tx.send(listener.local_addr()?.to_string());
                    let config = seqline_gateway::GatewayConfig {
                        token_secret: secret,
                        id: GatewayId::parse(format!("gw-{slot}"))?,
                        ..Default::default()
                    };
                    let ports = seqline_gateway::Ports { log, store, presence };
                    seqline_gateway::serve(config, ports, listener, s).await?;
                }
            }
            Ok(())
        });
        let mut role = Role {
            kind,
            slot,
            thread,
            runtime: Some(runtime),
            stop,
            task,
            addr: None,
            log: shared_log,
        };
        if kind == Kind::Gateway {
            // On an error `role` is dropped, and its runtime with it, in the
            // background (dropping a runtime here would panic).
            match tokio::time::timeout(Duration::from_secs(30), addr_rx).await {
                Ok(Ok(addr)) => role.addr = Some(addr),
                Ok(Err(_)) => {
                    let why = match tokio::time::timeout(Duration::from_secs(5), &mut role.task).await {
                        Ok(Ok(Err(e))) => format!("{e:#}"),
                        Ok(Ok(Ok(()))) => "it stopped".to_string(),
                        Ok(Err(e)) => e.to_string(),
                        Err(_) => "it did not end".to_string(),
                    };
                    bail!("{} failed before listening: {why}", role.thread);
                }
                Err(_) => bail!("{} did not start listening in 30 s", role.thread),
            }
        }
        Ok(role)
    }

    /// [`Cluster::spawn`], again after a failure as an orchestrator would
    /// (a gateway fails fast when the broker is slow to answer its first
    /// metadata request, e.g. on a loaded machine).
    async fn spawn_retrying(&mut self, kind: Kind, slot: usize) -> Result<Role> {
        let mut attempt = 1;
        loop {
            match self.spawn(kind, slot).await {
                Ok(role) => return Ok(role),
                Err(e) if attempt < 5 => {
                    tracing::warn!(error = %format!("{e:#}"), attempt, "a role failed to start; starting it again");
                    attempt += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Replaces the instance at `index` with a new one after killing it.
    async fn kill_and_replace(&mut self, index: usize) -> Result<()> {
        let (kind, slot) = (self.roles[index].kind, self.roles[index].slot);
        if let Some(rt) = self.roles[index].runtime.take() {
            rt.shutdown_background();
        }
        // The old connection goes with the instance: a successor's
        // subscription then takes its members over.
        self.roles[index].log = Arc::default();
        let new = self.spawn_retrying(kind, slot).await?;
        self.roles[index] = new;
        self.settle().await;
        Ok(())
    }

    /// Waits (bounded) until every instance has joined its groups and every
    /// group has finished rebalancing, as an orchestrator waits for a
    /// replacement to be ready before it stops the next. Stopping or killing
    /// the next instance in the middle of a rebalance can leave tansu's group
    /// coordinator without an assignment for that group for good (every
    /// member waits, none gets partitions; rejoining does not help), which
    /// no client can repair.
    ///
    /// A group still unsettled after [`SETTLE_SOFT`] on a topic nothing was
    /// ever written to (the read-diffusion lane when no group is huge) is
    /// taken for wedged that way and not waited for again: it has nothing
    /// to do, and waiting for it at every later step would leave the run a
    /// fault a minute. A group with records to consume is waited for up to
    /// [`SETTLE_HARD`] at every step: a broker slowed by hours of data can
    /// take minutes to rebalance, and killing members meanwhile wedges it
    /// for real.
    async fn settle(&mut self) {
        let started = Instant::now();
        let mut warned = false;
        while !self.roles.iter().all(|r| r.settled(&self.wedged)) {
            let waited = started.elapsed();
            if waited > SETTLE_SOFT && !warned {
                warned = true;
                let mut groups = BTreeSet::new();
                for r in &self.roles {
                    groups.extend(r.unsettled().into_iter().filter(|g| !self.wedged.contains(g)));
                }
                tracing::warn!(
                    ?groups,
                    "groups did not settle in {SETTLE_SOFT:?}; still waiting for those with records"
                );
                for group in groups {
                    let Some(topic) = topic_of(&group) else { continue };
                    if self.injector.appended(&topic).await.is_ok_and(|n| n == 0) {
                        tracing::warn!(%group, "wedged on a topic that never carried a record; not waited for again");
                        self.wedged.insert(group);
                    }
                }
            }
            if waited > SETTLE_HARD {
                let unsettled: Vec<&str> = self
                    .roles
                    .iter()
                    .filter(|r| !r.settled(&self.wedged))
                    .map(|r| r.thread.as_str())
                    .collect();
                tracing::warn!(?unsettled, "groups did not settle in {SETTLE_HARD:?}; going on");
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Consumer groups the broker's coordinator wedged on topics nothing
    /// was written to (not waited for after).
    pub fn wedged_groups(&self) -> Vec<String> {
        self.wedged.iter().cloned().collect()
    }

    /// Stops the instance at `index` gracefully (drain), starts a new one.
    async fn restart_gracefully(&mut self, index: usize) -> Result<()> {
        let role = &mut self.roles[index];
        role.stop.cancel();
        let drained = tokio::time::timeout(Duration::from_secs(30), &mut role.task).await;
        if !matches!(drained, Ok(Ok(Ok(())))) {
            tracing::warn!(role = %role.thread, ?drained, "role did not drain cleanly");
        }
        self.kill_and_replace(index).await
    }

    fn pick(&self, kind: Kind, pick: u64) -> usize {
        let of: Vec<usize> = (0..self.roles.len()).filter(|i| self.roles[*i].kind == kind).collect();
        of[(pick as usize) % of.len()]
    }

    /// Restarts every role that ended on its own (a role fails fast, e.g.
    /// when the broker stays away; an orchestrator restarts it). Returns
    /// what ended and why.
    pub async fn restart_failed(&mut self) -> Result<Vec<String>> {
        let mut ended = Vec::new();
        for i in 0..self.roles.len() {
            if self.roles[i].task.is_finished() {
                let why = match (&mut self.roles[i].task).await {
                    Ok(Ok(())) => "stopped".to_string(),
                    Ok(Err(e)) => format!("{e:#}"),
                    Err(e) => e.to_string(),
                };
                ended.push(format!("{}: {why}", self.roles[i].thread));
                self.kill_and_replace(i).await?;
            }
        }
        Ok(ended)
    }

    /// Total acks over the gateways.
    async fn acks(&self) -> u64 {
        let mut n = 0;
        for a in self.gateways() {
            n += crate::metrics::acks(&a).await.unwrap_or(0);
        }
        n
    }

    /// Injects one fault of Kafka mode and heals it.
    pub async fn inject(&mut self, fault: Fault, step: &Step, tally: &mut Tally) -> Result<()> {
        let kills = matches!(
            fault,
            Fault::KillGateway
                | Fault::KillPersister
                | Fault::KillFanout
                | Fault::KillRoleAt(_)
                | Fault::RollingRestart
        );
        if kills {
            // As an orchestrator stops an instance only once the last
            // change has settled: a member (the group's leader) leaving
            // tansu's coordinator mid-rebalance wedges the group for good,
            // and F8 and F9 leave rebalances behind them.
            self.settle().await;
        }
        match fault {
            Fault::KillGateway => {
                let i = self.pick(Kind::Gateway, step.pick);
                self.kill_and_replace(i).await?;
            }
            Fault::KillPersister => {
                let i = self.pick(Kind::Persister, step.pick);
                self.kill_and_replace(i).await?;
            }
            Fault::KillFanout => {
                let i = self.pick(Kind::Fanout, step.pick);
                self.kill_and_replace(i).await?;
            }
            Fault::KillRoleAt(point) => self.kill_at(point, tally).await?,
            Fault::RollingRestart => {
                for i in 0..self.roles.len() {
                    self.restart_gracefully(i).await?;
                }
            }
            Fault::BrokerPause => {
                self.broker.signal("STOP");
                tokio::time::sleep(step.hold).await;
                self.broker.signal("CONT");
            }
            Fault::BrokerOutage => {
                self.broker.signal("STOP");
                // Acks of appends the broker took before it stopped are out
                // within a second; after that no ack may be sent.
                tokio::time::sleep(Duration::from_secs(1)).await;
                let before = self.acks().await;
                tokio::time::sleep(self.kafka.message_timeout + step.hold).await;
                let after = self.acks().await;
                self.broker.signal("CONT");
                tally.acks_during_outage += after.saturating_sub(before);
            }
            Fault::SequencerStall => {
                let gate = failpoint::pause_next(names::SEQUENCER_BEFORE_STORE);
                if tokio::time::timeout(Duration::from_secs(10), gate.reached())
                    .await
                    .is_ok()
                {
                    // The held worker stops reading its records, so its
                    // consumer stops polling and leaves the group; the other
                    // persister takes the partitions over and stores the held
                    // commands. The held batch's write then comes from a
                    // stale owner and must be refused.
                    tokio::time::sleep(self.kafka.max_poll_interval + F9_TAKEOVER + step.hold).await;
                } else {
                    tally.point_missed(names::SEQUENCER_BEFORE_STORE);
                }
                gate.release();
            }
            Fault::RedisRestart => {
                self.redis.kill();
                tokio::time::sleep(step.hold).await;
                let port = self.redis_port;
                self.redis = tokio::task::spawn_blocking(move || servers::redis_on(port)).await?;
            }
            Fault::PoisonRecords => self.poison(step.pick).await?,
            other => bail!("{other:?} is not a fault of Kafka mode"),
        }
        Ok(())
    }

    /// Holds the first task to reach `point`, kills the role instance it
    /// runs in, and lets the gate go (the held task died with its runtime).
    async fn kill_at(&mut self, point: Point, tally: &mut Tally) -> Result<()> {
        let gate = failpoint::pause_next(point.name());
        let reached = tokio::time::timeout(Duration::from_secs(10), gate.reached())
            .await
            .is_ok();
        let role = gate
            .reached_on()
            .and_then(|t| self.roles.iter().position(|r| r.thread == t));
        match (reached, role) {
            (true, Some(i)) => {
                tally.point_reached(point.name());
                self.kill_and_replace(i).await?;
            }
            _ => tally.point_missed(point.name()),
        }
        gate.release();
        Ok(())
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
            let partition = ((pick >> (8 * i)) % u64::from(self.kafka.inbound)) as u32;
            for raw in &junk {
                self.injector
                    .inject_raw_for_tests(topic, partition, raw.clone())
                    .await
                    .with_context(|| format!("injecting into {}", topic.name()))?;
            }
        }
        Ok(())
    }

    /// Everything back up: broker running, redis running, every role live.
    pub async fn heal(&mut self, tally: &mut Tally) -> Result<()> {
        self.broker.signal("CONT");
        if self.redis.pid().is_none() {
            let port = self.redis_port;
            self.redis = tokio::task::spawn_blocking(move || servers::redis_on(port)).await?;
        }
        for ended in self.restart_failed().await? {
            tally.role_failure(ended);
        }
        Ok(())
    }

    /// The failure points reached in this process so far.
    pub fn failpoint_hits(&self) -> Vec<(String, u64)> {
        failpoint::all_hits()
            .into_iter()
            .map(|(p, n)| (p.to_string(), n))
            .collect()
    }

    /// Stale writes the store refused since the cluster started (the roles
    /// run in this process, so the counter is this process's).
    pub fn fence_refusals(&self) -> u64 {
        Metrics::global().counter(Counter::FenceRefusals) - self.fences_at_start
    }

    /// Stops every role (drain), then the servers.
    pub async fn stop(mut self) {
        for r in &self.roles {
            r.stop.cancel();
        }
        for r in &mut self.roles {
            let _ = tokio::time::timeout(Duration::from_secs(15), &mut r.task).await;
            if let Some(rt) = r.runtime.take() {
                rt.shutdown_background();
            }
        }
        let started = Instant::now();
        self.broker.kill();
        self.redis.kill();
        tracing::debug!(took = ?started.elapsed(), "cluster stopped");
    }
}
