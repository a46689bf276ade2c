//! A real persister (sequencer and timeline writer) over the real embedded
//! log and store in a private directory. Tests write records to the log as
//! a gateway would (or as a broken or hostile writer would), and read the
//! receipts, the dead letters and the store.

#![allow(dead_code)]

use seqline_core::ids::*;
use seqline_core::model::{ConversationKind, Outcome};
use seqline_core::ports::{Log, LogConsumer, Polled, Store};
use seqline_core::records::{
    Command, CreateCommand, DeadLetter, Delivery, GatewayRecord, LogRecord, Origin, SendCommand, Topic,
};
use seqline_embedded::{EmbeddedEngine, EmbeddedLog, EmbeddedStore, LogOptions};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// How long any single expected event may take.
pub const WAIT: Duration = Duration::from_secs(10);

pub fn user(u: &str) -> UserId {
    UserId::parse(u).unwrap()
}

pub fn conv(c: &str) -> ConversationId {
    ConversationId::parse(c).unwrap()
}

pub struct Rig {
    pub log: EmbeddedLog,
    pub store: Arc<EmbeddedStore>,
    pub gateway: GatewayId,
    receipts: Box<dyn LogConsumer>,
    seen: HashMap<ClientMsgId, Outcome>,
    dead: Box<dyn LogConsumer>,
    stop: CancellationToken,
    task: Option<JoinHandle<seqline_core::Result<()>>>,
    /// The persister runs on a runtime of its own, so a test can kill it
    /// the way a crash would: every task and in-memory state at once.
    runtime: Option<tokio::runtime::Runtime>,
    ports: seqline_persister::Ports,
    dir: PathBuf,
}

/// Starts a persister with default settings on a runtime of its own.
fn spawn_persister(
    ports: seqline_persister::Ports,
    stop: CancellationToken,
) -> (tokio::runtime::Runtime, JoinHandle<seqline_core::Result<()>>) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("persister")
        .enable_all()
        .build()
        .unwrap();
    let task = runtime.spawn(seqline_persister::run(Default::default(), ports, stop));
    (runtime, task)
}

impl Rig {
    /// A persister with default settings over a log whose `inbound` topic
    /// has `inbound` partitions.
    pub async fn start(inbound: u32) -> Self {
        let dir = std::env::temp_dir().join(format!("seqline-hostile-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        let engine = EmbeddedEngine::open(&dir).unwrap();
        let options = LogOptions {
            inbound,
            deliveries: 1,
            ..LogOptions::default()
        };
        let log = EmbeddedLog::open(engine.clone(), options).unwrap();
        let store = Arc::new(EmbeddedStore::open(engine).unwrap());
        let gateway = GatewayId::parse("gw-test").unwrap();
        let receipts = log
            .subscribe("test-receipts", &Topic::Gateway(gateway.clone()))
            .await
            .unwrap();
        let dead = log.subscribe("test-dead", &Topic::DeadLetter).await.unwrap();
        let stop = CancellationToken::new();
        let ports = seqline_persister::Ports {
            log: Arc::new(log.clone()),
            store: store.clone(),
        };
        let (runtime, task) = spawn_persister(ports.clone(), stop.clone());
        Self {
            log,
            store,
            gateway,
            receipts,
            seen: HashMap::new(),
            dead,
            stop,
            task: Some(task),
            runtime: Some(runtime),
            ports,
            dir,
        }
    }

    /// Kills the persister as a crash would (its tasks, cached state and
    /// unfinished writes' waiters go at once; what reached the store and
    /// the log stays) and starts a new one over the same log and store.
    pub fn crash_and_restart(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
        self.stop = CancellationToken::new();
        let (runtime, task) = spawn_persister(self.ports.clone(), self.stop.clone());
        self.runtime = Some(runtime);
        self.task = Some(task);
    }

    pub fn origin(&self, u: &str) -> Origin {
        Origin {
            name: String::new(),
            gateway: self.gateway.clone(),
            user: user(u),
            device: DeviceId::parse("phone").unwrap(),
            request: 1,
        }
    }

    pub fn create(&self, c: &str, admin: &str, members: &[&str]) -> (ClientMsgId, LogRecord) {
        let id = ClientMsgId::random();
        let cmd = Command::Create(CreateCommand {
            origin: self.origin(admin),
            conv: conv(c),
            kind: ConversationKind::Group,
            title: String::new(),
            members: members.iter().map(|m| user(m)).collect(),
            client_msg_id: id,
        });
        (id, LogRecord::Command(cmd))
    }

    pub fn send_as(&self, c: &str, u: &str, id: ClientMsgId, body: &str, sent_ms: u64) -> LogRecord {
        LogRecord::Command(Command::Send(SendCommand {
            origin: self.origin(u),
            conv: conv(c),
            client_msg_id: id,
            prev: None,
            body: body.into(),
            priority: false,
            vclock: Default::default(),
            sent_ms,
        }))
    }

    /// A send stamped now, as the gateway does.
    pub fn send(&self, c: &str, u: &str, body: &str) -> (ClientMsgId, LogRecord) {
        let id = ClientMsgId::random();
        (id, self.send_as(c, u, id, body, seqline_core::model::now_ms()))
    }

    pub async fn append(&self, topic: &Topic, records: Vec<LogRecord>) {
        self.log.append(topic, records).await.unwrap();
    }

    /// Writes `record` encoded as the log stores it, to a partition of the
    /// caller's choosing (whatever its key says).
    pub async fn inject(&self, topic: &Topic, partition: u32, record: LogRecord) -> u64 {
        let bytes = seqline_embedded::fuzzing::encode_record(record).unwrap();
        self.log.inject_raw_for_tests(topic, partition, bytes).await.unwrap()
    }

    /// The receipt for command `id` (waits for it).
    pub async fn receipt(&mut self, id: ClientMsgId) -> Outcome {
        let end = tokio::time::Instant::now() + WAIT;
        loop {
            if let Some(o) = self.seen.remove(&id) {
                return o;
            }
            let polled = tokio::time::timeout_at(end, self.receipts.poll(100))
                .await
                .expect("the receipt in time")
                .unwrap();
            if let Polled::Records { records, .. } = polled {
                for r in records {
                    if let Ok(LogRecord::Gateway(GatewayRecord::Receipt(r))) = r.record {
                        self.seen.insert(r.client_msg_id, r.outcome);
                    }
                }
            }
        }
    }

    /// The next `n` dead letters (waits for them).
    pub async fn dead_letters(&mut self, n: usize) -> Vec<DeadLetter> {
        let end = tokio::time::Instant::now() + WAIT;
        let mut out = Vec::new();
        while out.len() < n {
            let polled = tokio::time::timeout_at(end, self.dead.poll(100))
                .await
                .expect("the dead letters in time")
                .unwrap();
            if let Polled::Records { records, .. } = polled {
                for r in records {
                    match r.record.unwrap() {
                        LogRecord::DeadLetter(d) => out.push(d),
                        other => panic!("not a dead letter: {other:?}"),
                    }
                }
            }
        }
        out
    }

    /// No (further) dead letter: call after a later record was processed.
    pub async fn no_more_dead_letters(&mut self) {
        match tokio::time::timeout(Duration::from_millis(100), self.dead.poll(100)).await {
            Err(_) => {}
            Ok(polled) => {
                if let Polled::Records { records, .. } = polled.unwrap() {
                    assert!(records.is_empty(), "unexpected dead letters: {records:?}");
                }
            }
        }
    }

    /// Every stored message of `c`, in order.
    pub async fn messages(&self, c: &str) -> Vec<seqline_core::model::Message> {
        self.store.messages_after(&conv(c), ConvSeq(0), 10_000).await.unwrap()
    }

    pub async fn head(&self, c: &str) -> u64 {
        self.store.conversation_head(&conv(c)).await.unwrap().map_or(0, |h| h.0)
    }

    /// Waits until `u`'s timeline holds `n` entries.
    pub async fn timeline_reaches(&self, u: &str, n: u64) {
        let end = tokio::time::Instant::now() + WAIT;
        loop {
            let head = self.store.timeline_head(&user(u)).await.unwrap();
            if head.0 >= n {
                assert_eq!(head.0, n, "more timeline entries than expected");
                return;
            }
            assert!(tokio::time::Instant::now() < end, "{u}'s timeline stayed at {}", head.0);
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Stops the persister; it must not have failed.
    pub async fn stop(mut self) {
        self.stop.cancel();
        let task = self.task.take().unwrap();
        tokio::time::timeout(WAIT, task)
            .await
            .expect("the persister stops")
            .unwrap()
            .expect("the persister ran without failing");
    }
}

impl Drop for Rig {
    fn drop(&mut self) {
        self.stop.cancel();
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A conversation id whose key lands on `partition` of `count`.
pub fn conv_on(partition: u32, count: u32) -> String {
    (0..)
        .map(|i| format!("g:room{i}"))
        .find(|c| partition_for(c, count) == partition)
        .unwrap()
}

pub fn sequenced(n: u64) -> Outcome {
    Outcome::Sequenced { conv_seq: ConvSeq(n) }
}

/// A reader of the (single-partition) deliveries topic that holds its
/// records back from retention (it has committed).
pub async fn tap(rig: &Rig) -> Box<dyn LogConsumer> {
    let mut consumer = rig.log.subscribe("test-deliveries", &Topic::Deliveries).await.unwrap();
    assert!(matches!(consumer.poll(1).await.unwrap(), Polled::Assigned(_)));
    consumer.commit(0, 0).await.unwrap();
    consumer
}

/// Hands every delivery `consumer` reads to `more`, in order, until it
/// returns false (waits for them).
pub async fn read_deliveries(consumer: &mut dyn LogConsumer, mut more: impl FnMut(Delivery) -> bool) {
    let end = tokio::time::Instant::now() + WAIT;
    loop {
        let polled = tokio::time::timeout_at(end, consumer.poll(100))
            .await
            .expect("the deliveries in time")
            .unwrap();
        if let Polled::Records { records, .. } = polled {
            for r in records {
                if let Ok(LogRecord::Delivery(d)) = r.record {
                    if !more(d) {
                        return;
                    }
                }
            }
        }
    }
}
