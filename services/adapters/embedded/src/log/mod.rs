//! [`EmbeddedLog`]: a partitioned, durable log with consumer groups on the
//! engine.
//!
//! Records live in one keyspace under `(topic, partition, offset BE)`. An
//! append locks the partitions it touches, assigns contiguous offsets,
//! writes one batch, unlocks, and waits for the group commit; only then does
//! the partition's durable mark move, so consumers never see a record
//! before it (and everything before it) is fsynced.

mod append;
mod consumer;
mod retention;
mod topic;

use crate::engine::{blocking, EmbeddedEngine};
use crate::error::{lock, EngineError};
use async_trait::async_trait;
use fjall::Keyspace;
use seqline_core::ports::{Log, LogConsumer};
use seqline_core::records::{LogRecord, Topic};
use seqline_core::Result;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use topic::TopicState;

/// Partition counts per topic and retention work bounds.
#[derive(Clone, Debug)]
pub struct LogOptions {
    /// Partitions of `inbound`.
    pub inbound: u32,
    /// Partitions of `deliveries`.
    pub deliveries: u32,
    /// Partitions of `user-events`.
    pub user_events: u32,
    /// Partitions of `conv-events`.
    pub conv_events: u32,
    /// Partitions of `priority-events`.
    pub priority_events: u32,
    /// Partitions of each `gw.<id>` and `gw-priority.<id>` topic.
    pub gateway: u32,
    /// Partitions of `dead-letter`.
    pub dead_letter: u32,
    /// At most this many records are trimmed per commit.
    pub trim_batch: usize,
    /// Appends to the topics whose loss the protocol recovers from return
    /// without an fsync of their own and are visible at once; the next
    /// group commit anyone asks for makes them durable. They are:
    /// - `inbound`: a command is acknowledged only after the sequencer's
    ///   durable write, which the journal orders after the command; a
    ///   command lost in a crash was never acknowledged, and the client
    ///   resends it with the same id;
    /// - `user-events`, `conv-events`, `priority-events`, `gw.<id>` and
    ///   `gw-priority.<id>`: pushes and receipts, written only after what
    ///   they announce is durable. A crash of the one process that runs on
    ///   this log drops every connection too; devices reconnect and pull
    ///   what they missed, a client whose receipt was lost resends and gets
    ///   the original `conv_seq`.
    ///
    /// `deliveries` (the only carrier of a message to the timelines) and
    /// `dead-letter` are always fsynced before an append returns.
    pub unsynced_recoverable_topics: bool,
}

impl Default for LogOptions {
    fn default() -> Self {
        Self {
            inbound: 8,
            deliveries: 8,
            user_events: 8,
            conv_events: 8,
            priority_events: 8,
            gateway: 1,
            dead_letter: 1,
            trim_batch: 4096,
            unsynced_recoverable_topics: true,
        }
    }
}

impl LogOptions {
    /// Partitions of `topic` (at least 1).
    pub fn partitions(&self, topic: &Topic) -> u32 {
        let n = match topic {
            Topic::Inbound => self.inbound,
            Topic::Deliveries => self.deliveries,
            Topic::UserEvents => self.user_events,
            Topic::ConvEvents => self.conv_events,
            Topic::PriorityEvents => self.priority_events,
            Topic::Gateway(_) | Topic::GatewayPriority(_) => self.gateway,
            Topic::DeadLetter => self.dead_letter,
        };
        n.max(1)
    }
}

/// The embedded [`Log`]. Cheap to clone.
#[derive(Clone)]
pub struct EmbeddedLog {
    inner: Arc<LogInner>,
}

pub(crate) struct LogInner {
    engine: Arc<EmbeddedEngine>,
    records: Keyspace,
    offsets: Keyspace,
    meta: Keyspace,
    options: LogOptions,
    topics: Mutex<HashMap<String, Arc<TopicState>>>,
}

impl EmbeddedLog {
    /// Opens the log on `engine`; topics are recovered on first use.
    pub fn open(engine: Arc<EmbeddedEngine>, options: LogOptions) -> Result<Self> {
        let inner = LogInner {
            records: engine.keyspace("log_records")?,
            offsets: engine.keyspace("log_offsets")?,
            meta: engine.keyspace("log_meta")?,
            engine,
            options,
            topics: Mutex::new(HashMap::new()),
        };
        Ok(Self { inner: Arc::new(inner) })
    }

    /// Appends raw bytes as the next record of `partition`, durably, and
    /// returns its offset. For tests of undecodable records only.
    #[doc(hidden)]
    pub async fn inject_raw_for_tests(&self, topic: &Topic, partition: u32, raw: Vec<u8>) -> Result<u64> {
        let state = self.inner.topic(topic).await?;
        let ends = append::append_encoded(&self.inner, &state, vec![(partition, raw)]).await?;
        Ok(ends.first().map_or(0, |(_, end)| end.saturating_sub(1)))
    }
}

impl LogInner {
    /// The state of `topic`, recovering it from disk on first use.
    async fn topic(self: &Arc<Self>, topic: &Topic) -> Result<Arc<TopicState>, EngineError> {
        let name = topic.name();
        if let Some(state) = lock(&self.topics).get(&name) {
            return Ok(Arc::clone(state));
        }
        let count = self.options.partitions(topic);
        let this = Arc::clone(self);
        let loaded_name = name.clone();
        let loaded =
            blocking(move || TopicState::load(&this.records, &this.offsets, &this.meta, &loaded_name, count)).await?;
        let mut loaded = loaded;
        loaded.volatile = self.options.unsynced_recoverable_topics && recoverable(topic);
        let mut topics = lock(&self.topics);
        Ok(Arc::clone(topics.entry(name).or_insert_with(|| Arc::new(loaded))))
    }
}

/// Whether a lost append to `topic` is recovered by the protocol (see
/// [`LogOptions::unsynced_recoverable_topics`]).
fn recoverable(topic: &Topic) -> bool {
    match topic {
        Topic::Inbound
        | Topic::UserEvents
        | Topic::ConvEvents
        | Topic::PriorityEvents
        | Topic::Gateway(_)
        | Topic::GatewayPriority(_) => true,
        Topic::Deliveries | Topic::DeadLetter => false,
    }
}

#[async_trait]
impl Log for EmbeddedLog {
    async fn append(&self, topic: &Topic, records: Vec<LogRecord>) -> Result<()> {
        if records.is_empty() {
            return Ok(());
        }
        let state = self.inner.topic(topic).await?;
        let n = records.len() as u64;
        append::append(&self.inner, state, records).await?;
        if *topic == Topic::DeadLetter {
            seqline_telemetry::emit(seqline_telemetry::events::DeadLettered { count: n });
        }
        Ok(())
    }

    async fn subscribe(&self, group: &str, topic: &Topic) -> Result<Box<dyn LogConsumer>> {
        let state = self.inner.topic(topic).await?;
        Ok(Box::new(consumer::EmbeddedConsumer::join(
            Arc::clone(&self.inner),
            state,
            group,
        )))
    }

    fn partitions(&self, topic: &Topic) -> u32 {
        self.inner.options.partitions(topic)
    }
}

#[cfg(test)]
mod tests;
