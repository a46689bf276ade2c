//! A real broker for the tests: `SEQLINE_TEST_KAFKA` (a bootstrap address)
//! when set, otherwise a private tansu process on a free loopback port,
//! killed when the fixture is dropped.

#![allow(dead_code, clippy::unwrap_used, clippy::new_without_default)]

use async_trait::async_trait;
use seqline_core::ports::Log;
use seqline_core::records::Topic;
use seqline_kafka::{KafkaLog, KafkaOptions};
use seqline_testkit::servers::ServerProcess;
use seqline_testkit::{Harness, LogHarness};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A broker to talk to.
pub struct Broker {
    pub bootstrap: String,
    process: Option<ServerProcess>,
}

impl Broker {
    /// The broker of `SEQLINE_TEST_KAFKA`, or a fresh tansu.
    pub fn start() -> Self {
        match std::env::var("SEQLINE_TEST_KAFKA") {
            Ok(bootstrap) if !bootstrap.is_empty() => Self {
                bootstrap,
                process: None,
            },
            _ => Self::tansu(),
        }
    }

    /// Always a fresh tansu of our own (for tests that stop the broker).
    pub fn tansu() -> Self {
        let process = seqline_testkit::servers::tansu();
        Self {
            bootstrap: process.addr.clone(),
            process: Some(process),
        }
    }

    /// The PID of the tansu process this fixture started.
    pub fn pid(&self) -> Option<u32> {
        self.process.as_ref().and_then(ServerProcess::pid)
    }

    /// Sends `signal` (e.g. "STOP", "CONT") to our own tansu process.
    pub fn signal(&self, signal: &str) {
        let process = self
            .process
            .as_ref()
            .expect("only a broker started by the test can be signalled");
        assert!(process.signal(signal), "kill -{signal} {:?}", process.pid());
    }
}

/// Options of the tests: a private topic prefix, several partitions per
/// gateway topic (per-key order is checked across partitions), a short
/// session timeout so assignments come quickly.
pub fn test_options(bootstrap: &str) -> KafkaOptions {
    let id = uuid::Uuid::new_v4().simple().to_string();
    KafkaOptions {
        bootstrap: bootstrap.to_string(),
        topic_prefix: format!("t{}.", &id[..10]),
        client_id: "seqline-test".into(),
        gateway: 4,
        replication_factor: 1,
        session_timeout: Duration::from_secs(6),
        message_timeout: Duration::from_secs(10),
        ..KafkaOptions::default()
    }
}

/// The `LogHarness` of the contract suite.
pub struct KafkaFixture {
    options: KafkaOptions,
    last: Mutex<Option<KafkaLog>>,
    // Dropped last: the logs go before the broker.
    broker: Broker,
}

impl KafkaFixture {
    pub fn new() -> Self {
        let broker = Broker::start();
        Self {
            options: test_options(&broker.bootstrap),
            last: Mutex::new(None),
            broker,
        }
    }
}

#[async_trait]
impl Harness<dyn Log> for KafkaFixture {
    async fn open(&self) -> Arc<dyn Log> {
        let log = KafkaLog::connect(self.options.clone()).await.unwrap();
        *self.last.lock().unwrap() = Some(log.clone());
        Arc::new(log)
    }
}

#[async_trait]
impl LogHarness for KafkaFixture {
    async fn inject_raw(&self, topic: &Topic, partition: u32, raw: Vec<u8>) -> Option<u64> {
        let log = self.last.lock().unwrap().clone()?;
        Some(log.inject_raw_for_tests(topic, partition, raw).await.unwrap())
    }
}
