//! Apache Kafka for the tests: the shared broker of the run
//! (`SEQLINE_TEST_KAFKA`, see `seqline_testkit::kafka`), each test on topics
//! of its own (a random prefix) and groups of its own; a test that stops or
//! kills the broker starts a private one (`KafkaServer`).

#![allow(dead_code, clippy::unwrap_used, clippy::new_without_default)]

use async_trait::async_trait;
use seqline_core::ports::Log;
use seqline_core::records::Topic;
use seqline_kafka::{KafkaLog, KafkaOptions};
use seqline_testkit::{Harness, LogHarness};
use std::sync::{Arc, Mutex};

/// Options of the tests: a private topic prefix and several partitions per
/// gateway topic (per-key order is checked across partitions); the group
/// timeouts are the defaults of `KafkaOptions`.
pub fn test_options(bootstrap: &str) -> KafkaOptions {
    let id = uuid::Uuid::new_v4().simple().to_string();
    KafkaOptions {
        bootstrap: bootstrap.to_string(),
        topic_prefix: format!("t{}.", &id[..10]),
        client_id: "seqline-test".into(),
        gateway: 4,
        replication_factor: 1,
        ..KafkaOptions::default()
    }
}

/// The `LogHarness` of the contract suite, on the shared broker.
pub struct KafkaFixture {
    options: KafkaOptions,
    last: Mutex<Option<KafkaLog>>,
}

impl KafkaFixture {
    pub fn new() -> Self {
        Self {
            options: test_options(&seqline_testkit::kafka::shared_bootstrap()),
            last: Mutex::new(None),
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
