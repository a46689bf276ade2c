use crate::error::Result;
use crate::records::{LogRecord, Topic};
use crate::trace::TraceParent;
use async_trait::async_trait;

/// A partitioned, durable log with consumer groups (Kafka-shaped).
///
/// Records with the same key land on the same partition, in append order.
#[async_trait]
pub trait Log: Send + Sync + 'static {
    /// Appends `records` to `topic`; returns once every record is durable
    /// (fsynced, or acknowledged by all in-sync replicas). Each record
    /// carries the trace context of the current span, when it has one.
    async fn append(&self, topic: &Topic, records: Vec<LogRecord>) -> Result<()>;

    /// Joins consumer group `group` on `topic`. Consumption starts at the
    /// group's committed offsets (earliest when none).
    async fn subscribe(&self, group: &str, topic: &Topic) -> Result<Box<dyn LogConsumer>>;

    /// Number of partitions of `topic`.
    fn partitions(&self, topic: &Topic) -> u32;
}

/// A record read from the log.
#[derive(Debug, Clone)]
pub struct Consumed {
    /// Its offset in the partition.
    pub offset: u64,
    /// The record, or why it could not be decoded (to be dead-lettered).
    pub record: std::result::Result<LogRecord, String>,
    /// The trace context of the span that appended it, when that span was
    /// traced (the consumer continues the trace); `None` without one.
    pub trace: Option<TraceParent>,
}

/// What a poll returns.
#[derive(Debug)]
pub enum Polled {
    /// These partitions are now ours: reload their state before processing.
    Assigned(Vec<u32>),
    /// These partitions are gone: drop the work in hand for them.
    Revoked(Vec<u32>),
    /// Records of one partition, in offset order.
    Records {
        /// The partition.
        partition: u32,
        /// The records.
        records: Vec<Consumed>,
    },
}

/// One member of a consumer group. At-least-once: after a restart, reading
/// resumes after the last committed offset.
#[async_trait]
pub trait LogConsumer: Send {
    /// Waits until records or an assignment change are available. Cancel-safe.
    async fn poll(&mut self, max_records: usize) -> Result<Polled>;

    /// Records that everything before `next_offset` in `partition` is done.
    async fn commit(&mut self, partition: u32, next_offset: u64) -> Result<()>;
}
